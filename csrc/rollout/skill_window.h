// Per-env open skill windows: the decision of the high level and the team reward accumulated since it was made.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace hmasd {

enum class Clock : int32_t { kEpisode = 0, kGlobal = 1 };

// Structure of arrays over E envs; N agents, so N + 1 high-level tokens (Z, z_1..z_N). The decision-time state and
// observations are not copied: they are row `start` of the batch, which the env wrote in place.
struct SkillWindows {
  int32_t num_agents;
  int32_t* start;        // [E] batch step of the decision
  int32_t* length;       // [E] env steps taken under it
  int32_t* team_skill;   // [E]
  int32_t* indiv_skill;  // [E, N]
  float* logp;           // [E, N + 1]
  float* value;          // [E, N + 1]
  float* reward_sum;     // [E, N] env rewards accumulated, in step order
  bool* needs_decision;  // [E]

  HD void open(int32_t e, int32_t t, int32_t team, const int32_t* indiv, const float* lp, const float* v) const {
    const int32_t n = num_agents;
    start[e] = t;
    length[e] = 0;
    team_skill[e] = team;
    for (int32_t i = 0; i < n; ++i) indiv_skill[int64_t(e) * n + i] = indiv[i];
    for (int32_t i = 0; i <= n; ++i) {
      logp[int64_t(e) * (n + 1) + i] = lp[i];
      value[int64_t(e) * (n + 1) + i] = v[i];
    }
    for (int32_t i = 0; i < n; ++i) reward_sum[int64_t(e) * n + i] = 0.0f;
    needs_decision[e] = false;
  }

  HD void add_reward(int32_t e, const float* rewards) const {
    length[e] += 1;
    for (int32_t i = 0; i < num_agents; ++i) reward_sum[int64_t(e) * num_agents + i] += rewards[i];
  }

  // Whether the window closes after this step; `at_barrier` reports a close caused by the barrier alone.
  HD bool closes(int32_t e, Clock clock, int32_t skill_interval, int32_t steps_done, bool episode_ended,
                 bool barrier, bool& at_barrier) const {
    const bool natural = clock == Clock::kEpisode ? (length[e] >= skill_interval || episode_ended)
                                                  : (steps_done % skill_interval == 0);
    at_barrier = barrier && !natural;
    return natural || barrier;
  }
};

}  // namespace hmasd
