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

  // Step t of env e under its open window: take it, add its reward to the window, close the window if due, keep
  // the final and bootstrap rows. The per-step records of envs [begin, end) follow in record_rows().
  HD void step_env(int32_t t, int32_t e, const Action* actions, bool barrier) const {
    const int32_t n = env.num_agents;
    env.step_env(e, actions);
    const int64_t te = low.row(t, e);
    const float* rewards = env.rewards + int64_t(e) * n;
    const bool term = env.terminated[e], trunc = env.truncated[e];
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

  // Row t's records of envs [begin, end), after they stepped: each array written in one contiguous run (the rows
  // of consecutive envs are adjacent), which streams where a per-env pass would interleave a dozen small writes.
  // The skills are those of the windows the step was taken under (a window closed by the step keeps them).
  template <class T>
  HD void record_rows(int32_t t, int32_t begin, int32_t end, const T* actions, const float* lp,
                      const float* v) const {
    const int32_t n = env.num_agents, width = n * low.action_width;
    const int64_t row = low.row(t, 0);
    for (int64_t k = int64_t(begin) * width; k < int64_t(end) * width; ++k)
      low.action[row * width + k] = static_cast<Action>(actions[k]);
    for (int64_t k = int64_t(begin) * n; k < int64_t(end) * n; ++k) {
      low.logp[row * n + k] = lp[k];
      low.value[row * n + k] = v[k];
      low.indiv_skill[row * n + k] = windows.indiv_skill[k];
      low.reward[row * n + k] = env.rewards[k];
    }
    for (int32_t e = begin; e < end; ++e) {
      low.team_skill[row + e] = windows.team_skill[e];
      low.policy_version[row + e] = policy_version;
      low.terminated[row + e] = env.terminated[e];
      low.truncated[row + e] = env.truncated[e];
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

// Step t of envs [begin, end): each env steps, then the range's records are written array by array. A CUDA kernel
// runs it per env (a range of one); the CPU pool per range.
template <class Env, class T>
struct StepEngine {
  RolloutBatch<Env> batch;
  int32_t t;
  bool barrier;
  const T* actions;
  const float *logp, *value;
  HD void operator()(int32_t begin, int32_t end) const {
    typename Env::Action row[kMaxAgentsPerEnv * Env::kActionWidth];
    for (int32_t e = begin; e < end; ++e) {
      load_action_row<Env>(actions, e, batch.env.num_agents, row);
      batch.step_env(t, e, row, barrier);
    }
    batch.record_rows(t, begin, end, actions, logp, value);
  }
  HD void operator()(int32_t e) const { (*this)(e, e + 1); }
};

}  // namespace hmasd
