// The arrays behind a RolloutBatch, allocated once by an engine owner: `Array` is HostArray (CPU) or DeviceArray
// (CUDA), so both backends share one list of buffers and one way of viewing them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "batch/env_batch.h"
#include "core/env_spec.h"
#include "rollout/rollout_batch.h"

namespace hmasd {

template <class Env, template <class> class Array>
struct RolloutStorage {
  using Action = typename Env::Action;

  // Low-level samples [T, E, ...]
  Array<float> ll_obs, ll_state, ll_logp, ll_value, ll_reward, ll_final_obs, ll_final_state;
  Array<Action> ll_action;  // [T, E, N, kActionWidth]
  Array<int32_t> ll_team, ll_indiv, ll_version;
  Array<bool> ll_mask, ll_terminated, ll_truncated;
  // Per-env open windows [E, ...]
  Array<int32_t> win_start, win_length, win_team, win_indiv;
  Array<float> win_logp, win_value, win_reward;
  Array<bool> needs_decision, barrier_closed;
  // Bootstrap rows at the barrier [E, ...]
  Array<float> boot_obs, boot_state;
  // The ring [C, ...]: E ranges of C / E slots, and how many of each range this batch used
  Array<int32_t> hl_count;      // [E]
  Array<uint32_t> overflowed;   // [1]
  Array<uint8_t> hl_published;
  Array<int32_t> hl_env, hl_start, hl_length, hl_team, hl_indiv, hl_version;
  Array<float> hl_logp, hl_value, hl_reward;
  Array<bool> hl_terminated, hl_truncated, hl_at_barrier;
  int32_t num_agents = 0, obs_dim = 0, state_dim = 0, num_actions = 0;

  RolloutStorage() = default;
  RolloutStorage(int32_t horizon, int32_t num_envs, const EnvDims& d, int32_t capacity)
      : num_agents(d.num_agents), obs_dim(d.obs_dim), state_dim(d.state_dim), num_actions(d.num_actions) {
    const size_t t = horizon, e = num_envs, n = d.num_agents, o = d.obs_dim, s = d.state_dim, c = capacity;
    const size_t a = d.num_actions;
    ll_obs = Array<float>(t * e * n * o);
    ll_state = Array<float>(t * e * s);
    ll_final_obs = Array<float>(t * e * n * o);
    ll_final_state = Array<float>(t * e * s);
    ll_logp = Array<float>(t * e * n);
    ll_value = Array<float>(t * e * n);
    ll_reward = Array<float>(t * e * n);
    ll_action = Array<Action>(t * e * n * Env::kActionWidth);
    ll_indiv = Array<int32_t>(t * e * n);
    ll_team = Array<int32_t>(t * e);
    ll_version = Array<int32_t>(t * e);
    ll_mask = Array<bool>(t * e * n * a);
    ll_terminated = Array<bool>(t * e);
    ll_truncated = Array<bool>(t * e);
    win_start = Array<int32_t>(e);
    win_length = Array<int32_t>(e);
    win_team = Array<int32_t>(e);
    win_indiv = Array<int32_t>(e * n);
    win_logp = Array<float>(e * (n + 1));
    win_value = Array<float>(e * (n + 1));
    win_reward = Array<float>(e * n);
    needs_decision = Array<bool>(e);
    barrier_closed = Array<bool>(e);
    boot_obs = Array<float>(e * n * o);
    boot_state = Array<float>(e * s);
    hl_count = Array<int32_t>(e);
    overflowed = Array<uint32_t>(1);
    hl_published = Array<uint8_t>(c);
    hl_env = Array<int32_t>(c);
    hl_start = Array<int32_t>(c);
    hl_length = Array<int32_t>(c);
    hl_team = Array<int32_t>(c);
    hl_indiv = Array<int32_t>(c * n);
    hl_version = Array<int32_t>(c);
    hl_logp = Array<float>(c * (n + 1));
    hl_value = Array<float>(c * (n + 1));
    hl_reward = Array<float>(c * n);
    hl_terminated = Array<bool>(c);
    hl_truncated = Array<bool>(c);
    hl_at_barrier = Array<bool>(c);
  }

  // The batch as plain views. `target` is where the env's observe() writes this step; own_* are the env's rows.
  RolloutBatch<Env> batch(const EnvBatch<Env>& target, int32_t horizon, int32_t slots_per_env, float* own_obs,
                          float* own_state, bool* own_mask, Clock clock, int32_t skill_interval,
                          int32_t policy_version) {
    const LowLevelBatch<Action> low{horizon, target.num_envs, num_agents, obs_dim, state_dim, num_actions,
                                    Env::kActionWidth, ll_obs.data(), ll_state.data(), ll_mask.data(),
                                    ll_action.data(), ll_logp.data(), ll_value.data(), ll_reward.data(),
                                    ll_terminated.data(), ll_truncated.data(), ll_final_obs.data(),
                                    ll_final_state.data(), ll_team.data(), ll_indiv.data(), ll_version.data()};
    const SkillWindows windows{num_agents, win_start.data(), win_length.data(), win_team.data(), win_indiv.data(),
                               win_logp.data(), win_value.data(), win_reward.data(), needs_decision.data()};
    const HighLevelRing ring{slots_per_env, num_agents, hl_count.data(), overflowed.data(), hl_published.data(),
                             hl_env.data(), hl_start.data(), hl_length.data(), hl_team.data(), hl_indiv.data(),
                             hl_logp.data(), hl_value.data(), hl_reward.data(), hl_terminated.data(),
                             hl_truncated.data(), hl_at_barrier.data(), hl_version.data()};
    return RolloutBatch<Env>{target, low, windows, ring, boot_obs.data(), boot_state.data(), barrier_closed.data(),
                             own_obs, own_state, own_mask, clock, skill_interval, policy_version};
  }
};

}  // namespace hmasd
