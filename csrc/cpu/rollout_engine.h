// The CPU owner of the rollout engine: storage, argument checks, the barrier's counters and the thread pool around the
// per-env rules of rollout/rollout_batch.h (record a step, skill windows, the high-level ring, bootstrap rows).
// Every check runs before anything is recorded or any env moves.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "cpu/batched_env.h"
#include "cpu/host_array.h"
#include "cpu/memory_budget.h"
#include "cpu/parallel_for.h"
#include "rollout/engine_args.h"
#include "rollout/hl_ring.h"
#include "rollout/rollout_batch.h"
#include "rollout/rollout_storage.h"
#include "rollout/skill_window.h"

namespace hmasd {

// A ring that would overflow: raised before the step, so nothing is dropped.
struct RingOverflow : std::overflow_error {
  using std::overflow_error::overflow_error;
};

template <class Env>
class RolloutEngine {
 public:
  using Action = typename Env::Action;
  static constexpr int32_t kActionWidth = Env::kActionWidth;

  RolloutEngine(BatchedEnv<Env>& env, int32_t horizon, int32_t skill_interval, int32_t num_team_skills,
                int32_t num_indiv_skills, Clock clock, int64_t ring_capacity)
      : env_(env), horizon_(horizon), skill_interval_(skill_interval), num_team_skills_(num_team_skills),
        num_indiv_skills_(num_indiv_skills), clock_(clock) {
    check_engine_args(env.autoreset(), horizon, skill_interval, num_team_skills, num_indiv_skills);
    e_ = env.num_envs();
    n_ = env.dims().num_agents;
    obs_dim_ = env.dims().obs_dim;
    state_dim_ = env.dims().state_dim;
    a_ = env.dims().num_actions;
    // Each step closes at most one window per env, so T slots per env (E * T in all) can never overflow.
    if (ring_capacity < 0)
      throw std::invalid_argument("ring_capacity must be >= num_envs (" + std::to_string(e_) + ") or 0 for the "
                                  "default num_envs * horizon, got " + std::to_string(ring_capacity));
    if (ring_capacity == 0) ring_capacity = int64_t(e_) * horizon;
    if (ring_capacity < e_)
      throw std::invalid_argument("ring_capacity must be >= num_envs (" + std::to_string(e_) + "), got " +
                                  std::to_string(ring_capacity));
    if (ring_capacity > int64_t(1) << 30)
      throw std::invalid_argument("ring_capacity must be <= 2**30 slots, got " + std::to_string(ring_capacity) +
                                  (ring_capacity == int64_t(e_) * horizon ? " (num_envs * horizon)" : ""));
    // Each env owns an equal range of the ring, so the ring read range by range is in (env, start) order.
    slots_per_env_ = static_cast<int32_t>(ring_capacity / e_);
    capacity_ = slots_per_env_ * e_;
    check_fits_in_memory(storage_bytes<RolloutStorage<Env, ByteCount>>(horizon_, e_, env.dims(), capacity_),
                         "a rollout engine of horizon " + std::to_string(horizon) + " over " + std::to_string(e_) +
                             " envs");
    try {
      buffers_ = RolloutStorage<Env, HostArray>(horizon_, e_, env.dims(), capacity_);
      decided_scratch_ = HostArray<bool>(static_cast<size_t>(e_));
    } catch (const std::bad_alloc&) {
      throw OutOfMemory("a rollout engine of horizon " + std::to_string(horizon) + " over " + std::to_string(e_) +
                        " envs: its batch buffers do not fit in this machine's memory");
    }
    env_.attach_engine(this, [this] { copy_back_current_rows(); });
    resume_batch(/*bump_version=*/false);
  }

  // An engine deleted mid-batch hands the env its current observation back, so the env stays usable.
  ~RolloutEngine() {
    copy_back_current_rows();
    env_.detach_engine(this);
  }
  RolloutEngine(const RolloutEngine&) = delete;
  RolloutEngine& operator=(const RolloutEngine&) = delete;

