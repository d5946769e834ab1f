// The CUDA counterpart of cpu/parallel_for.h: one thread per index calls a per-env functor of csrc/batch or
// csrc/rollout. The guarded form skips the work when a check kernel earlier on the stream found bad input, so a
// rejected call changes nothing even when the host has not waited for the check.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/cuda_check.h"

namespace hmasd {

constexpr unsigned long long kNoDeviceError = ~0ull;

template <class Fn>
__global__ void for_each_kernel(int32_t count, Fn fn) {
  const int32_t i = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < count) fn(i);
}

template <class Fn>
__global__ void guarded_for_each_kernel(int32_t count, const unsigned long long* error, Fn fn) {
  const int32_t i = static_cast<int32_t>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < count && *error == kNoDeviceError) fn(i);
}

constexpr int32_t kThreadsPerBlock = 128;

inline unsigned blocks_for(int32_t count) { return static_cast<unsigned>((count + kThreadsPerBlock - 1) / kThreadsPerBlock); }

template <class Fn>
void launch_for_each(int32_t count, cudaStream_t stream, const Fn& fn, const char* what) {
  if (count <= 0) return;
  for_each_kernel<<<blocks_for(count), kThreadsPerBlock, 0, stream>>>(count, fn);
  check_cuda(cudaGetLastError(), what);
}

template <class Fn>
void launch_guarded(int32_t count, cudaStream_t stream, const unsigned long long* error, const Fn& fn,
                    const char* what) {
  if (count <= 0) return;
  guarded_for_each_kernel<<<blocks_for(count), kThreadsPerBlock, 0, stream>>>(count, error, fn);
  check_cuda(cudaGetLastError(), what);
}

// Per-thread stack the kernels of Fn need (uav_coverage keeps its radio scratch on the stack): raised once, before
// the first launch, so a launch never fails for want of local memory.
template <class Fn>
void reserve_stack_for() {
  cudaFuncAttributes attributes{};
  check_cuda(cudaFuncGetAttributes(&attributes, for_each_kernel<Fn>), "cudaFuncGetAttributes");
  size_t limit = 0;
  check_cuda(cudaDeviceGetLimit(&limit, cudaLimitStackSize), "cudaDeviceGetLimit");
  const size_t needed = attributes.localSizeBytes + 4096;
  if (needed > limit) check_cuda(cudaDeviceSetLimit(cudaLimitStackSize, needed), "cudaDeviceSetLimit(stack)");
}

}  // namespace hmasd
