// Fresh copies of one step's outputs in the layouts trainers take (E env copies x N agents, flags per agent row),
// filled in one pass each so that an adapter pays one native call instead of a NumPy call per array.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace hmasd {

// Where the copies go; a null pointer skips that output. Every destination holds num_envs * num_agents rows.
struct StepOutputTargets {
  float* obs = nullptr;          // [E * N * obs_dim]
  float* rewards = nullptr;      // [E * N]
  bool* terminated = nullptr;    // [E * N]: the env copy's flag, repeated for each of its agents
  bool* truncated = nullptr;     // [E * N]
  bool* done = nullptr;          // [E * N]: terminated or truncated
  void* action_mask = nullptr;   // [E * N * num_actions], as mask_kind says
};

enum class MaskKind { kBool, kInt8, kFloat32 };

// The read side: one step's buffers as the batch holds them.
struct StepOutputSources {
  const float* obs;
  const float* rewards;
  const bool* terminated;  // [E]
  const bool* truncated;   // [E]
  const bool* action_mask;
  int32_t num_envs, num_agents, obs_dim, num_actions;
};

// Copies what `out` asks for; returns how many env copies ended (terminated or truncated) in the step.
inline int32_t copy_step_outputs(const StepOutputSources& in, const StepOutputTargets& out, MaskKind mask_kind) {
  const size_t rows = static_cast<size_t>(in.num_envs) * static_cast<size_t>(in.num_agents);
  if (out.obs) std::memcpy(out.obs, in.obs, rows * static_cast<size_t>(in.obs_dim) * sizeof(float));
  if (out.rewards) std::memcpy(out.rewards, in.rewards, rows * sizeof(float));
  int32_t ended = 0;
  for (int32_t e = 0; e < in.num_envs; ++e) {
    const bool term = in.terminated[e], trunc = in.truncated[e];
    ended += (term || trunc) ? 1 : 0;
    const size_t first = static_cast<size_t>(e) * static_cast<size_t>(in.num_agents);
    for (int32_t i = 0; i < in.num_agents; ++i) {
      if (out.terminated) out.terminated[first + i] = term;
      if (out.truncated) out.truncated[first + i] = trunc;
      if (out.done) out.done[first + i] = term || trunc;
    }
  }
  if (out.action_mask) {
    const size_t count = rows * static_cast<size_t>(in.num_actions);
    switch (mask_kind) {
      case MaskKind::kBool: std::memcpy(out.action_mask, in.action_mask, count); break;
      case MaskKind::kInt8: {
        auto* dst = static_cast<int8_t*>(out.action_mask);
        for (size_t k = 0; k < count; ++k) dst[k] = in.action_mask[k] ? 1 : 0;
        break;
      }
      case MaskKind::kFloat32: {
        auto* dst = static_cast<float*>(out.action_mask);
        for (size_t k = 0; k < count; ++k) dst[k] = in.action_mask[k] ? 1.0f : 0.0f;
        break;
      }
    }
  }
  return ended;
}

}  // namespace hmasd
