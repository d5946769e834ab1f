// The one atomic abstraction the rollout engine needs: fetch-add to reserve a ring slot, release-store to publish.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace hmasd {

HD inline uint32_t atomic_fetch_add(uint32_t* counter, uint32_t value) {
#if defined(__CUDA_ARCH__)
  return atomicAdd(counter, value);
#else
  return __atomic_fetch_add(counter, value, __ATOMIC_RELAXED);
#endif
}

HD inline void atomic_publish(uint8_t* flag) {
#if defined(__CUDA_ARCH__)
  __threadfence();
  *reinterpret_cast<volatile uint8_t*>(flag) = 1;
#else
  __atomic_store_n(flag, static_cast<uint8_t>(1), __ATOMIC_RELEASE);
#endif
}

}  // namespace hmasd
