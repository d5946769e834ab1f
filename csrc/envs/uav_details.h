// The per-copy inspection hooks of uav_coverage (docs/envs.md), as plain arrays: details() reads one env copy's
// radio without disturbing it, set_positions() hand-places its UAVs and users. Host only; the bindings just convert
// these to NumPy.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/batched_env.h"
#include "envs/uav_coverage.h"

namespace hmasd {

// Row-major arrays of one env copy: U UAVs, N users, G ground base stations.
struct UavDetails {
  int32_t num_uavs = 0, num_users = 0, num_gbs = 0;
  std::vector<float> uav_pos;        // [U, 3]
  std::vector<float> user_pos;       // [N, 2]
  std::vector<double> gbs_pos;       // [G, 3]
  std::vector<double> sinr_db;       // [U, N]
  std::vector<int32_t> serving;      // [N], the serving UAV or -1
  std::vector<int32_t> served_count, unserved_in_range, hops, next_hop, role;  // [U]
  std::vector<uint8_t> uav_links;    // [U, U], 0 or 1 (not vector<bool>: that one has no data())
  std::vector<uint8_t> gbs_links;    // [U, G], 0 or 1
  double metrics[kNumUavMetrics] = {};
  int32_t t = 0;
};

// The checks shared by both hooks; `hook` names the call in the error.
template <class Env>
void check_uav_env_index(const BatchedEnv<Env>& pool, int32_t env_index, const char* hook) {
  if (env_index < 0 || env_index >= pool.num_envs())
    throw std::out_of_range("env_index " + std::to_string(env_index) + " is out of range [0, " +
                            std::to_string(pool.num_envs()) + ")");
  if (!pool.has_reset()) throw std::runtime_error(std::string("call reset() before ") + hook);
}

// The radio of copy `env_index` as evaluated last, re-evaluated on a copy of its state with the same random stream
// (so the env itself is untouched), plus the SINR of every link.
template <class Env>
UavDetails uav_details(const BatchedEnv<Env>& pool, int32_t env_index) {
  check_uav_env_index(pool, env_index, "details()");
  const UavCoverageConfig& c = pool.config();
  UavDetails d;
  const int32_t nu = c.num_uavs, n = c.num_users, ng = Env::num_gbs(c);
  d.num_uavs = nu, d.num_users = n, d.num_gbs = ng;
  // The State holds fixed-capacity arrays of several kB: on the heap, not the stack.
  auto copy = std::make_unique<typename Env::State>(pool.state_of(env_index));
  d.sinr_db.resize(size_t(nu) * n);
  Env::evaluate_radio(c, *copy, pool.rng_of(env_index), d.sinr_db.data());
  const auto& s = *copy;
  d.uav_pos.resize(size_t(nu) * 3);
  d.user_pos.resize(size_t(n) * 2);
  d.gbs_pos.resize(size_t(ng) * 3);
  d.serving.resize(n);
  d.served_count.resize(nu), d.unserved_in_range.resize(nu), d.hops.resize(nu), d.next_hop.resize(nu), d.role.resize(nu);
  d.uav_links.resize(size_t(nu) * nu);
  d.gbs_links.resize(size_t(nu) * ng);
  for (int32_t u = 0; u < nu; ++u) {
    for (int32_t k = 0; k < 3; ++k) d.uav_pos[u * 3 + k] = s.uav[u][k];
    d.hops[u] = s.hops[u];
    d.next_hop[u] = s.next_hop[u];
    d.role[u] = s.role[u];
    d.served_count[u] = s.served_count[u];
    d.unserved_in_range[u] = s.unserved_in_range[u];
    for (int32_t v = 0; v < nu; ++v) d.uav_links[size_t(u) * nu + v] = (s.uav_links[u] >> v) & 1u;
    for (int32_t g = 0; g < ng; ++g) d.gbs_links[size_t(u) * ng + g] = (s.gbs_links[u] >> g) & 1u;
  }
  for (int32_t g = 0; g < ng; ++g) Env::gbs_position(c, g, &d.gbs_pos[size_t(g) * 3]);
  for (int32_t j = 0; j < n; ++j) {
    d.user_pos[j * 2] = s.user[j][0];
    d.user_pos[j * 2 + 1] = s.user[j][1];
    d.serving[j] = s.serving[j];
  }
  for (int32_t k = 0; k < kNumUavMetrics; ++k) d.metrics[k] = s.metric[k];
  d.t = s.t;
  return d;
}

// Places the UAVs (uav_pos [U, 3]) and, unless user_pos is null, the users ([N, 2]) of copy `env_index`, then
// re-evaluates its radio and observation at the current step. Everything is checked before the state changes, so a
// rejected call leaves the env as it was.
template <class Env>
void uav_set_positions(BatchedEnv<Env>& pool, int32_t env_index, const double* uav_pos, const double* user_pos) {
  check_uav_env_index(pool, env_index, "set_positions()");
  const UavCoverageConfig& c = pool.config();
  // Only places an env can be in: UAVs inside the area at a legal altitude, users on the ground inside the area.
  // (NaN fails every comparison and is refused with the rest.)
  auto check_range = [](const double* values, int32_t rows, int32_t width, int32_t column, double low, double high,
                        const char* name, const char* what) {
    for (int32_t r = 0; r < rows; ++r) {
      // compared as stored: float32 positions against the float32 bounds the env's motion clamps to
      const double v = values[r * width + column];
      const bool finite_in_float = std::fabs(v) <= 3.0e38;
      if (finite_in_float && static_cast<float>(v) >= static_cast<float>(low) &&
          static_cast<float>(v) <= static_cast<float>(high))
        continue;
      char text[160];
      std::snprintf(text, sizeof text, "%s[%d, %d] = %g is outside %s [%g, %g]", name, r, column, v, what, low, high);
      throw std::invalid_argument(text);
    }
  };
  for (int32_t k = 0; k < 2; ++k) {
    check_range(uav_pos, c.num_uavs, 3, k, 0.0, c.area_size, "uav_pos", "the area");
    if (user_pos) check_range(user_pos, c.num_users, 2, k, 0.0, c.area_size, "user_pos", "the area");
  }
  check_range(uav_pos, c.num_uavs, 3, 2, c.min_height, c.max_height, "uav_pos", "the height range");
  auto& s = pool.state_of(env_index);
  for (int32_t u = 0; u < c.num_uavs; ++u)
    for (int32_t k = 0; k < 3; ++k) s.uav[u][k] = static_cast<float>(uav_pos[u * 3 + k]);
  if (user_pos)
    for (int32_t j = 0; j < c.num_users; ++j)
      for (int32_t k = 0; k < 2; ++k) s.user[j][k] = static_cast<float>(user_pos[j * 2 + k]);
  Env::evaluate_radio(c, s, pool.rng_of(env_index), nullptr);
  pool.observe_env(env_index);
}

}  // namespace hmasd
