// The checks of a rollout engine's construction arguments, shared by the CPU and CUDA owners (host code).
#pragma once

#include <cstdint>
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

}  // namespace hmasd
