// Every CUDA runtime call and kernel launch goes through check_cuda(), which turns an error into a C++ exception
// naming the call (the bindings translate it into a Python exception): nothing aborts the interpreter.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace hmasd {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void check_cuda(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky-free error so the next call starts clean
  throw CudaError(std::string("CUDA error in ") + call + ": " + cudaGetErrorName(status) + " (" +
                  cudaGetErrorString(status) + ")");
}

// Makes `device` current for the scope of an owner's call and restores the caller's device afterwards.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceScope() {
    int now = previous_;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace hmasd
