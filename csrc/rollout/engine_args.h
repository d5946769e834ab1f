// The checks of a rollout engine's construction arguments, shared by the CPU and CUDA owners (host code).
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "batch/env_batch.h"

namespace hmasd {

inline void check_engine_args(Autoreset autoreset, int32_t horizon, int32_t skill_interval, int32_t num_team_skills,
                              int32_t num_indiv_skills) {
  if (autoreset != Autoreset::kSameStep)
    throw std::invalid_argument("the rollout engine needs an env with autoreset='same_step'");
  if (horizon < 1) throw std::invalid_argument("horizon must be >= 1, got " + std::to_string(horizon));
  if (skill_interval < 1)
    throw std::invalid_argument("skill_interval must be >= 1, got " + std::to_string(skill_interval));
  if (num_team_skills < 1 || num_indiv_skills < 1)
    throw std::invalid_argument("num_team_skills and num_indiv_skills must be >= 1");
}

// Counters of a checkpoint: never negative, and a policy version that can still be bumped.
inline void check_counters(int64_t policy_version, int64_t samples, int64_t emitted, int64_t forced_closed) {
  if (policy_version < 0 || samples < 0 || emitted < 0 || forced_closed < 0)
    throw std::invalid_argument("restore_counters(): counters must be >= 0");
  if (policy_version >= std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("restore_counters(): policy_version must be < 2**31 - 1, got " +
                                std::to_string(policy_version));
}

// The version after an update; refused rather than wrapped at the end of int32.
inline int32_t next_policy_version(int32_t version) {
  if (version >= std::numeric_limits<int32_t>::max())
    throw std::overflow_error("policy_version would pass 2**31 - 1; start a new run");
  return version + 1;
}

}  // namespace hmasd