  // The env's one-caller-at-a-time guard (cpu/exclusive_use.h): a call on the engine is a call on its env.
  ExclusiveUse exclusive_use(const char* what) { return env_.exclusive_use(what); }

  // ---- protocol ---------------------------------------------------------------------------------
  void decide(const int32_t* env_ids, int32_t count, const int32_t* team, const int32_t* indiv, const float* logp,
              const float* value) {
    check_collecting("decide()");
    if (!env_.has_reset()) throw std::runtime_error("call reset() on the env before decide()");
    int32_t pending = 0;
    for (int32_t e = 0; e < e_; ++e) pending += buffers_.needs_decision[e];
    HostArray<bool>& seen = decided_scratch_;
    seen.fill_zero();
    for (int32_t d = 0; d < count; ++d) {
      const int32_t e = env_ids[d];
      if (e < 0 || e >= e_)
        throw std::invalid_argument("env_ids[" + std::to_string(d) + "] = " + std::to_string(e) +
                                    " is not an env index in [0, " + std::to_string(e_) + ")");
      if (!buffers_.needs_decision[e])
        throw std::invalid_argument("env_ids[" + std::to_string(d) + "] = " + std::to_string(e) +
                                    ": that env does not need a decision");
      if (seen[e])
        throw std::invalid_argument("env_ids[" + std::to_string(d) + "] = " + std::to_string(e) +
                                    " appears twice in env_ids");
      seen[e] = true;
      if (team[d] < 0 || team[d] >= num_team_skills_)
        throw std::invalid_argument("team_skill[" + std::to_string(d) + "] = " + std::to_string(team[d]) +
                                    " is out of range [0, " + std::to_string(num_team_skills_) + ")");
      for (int32_t i = 0; i < n_; ++i)
        if (indiv[d * n_ + i] < 0 || indiv[d * n_ + i] >= num_indiv_skills_)
          throw std::invalid_argument("indiv_skill[" + std::to_string(d) + ", " + std::to_string(i) + "] = " +
                                      std::to_string(indiv[d * n_ + i]) + " is out of range [0, " +
                                      std::to_string(num_indiv_skills_) + ")");
      check_finite(logp + d * (n_ + 1), n_ + 1, "logp", d);
      check_finite(value + d * (n_ + 1), n_ + 1, "values", d);
    }
    if (count != pending)
      for (int32_t e = 0; e < e_; ++e)
        if (buffers_.needs_decision[e] && !seen[e])
          throw std::invalid_argument("env " + std::to_string(e) + " needs a decision but env_ids does not list it");
    sync_batch_start();
    parallel_for(count, env_.num_threads(), OpenWindows<Env>{batch(env_.view()), t_, env_ids, team, indiv, logp, value});
  }

  template <class T>
  void step(const T* actions, const float* logp, const float* value) {
    check_collecting("step()");
    for (int32_t e = 0; e < e_; ++e)
      if (buffers_.needs_decision[e])
        throw std::runtime_error("env " + std::to_string(e) + " needs a skill decision: call decide() first");
    env_.check_can_step();
    env_.check_actions(actions);
    check_all_finite(logp, e_, n_, "logp");
    check_all_finite(value, e_, n_, "values");
    check_ring_room();
    sync_batch_start();

    const int32_t t = t_;
    const bool barrier = t + 1 == horizon_;
    // The env writes the observations this step leads to straight into the next row of the batch (no copy);
    // after the last step they go to the env's own rows, where the next batch starts from.
    EnvBatch<Env> target = env_.view();
    if (!barrier) {
      target.obs = buffers_.ll_obs.data() + row_offset(t + 1, obs_dim_);
      target.state = buffers_.ll_state.data() + (int64_t(t) + 1) * e_ * state_dim_;
      target.action_mask = buffers_.ll_mask.data() + row_offset(t + 1, a_);
    }
    const StepEngine<Env, T> step_envs{batch(target), t, barrier, actions, logp, value};
    env_.set_threads_used(
        parallel_for_ranges(e_, env_.num_threads(), [&](int32_t begin, int32_t end) { step_envs(begin, end); }));
    t_ += 1;
    samples_ += int64_t(e_) * n_;
    if (buffers_.overflowed[0] != 0)  // unreachable given check_ring_room(); never let it pass silently
      throw RingOverflow("high-level ring overflowed by " + std::to_string(buffers_.overflowed[0]) + " transitions");
    if (barrier) {
      ready_ = true;
      env_.set_batch_open(false);
      for (int32_t e = 0; e < e_; ++e) forced_closed_ += buffers_.barrier_closed[e];
    }
  }

