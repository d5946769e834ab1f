// Bit tricks shared by host and device code: population count and the position of the k-th set bit.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace hmasd {

HD inline int32_t popcount64(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return __popcll(x);
#else
  return __builtin_popcountll(x);
#endif
}

HD inline int32_t lowest_bit64(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return __ffsll(static_cast<long long>(x)) - 1;
#else
  return __builtin_ctzll(x);
#endif
}

// Index of the k-th (0-based) set bit of x; x must have more than k set bits.
HD inline int32_t select_bit64(uint64_t x, int32_t k) {
  for (int32_t i = 0; i < k; ++i) x &= x - 1;
  return lowest_bit64(x);
}

}  // namespace hmasd
