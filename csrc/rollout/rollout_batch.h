// One on-policy batch of the rollout engine as plain views, and its per-env rules: record an env-step into the
// [T, E, ...] buffers, add its reward to the open skill window, close the window into the high-level ring, keep the
// bootstrap rows at the barrier, and start the next batch. Written once for the CPU and the CUDA backend.
#pragma once

#include <cstdint>

#include "batch/env_batch.h"
#include "core/hd.h"
#include "rollout/hl_ring.h"
#include "rollout/skill_window.h"

namespace hmasd {

// The low-level samples [T, E, ...] of one batch. Row t's obs / state / action mask are the observation step t acts
// on; the env writes row t + 1 while it takes step t (no copy).
template <class Action>
struct LowLevelBatch {
  int32_t horizon, num_envs, num_agents, obs_dim, state_dim, num_actions, action_width;
  float* obs;             // [T, E, N, O]
  float* state;           // [T, E, S]
  bool* action_mask;      // [T, E, N, A]
  Action* action;         // [T, E, N, action_width]
  float* logp;            // [T, E, N]
  float* value;           // [T, E, N]
  float* reward;          // [T, E, N]
  bool* terminated;       // [T, E]
  bool* truncated;        // [T, E]
  float* final_obs;       // [T, E, N, O] where the episode ended
  float* final_state;     // [T, E, S]
  int32_t* team_skill;    // [T, E]
  int32_t* indiv_skill;   // [T, E, N]
  int32_t* policy_version;// [T, E], -1: not collected in this batch

  HD int64_t row(int32_t t, int32_t e) const { return int64_t(t) * num_envs + e; }
  HD float* obs_row(int32_t t) const { return obs + int64_t(t) * num_envs * num_agents * obs_dim; }
  HD float* state_row(int32_t t) const { return state + int64_t(t) * num_envs * state_dim; }
  HD bool* mask_row(int32_t t) const { return action_mask + int64_t(t) * num_envs * num_agents * num_actions; }
};

template <class Env>
struct RolloutBatch {
  using Action = typename Env::Action;

  EnvBatch<Env> env;      // observe() writes into row t + 1 of `low` (or the env's own rows after the last step)
  LowLevelBatch<Action> low;
  SkillWindows windows;
  HighLevelRing ring;
  float* bootstrap_obs;   // [E, N, O] the observation after the barrier, for the windows it cut
  float* bootstrap_state; // [E, S]
  bool* barrier_closed;   // [E] the barrier cut this env's open window
  float* own_obs;         // [E, N, O] the env's own rows (where a batch starts from and the last step writes)
  float* own_state;       // [E, S]
  bool* own_mask;         // [E, N, A]
  Clock clock;
  int32_t skill_interval, policy_version;

  // Row 0 of the batch: the env's observation when the batch starts.
  HD void copy_batch_start(int32_t e) const {
    const int32_t no = env.num_agents * env.obs_dim, na = env.num_agents * env.num_actions;
    copy(low.obs + int64_t(e) * no, own_obs + int64_t(e) * no, no);
    copy(low.state + int64_t(e) * env.state_dim, own_state + int64_t(e) * env.state_dim, env.state_dim);
    copy(low.action_mask + int64_t(e) * na, own_mask + int64_t(e) * na, na);
  }

  // The env's own rows from batch row t (the observation it acts on next), for an engine that lets go mid-batch.
  HD void copy_back(int32_t t, int32_t e) const {
    const int32_t no = env.num_agents * env.obs_dim, na = env.num_agents * env.num_actions;
    copy(own_obs + int64_t(e) * no, low.obs_row(t) + int64_t(e) * no, no);
    copy(own_state + int64_t(e) * env.state_dim, low.state_row(t) + int64_t(e) * env.state_dim, env.state_dim);
    copy(own_mask + int64_t(e) * na, low.mask_row(t) + int64_t(e) * na, na);
  }

  HD void open_window(int32_t e, int32_t t, int32_t team, const int32_t* indiv, const float* lp,
                      const float* v) const {
    windows.open(e, t, team, indiv, lp, v);
  }

