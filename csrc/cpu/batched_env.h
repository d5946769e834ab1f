// The CPU owner of a batch of E env copies: storage, argument checks and the thread pool around the per-env rules of
// batch/env_batch.h. Every check runs before any env is touched.
#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <new>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "batch/engine_lease.h"
#include "batch/env_batch.h"
#include "batch/env_storage.h"
#include "batch/episode_log.h"
#include "batch/snapshot.h"
#include "core/env_spec.h"
#include "core/errors.h"
#include "core/philox.h"
#include "cpu/exclusive_use.h"
#include "cpu/host_array.h"
#include "cpu/memory_budget.h"
#include "cpu/parallel_for.h"

namespace hmasd {

template <class Env>
class BatchedEnv {
 public:
  using Config = typename Env::Config;
  using State = typename Env::State;
  using Action = typename Env::Action;  // int32_t (one discrete action per agent) or float (kActionWidth per agent)
  static constexpr int32_t kActionWidth = Env::kActionWidth;
  static constexpr bool kContinuous = std::is_floating_point<Action>::value;

  // `first_env`: env copy e draws the stream of env index first_env + e, so that batches of consecutive slices step
  // exactly as the one batch they are cut from (distributed ranks each own one slice).
  BatchedEnv(const Config& config, int32_t num_envs, uint64_t seed, int32_t num_threads, Autoreset autoreset,
             uint32_t first_env = 0)
      : config_(validated(config)), dims_(Env::dims(config)), info_fields_(Env::info_fields(config)) {
    if (num_envs <= 0) throw std::invalid_argument("num_envs must be >= 1, got " + std::to_string(num_envs));
    check_env_index_range(first_env, num_envs);
    if (num_threads <= 0 || num_threads > max_threads())
      throw std::invalid_argument("num_threads must be in [1, " + std::to_string(max_threads()) + "], got " +
                                  std::to_string(num_threads));
    if (dims_.num_agents > kMaxAgentsPerEnv) throw std::invalid_argument("too many agents per env");
    num_envs_ = num_envs;
    num_threads_ = num_threads;
    autoreset_ = autoreset;
    seed_ = seed;
    first_env_ = first_env;
    info_width_ = hmasd::info_width(info_fields_, dims_.num_agents);
    check_fits_in_memory(storage_bytes<EnvStorage<Env, ByteCount>>(dims_, num_envs, info_width_),
                         std::string(Env::kName) + " with num_envs=" + std::to_string(num_envs));
    try {
      buffers_ = EnvStorage<Env, HostArray>(dims_, num_envs, info_width_);
    } catch (const std::bad_alloc&) {
      throw OutOfMemory(std::string(Env::kName) + " with num_envs=" + std::to_string(num_envs) +
                        ": the env buffers do not fit in this machine's memory");
    }
  }

  // ---- protocol -------------------------------------------------------------------------------
  void reset(bool has_seed, uint64_t seed) {
    check_not_in_batch("reset()");
    if (has_seed) seed_ = seed;
    const bool restart = has_seed || !has_reset_;
    has_reset_ = true;
    threads_used_ = parallel_for(num_envs_, num_threads_, ResetEnvs<Env>{view(), restart});
  }

  // Begins the next episode of the chosen envs ([E] flags) and leaves the others untouched (Gymnasium's reset
  // mask, TorchRL's partial reset). The batch keeps its seed: each chosen env draws its next episode's stream.
  void reset_envs(const bool* chosen) {
    check_not_in_batch("reset_envs()");
    if (!has_reset_) throw std::runtime_error("call reset() once before resetting chosen envs");
    threads_used_ = parallel_for(num_envs_, num_threads_, ResetChosenEnvs<Env>{view(), chosen});
  }

  // Validates every action, then steps every env. Accepts any integer element type (discrete envs) or float
  // (continuous envs, [E, N, kActionWidth]).
  template <class T>
  void step(const T* actions) {
    check_not_in_batch("step()");
    check_can_step();
    check_actions(actions);
    threads_used_ = parallel_for(num_envs_, num_threads_, StepEnvs<Env, T>{view(), actions});
  }

  // The batch as plain views over this env's own buffers (the rollout engine points obs / state / masks elsewhere).
  EnvBatch<Env> view() {
    return buffers_.view(config_, dims_, num_envs_, info_width_, autoreset_, seed_, first_env_);
  }
  // The env's own arrays (the bindings show them as NumPy views).
  EnvStorage<Env, HostArray>& buffers() { return buffers_; }

