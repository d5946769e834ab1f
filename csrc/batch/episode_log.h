// Episode statistics of a batch: the per-env tallies summed over envs in env order, so the totals are the same for
// any thread count and on either backend (host code; the CUDA owner copies its tallies to the host first).
#pragma once

#include <cstdint>
#include <vector>

#include "batch/env_batch.h"

namespace hmasd {

struct EpisodeLog {
  int64_t episodes = 0;
  double length_sum = 0.0;
  std::vector<double> return_sum;  // [N]
  std::vector<double> info_sum;    // [info width]
};

inline EpisodeLog sum_tallies(const double* tally, int32_t num_envs, int32_t num_agents, int32_t info_width) {
  const int32_t n = num_agents, width = tally_width(n, info_width);
  EpisodeLog out;
  out.return_sum.assign(static_cast<size_t>(n), 0.0);
  out.info_sum.assign(static_cast<size_t>(info_width), 0.0);
  double episodes = 0.0;
  for (int32_t e = 0; e < num_envs; ++e) {
    const double* t = tally + int64_t(e) * width;
    episodes += t[0];
    out.length_sum += t[1];
    for (int32_t i = 0; i < n; ++i) out.return_sum[i] += t[2 + i];
    for (int32_t k = 0; k < info_width; ++k) out.info_sum[k] += t[2 + n + k];
  }
  out.episodes = static_cast<int64_t>(episodes);
  return out;
}

}  // namespace hmasd
