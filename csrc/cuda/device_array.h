// A zero-initialised, fixed-size array in device memory: the storage behind every buffer torch sees via DLPack.
// The same interface as cpu/host_array.h, so the owners' storage templates take either.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "cuda/cuda_check.h"

namespace hmasd {

template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t size) : size_(size) {
    if (size == 0) return;
    void* data = nullptr;
    check_cuda(cudaMalloc(&data, bytes()), "cudaMalloc");
    data_ = static_cast<T*>(data);
    const cudaError_t status = cudaMemset(data_, 0, bytes());
    if (status != cudaSuccess) {
      cudaFree(data_);
      data_ = nullptr;
      check_cuda(status, "cudaMemset");
    }
  }
  ~DeviceArray() {
    if (data_ != nullptr) cudaFree(data_);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& other) noexcept { swap(other); }
  DeviceArray& operator=(DeviceArray&& other) noexcept {
    swap(other);
    return *this;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }
  void fill_zero(cudaStream_t stream) {
    if (data_ != nullptr) check_cuda(cudaMemsetAsync(data_, 0, bytes(), stream), "cudaMemsetAsync");
  }

 private:
  void swap(DeviceArray& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
  }
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace hmasd
