// pybind11 glue for the batched envs: configs, the CPU pool, and zero-copy NumPy views of its buffers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "arrays.h"
#include "bindings.h"
#include "cpu/batched_env.h"
#include "envs/alice_and_bob.h"
#include "envs/stag_hunt.h"

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
void bind_env(py::module_& m, const char* class_name) {
  using Pool = BatchedEnv<Env>;
  using Config = typename Env::Config;
  py::class_<Pool>(m, class_name)
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
            const py::array arr = checked_array(actions, "actions", 'i', {p.num_envs(), p.dims().num_agents},
                                                "(num_envs, num_agents)");
            const bool wide = arr.dtype().itemsize() == 8;
            const void* data = arr.data();
            py::gil_scoped_release release;
            if (wide)
              p.step(static_cast<const int64_t*>(data));
            else
              p.step(static_cast<const int32_t*>(data));
          },
          py::arg("actions"), "Steps every env with int actions [num_envs, num_agents]; validates all first.")
      .def("buffers",
           [](py::object self) {
             Pool& p = self.cast<Pool&>();
             const py::ssize_t e = p.num_envs(), n = p.dims().num_agents;
             py::dict out;
             out["obs"] = view(self, p.obs_.data(), {e, n, p.dims().obs_dim});
             out["state"] = view(self, p.state_.data(), {e, p.dims().state_dim});
             out["rewards"] = view(self, p.rewards_.data(), {e, n});
             out["terminated"] = view(self, p.terminated_.data(), {e});
             out["truncated"] = view(self, p.truncated_.data(), {e});
             out["action_mask"] = view(self, p.action_mask_.data(), {e, n, p.dims().num_actions});
             out["final_obs"] = view(self, p.final_obs_.data(), {e, n, p.dims().obs_dim});
             out["final_state"] = view(self, p.final_state_.data(), {e, p.dims().state_dim});
             out["episode_return"] = view(self, p.episode_return_.data(), {e, n});
             out["episode_length"] = view(self, p.episode_length_.data(), {e});
             out["episode_info"] = view(self, p.episode_info_.data(), {e, p.info_width()});
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
      .def("snapshot", [](const Pool& p) { return py::bytes(p.snapshot()); },
           "Every byte of the env's state, for pickling.")
      .def("restore", [](Pool& p, const py::bytes& blob) { p.restore(std::string(blob)); }, py::arg("blob"));
}

std::string choice(int32_t value, const char* zero, const char* one) { return value == 0 ? zero : one; }

int32_t parse_choice(const char* option, const std::string& value, const char* zero, const char* one) {
  if (value == zero) return 0;
  if (value == one) return 1;
  throw py::value_error(std::string(option) + " must be '" + zero + "' or '" + one + "', got '" + value + "'");
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
  py::class_<StagHuntConfig>(m, "StagHuntConfig", "Options of stag_hunt (docs/envs.md).")
      .def(py::init<>())
      .def_readwrite("grid_size", &StagHuntConfig::grid_size)
      .def_readwrite("num_agents", &StagHuntConfig::num_agents)
      .def_readwrite("num_hares", &StagHuntConfig::num_hares)
      .def_readwrite("max_steps", &StagHuntConfig::max_steps)
      .def_readwrite("stag_move_prob", &StagHuntConfig::stag_move_prob)
      .def_readwrite("stag_min_hunters", &StagHuntConfig::stag_min_hunters)
      .def_readwrite("stag_reward", &StagHuntConfig::stag_reward)
      .def_readwrite("hare_reward", &StagHuntConfig::hare_reward)
      .def_readwrite("lone_stag_penalty", &StagHuntConfig::lone_stag_penalty)
      .def_property(
          "reward_mode", [](const StagHuntConfig& c) { return choice(c.reward_mode, "individual", "team"); },
          [](StagHuntConfig& c, const std::string& v) { c.reward_mode = parse_choice("reward_mode", v, "individual", "team"); })
      .def_readwrite("agent_id_in_obs", &StagHuntConfig::agent_id_in_obs)
      .def_property(
          "tie_break", [](const StagHuntConfig& c) { return choice(c.tie_break, "random", "index"); },
          [](StagHuntConfig& c, const std::string& v) { c.tie_break = parse_choice("tie_break", v, "random", "index"); });

  bind_env<hmasd::AliceAndBob>(m, "AliceAndBobEnv");
  bind_env<hmasd::StagHunt>(m, "StagHuntEnv");
}

}  // namespace hmasd_bindings
