// The arrays behind an EnvBatch, allocated once by an owner: `Array` is HostArray (CPU) or DeviceArray (CUDA), so
// the two backends share one list of buffers and one way of viewing them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "batch/env_batch.h"
#include "core/env_spec.h"

namespace hmasd {

// The env indices first_env .. first_env + num_envs - 1 of a batch must all be uint32 (the Philox key word), or two
// copies would share a stream. Checked by both owners before anything is allocated.
inline void check_env_index_range(uint32_t first_env, int32_t num_envs) {
  if (uint64_t(first_env) + uint64_t(num_envs) > (uint64_t(1) << 32))
    throw std::invalid_argument("first_env + num_envs must not exceed 2**32 (an env index is a uint32), got "
                                "first_env=" + std::to_string(first_env) + " and num_envs=" +
                                std::to_string(num_envs));
}

// What the elements of one state array are: Env::State, uint32 counters, bools, int32 lengths or float32 values.
enum class StateArray { kEnvStates, kCounters, kFlags, kLengths, kFloats };

template <class Env, template <class> class Array>
struct EnvStorage {
  using State = typename Env::State;

  Array<State> states;
  Array<uint32_t> episode;
  Array<bool> needs_reset;
  Array<float> obs, final_obs, state, final_state, rewards;
  Array<bool> terminated, truncated, action_mask;
  Array<float> running_return;
  Array<int32_t> running_length;
  Array<float> episode_return;
  Array<int32_t> episode_length;
  Array<float> episode_info;
  Array<double> tally;

  EnvStorage() = default;
  EnvStorage(const EnvDims& d, int32_t num_envs, int32_t info_width) {
    const size_t e = static_cast<size_t>(num_envs), n = static_cast<size_t>(d.num_agents);
    states = Array<State>(e);
    episode = Array<uint32_t>(e);
    needs_reset = Array<bool>(e);
    obs = Array<float>(e * n * d.obs_dim);
    final_obs = Array<float>(e * n * d.obs_dim);
    state = Array<float>(e * d.state_dim);
    final_state = Array<float>(e * d.state_dim);
    rewards = Array<float>(e * n);
    terminated = Array<bool>(e);
    truncated = Array<bool>(e);
    action_mask = Array<bool>(e * n * d.num_actions);
    running_return = Array<float>(e * n);
    running_length = Array<int32_t>(e);
    episode_return = Array<float>(e * n);
    episode_length = Array<int32_t>(e);
    episode_info = Array<float>(e * static_cast<size_t>(info_width));
    tally = Array<double>(e * static_cast<size_t>(tally_width(d.num_agents, info_width)));
  }

  EnvBatch<Env> view(const typename Env::Config& config, const EnvDims& d, int32_t num_envs, int32_t info_width,
                     Autoreset autoreset, uint64_t seed, uint32_t first_env) {
    return EnvBatch<Env>{config, num_envs, d.num_agents, d.obs_dim, d.state_dim, d.num_actions, info_width,
                         autoreset, seed, first_env, states.data(), episode.data(), needs_reset.data(), obs.data(),
                         state.data(), action_mask.data(), final_obs.data(), final_state.data(), rewards.data(),
                         terminated.data(), truncated.data(), running_return.data(), running_length.data(),
                         episode_return.data(), episode_length.data(), episode_info.data(), tally.data()};
  }

  // Every array that makes up the env's state, in snapshot order, with what its elements are (a snapshot's checks
  // go by it; the tallies are statistics, not state).
  template <class Fn>
  void for_each_state_array(const Fn& fn) {
    fn(states.data(), states.bytes(), StateArray::kEnvStates);
    fn(episode.data(), episode.bytes(), StateArray::kCounters);
    fn(needs_reset.data(), needs_reset.bytes(), StateArray::kFlags);
    fn(obs.data(), obs.bytes(), StateArray::kFloats);
    fn(final_obs.data(), final_obs.bytes(), StateArray::kFloats);
    fn(state.data(), state.bytes(), StateArray::kFloats);
    fn(final_state.data(), final_state.bytes(), StateArray::kFloats);
    fn(rewards.data(), rewards.bytes(), StateArray::kFloats);
    fn(terminated.data(), terminated.bytes(), StateArray::kFlags);
    fn(truncated.data(), truncated.bytes(), StateArray::kFlags);
    fn(action_mask.data(), action_mask.bytes(), StateArray::kFlags);
    fn(running_return.data(), running_return.bytes(), StateArray::kFloats);
    fn(running_length.data(), running_length.bytes(), StateArray::kLengths);
    fn(episode_return.data(), episode_return.bytes(), StateArray::kFloats);
    fn(episode_length.data(), episode_length.bytes(), StateArray::kLengths);
    fn(episode_info.data(), episode_info.bytes(), StateArray::kFloats);
  }
};

}  // namespace hmasd
