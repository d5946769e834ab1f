// The CUDA backend's device queries; the owners are in device_owners.cuh, compiled once per env (backend_<env>.cu).
#include <cuda_runtime.h>

#include "cuda/backend.h"
#include "cuda/cuda_check.h"

namespace hmasd {

// Without a driver or a device every runtime call fails; that is "no device", never a crash.
int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

void synchronize_device(int32_t device) {
  DeviceScope scope(device);
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

}  // namespace hmasd
