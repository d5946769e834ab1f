// A batch of E copies of one env as plain pointers and dims (no ownership), and the per-env rules around Env::step:
// returns, final observations, episode statistics and auto-reset (same-step or next-step). Written once for the CPU and the CUDA
// backend: the owners in csrc/cpu and csrc/cuda allocate the arrays, validate arguments and run these per env index.
#pragma once

#include <cstdint>

#include "core/env_spec.h"
#include "core/hd.h"
#include "core/philox.h"

namespace hmasd {

// kSameStep: an ended episode is replaced inside the step that ended it (its last observation goes to final_obs).
// kDisabled: an ended env must be reset by the caller before it steps again.
// kNextStep (Gymnasium 1.x's default): the step after the one that ended an episode resets that env instead of
// stepping it (its action is ignored; rewards 0, terminated and truncated false), so the terminal observation is
// returned by the ending step itself.
enum class Autoreset : int32_t { kSameStep = 0, kDisabled = 1, kNextStep = 2 };

// Agents per env copy that a per-env action row can hold (the row lives on the stack of the stepping thread).
constexpr int32_t kMaxAgentsPerEnv = 64;

// Columns of one env's episode tally: episodes, summed lengths, then N summed returns, then the info fields' sums.
// Each env adds its own finished episodes in step order; a drain sums the tallies over envs in env order, so the
// totals do not depend on threads or backend.
HD inline int32_t tally_width(int32_t num_agents, int32_t info_width) { return 2 + num_agents + info_width; }

template <class Env>
struct EnvBatch {
  using Config = typename Env::Config;
  using State = typename Env::State;
  using Action = typename Env::Action;

  Config config;
  int32_t num_envs, num_agents, obs_dim, state_dim, num_actions, info_width;
  Autoreset autoreset;
  uint64_t seed;
  uint32_t first_env;         // env copy e draws the stream of env index first_env + e: this batch is a slice of one
                              // larger batch (a rank's share in distributed training), stepped as that batch would be
  State* states;              // [E]
  uint32_t* episode;          // [E] episodes begun since the last seeded reset
  bool* needs_reset;          // [E] autoreset disabled and the episode ended
  float* obs;                 // [E, N, O] where observe() writes: the env's own rows, or a row of an engine batch
  float* state;               // [E, S]   (same rule)
  bool* action_mask;          // [E, N, A] (same rule)
  float* final_obs;           // [E, N, O] rewritten only in the rows of envs whose episode ended in this step
  float* final_state;         // [E, S]
  float* rewards;             // [E, N]
  bool* terminated;           // [E]
  bool* truncated;            // [E]
  float* running_return;      // [E, N]
  int32_t* running_length;    // [E]
  float* episode_return;      // [E, N] of the episode that ended in this step (same row rule as final_obs)
  int32_t* episode_length;    // [E]
  float* episode_info;        // [E, info_width]
  double* tally;              // [E, tally_width]

  HD EnvRng rng(int32_t e) const {
    return EnvRng{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                  first_env + static_cast<uint32_t>(e), episode[e]};
  }
  HD int64_t obs_offset(int32_t e) const { return int64_t(e) * num_agents * obs_dim; }
  HD int64_t state_offset(int32_t e) const { return int64_t(e) * state_dim; }

  HD void observe(int32_t e) const {
    Env::observe(config, states[e], obs + obs_offset(e), state + state_offset(e),
                 action_mask + int64_t(e) * num_agents * num_actions);
  }

  // A new episode of env e: `restart` begins the episode count anew (a seeded or first reset).
  HD void reset_env(int32_t e, bool restart) const {
    episode[e] = restart ? 0u : episode[e] + 1u;
    begin_episode(e);
    for (int32_t i = 0; i < num_agents; ++i) rewards[int64_t(e) * num_agents + i] = 0.0f;
    terminated[e] = false;
    truncated[e] = false;
  }

  // One step of env e with validated actions; an episode that ends is recorded and, with same-step auto-reset,
  // replaced by the next one (its last observation goes to final_obs / final_state). With next-step auto-reset an
  // env whose episode ended in the previous step begins its next episode instead of moving.
  HD void step_env(int32_t e, const Action* actions) const {
    if (autoreset == Autoreset::kNextStep && needs_reset[e]) {
      reset_env(e, false);
      return;
    }
    const int32_t n = num_agents;
    float* r = rewards + int64_t(e) * n;
    const StepStatus status = Env::step(config, states[e], actions, r, rng(e));
    terminated[e] = status.terminated;
    truncated[e] = status.truncated;
    float* running = running_return + int64_t(e) * n;
    for (int32_t i = 0; i < n; ++i) running[i] += r[i];
    running_length[e] += 1;
    observe(e);
    if (!status.terminated && !status.truncated) return;

    copy(final_obs + obs_offset(e), obs + obs_offset(e), n * obs_dim);
    copy(final_state + state_offset(e), state + state_offset(e), state_dim);
    copy(episode_return + int64_t(e) * n, running, n);
    episode_length[e] = running_length[e];
    float* info = episode_info + int64_t(e) * info_width;
    Env::episode_info(config, states[e], info);
    double* t = tally + int64_t(e) * tally_width(n, info_width);
    t[0] += 1.0;
    t[1] += running_length[e];
    for (int32_t i = 0; i < n; ++i) t[2 + i] += running[i];
    for (int32_t k = 0; k < info_width; ++k) t[2 + n + k] += info[k];
    if (autoreset == Autoreset::kSameStep) {
      episode[e] += 1u;
      begin_episode(e);
    } else {
      needs_reset[e] = true;
    }
  }

 private:
  HD void begin_episode(int32_t e) const {
    Env::reset(config, states[e], rng(e));
    needs_reset[e] = false;
    running_length[e] = 0;
    for (int32_t i = 0; i < num_agents; ++i) running_return[int64_t(e) * num_agents + i] = 0.0f;
    observe(e);
  }
  template <class T>
  HD static void copy(T* to, const T* from, int32_t count) {
    for (int32_t k = 0; k < count; ++k) to[k] = from[k];
  }
};

// ---- per-env work, as functors a CPU thread pool or a CUDA kernel runs for each env index ------------------------

// Env e's row of `actions` ([E, N * kActionWidth] of any type that converts to Env::Action) as the env takes it.
template <class Env, class T>
HD void load_action_row(const T* actions, int32_t e, int32_t num_agents, typename Env::Action* row) {
  const int32_t width = num_agents * Env::kActionWidth;
  for (int32_t k = 0; k < width; ++k) row[k] = static_cast<typename Env::Action>(actions[int64_t(e) * width + k]);
}

template <class Env>
struct ResetEnvs {
  EnvBatch<Env> batch;
  bool restart;
  HD void operator()(int32_t e) const { batch.reset_env(e, restart); }
};

// Begins the next episode of the envs whose flag in `chosen` ([E]) is set; the others are left exactly as they are.
template <class Env>
struct ResetChosenEnvs {
  EnvBatch<Env> batch;
  const bool* chosen;
  HD void operator()(int32_t e) const {
    if (chosen[e]) batch.reset_env(e, false);
  }
};

// Steps env e with its row of `actions` ([E, N * kActionWidth] of any type that converts to Env::Action).
template <class Env, class T>
struct StepEnvs {
  EnvBatch<Env> batch;
  const T* actions;
  HD void operator()(int32_t e) const {
    typename Env::Action row[kMaxAgentsPerEnv * Env::kActionWidth];
    load_action_row<Env>(actions, e, batch.num_agents, row);
    batch.step_env(e, row);
  }
};

}  // namespace hmasd
