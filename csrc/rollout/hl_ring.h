// The high-level ring: closed skill windows emitted as whole transitions. A writer reserves a slot with an atomic
// fetch-add, writes every field, then publishes the slot, so a reader never sees a half-written transition.
// The decision-time state and observations are referenced as (env, start), the batch row that holds them.
#pragma once

#include <cstdint>

#include "core/atomic.h"
#include "core/hd.h"
#include "rollout/skill_window.h"

namespace hmasd {

struct HighLevelRing {
  int32_t capacity, num_agents;
  uint32_t* reserved;      // slots handed out so far
  uint32_t* overflowed;    // reservations that found the ring full (never expected: checked before each step)
  uint8_t* published;      // [C]
  int32_t* env;            // [C]
  int32_t* start;          // [C] batch step of the decision
  int32_t* length;         // [C]
  int32_t* team_skill;     // [C]
  int32_t* indiv_skill;    // [C, N]
  float* logp;             // [C, N + 1]
  float* value;            // [C, N + 1]
  float* reward_sum;       // [C, N]
  bool* terminated;        // [C] the episode terminated on the window's last step: no bootstrap
  bool* truncated;         // [C] time limit or barrier: bootstrap from the state after the window
  bool* at_barrier;        // [C] closed by the barrier alone
  int32_t* policy_version; // [C]

  // Emits env e's window; returns the slot, or -1 (counted in `overflowed`) when the ring is full.
  HD int32_t emit(const SkillWindows& w, int32_t e, bool term, bool trunc, bool barrier_close, int32_t version) {
    const uint32_t slot = atomic_fetch_add(reserved, 1u);
    if (slot >= static_cast<uint32_t>(capacity)) {
      atomic_fetch_add(overflowed, 1u);
      return -1;
    }
    const int32_t n = num_agents, s = static_cast<int32_t>(slot);
    env[s] = e;
    start[s] = w.start[e];
    length[s] = w.length[e];
    team_skill[s] = w.team_skill[e];
    for (int32_t i = 0; i < n; ++i) indiv_skill[s * n + i] = w.indiv_skill[e * n + i];
    for (int32_t i = 0; i <= n; ++i) {
      logp[s * (n + 1) + i] = w.logp[e * (n + 1) + i];
      value[s * (n + 1) + i] = w.value[e * (n + 1) + i];
    }
    for (int32_t i = 0; i < n; ++i) reward_sum[s * n + i] = w.reward_sum[e * n + i];
    terminated[s] = term;
    truncated[s] = trunc;
    at_barrier[s] = barrier_close;
    policy_version[s] = version;
    atomic_publish(&published[s]);
    return s;
  }
};

}  // namespace hmasd