  // Step t of env e under its open window: record the step, take it, add its reward, close the window if due.
  HD void step_env(int32_t t, int32_t e, const Action* actions, const float* lp, const float* v, bool barrier) const {
    const int32_t n = env.num_agents, width = n * low.action_width;
    const int64_t te = low.row(t, e);
    copy(low.action + te * width, actions, width);
    copy(low.logp + te * n, lp, n);
    copy(low.value + te * n, v, n);
    copy(low.indiv_skill + te * n, windows.indiv_skill + int64_t(e) * n, n);
    low.team_skill[te] = windows.team_skill[e];
    low.policy_version[te] = policy_version;

    env.step_env(e, actions);

    const float* rewards = env.rewards + int64_t(e) * n;
    copy(low.reward + te * n, rewards, n);
    const bool term = env.terminated[e], trunc = env.truncated[e];
    low.terminated[te] = term;
    low.truncated[te] = trunc;
    if (term || trunc) {
      copy(low.final_obs + te * n * env.obs_dim, env.final_obs + env.obs_offset(e), n * env.obs_dim);
      copy(low.final_state + te * env.state_dim, env.final_state + env.state_offset(e), env.state_dim);
    }
    windows.add_reward(e, rewards);
    bool at_barrier = false;
    if (windows.closes(e, clock, skill_interval, t + 1, term || trunc, barrier, at_barrier)) {
      // With the global clock a window may span an episode end; it counts as terminated only when the episode
      // terminated on its last step (the official code's mask).
      ring.emit(windows, e, term, (trunc || barrier) && !term, at_barrier, policy_version);
      windows.needs_decision[e] = true;
      barrier_closed[e] = at_barrier;
    }
    if (barrier) {
      copy(bootstrap_obs + env.obs_offset(e), env.obs + env.obs_offset(e), n * env.obs_dim);
      copy(bootstrap_state + env.state_offset(e), env.state + env.state_offset(e), env.state_dim);
    }
  }

  // A fresh batch for env e: nothing of the old one reads as current, and the env decides again.
  HD void start_batch(int32_t e) const {
    for (int32_t t = 0; t < low.horizon; ++t) low.policy_version[low.row(t, e)] = -1;
    ring.clear_env(e);
    windows.needs_decision[e] = true;
    barrier_closed[e] = false;
  }

 private:
  template <class T>
  HD static void copy(T* to, const T* from, int32_t count) {
    for (int32_t k = 0; k < count; ++k) to[k] = from[k];
  }
};

// ---- per-env work of the engine, as functors a CPU thread pool or a CUDA kernel runs ------------------------------

template <class Env>
struct CopyBatchStart {
  RolloutBatch<Env> batch;
  HD void operator()(int32_t e) const { batch.copy_batch_start(e); }
};

template <class Env>
struct CopyBack {
  RolloutBatch<Env> batch;
  int32_t t;
  HD void operator()(int32_t e) const { batch.copy_back(t, e); }
};

template <class Env>
struct StartBatch {
  RolloutBatch<Env> batch;
  HD void operator()(int32_t e) const { batch.start_batch(e); }
};

// Opens the windows of decision d = 0..D-1 for env env_ids[d] (validated by the owner).
template <class Env>
struct OpenWindows {
  RolloutBatch<Env> batch;
  int32_t t;
  const int32_t *env_ids, *team, *indiv;
  const float *logp, *value;
  HD void operator()(int32_t d) const {
    const int32_t n = batch.env.num_agents;
    batch.open_window(env_ids[d], t, team[d], indiv + int64_t(d) * n, logp + int64_t(d) * (n + 1),
                      value + int64_t(d) * (n + 1));
  }
};

// The no-sync form of a decision: rows for all E envs, of which the envs that need a decision keep theirs.
template <class Env>
struct OpenNeededWindows {
  RolloutBatch<Env> batch;
  int32_t t;
  const int32_t *team, *indiv;
  const float *logp, *value;
  HD void operator()(int32_t e) const {
    if (!batch.windows.needs_decision[e]) return;
    const int32_t n = batch.env.num_agents;
    batch.open_window(e, t, team[e], indiv + int64_t(e) * n, logp + int64_t(e) * (n + 1), value + int64_t(e) * (n + 1));
  }
};

template <class Env, class T>
struct StepEngine {
  RolloutBatch<Env> batch;
  int32_t t;
  bool barrier;
  const T* actions;
  const float *logp, *value;
  HD void operator()(int32_t e) const {
    const int32_t n = batch.env.num_agents;
    typename Env::Action row[kMaxAgentsPerEnv * Env::kActionWidth];
    load_action_row<Env>(actions, e, n, row);
    batch.step_env(t, e, row, logp + int64_t(e) * n, value + int64_t(e) * n, barrier);
  }
};

}  // namespace hmasd
