// The CPU backend: E copies of one env stepped per call over structure-of-arrays buffers, with same-step
// auto-reset, final observations and episode statistics. Every check runs before any env is touched.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/env_spec.h"
#include "core/philox.h"
#include "cpu/host_array.h"
#include "cpu/parallel_for.h"

namespace hmasd {

enum class Autoreset : int32_t { kSameStep = 0, kDisabled = 1 };

// Sums over the episodes finished since the last drain; the Python side turns them into means.
struct EpisodeLog {
  int64_t episodes = 0;
  double length_sum = 0.0;
  std::vector<double> return_sum;  // [N]
  std::vector<double> info_sum;    // [info width]
};

template <class Env>
class BatchedEnv {
 public:
  using Config = typename Env::Config;
  using State = typename Env::State;
  using Action = typename Env::Action;  // int32_t (one discrete action per agent) or float (kActionWidth per agent)
  static constexpr int32_t kActionWidth = Env::kActionWidth;
  static constexpr bool kContinuous = std::is_floating_point<Action>::value;
  static constexpr int32_t kMaxAgentsPerEnv = 64;

  BatchedEnv(const Config& config, int32_t num_envs, uint64_t seed, int32_t num_threads, Autoreset autoreset)
      : config_(validated(config)), dims_(Env::dims(config)), info_fields_(Env::info_fields(config)) {
    if (num_envs <= 0) throw std::invalid_argument("num_envs must be >= 1, got " + std::to_string(num_envs));
    if (num_threads <= 0) throw std::invalid_argument("num_threads must be >= 1, got " + std::to_string(num_threads));
    if (dims_.num_agents > kMaxAgentsPerEnv) throw std::invalid_argument("too many agents per env");
    num_envs_ = num_envs;
    num_threads_ = num_threads;
    autoreset_ = autoreset;
    seed_ = seed;
    info_width_ = hmasd::info_width(info_fields_, dims_.num_agents);
    const size_t e = static_cast<size_t>(num_envs), n = static_cast<size_t>(dims_.num_agents);
    states_ = HostArray<State>(e);
    episode_ = HostArray<uint32_t>(e);
    needs_reset_ = HostArray<bool>(e);
    obs_ = HostArray<float>(e * n * dims_.obs_dim);
    final_obs_ = HostArray<float>(e * n * dims_.obs_dim);
    state_ = HostArray<float>(e * dims_.state_dim);
    final_state_ = HostArray<float>(e * dims_.state_dim);
    rewards_ = HostArray<float>(e * n);
    terminated_ = HostArray<bool>(e);
    truncated_ = HostArray<bool>(e);
    action_mask_ = HostArray<bool>(e * n * dims_.num_actions);
    running_return_ = HostArray<float>(e * n);
    running_length_ = HostArray<int32_t>(e);
    episode_return_ = HostArray<float>(e * n);
    episode_length_ = HostArray<int32_t>(e);
    episode_info_ = HostArray<float>(e * static_cast<size_t>(info_width_));
    log_.return_sum.assign(n, 0.0);
    log_.info_sum.assign(static_cast<size_t>(info_width_), 0.0);
    restore_output();
  }

  // ---- protocol -------------------------------------------------------------------------------
  void reset(bool has_seed, uint64_t seed) {
    if (has_seed) seed_ = seed;
    const bool restart = has_seed || !has_reset_;
    has_reset_ = true;
    parallel_for(num_envs_, num_threads_, [&](int32_t e) {
      episode_[e] = restart ? 0u : episode_[e] + 1u;
      reset_env(e);
    });
    rewards_.fill_zero();
    terminated_.fill_zero();
    truncated_.fill_zero();
  }

  // Validates every action, then steps every env. Accepts any integer element type (discrete envs) or float
  // (continuous envs, [E, N, kActionWidth]).
  template <class T>
  void step(const T* actions) {
    check_can_step();
    check_actions(actions);
    const int32_t width = dims_.num_agents * kActionWidth;
    parallel_for(num_envs_, num_threads_, [&](int32_t e) {
      Action row[kMaxAgentsPerEnv * kActionWidth];
      for (int32_t k = 0; k < width; ++k) row[k] = static_cast<Action>(actions[int64_t(e) * width + k]);
      step_env(e, row);
    });
    record_finished_episodes();
  }

