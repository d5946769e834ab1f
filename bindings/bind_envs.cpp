// pybind11 glue for the batched envs: configs, the CPU pool, and zero-copy NumPy views of its buffers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "arrays.h"
#include "batch/step_outputs.h"
#include "bindings.h"
#include "cpu/batched_env.h"
#include "core/options.h"
#include "envs/env_list.h"
#include "envs/uav_details.h"

namespace py = pybind11;
using hmasd::Autoreset;
using hmasd::BatchedEnv;

namespace hmasd_bindings {
namespace {

Autoreset parse_autoreset(const std::string& mode) {
  if (mode == "same_step") return Autoreset::kSameStep;
  if (mode == "disabled") return Autoreset::kDisabled;
  if (mode == "next_step") return Autoreset::kNextStep;
  throw py::value_error("autoreset must be 'same_step', 'next_step' or 'disabled', got '" + mode + "'");
}

const char* autoreset_name(Autoreset mode) {
  switch (mode) {
    case Autoreset::kSameStep: return "same_step";
    case Autoreset::kDisabled: return "disabled";
    case Autoreset::kNextStep: return "next_step";
  }
  return "?";
}

// A bool[num_envs] C-contiguous array, or a TypeError/ValueError naming what it is instead (the Python face has
// already turned indices and lists into such an array).
const bool* env_flags(const py::array& flags, py::ssize_t num_envs, const char* name) {
  if (flags.dtype().kind() != 'b' || flags.itemsize() != 1)
    throw py::type_error(std::string(name) + " must be a bool array, got dtype " +
                         std::string(py::str(flags.dtype())));
  if (flags.ndim() != 1 || flags.shape(0) != num_envs)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(num_envs) + ",), got " +
                          shape_text(std::vector<py::ssize_t>(flags.shape(), flags.shape() + flags.ndim())));
  if (!(flags.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  return static_cast<const bool*>(flags.data());
}

hmasd::MaskKind parse_mask_kind(const std::string& dtype) {
  if (dtype == "bool") return hmasd::MaskKind::kBool;
  if (dtype == "int8") return hmasd::MaskKind::kInt8;
  if (dtype == "float32") return hmasd::MaskKind::kFloat32;
  throw py::value_error("mask must be '', 'bool', 'int8' or 'float32', got '" + dtype + "'");
}

// Fresh arrays of the last step's outputs in one call (batch/step_outputs.h): (obs, rewards, terminated, truncated,
// done, action_mask, num_ended), None where not asked for. `rows` shapes them [E * N, ...], else [E, N, ...]; `flags`
// is "split" (terminated, truncated), "done" (their or), "all" or "none"; `mask` the mask's dtype, "" for none.
template <class Env>
py::tuple copy_outputs(BatchedEnv<Env>& pool, bool rows, bool with_obs, const std::string& flags,
                       const std::string& mask) {
  const bool split = flags == "split" || flags == "all", merged = flags == "done" || flags == "all";
  if (!split && !merged && flags != "none")
    throw py::value_error("flags must be 'split', 'done', 'all' or 'none', got '" + flags + "'");
  const hmasd::MaskKind mask_kind = mask.empty() ? hmasd::MaskKind::kBool : parse_mask_kind(mask);
  const auto guard = pool.exclusive_use("copy_outputs()");
  const auto& d = pool.dims();
  const py::ssize_t e = pool.num_envs(), n = d.num_agents;
  const auto shape = [&](std::vector<py::ssize_t> tail) {
    std::vector<py::ssize_t> out = rows ? std::vector<py::ssize_t>{e * n} : std::vector<py::ssize_t>{e, n};
    out.insert(out.end(), tail.begin(), tail.end());
    return out;
  };
  py::object obs = py::none(), terminated = py::none(), truncated = py::none(), done = py::none(),
             action_mask = py::none();
  py::array_t<float> rewards(shape({}));
  hmasd::StepOutputTargets out;
  out.rewards = rewards.mutable_data();
  const auto flag_array = [&](bool*& target) {
    py::array_t<bool> flags_out(shape({}));
    target = flags_out.mutable_data();
    return flags_out;
  };
  if (with_obs) {
    py::array_t<float> array(shape({d.obs_dim}));
    out.obs = array.mutable_data();
    obs = array;
  }
  if (split) {
    terminated = flag_array(out.terminated);
    truncated = flag_array(out.truncated);
  }
  if (merged) done = flag_array(out.done);
  if (!mask.empty()) {
    py::array array;
    switch (mask_kind) {
      case hmasd::MaskKind::kBool: array = py::array_t<bool>(shape({d.num_actions})); break;
      case hmasd::MaskKind::kInt8: array = py::array_t<int8_t>(shape({d.num_actions})); break;
      case hmasd::MaskKind::kFloat32: array = py::array_t<float>(shape({d.num_actions})); break;
    }
    out.action_mask = array.mutable_data();
    action_mask = array;
  }
  auto& b = pool.buffers();
  const hmasd::StepOutputSources in{b.obs.data(), b.rewards.data(), b.terminated.data(), b.truncated.data(),
                                    b.action_mask.data(), pool.num_envs(), d.num_agents, d.obs_dim, d.num_actions};
  const int32_t ended = hmasd::copy_step_outputs(in, out, mask_kind);
  return py::make_tuple(obs, rewards, terminated, truncated, done, action_mask, ended);
}

template <class Env>
py::class_<BatchedEnv<Env>> bind_env(py::module_& m, const char* class_name) {
  using Pool = BatchedEnv<Env>;
  using Config = typename Env::Config;
  return py::class_<Pool>(m, class_name)
      .def(py::init([](const Config& config, int32_t num_envs, uint64_t seed, int32_t num_threads,
                       const std::string& autoreset, int64_t first_env) {
             return new Pool(config, num_envs, seed, num_threads, parse_autoreset(autoreset), as_first_env(first_env));
           }),
           py::arg("config"), py::arg("num_envs"), py::arg("seed") = 0, py::arg("num_threads") = 1,
           py::arg("autoreset") = "same_step", py::arg("first_env") = 0)
      .def_property_readonly_static("name", [](const py::object&) { return Env::kName; })
      .def_property_readonly("config", [](const Pool& p) { return p.config(); })
      .def_property_readonly("num_envs", &Pool::num_envs)
      .def_property_readonly("num_threads", &Pool::num_threads)
      .def_property_readonly("threads_used", &Pool::threads_used,
                             "Threads that ran the last step or reset (1 when the batch is too small to fork).")
      .def_property_readonly("num_agents", [](const Pool& p) { return p.dims().num_agents; })
      .def_property_readonly("obs_dim", [](const Pool& p) { return p.dims().obs_dim; })
      .def_property_readonly("state_dim", [](const Pool& p) { return p.dims().state_dim; })
      .def_property_readonly("num_actions", [](const Pool& p) { return p.dims().num_actions; })
      .def_property_readonly("action_dim", [](const Pool&) { return Pool::kContinuous ? Env::kActionWidth : 0; },
                             "Components of a continuous action (0 for discrete envs).")
      .def_property_readonly("seed", &Pool::seed)
      .def_property_readonly("first_env", &Pool::first_env,
                             "Env copy e draws the random stream of env index first_env + e.")
      .def_property_readonly("has_reset", &Pool::has_reset)
      .def_property_readonly("autoreset",
                             [](const Pool& p) { return autoreset_name(p.autoreset()); })
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
            const auto guard = p.exclusive_use("reset()");
            py::gil_scoped_release release;
            p.reset(seed.has_value(), seed.value_or(0));
          },
          py::arg("seed") = py::none(), "Resets every env; with a seed, reseeds and restarts the episode count.")
      .def(
          "reset_envs",
          [](Pool& p, const py::array& chosen) {
            const auto guard = p.exclusive_use("reset_envs()");
            const bool* flags = env_flags(chosen, p.num_envs(), "reset mask");
            py::gil_scoped_release release;
            p.reset_envs(flags);
          },
          py::arg("chosen"), "Begins the next episode of the envs flagged in chosen (bool [num_envs]).")
      .def(
          "step",
          [](Pool& p, const py::object& actions) {
            const auto guard = p.exclusive_use("step()");
            const py::array arr = checked_actions<Env>(actions, p.num_envs(), p.dims().num_agents);
            with_actions<Env>(arr, [&](const auto* data) {
              py::gil_scoped_release release;
              p.step(data);
            });
          },
          py::arg("actions"),
          "Steps every env with actions [num_envs, num_agents] (int) or [num_envs, num_agents, action_dim] (float); "
          "validates all first.")
      .def("copy_outputs", &copy_outputs<Env>, py::arg("rows"), py::arg("obs"), py::arg("flags"), py::arg("mask"),
           "Fresh copies of the last step's outputs in one call: (obs, rewards, terminated, truncated, done, "
           "action_mask, num_ended); rows=True shapes them [E * N, ...] (an env copy's flags repeated per agent), "
           "else [E, N, ...]. flags: 'split', 'done', 'all' or 'none'; mask: '', 'bool', 'int8' or 'float32'.")
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
             const auto guard = p.exclusive_use("drain_episode_log()");
             const hmasd::EpisodeLog log = p.drain_log();
             py::dict out;
             out["episodes"] = log.episodes;
             out["length_sum"] = log.length_sum;
             out["return_sum"] = py::array_t<double>(log.return_sum.size(), log.return_sum.data());
             out["info_sum"] = py::array_t<double>(log.info_sum.size(), log.info_sum.data());
             return out;
           },
           "Sums over the episodes finished since the last call, then clears them.")
      .def("snapshot",
           [](Pool& p) {
             const auto guard = p.exclusive_use("snapshot()");
             return py::bytes(p.snapshot());
           },
           "Every byte of the env's state, for pickling.")
      .def(
          "restore",
          [](Pool& p, const py::object& blob) {
            const bool bytes_like = py::isinstance<py::bytes>(blob) || py::isinstance<py::bytearray>(blob) ||
                                    py::isinstance<py::memoryview>(blob);
            if (!bytes_like)
              throw py::type_error("restore() needs the bytes of a snapshot(), got " + type_name(blob));
            const std::string data = py::isinstance<py::bytes>(blob)
                                         ? blob.cast<std::string>()
                                         : py::module_::import("builtins").attr("bytes")(blob).cast<std::string>();
            const auto guard = p.exclusive_use("restore()");
            p.restore(data);
          },
          py::arg("blob"));
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
    {
      // checked here, at full precision: a float32 field would turn 1e39 into inf before Env::validate sees it
      const double number = py::float_(py::reinterpret_borrow<py::object>(value)).cast<double>();
      const std::string error = hmasd::option_range_error(spec, number);
      if (!error.empty()) throw py::value_error(std::string(env_name) + ": " + error);
      return number;
    }
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

