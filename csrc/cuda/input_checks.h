// Argument checks that run on the device, over inputs that never leave it. A failed check records the smallest
// (code, flat index) pair in one error word; the step that follows is guarded by that word, and the host turns it
// into an exception naming the problem and the index (csrc/cuda/device_owners.cuh, describe_error).
#pragma once

#include <cstdint>

#include "cuda/for_each.h"

namespace hmasd {

enum DeviceErrorCode : uint32_t {
  kActionOutOfRange = 1,
  kActionNotFinite = 2,
  kEnvNeedsReset = 3,
  kNeedsDecision = 4,
  kLogpNotFinite = 5,
  kValueNotFinite = 6,
  kEnvIdOutOfRange = 7,
  kDecisionNotNeeded = 8,
  kEnvIdTwice = 9,
  kTeamSkillOutOfRange = 10,
  kIndivSkillOutOfRange = 11,
  kDecisionLogpNotFinite = 12,
  kDecisionValueNotFinite = 13,
  kDecisionMissing = 14,
};

__device__ inline void record_error(unsigned long long* error, uint32_t code, int64_t index) {
  atomicMin(error, (static_cast<unsigned long long>(code) << 48) | static_cast<unsigned long long>(index));
}
inline uint32_t error_code(unsigned long long word) { return static_cast<uint32_t>(word >> 48); }
inline int64_t error_index(unsigned long long word) { return static_cast<int64_t>(word & ((1ull << 48) - 1)); }

__device__ inline bool finite_float(float x) { return x - x == 0.0f; }

// Discrete actions in [0, num_actions), continuous ones finite; one thread per flat element.
template <class T>
struct CheckActions {
  const T* actions;
  int32_t num_actions;
  bool continuous;
  unsigned long long* error;
  __device__ void operator()(int32_t k) const {
    if (continuous) {
      if (!finite_float(static_cast<float>(actions[k]))) record_error(error, kActionNotFinite, k);
    } else if (actions[k] < T(0) || actions[k] >= T(num_actions)) {
      record_error(error, kActionOutOfRange, k);
    }
  }
};

struct CheckFinite {
  const float* values;
  uint32_t code;
  unsigned long long* error;
  __device__ void operator()(int32_t k) const {
    if (!finite_float(values[k])) record_error(error, code, k);
  }
};

// A flag per env that must be clear (needs_reset with autoreset disabled, needs_decision before an engine step).
struct CheckFlagClear {
  const bool* flags;
  uint32_t code;
  unsigned long long* error;
  __device__ void operator()(int32_t e) const {
    if (flags[e]) record_error(error, code, e);
  }
};

}  // namespace hmasd
