// pybind11 glue for the batched envs: configs, the CPU pool, and zero-copy NumPy views of its buffers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "arrays.h"
#include "bindings.h"
#include "cpu/batched_env.h"
#include "envs/alice_and_bob.h"
#include "envs/stag_hunt.h"
#include "envs/uav_coverage.h"

namespace py = pybind11;
using hmasd::Autoreset;
using hmasd::BatchedEnv;

namespace hmasd_bindings {
namespace {

Autoreset parse_autoreset(const std::string& mode) {
  if (mode == "same_step") return Autoreset::kSameStep;
  if (mode == "disabled") return Autoreset::kDisabled;
  throw py::value_error("autoreset must be 'same_step' or 'disabled', got '" + mode + "'");
}

template <class Env>
py::class_<BatchedEnv<Env>> bind_env(py::module_& m, const char* class_name) {
  using Pool = BatchedEnv<Env>;
  using Config = typename Env::Config;
  return py::class_<Pool>(m, class_name)
      .def(py::init([](const Config& config, int32_t num_envs, uint64_t seed, int32_t num_threads,
                       const std::string& autoreset) {
             return new Pool(config, num_envs, seed, num_threads, parse_autoreset(autoreset));
           }),
           py::arg("config"), py::arg("num_envs"), py::arg("seed") = 0, py::arg("num_threads") = 1,
           py::arg("autoreset") = "same_step")
      .def_property_readonly_static("name", [](const py::object&) { return Env::kName; })
      .def_property_readonly("config", [](const Pool& p) { return p.config(); })
      .def_property_readonly("num_envs", &Pool::num_envs)
      .def_property_readonly("num_threads", &Pool::num_threads)
      .def_property_readonly("num_agents", [](const Pool& p) { return p.dims().num_agents; })
      .def_property_readonly("obs_dim", [](const Pool& p) { return p.dims().obs_dim; })
      .def_property_readonly("state_dim", [](const Pool& p) { return p.dims().state_dim; })
      .def_property_readonly("num_actions", [](const Pool& p) { return p.dims().num_actions; })
      .def_property_readonly("action_dim", [](const Pool&) { return Pool::kContinuous ? Env::kActionWidth : 0; },
                             "Components of a continuous action (0 for discrete envs).")
      .def_property_readonly("seed", &Pool::seed)
      .def_property_readonly("has_reset", &Pool::has_reset)
      .def_property_readonly("autoreset",
                             [](const Pool& p) { return p.autoreset() == Autoreset::kSameStep ? "same_step" : "disabled"; })
      .def_property_readonly("info_fields",
                             [](const Pool& p) {
                               py::list fields;
                               for (const auto& f : p.info_fields()) fields.append(py::make_tuple(f.name, f.per_agent));
                               return fields;
                             })
      .def("obs_bounds",
           [](const Pool& p) {
             py::array_t<float> low(p.dims().obs_dim), high(p.dims().obs_dim);
             Env::obs_bounds(p.config(), low.mutable_data(), high.mutable_data());
             return py::make_tuple(low, high);
           })
      .def("state_bounds",
           [](const Pool& p) {
             py::array_t<float> low(p.dims().state_dim), high(p.dims().state_dim);
             Env::state_bounds(p.config(), low.mutable_data(), high.mutable_data());
             return py::make_tuple(low, high);
           })
      .def(
          "reset",
          [](Pool& p, std::optional<uint64_t> seed) {
            py::gil_scoped_release release;
            p.reset(seed.has_value(), seed.value_or(0));
          },
          py::arg("seed") = py::none(), "Resets every env; with a seed, reseeds and restarts the episode count.")
      .def(
          "step",
          [](Pool& p, const py::object& actions) {
            const py::array arr = checked_actions<Env>(actions, p.num_envs(), p.dims().num_agents);
            with_actions<Env>(arr, [&](const auto* data) {
              py::gil_scoped_release release;
              p.step(data);
            });
          },
          py::arg("actions"),
          "Steps every env with actions [num_envs, num_agents] (int) or [num_envs, num_agents, action_dim] (float); "
          "validates all first.")
      .def("buffers",
           [](py::object self) {
             Pool& p = self.cast<Pool&>();
             auto& b = p.buffers();
             const py::ssize_t e = p.num_envs(), n = p.dims().num_agents;
             py::dict out;
             out["obs"] = view(self, b.obs.data(), {e, n, p.dims().obs_dim});
             out["state"] = view(self, b.state.data(), {e, p.dims().state_dim});
             out["rewards"] = view(self, b.rewards.data(), {e, n});
             out["terminated"] = view(self, b.terminated.data(), {e});
             out["truncated"] = view(self, b.truncated.data(), {e});
             out["action_mask"] = view(self, b.action_mask.data(), {e, n, p.dims().num_actions});
             out["final_obs"] = view(self, b.final_obs.data(), {e, n, p.dims().obs_dim});
             out["final_state"] = view(self, b.final_state.data(), {e, p.dims().state_dim});
             out["episode_return"] = view(self, b.episode_return.data(), {e, n});
             out["episode_length"] = view(self, b.episode_length.data(), {e});
             out["episode_info"] = view(self, b.episode_info.data(), {e, p.info_width()});
             return out;
           },
           "NumPy views of the native buffers (no copy); they stay valid as long as the env lives.")
      .def("drain_episode_log",
           [](Pool& p) {
             const hmasd::EpisodeLog log = p.drain_log();
             py::dict out;
             out["episodes"] = log.episodes;
             out["length_sum"] = log.length_sum;
             out["return_sum"] = py::array_t<double>(log.return_sum.size(), log.return_sum.data());
             out["info_sum"] = py::array_t<double>(log.info_sum.size(), log.info_sum.data());
             return out;
           },
           "Sums over the episodes finished since the last call, then clears them.")
      .def("snapshot", [](Pool& p) { return py::bytes(p.snapshot()); },
           "Every byte of the env's state, for pickling.")
      .def("restore", [](Pool& p, const py::bytes& blob) { p.restore(std::string(blob)); }, py::arg("blob"));
}

// A string option stored as the index of its name in `names`.
template <class Config>
void bind_choice(py::class_<Config>& cls, const char* option, int32_t Config::*field, std::vector<std::string> names) {
  cls.def_property(
      option, [field, names](const Config& c) { return names.at(static_cast<size_t>(c.*field)); },
      [field, names, option](Config& c, const std::string& value) {
        for (size_t k = 0; k < names.size(); ++k)
          if (names[k] == value) {
            c.*field = static_cast<int32_t>(k);
            return;
          }
        std::string known;
        for (const auto& name : names) known += (known.empty() ? "'" : ", '") + name + "'";
        throw py::value_error(std::string(option) + " must be one of " + known + ", got '" + value + "'");
      });
}

// The per-copy details of uav_coverage (docs/envs.md): the radio evaluated last, re-evaluated on a copy of the
// state with the same random stream, plus the SINR of every link.
template <class Env>
py::dict uav_details(const BatchedEnv<Env>& pool, int32_t e) {
  if (e < 0 || e >= pool.num_envs())
    throw py::index_error("env_index " + std::to_string(e) + " is out of range [0, " + std::to_string(pool.num_envs()) + ")");
  if (!pool.has_reset()) throw std::runtime_error("call reset() before details()");
  const auto& c = pool.config();
  const py::ssize_t nu = c.num_uavs, n = c.num_users, ng = Env::num_gbs(c);
  auto copy = std::make_unique<typename Env::State>(pool.state_of(e));
  py::array_t<double> sinr_db({nu, n});
  {
    py::gil_scoped_release release;
    Env::evaluate_radio(c, *copy, pool.rng_of(e), sinr_db.mutable_data());
  }
  const auto& s = *copy;
  py::array_t<float> uav_pos({nu, py::ssize_t(3)}), user_pos({n, py::ssize_t(2)});
  py::array_t<double> gbs_pos({ng, py::ssize_t(3)});
  py::array_t<int32_t> serving(n), hops(nu), next_hop(nu), role(nu), served_count(nu);
  py::array_t<bool> uav_links({nu, nu}), gbs_links({nu, ng});
  for (py::ssize_t u = 0; u < nu; ++u) {
    for (int k = 0; k < 3; ++k) uav_pos.mutable_at(u, k) = s.uav[u][k];
    hops.mutable_at(u) = s.hops[u];
    next_hop.mutable_at(u) = s.next_hop[u];
    role.mutable_at(u) = s.role[u];
    served_count.mutable_at(u) = s.served_count[u];
    for (py::ssize_t v = 0; v < nu; ++v) uav_links.mutable_at(u, v) = (s.uav_links[u] >> v) & 1u;
    for (py::ssize_t g = 0; g < ng; ++g) gbs_links.mutable_at(u, g) = (s.gbs_links[u] >> g) & 1u;
  }
  for (py::ssize_t g = 0; g < ng; ++g) Env::gbs_position(c, static_cast<int32_t>(g), gbs_pos.mutable_data(g, 0));
  for (py::ssize_t j = 0; j < n; ++j) {
    user_pos.mutable_at(j, 0) = s.user[j][0];
    user_pos.mutable_at(j, 1) = s.user[j][1];
    serving.mutable_at(j) = s.serving[j];
  }
  py::dict metrics;
  for (int32_t k = 0; k < hmasd::kNumUavMetrics; ++k) metrics[Env::kMetricNames[k]] = s.metric[k];
  metrics["served_users"] = served_count;
  metrics["role"] = role;
  py::dict out;
  out["uav_pos"] = uav_pos;
  out["user_pos"] = user_pos;
  out["gbs_pos"] = gbs_pos;
  out["sinr_db"] = sinr_db;
  out["serving"] = serving;
  out["served_count"] = served_count;
  out["hops"] = hops;
  out["next_hop"] = next_hop;
  out["role"] = role;
  out["uav_links"] = uav_links;
  out["gbs_links"] = gbs_links;
  out["metrics"] = metrics;
  out["t"] = s.t;
  return out;
}

// Places the UAVs (and optionally the users) of one env copy and re-evaluates its radio at the current step, for
// hand-built scenarios and tests. Everything is checked before the state changes.
template <class Env>
void uav_set_positions(BatchedEnv<Env>& pool, int32_t e, const py::object& uav_pos, const py::object& user_pos) {
  if (e < 0 || e >= pool.num_envs())
    throw py::index_error("env_index " + std::to_string(e) + " is out of range [0, " + std::to_string(pool.num_envs()) + ")");
  if (!pool.has_reset()) throw std::runtime_error("call reset() before set_positions()");
  const auto& c = pool.config();
  auto finite_array = [](const py::object& obj, const char* name, std::vector<py::ssize_t> shape) {
    const py::array arr = checked_array(obj, name, 'F', shape);
    const py::array_t<double> values = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(arr);
    for (py::ssize_t k = 0; k < values.size(); ++k)
      if (!std::isfinite(values.data()[k])) throw py::value_error(std::string(name) + " holds a non-finite value");
    return values;
  };
  const auto uav = finite_array(uav_pos, "uav_pos", {c.num_uavs, 3});
  py::array_t<double> users;
  if (!user_pos.is_none()) users = finite_array(user_pos, "user_pos", {c.num_users, 2});
  auto& s = pool.state_of(e);
  for (int32_t u = 0; u < c.num_uavs; ++u)
    for (int32_t k = 0; k < 3; ++k) s.uav[u][k] = static_cast<float>(uav.at(u, k));
  if (!user_pos.is_none())
    for (int32_t j = 0; j < c.num_users; ++j)
      for (int32_t k = 0; k < 2; ++k) s.user[j][k] = static_cast<float>(users.at(j, k));
  Env::evaluate_radio(c, s, pool.rng_of(e), nullptr);
  pool.observe_env(e);
}

}  // namespace

void bind_envs(py::module_& m) {
  using hmasd::AliceAndBobConfig;
  py::class_<AliceAndBobConfig>(m, "AliceAndBobConfig", "Options of alice_and_bob (docs/envs.md).")
      .def(py::init<>())
      .def_readwrite("height", &AliceAndBobConfig::height)
      .def_readwrite("width", &AliceAndBobConfig::width)
      .def_readwrite("max_steps", &AliceAndBobConfig::max_steps);

  using hmasd::StagHuntConfig;
  py::class_<StagHuntConfig> stag(m, "StagHuntConfig", "Options of stag_hunt (docs/envs.md).");
  stag.def(py::init<>())
      .def_readwrite("grid_size", &StagHuntConfig::grid_size)
      .def_readwrite("num_agents", &StagHuntConfig::num_agents)
      .def_readwrite("num_hares", &StagHuntConfig::num_hares)
      .def_readwrite("max_steps", &StagHuntConfig::max_steps)
      .def_readwrite("stag_move_prob", &StagHuntConfig::stag_move_prob)
      .def_readwrite("stag_min_hunters", &StagHuntConfig::stag_min_hunters)
      .def_readwrite("stag_reward", &StagHuntConfig::stag_reward)
      .def_readwrite("hare_reward", &StagHuntConfig::hare_reward)
      .def_readwrite("lone_stag_penalty", &StagHuntConfig::lone_stag_penalty)
      .def_readwrite("agent_id_in_obs", &StagHuntConfig::agent_id_in_obs);
  bind_choice(stag, "reward_mode", &StagHuntConfig::reward_mode, {"individual", "team"});
  bind_choice(stag, "tie_break", &StagHuntConfig::tie_break, {"random", "index"});

  using hmasd::UavCoverageConfig;
  py::class_<UavCoverageConfig> uav(m, "UavCoverageConfig", "Options of uav_coverage (docs/envs.md).");
  uav.def(py::init<>())
      .def_readwrite("num_uavs", &UavCoverageConfig::num_uavs)
      .def_readwrite("num_users", &UavCoverageConfig::num_users)
      .def_readwrite("area_size", &UavCoverageConfig::area_size)
      .def_readwrite("min_height", &UavCoverageConfig::min_height)
      .def_readwrite("max_height", &UavCoverageConfig::max_height)
      .def_readwrite("max_speed", &UavCoverageConfig::max_speed)
      .def_readwrite("dt", &UavCoverageConfig::dt)
      .def_readwrite("max_steps", &UavCoverageConfig::max_steps)
      .def_readwrite("reward_split", &UavCoverageConfig::reward_split)
      .def_readwrite("shadowing", &UavCoverageConfig::shadowing)
      .def_readwrite("carrier_ghz", &UavCoverageConfig::carrier_ghz)
      .def_readwrite("bandwidth_mhz", &UavCoverageConfig::bandwidth_mhz)
      .def_readwrite("uav_tx_power_dbm", &UavCoverageConfig::uav_tx_power_dbm)
      .def_readwrite("noise_dbm", &UavCoverageConfig::noise_dbm)
      .def_readwrite("min_sinr_db", &UavCoverageConfig::min_sinr_db)
      .def_readwrite("max_connections", &UavCoverageConfig::max_connections)
      .def_readwrite("n_ground_bs", &UavCoverageConfig::n_ground_bs)
      .def_readwrite("gbs_height", &UavCoverageConfig::gbs_height)
      .def_readwrite("gbs_tx_power_dbm", &UavCoverageConfig::gbs_tx_power_dbm)
      .def_readwrite("backhaul_min_snr_db", &UavCoverageConfig::backhaul_min_snr_db)
      .def_readwrite("max_hops", &UavCoverageConfig::max_hops);
  bind_choice(uav, "scenario", &UavCoverageConfig::scenario, {"base_station", "cooperative_network"});
  bind_choice(uav, "user_distribution", &UavCoverageConfig::user_distribution, {"uniform", "cluster", "hotspot"});
  bind_choice(uav, "action_type", &UavCoverageConfig::action_type, {"continuous", "discrete"});
  bind_choice(uav, "bandwidth_sharing", &UavCoverageConfig::bandwidth_sharing, {"full", "equal"});
  bind_choice(uav, "channel_model", &UavCoverageConfig::channel_model,
              {"free_space", "urban", "suburban", "3gpp-36777", "al-hourani"});
  bind_choice(uav, "al_hourani_env", &UavCoverageConfig::al_hourani_env, {"urban", "suburban"});

  bind_env<hmasd::AliceAndBob>(m, "AliceAndBobEnv");
  bind_env<hmasd::StagHunt>(m, "StagHuntEnv");
  const char* set_positions_doc =
      "Places the UAVs (float [U, 3]) and optionally the users (float [N, 2]) of one env copy, then re-evaluates "
      "its radio and observation at the current step.";
  bind_env<hmasd::UavCoverage>(m, "UavCoverageEnv")
      .def("details", &uav_details<hmasd::UavCoverage>, py::arg("env_index") = 0,
           "Positions, SINR, association, routes and roles of one env copy (docs/envs.md).")
      .def("set_positions", &uav_set_positions<hmasd::UavCoverage>, py::arg("env_index"), py::arg("uav_pos"),
           py::arg("user_pos") = py::none(), set_positions_doc);
  bind_env<hmasd::UavCoverageDiscrete>(m, "UavCoverageDiscreteEnv")
      .def("details", &uav_details<hmasd::UavCoverageDiscrete>, py::arg("env_index") = 0,
           "Positions, SINR, association, routes and roles of one env copy (docs/envs.md).")
      .def("set_positions", &uav_set_positions<hmasd::UavCoverageDiscrete>, py::arg("env_index"),
           py::arg("uav_pos"), py::arg("user_pos") = py::none(), set_positions_doc);
}

}  // namespace hmasd_bindings
