// The CUDA translation unit: every env header compiled as device code, so nvcc checks the single-source
// discipline on each build. The batched CUDA backend builds on these per-env kernels.
#include <cuda_runtime.h>

#include "envs/alice_and_bob.h"
#include "envs/stag_hunt.h"
#include "envs/uav_coverage.h"
#include "rollout/hl_ring.h"
#include "rollout/skill_window.h"

namespace hmasd {

// One thread per env copy, calling the same HD functions as the CPU backend.
template <class Env>
__global__ void step_kernel(typename Env::Config config, typename Env::State* states, const typename Env::Action* actions,
                            float* rewards, float* obs, float* state, bool* action_mask, int32_t num_envs,
                            int32_t num_agents, int32_t obs_dim, int32_t state_dim, int32_t num_actions,
                            uint64_t seed, const uint32_t* episode) {
  const int32_t e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= num_envs) return;
  const EnvRng rng{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(e),
                   episode[e]};
  Env::step(config, states[e], actions + int64_t(e) * num_agents * Env::kActionWidth, rewards + e * num_agents, rng);
  Env::observe(config, states[e], obs + int64_t(e) * num_agents * obs_dim, state + int64_t(e) * state_dim,
               action_mask + int64_t(e) * num_agents * num_actions);
}

template <class Env>
__global__ void reset_kernel(typename Env::Config config, typename Env::State* states, int32_t num_envs,
                             uint64_t seed, const uint32_t* episode) {
  const int32_t e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= num_envs) return;
  const EnvRng rng{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(e),
                   episode[e]};
  Env::reset(config, states[e], rng);
}

// Window accounting and atomic emission for one env per thread, as the CPU engine's record_after does.
__global__ void window_kernel(SkillWindows windows, HighLevelRing ring, const float* rewards, const bool* ended,
                              int32_t num_envs, int32_t skill_interval, int32_t steps_done, bool barrier,
                              int32_t version) {
  const int32_t e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= num_envs) return;
  windows.add_reward(e, rewards + e * windows.num_agents);
  bool at_barrier = false;
  if (windows.closes(e, Clock::kEpisode, skill_interval, steps_done, ended[e], barrier, at_barrier)) {
    ring.emit(windows, e, false, barrier, at_barrier, version);
    windows.needs_decision[e] = true;
  }
}

template __global__ void step_kernel<AliceAndBob>(AliceAndBobConfig, AliceAndBobState*, const int32_t*, float*,
                                                  float*, float*, bool*, int32_t, int32_t, int32_t, int32_t,
                                                  int32_t, uint64_t, const uint32_t*);
template __global__ void step_kernel<StagHunt>(StagHuntConfig, StagHunt::State*, const int32_t*, float*, float*,
                                               float*, bool*, int32_t, int32_t, int32_t, int32_t, int32_t,
                                               uint64_t, const uint32_t*);
template __global__ void step_kernel<UavCoverage>(UavCoverageConfig, UavCoverage::State*, const float*, float*,
                                                  float*, float*, bool*, int32_t, int32_t, int32_t, int32_t,
                                                  int32_t, uint64_t, const uint32_t*);
template __global__ void step_kernel<UavCoverageDiscrete>(UavCoverageConfig, UavCoverageDiscrete::State*,
                                                          const int32_t*, float*, float*, float*, bool*, int32_t,
                                                          int32_t, int32_t, int32_t, int32_t, uint64_t,
                                                          const uint32_t*);
template __global__ void reset_kernel<UavCoverage>(UavCoverageConfig, UavCoverage::State*, int32_t, uint64_t,
                                                   const uint32_t*);
template __global__ void reset_kernel<UavCoverageDiscrete>(UavCoverageConfig, UavCoverageDiscrete::State*,
                                                           int32_t, uint64_t, const uint32_t*);
template __global__ void reset_kernel<AliceAndBob>(AliceAndBobConfig, AliceAndBobState*, int32_t, uint64_t,
                                                   const uint32_t*);
template __global__ void reset_kernel<StagHunt>(StagHuntConfig, StagHunt::State*, int32_t, uint64_t,
                                                const uint32_t*);

}  // namespace hmasd

// Without a driver or a device every runtime call fails; that is "no device", never a crash.
extern "C" int hmasd_cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}