// ---- uav_coverage's inspection hooks (csrc/envs/uav_details.h), converted to NumPy ----------------------------

template <class T>
py::array_t<T> copy_array(const std::vector<T>& values, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

py::array_t<bool> copy_bool_array(const std::vector<uint8_t>& values, std::vector<py::ssize_t> shape) {
  py::array_t<bool> out(shape);
  for (size_t k = 0; k < values.size(); ++k) out.mutable_data()[k] = values[k] != 0;
  return out;
}

template <class Env>
py::dict uav_details(const BatchedEnv<Env>& pool, int32_t env_index) {
  const auto guard = const_cast<BatchedEnv<Env>&>(pool).exclusive_use("details()");
  hmasd::UavDetails d;
  {
    py::gil_scoped_release release;
    d = hmasd::uav_details(pool, env_index);
  }
  const py::ssize_t nu = d.num_uavs, n = d.num_users, ng = d.num_gbs;
  const auto served_count = copy_array(d.served_count, {nu});
  const auto role = copy_array(d.role, {nu});
  py::dict metrics;
  for (int32_t k = 0; k < hmasd::kNumUavMetrics; ++k) metrics[Env::kMetricNames[k]] = d.metrics[k];
  metrics["served_users"] = served_count;
  metrics["role"] = role;
  py::dict out;
  out["uav_pos"] = copy_array(d.uav_pos, {nu, 3});
  out["user_pos"] = copy_array(d.user_pos, {n, 2});
  out["gbs_pos"] = copy_array(d.gbs_pos, {ng, 3});
  out["sinr_db"] = copy_array(d.sinr_db, {nu, n});
  out["serving"] = copy_array(d.serving, {n});
  out["served_count"] = served_count;
  out["unserved_in_range"] = copy_array(d.unserved_in_range, {nu});
  out["hops"] = copy_array(d.hops, {nu});
  out["next_hop"] = copy_array(d.next_hop, {nu});
  out["role"] = role;
  out["uav_links"] = copy_bool_array(d.uav_links, {nu, nu});
  out["gbs_links"] = copy_bool_array(d.gbs_links, {nu, ng});
  out["metrics"] = metrics;
  out["t"] = d.t;
  return out;
}

template <class Env>
void uav_set_positions(BatchedEnv<Env>& pool, int32_t env_index, const py::object& uav_pos,
                       const py::object& user_pos) {
  const auto guard = pool.exclusive_use("set_positions()");
  const auto& c = pool.config();
  auto as_double = [](const py::object& obj, const char* name, std::vector<py::ssize_t> shape) {
    return converted<double>(checked_array(obj, name, 'F', shape), name);
  };
  const auto uav = as_double(uav_pos, "uav_pos", {c.num_uavs, 3});
  py::array_t<double> users;
  if (!user_pos.is_none()) users = as_double(user_pos, "user_pos", {c.num_users, 2});
  hmasd::uav_set_positions(pool, env_index, uav.data(), user_pos.is_none() ? nullptr : users.data());
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
