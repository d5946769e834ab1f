// The high-level ring: closed skill windows emitted as whole transitions. Each env owns a contiguous range of
// `slots_per_env` slots and fills it in window order, so the ring read range by range is ordered by (env, start)
// without a sort. A writer reserves its env's next slot, writes every field, then publishes the slot, so a reader
// never sees a half-written transition. The decision-time state and observations are referenced as (env, start),
// the batch row that holds them.
#pragma once

#include <cstdint>

#include "core/atomic.h"
#include "core/hd.h"
#include "rollout/skill_window.h"

namespace hmasd {

struct HighLevelRing {
  int32_t slots_per_env, num_agents;
  int32_t* count;          // [E] slots of each env's range used in this batch (written only by that env's thread)
  uint32_t* overflowed;    // windows that found their env's range full (never expected: checked before each step)
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

  // Emits env e's window; returns the slot, or -1 (counted in `overflowed`) when e's range is full.
  HD int32_t emit(const SkillWindows& w, int32_t e, bool term, bool trunc, bool barrier_close, int32_t version) const {
    const int32_t used = count[e];
    if (used >= slots_per_env) {
      atomic_fetch_add(overflowed, 1u);
      return -1;
    }
    const int32_t n = num_agents;
    const int64_t s = int64_t(e) * slots_per_env + used;
    count[e] = used + 1;  // reserve
    env[s] = e;
    start[s] = w.start[e];
    length[s] = w.length[e];
    team_skill[s] = w.team_skill[e];
    for (int32_t i = 0; i < n; ++i) indiv_skill[s * n + i] = w.indiv_skill[int64_t(e) * n + i];
    for (int32_t i = 0; i <= n; ++i) {
      logp[s * (n + 1) + i] = w.logp[int64_t(e) * (n + 1) + i];
      value[s * (n + 1) + i] = w.value[int64_t(e) * (n + 1) + i];
    }
    for (int32_t i = 0; i < n; ++i) reward_sum[s * n + i] = w.reward_sum[int64_t(e) * n + i];
    terminated[s] = term;
    truncated[s] = trunc;
    at_barrier[s] = barrier_close;
    policy_version[s] = version;
    atomic_publish(&published[s]);
    return static_cast<int32_t>(s);
  }

  // A new batch for env e: its range is empty and nothing in it reads as published.
  HD void clear_env(int32_t e) const {
    count[e] = 0;
    for (int32_t k = 0; k < slots_per_env; ++k) published[int64_t(e) * slots_per_env + k] = 0;
  }
};

}  // namespace hmasd