  template <class T>
  void check_actions(const T* actions) const {
    const int32_t n = dims_.num_agents;
    const int64_t total = int64_t(num_envs_) * n * kActionWidth;
    for (int64_t k = 0; k < total; ++k) {
      if constexpr (kContinuous) {
        if (std::isfinite(static_cast<double>(actions[k]))) continue;
        const int64_t agent = k / kActionWidth;
        throw std::invalid_argument("actions[" + std::to_string(agent / n) + ", " + std::to_string(agent % n) + ", " +
                                    std::to_string(k % kActionWidth) + "] = " + std::to_string(actions[k]) +
                                    " is not finite");
      } else {
        if (actions[k] >= 0 && actions[k] < T(dims_.num_actions)) continue;
        throw std::invalid_argument("actions[" + std::to_string(k / n) + ", " + std::to_string(k % n) + "] = " +
                                    std::to_string(actions[k]) + " is out of range [0, " +
                                    std::to_string(dims_.num_actions) + ")");
      }
    }
  }

  void check_can_step() const {
    if (!has_reset_) throw std::runtime_error("call reset() before step()");
    if (autoreset_ == Autoreset::kDisabled)
      for (int32_t e = 0; e < num_envs_; ++e)
        if (buffers_.needs_reset[e])
          throw std::runtime_error("env " + std::to_string(e) +
                                   " has finished its episode; call reset() before stepping it "
                                   "again (autoreset='disabled')");
  }

  // The tallies summed over envs in env order (independent of threads and backend), then cleared.
  EpisodeLog drain_log() {
    EpisodeLog out = sum_tallies(buffers_.tally.data(), num_envs_, dims_.num_agents, info_width_);
    buffers_.tally.fill_zero();
    return out;
  }

  // ---- the rollout engine that steps this env (batch/engine_lease.h) ---------------------------------
  // `sync_own_rows` copies the engine's current observation rows into the env's own, for a snapshot mid-batch.
  void attach_engine(const void* engine, std::function<void()> sync_own_rows) {
    lease_.attach(engine);
    sync_own_rows_ = std::move(sync_own_rows);
  }
  void detach_engine(const void* engine) {
    if (lease_.detach(engine)) sync_own_rows_ = nullptr;
  }
  void set_batch_open(bool open) { lease_.set_batch_open(open); }

  // ---- snapshot (pickling, checkpoints): batch/snapshot.h ---------------------------------------------
  // Mid-batch the engine's current rows are copied into the env's own first, so the snapshot is of the env as it
  // is now (the engine reads the own rows only at a batch start, and the last step rewrites them).
  std::string snapshot() {
    if (lease_.batch_open() && sync_own_rows_) sync_own_rows_();
    SnapshotWriter w;
    put_header<Env>(w, config_, snapshot_sizes(), first_env_);
    w.put(seed_);
    w.put(has_reset_);
    buffers_.for_each_state_array([&](const void* data, size_t bytes, StateArray) { w.bytes(data, bytes); });
    return w.finish();
  }

  // Refuses, before anything changes, a snapshot of another env, other options or sizes, a damaged one, or one
  // holding a state no env reaches (positions off the grid, flags other than 0/1, counters out of range).
  void restore(const std::string& blob) {
    check_not_in_batch("restore()");
    SnapshotReader r(blob);
    expect_header<Env>(r, config_, snapshot_sizes(),
                       {"num_envs", "num_agents", "obs_dim", "state_dim", "num_actions", "info_width", "state bytes"},
                       first_env_);
    const uint64_t seed = r.get<uint64_t>();
    uint8_t has_reset;
    r.bytes(&has_reset, 1);
    size_t expected = 0;
    buffers_.for_each_state_array([&](const void*, size_t bytes, StateArray) { expected += bytes; });
    if (r.left() != expected)
      throw std::invalid_argument("the snapshot holds " + std::to_string(r.left()) + " bytes of state, this env " +
                                  std::to_string(expected));
    if (has_reset > 1) throw std::invalid_argument("the snapshot's has_reset flag is " + std::to_string(has_reset));
    // A never-reset env holds zeros everywhere (no state to check, and a zero state is no position on any grid);
    // anything else under has_reset = 0 is a forgery.
    if (has_reset == 1)
      check_snapshot_state(r.here());
    else if (std::any_of(r.here(), r.here() + expected, [](char c) { return c != 0; }))
      throw std::invalid_argument("the snapshot is of an env never reset, yet holds state (a damaged or forged "
                                  "snapshot)");
    seed_ = seed;
    has_reset_ = has_reset == 1;
    buffers_.for_each_state_array(
        [&](const void* data, size_t bytes, StateArray) { r.bytes(const_cast<void*>(data), bytes); });
  }