  // After the learner's update: bump the policy version, clear the batch, and make every env decide afresh.
  void resume() {
    if (!ready_) throw std::runtime_error("resume() before the barrier: the batch has " + std::to_string(t_) +
                                          " of " + std::to_string(horizon_) + " steps");
    resume_batch(/*bump_version=*/true);
  }

  // Restores the counters of a checkpoint; only at the start of a batch, where they are all the state there is.
  void restore_counters(int32_t policy_version, int64_t samples, int64_t emitted, int64_t forced_closed) {
    if (t_ != 0 || ready_) throw std::runtime_error("restore_counters() only at the start of a batch");
    check_counters(policy_version, samples, emitted, forced_closed);
    policy_version_ = policy_version;
    samples_ = samples;
    emitted_total_ = emitted;
    forced_closed_ = forced_closed;
  }

  void disable_collection() {
    if (t_ != 0 && !ready_)
      throw std::runtime_error("disable_collection() in the middle of a batch (" + std::to_string(t_) + " of " +
                               std::to_string(horizon_) + " steps): finish it or call it right after resume()");
    // Decisions already made for a batch that has not stepped are dropped with it, so the env is free again.
    if (t_ == 0 && synced_) resume_batch(/*bump_version=*/false);
    collecting_ = false;
  }

  // A fresh batch under the same policy version: every env decides again.
  void enable_collection() {
    if (t_ != 0 && !ready_)
      throw std::runtime_error("enable_collection() in the middle of a batch (" + std::to_string(t_) + " of " +
                               std::to_string(horizon_) + " steps) would drop it; finish the batch first");
    collecting_ = true;
    resume_batch(/*bump_version=*/false);
  }

  // ---- accessors ------------------------------------------------------------------------------
  int32_t num_envs() const { return e_; }
  int32_t num_agents() const { return n_; }
  int32_t horizon() const { return horizon_; }
  int32_t skill_interval() const { return skill_interval_; }
  int32_t num_team_skills() const { return num_team_skills_; }
  int32_t num_indiv_skills() const { return num_indiv_skills_; }
  int32_t capacity() const { return capacity_; }
  Clock clock() const { return clock_; }
  int32_t steps_in_batch() const { return t_; }
  bool ready() const { return ready_; }
  bool collecting() const { return collecting_; }
  int32_t policy_version() const { return policy_version_; }
  int64_t samples_collected() const { return samples_; }
  int32_t slots_per_env() const { return slots_per_env_; }
  int64_t transitions_emitted() const { return emitted_total_ + transitions_in_batch(); }
  int32_t transitions_in_batch() const {
    int64_t total = 0;
    for (int32_t e = 0; e < e_; ++e) total += buffers_.hl_count[e];
    return static_cast<int32_t>(total);
  }
  int64_t forced_closed() const { return forced_closed_; }
  int64_t ring_overflows() const { return buffers_.overflowed[0]; }

  // The engine's arrays (the bindings show them as NumPy views).
  RolloutStorage<Env, HostArray>& buffers() { return buffers_; }

 private:
  // The batch as plain views; `target` is where the env's observe() writes.
  RolloutBatch<Env> batch(const EnvBatch<Env>& target) {
    return buffers_.batch(target, horizon_, slots_per_env_, env_.buffers().obs.data(), env_.buffers().state.data(),
                          env_.buffers().action_mask.data(), clock_, skill_interval_, policy_version_);
  }