  // Where observe() writes obs / state / action masks ([E, ...] rows, same layout as the own buffers). The rollout
  // engine points this at the next step's rows of its batch, so observations are written once, in place.
  void redirect_output(float* obs, float* state, bool* action_mask) {
    out_obs_ = obs;
    out_state_ = state;
    out_mask_ = action_mask;
  }
  void restore_output() { redirect_output(obs_.data(), state_.data(), action_mask_.data()); }

  // One env, no checks: the caller (step() or the rollout engine) has validated the actions.
  void step_env(int32_t e, const Action* actions) {
    const int32_t n = dims_.num_agents;
    float* rewards = rewards_.data() + int64_t(e) * n;
    const StepStatus status = Env::step(config_, states_[e], actions, rewards, rng(e));
    terminated_[e] = status.terminated;
    truncated_[e] = status.truncated;
    float* running = running_return_.data() + int64_t(e) * n;
    for (int32_t i = 0; i < n; ++i) running[i] += rewards[i];
    running_length_[e] += 1;
    observe(e);
    if (!status.terminated && !status.truncated) return;

    std::memcpy(final_obs_.data() + obs_offset(e), out_obs_ + obs_offset(e), obs_row_bytes());
    std::memcpy(final_state_.data() + state_offset(e), out_state_ + state_offset(e), state_row_bytes());
    std::memcpy(episode_return_.data() + int64_t(e) * n, running, sizeof(float) * n);
    episode_length_[e] = running_length_[e];
    Env::episode_info(config_, states_[e], episode_info_.data() + int64_t(e) * info_width_);
    if (autoreset_ == Autoreset::kSameStep) {
      episode_[e] += 1u;
      reset_env(e);
    } else {
      needs_reset_[e] = true;
    }
  }

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
        if (needs_reset_[e])
          throw std::runtime_error("env " + std::to_string(e) +
                                   " has finished its episode; call reset() before stepping it "
                                   "again (autoreset='disabled')");
  }

  // Serial and in env order, so the sums do not depend on the thread count.
  void record_finished_episodes() {
    const int32_t n = dims_.num_agents;
    for (int32_t e = 0; e < num_envs_; ++e) {
      if (!terminated_[e] && !truncated_[e]) continue;
      log_.episodes += 1;
      log_.length_sum += episode_length_[e];
      for (int32_t i = 0; i < n; ++i) log_.return_sum[i] += episode_return_[int64_t(e) * n + i];
      for (int32_t k = 0; k < info_width_; ++k) log_.info_sum[k] += episode_info_[int64_t(e) * info_width_ + k];
    }
  }

  EpisodeLog drain_log() {
    EpisodeLog out = log_;
    log_.episodes = 0;
    log_.length_sum = 0.0;
    std::fill(log_.return_sum.begin(), log_.return_sum.end(), 0.0);
    std::fill(log_.info_sum.begin(), log_.info_sum.end(), 0.0);
    return out;
  }

  // ---- snapshot (pickling) ----------------------------------------------------------------------
  std::string snapshot() const {
    std::string out;
    append(out, &seed_, sizeof(seed_));
    append(out, &has_reset_, sizeof(has_reset_));
    for_each_array([&](const void* data, size_t bytes) { append(out, data, bytes); });
    return out;
  }

  void restore(const std::string& blob) {
    size_t expected = sizeof(seed_) + sizeof(has_reset_);
    for_each_array([&](const void*, size_t bytes) { expected += bytes; });
    if (blob.size() != expected)
      throw std::invalid_argument("snapshot has " + std::to_string(blob.size()) + " bytes, expected " +
                                  std::to_string(expected) + " for this env, num_envs and options");
    const char* p = blob.data();
    std::memcpy(&seed_, p, sizeof(seed_));
    p += sizeof(seed_);
    std::memcpy(&has_reset_, p, sizeof(has_reset_));
    p += sizeof(has_reset_);
    for_each_array([&](const void* data, size_t bytes) {
      std::memcpy(const_cast<void*>(data), p, bytes);
      p += bytes;
    });
  }

