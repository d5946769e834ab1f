// The CUDA backend as the bindings see it: device envs and engines behind small abstract interfaces, so that the
// pybind11 code (compiled by the host compiler) never includes a kernel. Implemented in device_owners.cuh, compiled
// once per env (backend_<env>.cu); every pointer here is device memory on the object's device, and every call runs
// on the stream it is given (torch's current).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "batch/episode_log.h"
#include "core/env_spec.h"

namespace hmasd {

enum class DType : int32_t { kFloat32, kFloat64, kInt32, kInt64, kUInt8, kUInt32, kBool };

struct DeviceTensor {
  void* data;
  DType dtype;
  std::vector<int64_t> shape;
};
using NamedTensors = std::vector<std::pair<std::string, DeviceTensor>>;


class DeviceEnv {
 public:
  virtual ~DeviceEnv() = default;
  virtual int32_t device() const = 0;
  virtual int32_t num_envs() const = 0;
  virtual const EnvDims& dims() const = 0;
  virtual int32_t action_width() const = 0;  // components of a continuous action, 0 for discrete envs
  virtual const std::vector<InfoField>& info_fields() const = 0;
  virtual uint64_t seed() const = 0;
  virtual uint32_t first_env() const = 0;  // env copy e draws the stream of env index first_env + e
  virtual bool has_reset() const = 0;
  virtual void reset(bool has_seed, uint64_t seed, uintptr_t stream) = 0;
  // Begins the next episode of the envs flagged in `chosen` (device bool [E]); the others are left as they are.
  virtual void reset_envs(const bool* chosen, uintptr_t stream) = 0;
  // `actions` [E, N] int32/int64 or [E, N, width] float32 on the device. With check_now the call waits for the
  // device-side check and raises before anything changes; without, a rejected step is skipped on the device and
  // raised by the next synchronising call (check_errors, drain_log, or another checked step).
  virtual void step(const void* actions, DType dtype, uintptr_t stream, bool check_now) = 0;
  virtual void check_errors(uintptr_t stream) = 0;
  virtual NamedTensors buffers() = 0;
  virtual EpisodeLog drain_log(uintptr_t stream) = 0;
  // The rollout engine of this env, on the same device (clock: 0 episode, 1 global; ring_capacity 0: E * T).
  virtual std::unique_ptr<class DeviceEngine> make_engine(int32_t horizon, int32_t skill_interval,
                                                          int32_t num_team_skills, int32_t num_indiv_skills,
                                                          int32_t clock, int64_t ring_capacity) = 0;
};

class DeviceEngine {
 public:
  virtual ~DeviceEngine() = default;
  virtual int32_t horizon() const = 0;
  virtual int32_t steps_in_batch() const = 0;
  virtual bool ready() const = 0;
  virtual int32_t policy_version() const = 0;
  virtual int32_t slots_per_env() const = 0;
  virtual int64_t samples_collected() const = 0;
  // Counters that live on the device (one synchronising read each).
  virtual int64_t transitions_emitted(uintptr_t stream) = 0;
  virtual int32_t transitions_in_batch(uintptr_t stream) = 0;
  virtual int64_t forced_closed(uintptr_t stream) = 0;
  virtual void restore_counters(int32_t policy_version, int64_t samples, int64_t emitted, int64_t forced_closed,
                                uintptr_t stream) = 0;
  // Opens the windows of env_ids[D] (int32): every env that needs a decision, once each.
  virtual void decide(const int32_t* env_ids, int32_t count, const int32_t* team, const int32_t* indiv,
                      const float* logp, const float* value, uintptr_t stream, bool check_now) = 0;
  // The no-sync form: decisions for all E envs ([E], [E, N], [E, N + 1]); the engine keeps the rows of the envs that
  // need one, selected on the device.
  virtual void decide_all(const int32_t* team, const int32_t* indiv, const float* logp, const float* value,
                          uintptr_t stream, bool check_now) = 0;
  virtual void step(const void* actions, DType dtype, const float* logp, const float* value, uintptr_t stream,
                    bool check_now) = 0;
  virtual void resume(uintptr_t stream) = 0;
  virtual void check_errors(uintptr_t stream) = 0;
  // low-level [T, E, ...], windows [E, ...] and ring [C, ...] buffers, keyed "low/obs", "windows/start", "high/env"
  virtual NamedTensors buffers() = 0;
};

template <class Env>
std::unique_ptr<DeviceEnv> make_device_env(const typename Env::Config& config, int32_t num_envs, uint64_t seed,
                                           uint32_t first_env, int32_t device, int32_t autoreset);

int cuda_device_count();
// Waits for all work on `device` (a DLPack consumer on another stream must see every write).
void synchronize_device(int32_t device);

}  // namespace hmasd