  // Row 0 of a batch is the env's observation at the batch start; copied once, lazily, so that an env restored
  // or reset between batches (checkpoints) is picked up.
  void sync_batch_start() {
    if (synced_) return;
    parallel_for(e_, env_.num_threads(), CopyBatchStart<Env>{batch(env_.view())});
    synced_ = true;
    env_.set_batch_open(true);
  }

  // Mid-batch the env's current observation is row t of the batch; its own rows still hold the batch start.
  void copy_back_current_rows() {
    if (synced_ && !ready_ && t_ > 0) parallel_for(e_, env_.num_threads(), CopyBack<Env>{batch(env_.view()), t_});
  }

  int64_t row_offset(int32_t t, int32_t width) const { return int64_t(t) * e_ * n_ * width; }

  // Before a step: every env may close a window in it, so each needs a free slot in its range.
  void check_ring_room() const {
    if (t_ < slots_per_env_) return;  // an env emits at most one window per step
    for (int32_t e = 0; e < e_; ++e)
      if (buffers_.hl_count[e] >= slots_per_env_)
        throw RingOverflow("high-level ring could overflow: env " + std::to_string(e) + " has used all " +
                           std::to_string(slots_per_env_) + " of its slots (ring_capacity " +
                           std::to_string(capacity_) + " = " + std::to_string(e_) + " envs x " +
                           std::to_string(slots_per_env_) + ") and may close a window in this step; raise "
                           "ring_capacity (num_envs * horizon never overflows)");
  }

  void resume_batch(bool bump_version) {
    if (bump_version) policy_version_ = next_policy_version(policy_version_);
    emitted_total_ += transitions_in_batch();
    synced_ = false;
    env_.set_batch_open(false);
    t_ = 0;
    ready_ = false;
    buffers_.overflowed.fill_zero();
    parallel_for(e_, env_.num_threads(), StartBatch<Env>{batch(env_.view())});
  }

  void check_collecting(const char* what) const {
    if (!collecting_) throw std::runtime_error(std::string(what) + " while collection is disabled");
    if (ready_)
      throw std::runtime_error(std::string(what) + " after the barrier: the batch of " + std::to_string(horizon_) +
                               " steps is complete; update, then call resume()");
  }

  void check_finite(const float* values, int32_t count, const char* name, int32_t row) const {
    // Branch-free scan (x - x is 0 only for finite x); the offending index is searched only on failure.
    float probe = 0.0f;
    for (int32_t k = 0; k < count; ++k) probe += values[k] - values[k];
    if (probe == 0.0f) return;
    for (int32_t k = 0; k < count; ++k)
      if (!std::isfinite(values[k]))
        throw std::invalid_argument(std::string(name) + "[" + std::to_string(row) + ", " + std::to_string(k) +
                                    "] is not finite (" + std::to_string(values[k]) + ")");
  }

  // All rows at once: one scan of [rows, count], then a per-row search only when something is not finite.
  void check_all_finite(const float* values, int32_t rows, int32_t count, const char* name) const {
    float probe = 0.0f;
    const int64_t total = int64_t(rows) * count;
    for (int64_t k = 0; k < total; ++k) probe += values[k] - values[k];
    if (probe == 0.0f) return;
    for (int32_t r = 0; r < rows; ++r) check_finite(values + int64_t(r) * count, count, name, r);
  }

  BatchedEnv<Env>& env_;
  int32_t horizon_, skill_interval_, num_team_skills_, num_indiv_skills_;
  Clock clock_;
  int32_t e_ = 0, n_ = 0, obs_dim_ = 0, state_dim_ = 0, a_ = 0, capacity_ = 0, slots_per_env_ = 0;
  int32_t t_ = 0;
  bool ready_ = false;
  bool collecting_ = true;
  int32_t policy_version_ = 0;
  int64_t samples_ = 0;
  int64_t emitted_total_ = 0;
  int64_t forced_closed_ = 0;
  RolloutStorage<Env, HostArray> buffers_;
  HostArray<bool> decided_scratch_;  // envs listed in the current decide() call
  bool synced_ = false;              // row 0 of this batch holds the env's observation
};

}  // namespace hmasd
