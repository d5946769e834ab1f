// Counter-based Philox4x32-10 (Salmon et al., SC'11) and the per-env random stream built on it.
// A draw is a pure function of (seed, env index, episode, step, purpose, index), so trajectories do not
// depend on thread count, backend or the order in which envs are stepped. docs/envs.md is the contract.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace hmasd {

struct Philox4x32 {
  uint32_t v[4];
};

HD inline void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

HD inline Philox4x32 philox4x32_10(Philox4x32 counter, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u;
  constexpr uint32_t kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u;
  constexpr uint32_t kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(kMul0, counter.v[0], hi0, lo0);
    philox_mulhilo(kMul1, counter.v[2], hi1, lo1);
    counter = Philox4x32{{hi1 ^ counter.v[1] ^ key0, lo1, hi0 ^ counter.v[3] ^ key1, lo0}};
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

// The random stream of one env copy within one episode.
struct EnvRng {
  uint32_t seed_lo;
  uint32_t seed_hi;
  uint32_t env_index;
  uint32_t episode;

  // The four words with indices 4 * quad .. 4 * quad + 3 of (t, purpose): one Philox call for up to four draws.
  HD Philox4x32 quad(uint32_t t, uint32_t purpose, uint32_t quad_index) const {
    const Philox4x32 counter{{t, episode, (purpose << 16) | quad_index, seed_hi}};
    return philox4x32_10(counter, seed_lo, env_index);
  }

  HD uint32_t word(uint32_t t, uint32_t purpose, uint32_t index) const { return quad(t, purpose, index >> 2).v[index & 3u]; }
};

// Integer in [0, n): multiply-shift, reproducible in NumPy with uint64 arithmetic.
HD inline int32_t uniform_int(uint32_t word, int32_t n) {
  return static_cast<int32_t>((static_cast<uint64_t>(word) * static_cast<uint64_t>(n)) >> 32);
}

// float32 in [0, 1) with 24 random bits: exact in float32.
HD inline float uniform_float(uint32_t word) { return static_cast<float>(word >> 8) * 0x1p-24f; }

HD inline bool bernoulli(uint32_t word, float p) { return uniform_float(word) < p; }

}  // namespace hmasd