  // ---- one caller at a time (cpu/exclusive_use.h): the bindings hold this for each call on the env or its engine
  ExclusiveUse exclusive_use(const char* what) { return ExclusiveUse(in_use_, what); }

  // ---- accessors ----------------------------------------------------------------------------
  const Config& config() const { return config_; }
  const EnvDims& dims() const { return dims_; }
  const std::vector<InfoField>& info_fields() const { return info_fields_; }
  int32_t info_width() const { return info_width_; }
  int32_t num_envs() const { return num_envs_; }
  int32_t num_threads() const { return num_threads_; }
  // Threads that ran the last reset() or step() (1 when the batch is too small to be worth forking).
  int32_t threads_used() const { return threads_used_; }
  void set_threads_used(int32_t n) { threads_used_ = n; }
  Autoreset autoreset() const { return autoreset_; }
  uint64_t seed() const { return seed_; }
  uint32_t first_env() const { return first_env_; }
  bool has_reset() const { return has_reset_; }
  State& state_of(int32_t e) { return buffers_.states[e]; }
  const State& state_of(int32_t e) const { return buffers_.states[e]; }
  // Rewrites env copy e's observation rows from its state (after a test or tool edited the state).
  void observe_env(int32_t e) { view().observe(e); }
  // The random stream of env copy e in its current episode (env index first_env + e).
  EnvRng rng_of(int32_t e) const {
    return EnvRng{static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32),
                  first_env_ + static_cast<uint32_t>(e), buffers_.episode[e]};
  }

 private:
  static Config validated(const Config& config) {
    Env::validate(config);
    return config;
  }

  void check_not_in_batch(const char* what) const { lease_.check_not_in_batch(what); }

  std::vector<int32_t> snapshot_sizes() const {
    return {num_envs_, dims_.num_agents, dims_.obs_dim, dims_.state_dim, dims_.num_actions, info_width_,
            static_cast<int32_t>(sizeof(State))};
  }

  // The state arrays of a snapshot, laid out as for_each_state_array() writes them, checked in place.
  void check_snapshot_state(const char* p) {
    auto state = std::make_unique<State>();
    for (int32_t e = 0; e < num_envs_; ++e) {
      std::memcpy(static_cast<void*>(state.get()), p + sizeof(State) * size_t(e), sizeof(State));
      StateCheck check{e, ""};
      Env::check_state(config_, *state, check);
      if (!check.problem.empty())
        throw std::invalid_argument("the snapshot's env " + std::to_string(e) + " has " + check.problem +
                                    ", which no env reaches (a damaged or forged snapshot)");
    }
    // Every bool array must hold bytes 0 and 1; every float array finite values; lengths must not be negative.
    const char* at = p;
    buffers_.for_each_state_array([&](const void*, size_t bytes, StateArray kind) {
      const char* block = at;
      at += bytes;
      switch (kind) {
        case StateArray::kFlags:
          for (size_t k = 0; k < bytes; ++k)
            if (static_cast<uint8_t>(block[k]) > 1)
              throw std::invalid_argument("the snapshot holds a flag byte " + std::to_string(uint8_t(block[k])) +
                                          " (not 0 or 1)");
          break;
        case StateArray::kLengths:
          for (size_t k = 0; k < bytes; k += sizeof(int32_t)) {
            int32_t v;
            std::memcpy(&v, block + k, sizeof(v));
            if (v < 0) throw std::invalid_argument("the snapshot holds an episode length " + std::to_string(v));
          }
          break;
        case StateArray::kFloats:
          for (size_t k = 0; k < bytes; k += sizeof(float)) {
            float v;
            std::memcpy(&v, block + k, sizeof(v));
            if (!std::isfinite(v)) throw std::invalid_argument("the snapshot holds a non-finite value");
          }
          break;
        case StateArray::kEnvStates:  // checked above, env by env
        case StateArray::kCounters:   // any episode count is one an env can reach
          break;
      }
    });
  }


  std::atomic<bool> in_use_{false};
  Config config_;
  EnvDims dims_;
  std::vector<InfoField> info_fields_;
  int32_t info_width_ = 0;
  int32_t num_envs_ = 0;
  int32_t num_threads_ = 1;
  int32_t threads_used_ = 1;
  Autoreset autoreset_ = Autoreset::kSameStep;
  uint64_t seed_ = 0;
  uint32_t first_env_ = 0;
  bool has_reset_ = false;
  EnvStorage<Env, HostArray> buffers_;
  EngineLease lease_;
  std::function<void()> sync_own_rows_;
};

}  // namespace hmasd
