// The CUDA backend's owners of device storage, which validate their arguments on the device and launch the per-env
// rules of csrc/batch and csrc/rollout, one thread per env. Nothing here restates a rule of an env or the engine.
// Included by one translation unit per env (backend_<env>.cu), each instantiating make_device_env for its env, so
// nvcc compiles the envs in parallel; the owners stay in an anonymous namespace, private to each unit.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "batch/engine_lease.h"
#include "batch/env_batch.h"
#include "batch/env_storage.h"
#include "batch/episode_log.h"
#include "cuda/backend.h"
#include "cuda/cuda_check.h"
#include "cuda/device_array.h"
#include "cuda/for_each.h"
#include "cuda/input_checks.h"
#include "envs/alice_and_bob.h"
#include "envs/stag_hunt.h"
#include "envs/uav_coverage.h"
#include "rollout/engine_args.h"
#include "rollout/rollout_batch.h"
#include "rollout/rollout_storage.h"

namespace hmasd {
namespace {

cudaStream_t as_stream(uintptr_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

template <class T>
DeviceTensor tensor(DeviceArray<T>& array, std::vector<int64_t> shape) {
  DType dtype;
  if constexpr (std::is_same_v<T, float>) dtype = DType::kFloat32;
  else if constexpr (std::is_same_v<T, double>) dtype = DType::kFloat64;
  else if constexpr (std::is_same_v<T, int32_t>) dtype = DType::kInt32;
  else if constexpr (std::is_same_v<T, int64_t>) dtype = DType::kInt64;
  else if constexpr (std::is_same_v<T, uint8_t>) dtype = DType::kUInt8;
  else if constexpr (std::is_same_v<T, uint32_t>) dtype = DType::kUInt32;
  else dtype = DType::kBool;
  return DeviceTensor{array.data(), dtype, std::move(shape)};
}

template <class T>
T read_one(const T* device_pointer, cudaStream_t stream) {
  T value{};
  check_cuda(cudaMemcpyAsync(&value, device_pointer, sizeof(T), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  return value;
}

// The error word of one owner: set by the check kernels, read (and cleared) by the host.
class ErrorWord {
 public:
  ErrorWord() = default;  // empty until an owner makes one with its device current
  explicit ErrorWord(cudaStream_t stream) : word_(1) { clear(stream); }
  unsigned long long* data() { return word_.data(); }
  void clear(cudaStream_t stream) {
    check_cuda(cudaMemsetAsync(word_.data(), 0xff, sizeof(unsigned long long), stream), "cudaMemsetAsync");
  }
  // The recorded (code, index), clearing it; kNoDeviceError when every check passed.
  unsigned long long take(cudaStream_t stream) {
    const unsigned long long word = read_one(word_.data(), stream);
    if (word != kNoDeviceError) clear(stream);
    return word;
  }

 private:
  DeviceArray<unsigned long long> word_;
};

std::string index_text(int64_t flat, const std::vector<int64_t>& shape) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::string out = "[";
  for (size_t d = 0; d < index.size(); ++d) out += (d ? ", " : "") + std::to_string(index[d]);
  return out + "]";
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kUInt8: return "uint8";
    case DType::kUInt32: return "uint32";
    case DType::kBool: return "bool";
  }
  return "unknown";
}

// ---- the env owner -------------------------------------------------------------------------------------------

template <class Env>
class DeviceBatchedEnv final : public DeviceEnv {
 public:
  using Config = typename Env::Config;
  using Action = typename Env::Action;
  static constexpr bool kContinuous = std::is_floating_point<Action>::value;

  DeviceBatchedEnv(const Config& config, int32_t num_envs, uint64_t seed, uint32_t first_env, int32_t device,
                   Autoreset autoreset)
      : config_(config), device_(device), dims_(Env::dims(config)), info_fields_(Env::info_fields(config)) {
    if (num_envs <= 0) throw std::invalid_argument("num_envs must be >= 1, got " + std::to_string(num_envs));
    check_env_index_range(first_env, num_envs);
    if (dims_.num_agents > kMaxAgentsPerEnv) throw std::invalid_argument("too many agents per env");
    num_envs_ = num_envs;
    seed_ = seed;
    first_env_ = first_env;
    autoreset_ = autoreset;
    info_width_ = info_width(info_fields_, dims_.num_agents);
    DeviceScope scope(device);
    buffers_ = EnvStorage<Env, DeviceArray>(dims_, num_envs, info_width_);
    errors_ = ErrorWord(nullptr);
    reserve_stack_for<StepEnvs<Env, Action>>();
    reserve_stack_for<ResetEnvs<Env>>();
    reserve_stack_for<ResetChosenEnvs<Env>>();
  }

  int32_t device() const override { return device_; }
  int32_t num_envs() const override { return num_envs_; }
  const EnvDims& dims() const override { return dims_; }
  int32_t action_width() const override { return kContinuous ? Env::kActionWidth : 0; }
  const std::vector<InfoField>& info_fields() const override { return info_fields_; }
  uint64_t seed() const override { return seed_; }
  uint32_t first_env() const override { return first_env_; }
  bool has_reset() const override { return has_reset_; }
  Autoreset autoreset() const { return autoreset_; }

  void reset(bool has_seed, uint64_t seed, uintptr_t stream) override {
    check_not_in_batch("reset()");
    DeviceScope scope(device_);
    if (has_seed) seed_ = seed;
    const bool restart = has_seed || !has_reset_;
    launch_for_each(num_envs_, as_stream(stream), ResetEnvs<Env>{view(), restart}, "reset kernel");
    has_reset_ = true;
  }

  void reset_envs(const bool* chosen, uintptr_t stream) override {
    check_not_in_batch("reset_envs()");
    if (!has_reset_) throw std::runtime_error("call reset() once before resetting chosen envs");
    DeviceScope scope(device_);
    launch_for_each(num_envs_, as_stream(stream), ResetChosenEnvs<Env>{view(), chosen}, "reset_envs kernel");
  }

  void step(const void* actions, DType dtype, uintptr_t stream, bool check_now) override {
    check_not_in_batch("step()");
    DeviceScope scope(device_);
    with_actions(actions, dtype, [&](const auto* typed) {
      check_inputs(typed, as_stream(stream));
      if (check_now) raise_if_error(typed, as_stream(stream));
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(typed)>>;
      launch_guarded(num_envs_, as_stream(stream), errors_.data(), StepEnvs<Env, T>{view(), typed}, "step kernel");
    });
  }

  void check_errors(uintptr_t stream) override {
    DeviceScope scope(device_);
    const unsigned long long word = errors_.take(as_stream(stream));
    if (word != kNoDeviceError) throw std::invalid_argument(describe(word, nullptr) + " (an earlier unchecked step "
                                                            "was rejected on the device and skipped)");
  }

  NamedTensors buffers() override {
    const int64_t e = num_envs_, n = dims_.num_agents;
    auto& b = buffers_;
    return {{"obs", tensor(b.obs, {e, n, dims_.obs_dim})},
            {"state", tensor(b.state, {e, dims_.state_dim})},
            {"rewards", tensor(b.rewards, {e, n})},
            {"terminated", tensor(b.terminated, {e})},
            {"truncated", tensor(b.truncated, {e})},
            {"action_mask", tensor(b.action_mask, {e, n, dims_.num_actions})},
            {"final_obs", tensor(b.final_obs, {e, n, dims_.obs_dim})},
            {"final_state", tensor(b.final_state, {e, dims_.state_dim})},
            {"episode_return", tensor(b.episode_return, {e, n})},
            {"episode_length", tensor(b.episode_length, {e})},
            {"episode_info", tensor(b.episode_info, {e, info_width_})}};
  }

  std::unique_ptr<DeviceEngine> make_engine(int32_t horizon, int32_t skill_interval, int32_t num_team_skills,
                                            int32_t num_indiv_skills, int32_t clock, int64_t ring_capacity) override;

  EpisodeLog drain_log(uintptr_t stream) override {
    DeviceScope scope(device_);
    std::vector<double> tally(buffers_.tally.size());
    check_cuda(cudaMemcpyAsync(tally.data(), buffers_.tally.data(), buffers_.tally.bytes(), cudaMemcpyDeviceToHost,
                               as_stream(stream)), "cudaMemcpyAsync(tally)");
    buffers_.tally.fill_zero(as_stream(stream));
    check_cuda(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
    return sum_tallies(tally.data(), num_envs_, dims_.num_agents, info_width_);  // as the CPU owner: same totals
  }

  // ---- for the engine ------------------------------------------------------------------------------------
  EnvBatch<Env> view() {
    return buffers_.view(config_, dims_, num_envs_, info_width_, autoreset_, seed_, first_env_);
  }
  EnvStorage<Env, DeviceArray>& storage() { return buffers_; }
  unsigned long long* error_word() { return errors_.data(); }
  ErrorWord& errors() { return errors_; }
  void attach_engine(const void* engine) { lease_.attach(engine); }
  void detach_engine(const void* engine) { lease_.detach(engine); }
  void set_batch_open(bool open) { lease_.set_batch_open(open); }

  template <class T>
  void check_inputs(const T* actions, cudaStream_t stream) {
    if (!has_reset_) throw std::runtime_error("call reset() before step()");
    const int32_t count = num_envs_ * dims_.num_agents * Env::kActionWidth;
    launch_for_each(count, stream, CheckActions<T>{actions, dims_.num_actions, kContinuous, errors_.data()},
                    "action check kernel");
    if (autoreset_ == Autoreset::kDisabled)
      launch_for_each(num_envs_, stream, CheckFlagClear{buffers_.needs_reset.data(), kEnvNeedsReset, errors_.data()},
                      "reset check kernel");
  }

  template <class T>
  void raise_if_error(const T* actions, cudaStream_t stream) {
    const unsigned long long word = errors_.take(stream);
    if (word != kNoDeviceError) throw std::invalid_argument(describe(word, actions));
  }

  // Calls fn with the actions typed as the env takes them; any other dtype is refused by name.
  template <class Fn>
  void with_actions(const void* actions, DType dtype, Fn&& fn) const {
    if constexpr (kContinuous) {
      if (dtype != DType::kFloat32)
        throw std::invalid_argument(std::string("actions must be a float32 tensor for this continuous env, got ") +
                                    dtype_name(dtype));
      fn(static_cast<const float*>(actions));
    } else {
      if (dtype == DType::kInt32) fn(static_cast<const int32_t*>(actions));
      else if (dtype == DType::kInt64) fn(static_cast<const int64_t*>(actions));
      else throw std::invalid_argument(std::string("actions must be an int32 or int64 tensor, got ") + dtype_name(dtype));
    }
  }

  std::vector<int64_t> action_shape() const {
    std::vector<int64_t> shape{num_envs_, dims_.num_agents};
    if (kContinuous) shape.push_back(Env::kActionWidth);
    return shape;
  }

  template <class T>
  std::string describe(unsigned long long word, const T* actions) const {
    const uint32_t code = error_code(word);
    const int64_t index = error_index(word);
    switch (code) {
      case kActionOutOfRange: {
        std::string value = actions ? " = " + std::to_string(read_one(actions + index, nullptr)) : "";
        return "actions" + index_text(index, action_shape()) + value + " is out of range [0, " +
               std::to_string(dims_.num_actions) + ")";
      }
      case kActionNotFinite:
        return "actions" + index_text(index, action_shape()) + " is not finite";
      case kEnvNeedsReset:
        return "env " + std::to_string(index) + " has finished its episode; call reset() before stepping it again "
               "(autoreset='disabled')";
      default:
        return "device check " + std::to_string(code) + " failed at index " + std::to_string(index);
    }
  }
  std::string describe(unsigned long long word, std::nullptr_t) const {
    return describe(word, static_cast<const Action*>(nullptr));
  }

 private:
  void check_not_in_batch(const char* what) const { lease_.check_not_in_batch(what); }

  Config config_;
  int32_t device_;
  EnvDims dims_;
  std::vector<InfoField> info_fields_;
  int32_t info_width_ = 0, num_envs_ = 0;
  uint64_t seed_ = 0;
  uint32_t first_env_ = 0;
  Autoreset autoreset_ = Autoreset::kSameStep;
  bool has_reset_ = false;
  EnvStorage<Env, DeviceArray> buffers_;
  ErrorWord errors_;
  EngineLease lease_;
};


// ---- the engine owner ----------------------------------------------------------------------------------------

// Adds each env's flag (or count) to a device counter: the forced closes at a barrier, the windows of a batch.
template <class T>
struct SumIntoCounter {
  const T* values;
  unsigned long long* counter;
  __device__ void operator()(int32_t e) const {
    if (values[e]) atomicAdd(counter, static_cast<unsigned long long>(values[e]));
  }
};

struct CheckDecisionIds {
  const int32_t* env_ids;
  const bool* needs_decision;
  int32_t* seen;
  int32_t num_envs;
  unsigned long long* error;
  __device__ void operator()(int32_t d) const {
    const int32_t e = env_ids[d];
    if (e < 0 || e >= num_envs) return record_error(error, kEnvIdOutOfRange, d);
    if (!needs_decision[e]) return record_error(error, kDecisionNotNeeded, d);
    if (atomicAdd(&seen[e], 1) > 0) record_error(error, kEnvIdTwice, d);
  }
};

struct CheckDecisionMissing {
  const bool* needs_decision;
  const int32_t* seen;
  unsigned long long* error;
  __device__ void operator()(int32_t e) const {
    if (needs_decision[e] && seen[e] == 0) record_error(error, kDecisionMissing, e);
  }
};

// Row d of a decision (the row of env d for decide_all, which checks only the envs that need one).
struct CheckDecisionRow {
  const bool* needs_decision;  // null: every row counts
  const int32_t *team, *indiv;
  const float *logp, *value;
  int32_t num_agents, num_team_skills, num_indiv_skills;
  unsigned long long* error;
  __device__ void operator()(int32_t d) const {
    if (needs_decision != nullptr && !needs_decision[d]) return;
    const int32_t n = num_agents;
    if (team[d] < 0 || team[d] >= num_team_skills) record_error(error, kTeamSkillOutOfRange, d);
    for (int32_t i = 0; i < n; ++i) {
      const int32_t z = indiv[int64_t(d) * n + i];
      if (z < 0 || z >= num_indiv_skills) record_error(error, kIndivSkillOutOfRange, int64_t(d) * n + i);
    }
    for (int32_t i = 0; i <= n; ++i) {
      if (!finite_float(logp[int64_t(d) * (n + 1) + i])) record_error(error, kDecisionLogpNotFinite, int64_t(d) * (n + 1) + i);
      if (!finite_float(value[int64_t(d) * (n + 1) + i])) record_error(error, kDecisionValueNotFinite, int64_t(d) * (n + 1) + i);
    }
  }
};

template <class Env>
class DeviceRolloutEngine final : public DeviceEngine {
 public:
  using Action = typename Env::Action;

  DeviceRolloutEngine(DeviceBatchedEnv<Env>& env, int32_t horizon, int32_t skill_interval, int32_t num_team_skills,
                      int32_t num_indiv_skills, Clock clock, int64_t ring_capacity)
      : env_(env), horizon_(horizon), skill_interval_(skill_interval), num_team_skills_(num_team_skills),
        num_indiv_skills_(num_indiv_skills), clock_(clock) {
    check_engine_args(env.autoreset(), horizon, skill_interval, num_team_skills, num_indiv_skills);
    e_ = env.num_envs();
    n_ = env.dims().num_agents;
    // On the device the ring is never checked before a step (that would be a host sync): it always has the T slots
    // per env that cannot overflow.
    const int64_t full = int64_t(e_) * horizon;
    if (ring_capacity != 0 && ring_capacity < full)
      throw std::invalid_argument("on a CUDA device ring_capacity must be 0 or >= num_envs * horizon (" +
                                  std::to_string(full) + "), got " + std::to_string(ring_capacity));
    if (full > int64_t(1) << 30) throw std::invalid_argument("num_envs * horizon is too large for the ring");
    slots_per_env_ = horizon;
    DeviceScope scope(env.device());
    buffers_ = RolloutStorage<Env, DeviceArray>(horizon, e_, env.dims(), e_ * horizon);
    seen_ = DeviceArray<int32_t>(static_cast<size_t>(e_));
    counters_ = DeviceArray<unsigned long long>(3);  // emitted before this batch, forced closes, scratch
    reserve_stack_for<StepEngine<Env, Action>>();
    env_.attach_engine(this);
    start_batch(nullptr);
  }

  ~DeviceRolloutEngine() override {
    if (synced_ && !ready_ && t_ > 0) {
      try {
        DeviceScope scope(env_.device());
        launch_for_each(e_, nullptr, CopyBack<Env>{batch(env_.view()), t_}, "copy-back kernel");
        cudaDeviceSynchronize();
      } catch (const std::exception&) {  // a destructor must not throw; the env keeps its batch-start rows
      }
    }
    env_.detach_engine(this);
  }

  int32_t horizon() const override { return horizon_; }
  int32_t steps_in_batch() const override { return t_; }
  bool ready() const override { return ready_; }
  int32_t policy_version() const override { return policy_version_; }
  int32_t slots_per_env() const override { return slots_per_env_; }
  int64_t samples_collected() const override { return samples_; }

  int32_t transitions_in_batch(uintptr_t stream) override {
    DeviceScope scope(env_.device());
    check_cuda(cudaMemsetAsync(counters_.data() + 2, 0, sizeof(unsigned long long), as_stream(stream)),
               "cudaMemsetAsync");
    launch_for_each(e_, as_stream(stream), SumIntoCounter<int32_t>{buffers_.hl_count.data(), counters_.data() + 2},
                    "count kernel");
    return static_cast<int32_t>(read_one(counters_.data() + 2, as_stream(stream)));
  }
  int64_t transitions_emitted(uintptr_t stream) override {
    const int64_t in_batch = transitions_in_batch(stream);
    return static_cast<int64_t>(read_one(counters_.data(), as_stream(stream))) + in_batch;
  }
  int64_t forced_closed(uintptr_t stream) override {
    DeviceScope scope(env_.device());
    return static_cast<int64_t>(read_one(counters_.data() + 1, as_stream(stream)));
  }

  void restore_counters(int32_t policy_version, int64_t samples, int64_t emitted, int64_t forced_closed,
                        uintptr_t stream) override {
    if (t_ != 0 || ready_) throw std::runtime_error("restore_counters() only at the start of a batch");
    check_counters(policy_version, samples, emitted, forced_closed);
    DeviceScope scope(env_.device());
    const unsigned long long values[2] = {static_cast<unsigned long long>(emitted),
                                          static_cast<unsigned long long>(forced_closed)};
    check_cuda(cudaMemcpyAsync(counters_.data(), values, sizeof(values), cudaMemcpyHostToDevice, as_stream(stream)),
               "cudaMemcpyAsync");
    check_cuda(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
    policy_version_ = policy_version;
    samples_ = samples;
  }

  void decide(const int32_t* env_ids, int32_t count, const int32_t* team, const int32_t* indiv, const float* logp,
              const float* value, uintptr_t stream, bool check_now) override {
    check_usable("decide()");
    DeviceScope scope(env_.device());
    const cudaStream_t s = as_stream(stream);
    unsigned long long* error = env_.error_word();
    seen_.fill_zero(s);
    launch_for_each(count, s, CheckDecisionIds{env_ids, buffers_.needs_decision.data(), seen_.data(), e_, error},
                    "decision check kernel");
    launch_for_each(e_, s, CheckDecisionMissing{buffers_.needs_decision.data(), seen_.data(), error},
                    "decision check kernel");
    launch_for_each(count, s, CheckDecisionRow{nullptr, team, indiv, logp, value, n_, num_team_skills_,
                                               num_indiv_skills_, error}, "decision check kernel");
    if (check_now) raise_if_error(s, env_ids);
    sync_batch_start(s);
    launch_guarded(count, s, error, OpenWindows<Env>{batch(env_.view()), t_, env_ids, team, indiv, logp, value},
                   "decide kernel");
  }

  void decide_all(const int32_t* team, const int32_t* indiv, const float* logp, const float* value,
                  uintptr_t stream, bool check_now) override {
    check_usable("decide_all()");
    DeviceScope scope(env_.device());
    const cudaStream_t s = as_stream(stream);
    launch_for_each(e_, s, CheckDecisionRow{buffers_.needs_decision.data(), team, indiv, logp, value, n_,
                                            num_team_skills_, num_indiv_skills_, env_.error_word()},
                    "decision check kernel");
    if (check_now) raise_if_error(s, nullptr);
    sync_batch_start(s);
    launch_guarded(e_, s, env_.error_word(), OpenNeededWindows<Env>{batch(env_.view()), t_, team, indiv, logp, value},
                   "decide kernel");
  }

  void step(const void* actions, DType dtype, const float* logp, const float* value, uintptr_t stream,
            bool check_now) override {
    check_usable("step()");
    DeviceScope scope(env_.device());
    const cudaStream_t s = as_stream(stream);
    unsigned long long* error = env_.error_word();
    env_.with_actions(actions, dtype, [&](const auto* typed) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(typed)>>;
      launch_for_each(e_, s, CheckFlagClear{buffers_.needs_decision.data(), kNeedsDecision, error},
                      "decision check kernel");
      env_.check_inputs(typed, s);
      launch_for_each(e_ * n_, s, CheckFinite{logp, kLogpNotFinite, error}, "logp check kernel");
      launch_for_each(e_ * n_, s, CheckFinite{value, kValueNotFinite, error}, "value check kernel");
      if (check_now) {
        const unsigned long long word = env_.errors().take(s);
        if (word != kNoDeviceError) throw std::invalid_argument(describe(word, typed));
      }
      sync_batch_start(s);
      const int32_t t = t_;
      const bool barrier = t + 1 == horizon_;
      EnvBatch<Env> target = env_.view();
      if (!barrier) {  // the env writes the next observation straight into row t + 1 of the batch
        target.obs = buffers_.ll_obs.data() + int64_t(t + 1) * e_ * n_ * target.obs_dim;
        target.state = buffers_.ll_state.data() + int64_t(t + 1) * e_ * target.state_dim;
        target.action_mask = buffers_.ll_mask.data() + int64_t(t + 1) * e_ * n_ * target.num_actions;
      }
      launch_guarded(e_, s, error, StepEngine<Env, T>{batch(target), t, barrier, typed, logp, value},
                     "engine step kernel");
      t_ += 1;
      samples_ += int64_t(e_) * n_;
      if (barrier) {
        launch_guarded(e_, s, error, SumIntoCounter<bool>{buffers_.barrier_closed.data(), counters_.data() + 1},
                       "count kernel");
        ready_ = true;
        env_.set_batch_open(false);
      }
    });
  }

  void resume(uintptr_t stream) override {
    if (!ready_)
      throw std::runtime_error("resume() before the barrier: the batch has " + std::to_string(t_) + " of " +
                               std::to_string(horizon_) + " steps");
    DeviceScope scope(env_.device());
    policy_version_ = next_policy_version(policy_version_);
    start_batch(as_stream(stream));
  }

  // Deferred device checks: a rejected unchecked call was skipped on the device, so the batch is no longer what
  // the host counted; it is discarded (every env decides afresh under the same policy version).
  void check_errors(uintptr_t stream) override {
    DeviceScope scope(env_.device());
    const unsigned long long word = env_.errors().take(as_stream(stream));
    if (word == kNoDeviceError) return;
    start_batch(as_stream(stream));
    throw std::invalid_argument(describe(word, static_cast<const Action*>(nullptr)) +
                                " (found by a deferred device check; that call and the rest of the batch were "
                                "skipped and the batch was discarded)");
  }

  NamedTensors buffers() override {
    const int64_t t = horizon_, e = e_, n = n_, c = int64_t(e_) * slots_per_env_;
    const int64_t o = env_.dims().obs_dim, s = env_.dims().state_dim, a = env_.dims().num_actions;
    auto& b = buffers_;
    NamedTensors out{{"low/obs", tensor(b.ll_obs, {t, e, n, o})},
                     {"low/state", tensor(b.ll_state, {t, e, s})},
                     {"low/action_mask", tensor(b.ll_mask, {t, e, n, a})},
                     {"low/logp", tensor(b.ll_logp, {t, e, n})},
                     {"low/values", tensor(b.ll_value, {t, e, n})},
                     {"low/rewards", tensor(b.ll_reward, {t, e, n})},
                     {"low/terminated", tensor(b.ll_terminated, {t, e})},
                     {"low/truncated", tensor(b.ll_truncated, {t, e})},
                     {"low/final_obs", tensor(b.ll_final_obs, {t, e, n, o})},
                     {"low/final_state", tensor(b.ll_final_state, {t, e, s})},
                     {"low/team_skill", tensor(b.ll_team, {t, e})},
                     {"low/indiv_skill", tensor(b.ll_indiv, {t, e, n})},
                     {"low/policy_version", tensor(b.ll_version, {t, e})},
                     {"windows/start", tensor(b.win_start, {e})},
                     {"windows/length", tensor(b.win_length, {e})},
                     {"windows/team_skill", tensor(b.win_team, {e})},
                     {"windows/indiv_skill", tensor(b.win_indiv, {e, n})},
                     {"windows/logp", tensor(b.win_logp, {e, n + 1})},
                     {"windows/values", tensor(b.win_value, {e, n + 1})},
                     {"windows/reward_sum", tensor(b.win_reward, {e, n})},
                     {"windows/needs_decision", tensor(b.needs_decision, {e})},
                     {"windows/bootstrap_obs", tensor(b.boot_obs, {e, n, o})},
                     {"windows/bootstrap_state", tensor(b.boot_state, {e, s})},
                     {"high/count", tensor(b.hl_count, {e})},
                     {"high/published", tensor(b.hl_published, {c})},
                     {"high/env", tensor(b.hl_env, {c})},
                     {"high/start", tensor(b.hl_start, {c})},
                     {"high/length", tensor(b.hl_length, {c})},
                     {"high/team_skill", tensor(b.hl_team, {c})},
                     {"high/indiv_skill", tensor(b.hl_indiv, {c, n})},
                     {"high/logp", tensor(b.hl_logp, {c, n + 1})},
                     {"high/values", tensor(b.hl_value, {c, n + 1})},
                     {"high/reward_sum", tensor(b.hl_reward, {c, n})},
                     {"high/terminated", tensor(b.hl_terminated, {c})},
                     {"high/truncated", tensor(b.hl_truncated, {c})},
                     {"high/at_barrier", tensor(b.hl_at_barrier, {c})},
                     {"high/policy_version", tensor(b.hl_version, {c})}};
    if (Env::kActionWidth > 1 || std::is_floating_point<Action>::value)
      out.push_back({"low/actions", tensor(b.ll_action, {t, e, n, Env::kActionWidth})});
    else
      out.push_back({"low/actions", tensor(b.ll_action, {t, e, n})});
    return out;
  }

 private:
  RolloutBatch<Env> batch(const EnvBatch<Env>& target) {
    auto& own = env_.storage();
    return buffers_.batch(target, horizon_, slots_per_env_, own.obs.data(), own.state.data(), own.action_mask.data(),
                          clock_, skill_interval_, policy_version_);
  }

  void check_usable(const char* what) const {
    if (ready_)
      throw std::runtime_error(std::string(what) + " after the barrier: the batch of " + std::to_string(horizon_) +
                               " steps is complete; update, then call resume()");
    if (!env_.has_reset()) throw std::runtime_error(std::string("call reset() on the env before ") + what);
  }

  void sync_batch_start(cudaStream_t stream) {
    if (synced_) return;
    launch_guarded(e_, stream, env_.error_word(), CopyBatchStart<Env>{batch(env_.view())}, "batch-start kernel");
    synced_ = true;
    env_.set_batch_open(true);
  }

  void start_batch(cudaStream_t stream) {
    // windows of the batch that ends count as emitted: add this batch's ring counts to the running total
    launch_for_each(e_, stream, SumIntoCounter<int32_t>{buffers_.hl_count.data(), counters_.data()}, "count kernel");
    buffers_.overflowed.fill_zero(stream);
    launch_for_each(e_, stream, StartBatch<Env>{batch(env_.view())}, "batch start kernel");
    t_ = 0;
    ready_ = false;
    synced_ = false;
    env_.set_batch_open(false);
  }

  void raise_if_error(cudaStream_t stream, const int32_t*) {
    const unsigned long long word = env_.errors().take(stream);
    if (word != kNoDeviceError) throw std::invalid_argument(describe(word, static_cast<const Action*>(nullptr)));
  }

  template <class T>
  std::string describe(unsigned long long word, const T* actions) const {
    const int64_t index = error_index(word);
    const std::string row = std::to_string(index / (n_ + 1)) + ", " + std::to_string(index % (n_ + 1));
    switch (error_code(word)) {
      case kNeedsDecision: return "env " + std::to_string(index) + " needs a skill decision: call decide() first";
      case kLogpNotFinite: return "logp[" + std::to_string(index / n_) + ", " + std::to_string(index % n_) + "] is not finite";
      case kValueNotFinite: return "values[" + std::to_string(index / n_) + ", " + std::to_string(index % n_) + "] is not finite";
      case kEnvIdOutOfRange: return "env_ids[" + std::to_string(index) + "] is not an env index in [0, " + std::to_string(e_) + ")";
      case kDecisionNotNeeded: return "env_ids[" + std::to_string(index) + "] names an env that does not need a decision";
      case kEnvIdTwice: return "env_ids[" + std::to_string(index) + "] names an env listed twice";
      case kDecisionMissing: return "env " + std::to_string(index) + " needs a decision but env_ids does not list it";
      case kTeamSkillOutOfRange: return "team_skill[" + std::to_string(index) + "] is out of range [0, " + std::to_string(num_team_skills_) + ")";
      case kIndivSkillOutOfRange: return "indiv_skill[" + std::to_string(index / n_) + ", " + std::to_string(index % n_) + "] is out of range [0, " + std::to_string(num_indiv_skills_) + ")";
      case kDecisionLogpNotFinite: return "logp[" + row + "] is not finite";
      case kDecisionValueNotFinite: return "values[" + row + "] is not finite";
      default: return env_.describe(word, actions);
    }
  }

  DeviceBatchedEnv<Env>& env_;
  int32_t horizon_, skill_interval_, num_team_skills_, num_indiv_skills_;
  Clock clock_;
  int32_t e_ = 0, n_ = 0, slots_per_env_ = 0, t_ = 0, policy_version_ = 0;
  bool ready_ = false, synced_ = false;
  int64_t samples_ = 0;
  RolloutStorage<Env, DeviceArray> buffers_;
  DeviceArray<int32_t> seen_;
  DeviceArray<unsigned long long> counters_;
};

template <class Env>
std::unique_ptr<DeviceEngine> DeviceBatchedEnv<Env>::make_engine(int32_t horizon, int32_t skill_interval,
                                                                 int32_t num_team_skills, int32_t num_indiv_skills,
                                                                 int32_t clock, int64_t ring_capacity) {
  if (clock != 0 && clock != 1) throw std::invalid_argument("clock must be 0 (episode) or 1 (global)");
  return std::make_unique<DeviceRolloutEngine<Env>>(*this, horizon, skill_interval, num_team_skills,
                                                    num_indiv_skills, static_cast<Clock>(clock), ring_capacity);
}

}  // namespace

template <class Env>
std::unique_ptr<DeviceEnv> make_device_env(const typename Env::Config& config, int32_t num_envs, uint64_t seed,
                                           uint32_t first_env, int32_t device, int32_t autoreset) {
  Env::validate(config);
  const int count = cuda_device_count();
  if (device < 0 || device >= count)
    throw std::invalid_argument("CUDA device " + std::to_string(device) + " does not exist: " + std::to_string(count) +
                                " device(s) visible");
  return std::make_unique<DeviceBatchedEnv<Env>>(config, num_envs, seed, first_env, device,
                                                 static_cast<Autoreset>(autoreset));
}

}  // namespace hmasd
