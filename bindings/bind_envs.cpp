// pybind11 glue for the batched envs: configs, the CPU pool, and zero-copy NumPy views of its buffers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "arrays.h"
#include "bindings.h"
#include "cpu/batched_env.h"
#include "core/options.h"
#include "envs/env_list.h"

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

// ---- options: one generic binding of a Config from its env's option table (core/options.h) ----------------------

template <class Config>
py::object option_to_python(const hmasd::OptionSpec<Config>& spec, double value) {
  switch (spec.kind) {
    case hmasd::OptionKind::kInt: return py::int_(static_cast<int64_t>(value));
    case hmasd::OptionKind::kFloat:
    case hmasd::OptionKind::kDouble: return py::float_(value);
    case hmasd::OptionKind::kBool: return py::bool_(value != 0.0);
    case hmasd::OptionKind::kChoice: return py::str(spec.choices[static_cast<int32_t>(value)]);
  }
  return py::none();
}

// The value Python gave, as the double the table stores. Wrong types raise TypeError and unknown choice names or
// ints beyond int32 raise ValueError, each naming the env and the option; the table's bounds are Env::validate's.
template <class Config>
double option_from_python(const hmasd::OptionSpec<Config>& spec, const py::handle& value, const char* env_name) {
  const std::string option = std::string(env_name) + ": " + spec.name;
  const auto got = [&] { return ", got " + std::string(py::repr(value)); };
  PyObject* obj = value.ptr();
  // bool is an int subclass in Python: refuse it for numbers, and numbers for bools, so that a typo fails loudly.
  const bool is_bool = PyBool_Check(obj) || py::isinstance(value, py::module_::import("numpy").attr("bool_"));
  switch (spec.kind) {
    case hmasd::OptionKind::kBool:
      if (!is_bool) throw py::type_error(option + " must be a bool" + got());
      return value.cast<bool>() ? 1.0 : 0.0;
    case hmasd::OptionKind::kInt: {
      if (is_bool || !PyIndex_Check(obj)) throw py::type_error(option + " must be an int" + got());
      const py::int_ index = py::reinterpret_steal<py::int_>(PyNumber_Index(obj));
      if (!index) throw py::error_already_set();
      int overflow = 0;
      const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
      if (overflow || v < INT32_MIN || v > INT32_MAX) throw py::value_error(option + " must fit in int32" + got());
      return static_cast<double>(v);
    }
    case hmasd::OptionKind::kFloat:
    case hmasd::OptionKind::kDouble:
      if (is_bool || py::isinstance<py::str>(value) || !(PyFloat_Check(obj) || PyIndex_Check(obj) || py::hasattr(value, "__float__")))
        throw py::type_error(option + " must be a number" + got());
      return py::float_(py::reinterpret_borrow<py::object>(value)).cast<double>();
    case hmasd::OptionKind::kChoice: {
      if (!py::isinstance<py::str>(value)) throw py::type_error(option + " must be a str" + got());
      const std::string name = value.cast<std::string>();
      for (int32_t k = 0; k < spec.num_choices; ++k)
        if (name == spec.choices[k]) return static_cast<double>(k);
      throw py::value_error(option + " must be one of " + hmasd::choice_list(spec.choices, spec.num_choices) +
                            ", got '" + name + "'");
    }
  }
  return 0.0;
}

// The option table of Env as Python data: one dict per option, in table order; min/max are None where unbounded.
template <class Env>
py::list options_to_python() {
  py::list out;
  for (const auto& spec : Env::options()) {
    const bool number = spec.kind != hmasd::OptionKind::kBool && spec.kind != hmasd::OptionKind::kChoice;
    const auto bound = [&](bool bounded, double v) -> py::object {
      if (!number || !bounded) return py::none();
      return spec.kind == hmasd::OptionKind::kInt ? py::object(py::int_(static_cast<int64_t>(v))) : py::float_(v);
    };
    py::dict d;
    d["name"] = spec.name;
    d["type"] = hmasd::option_kind_name(spec.kind);
    d["default"] = option_to_python(spec, spec.default_value);
    d["min"] = bound(spec.bounded_below(), spec.min);
    d["max"] = bound(spec.bounded_above(), spec.max);
    d["min_exclusive"] = spec.min_exclusive;
    if (spec.kind == hmasd::OptionKind::kChoice) {
      py::list names;
      for (int32_t k = 0; k < spec.num_choices; ++k) names.append(spec.choices[k]);
      d["choices"] = py::tuple(names);
    } else {
      d["choices"] = py::none();
    }
    d["doc"] = spec.doc;
    out.append(d);
  }
  return out;
}

// Binds Env's Config as `class_name`: one property per table option (a choice reads and writes its name), and the
// table itself as the static property `options`.
template <class Env>
void bind_config(py::module_& m, const char* class_name) {
  using Config = typename Env::Config;
  const std::string doc = std::string("Options of ") + Env::kName + " (docs/envs.md).";
  py::class_<Config> cls(m, class_name, doc.c_str());
  cls.def(py::init<>());
  for (const auto& option : Env::options()) {
    const hmasd::OptionSpec<Config>* spec = &option;  // the table is a function-local static: it outlives the module
    cls.def_property(
        spec->name, [spec](const Config& c) { return option_to_python(*spec, spec->get(c)); },
        [spec](Config& c, const py::object& value) { spec->set(c, option_from_python(*spec, value, Env::kName)); },
        spec->doc);
  }
  cls.def_property_readonly_static("options", [](const py::object&) { return options_to_python<Env>(); },
                                   "The option table: name, type, default, min, max, min_exclusive, choices, doc.");
  cls.def("__repr__", [class_name](const Config& c) {
    std::string out = std::string(class_name) + "(";
    for (const auto& spec : Env::options())
      out += std::string(&spec == &Env::options().front() ? "" : ", ") + spec.name + "=" +
             std::string(py::repr(option_to_python(spec, spec.get(c))));
    return out + ")";
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
  bind_config<hmasd::AliceAndBob>(m, "AliceAndBobConfig");
  bind_config<hmasd::StagHunt>(m, "StagHuntConfig");
  bind_config<hmasd::UavCoverage>(m, "UavCoverageConfig");
  m.def(
      "env_options",
      [](const std::string& name) {
        py::object table = py::none();
        hmasd::NativeEnvs::for_each([&](auto* env) {
          using Env = std::remove_pointer_t<decltype(env)>;
          if (name == Env::kName) table = options_to_python<Env>();
        });
        if (table.is_none()) throw py::value_error("no native env named '" + name + "'");
        return table;
      },
      py::arg("name"), "The option table of a native env: a list of dicts (name, type, default, min, max, choices, doc).");

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