  // ---- accessors ----------------------------------------------------------------------------
  const Config& config() const { return config_; }
  const EnvDims& dims() const { return dims_; }
  const std::vector<InfoField>& info_fields() const { return info_fields_; }
  int32_t info_width() const { return info_width_; }
  int32_t num_envs() const { return num_envs_; }
  int32_t num_threads() const { return num_threads_; }
  Autoreset autoreset() const { return autoreset_; }
  uint64_t seed() const { return seed_; }
  bool has_reset() const { return has_reset_; }
  State& state_of(int32_t e) { return states_[e]; }
  const State& state_of(int32_t e) const { return states_[e]; }
  // Rewrites env copy e's observation rows from its state (after a test or tool edited the state).
  void observe_env(int32_t e) { observe(e); }
  // The random stream of env copy e in its current episode.
  EnvRng rng_of(int32_t e) const { return rng(e); }

  HostArray<float> obs_, final_obs_, state_, final_state_, rewards_, episode_return_, episode_info_;
  HostArray<bool> terminated_, truncated_, action_mask_;
  HostArray<int32_t> episode_length_;

 private:
  static Config validated(const Config& config) {
    Env::validate(config);
    return config;
  }
  EnvRng rng(int32_t e) const {
    return EnvRng{static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32), static_cast<uint32_t>(e),
                  episode_[e]};
  }
  int64_t obs_offset(int32_t e) const { return int64_t(e) * dims_.num_agents * dims_.obs_dim; }
  int64_t state_offset(int32_t e) const { return int64_t(e) * dims_.state_dim; }
  size_t obs_row_bytes() const { return sizeof(float) * dims_.num_agents * dims_.obs_dim; }
  size_t state_row_bytes() const { return sizeof(float) * dims_.state_dim; }

  void observe(int32_t e) {
    Env::observe(config_, states_[e], out_obs_ + obs_offset(e), out_state_ + state_offset(e),
                 out_mask_ + int64_t(e) * dims_.num_agents * dims_.num_actions);
  }

  void reset_env(int32_t e) {
    Env::reset(config_, states_[e], rng(e));
    needs_reset_[e] = false;
    running_length_[e] = 0;
    for (int32_t i = 0; i < dims_.num_agents; ++i) running_return_[int64_t(e) * dims_.num_agents + i] = 0.0f;
    observe(e);
  }

  template <class Fn>
  void for_each_array(const Fn& fn) const {
    fn(states_.data(), states_.bytes());
    fn(episode_.data(), episode_.bytes());
    fn(needs_reset_.data(), needs_reset_.bytes());
    fn(obs_.data(), obs_.bytes());
    fn(final_obs_.data(), final_obs_.bytes());
    fn(state_.data(), state_.bytes());
    fn(final_state_.data(), final_state_.bytes());
    fn(rewards_.data(), rewards_.bytes());
    fn(terminated_.data(), terminated_.bytes());
    fn(truncated_.data(), truncated_.bytes());
    fn(action_mask_.data(), action_mask_.bytes());
    fn(running_return_.data(), running_return_.bytes());
    fn(running_length_.data(), running_length_.bytes());
    fn(episode_return_.data(), episode_return_.bytes());
    fn(episode_length_.data(), episode_length_.bytes());
    fn(episode_info_.data(), episode_info_.bytes());
  }
  static void append(std::string& out, const void* data, size_t bytes) {
    out.append(static_cast<const char*>(data), bytes);
  }

  Config config_;
  EnvDims dims_;
  std::vector<InfoField> info_fields_;
  int32_t info_width_ = 0;
  int32_t num_envs_ = 0;
  int32_t num_threads_ = 1;
  Autoreset autoreset_ = Autoreset::kSameStep;
  uint64_t seed_ = 0;
  bool has_reset_ = false;
  HostArray<State> states_;
  HostArray<uint32_t> episode_;
  HostArray<bool> needs_reset_;
  HostArray<float> running_return_;
  HostArray<int32_t> running_length_;
  EpisodeLog log_;
  float* out_obs_ = nullptr;
  float* out_state_ = nullptr;
  bool* out_mask_ = nullptr;
};

}  // namespace hmasd
