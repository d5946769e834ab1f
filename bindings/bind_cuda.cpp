// pybind11 glue for the CUDA backend (built only with nvcc): device envs and engines, their buffers as DLPack
// exports, and device tensors taken through DLPack without a host copy.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "bindings.h"
#include "cuda/backend.h"
#include "dlpack.h"
#include "envs/alice_and_bob.h"
#include "envs/stag_hunt.h"
#include "envs/uav_coverage.h"

namespace py = pybind11;
using hmasd::DeviceEngine;
using hmasd::DeviceEnv;
using hmasd::DType;

namespace hmasd_bindings {
namespace {

DLDataType dl_dtype(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return {kDLFloat, 32, 1};
    case DType::kFloat64: return {kDLFloat, 64, 1};
    case DType::kInt32: return {kDLInt, 32, 1};
    case DType::kInt64: return {kDLInt, 64, 1};
    case DType::kUInt8: return {kDLUInt, 8, 1};
    case DType::kUInt32: return {kDLUInt, 32, 1};
    case DType::kBool: return {kDLBool, 8, 1};
  }
  return {kDLUInt, 8, 1};
}

py::dict export_buffers(const py::object& self, const hmasd::NamedTensors& tensors, int32_t device) {
  py::dict out;
  for (const auto& [name, t] : tensors)
    out[py::str(name)] = DLPackBuffer{self, t.data, dl_dtype(t.dtype), t.shape, {kDLCUDA, device}};
  return out;
}

// An action tensor as the env takes it, on the env's device; the dtype is checked by the native owner.
DType imported_dtype(const ImportedTensor& t, const char* name) {
  if (t.is(kDLFloat, 32)) return DType::kFloat32;
  if (t.is(kDLInt, 32)) return DType::kInt32;
  if (t.is(kDLInt, 64)) return DType::kInt64;
  throw py::type_error(std::string(name) + " must be int32, int64 or float32, got " + t.dtype_text());
}

const float* float_tensor(const ImportedTensor& t, const char* name, const std::vector<int64_t>& shape,
                          const char* dims) {
  t.expect_shape(shape, dims);
  if (!t.is(kDLFloat, 32)) throw py::type_error(std::string(name) + " must be float32, got " + t.dtype_text());
  return static_cast<const float*>(t.data());
}

const int32_t* int_tensor(const ImportedTensor& t, const char* name, const std::vector<int64_t>& shape,
                          const char* dims) {
  t.expect_shape(shape, dims);
  if (!t.is(kDLInt, 32)) throw py::type_error(std::string(name) + " must be int32, got " + t.dtype_text());
  return static_cast<const int32_t*>(t.data());
}

std::vector<int64_t> action_shape(const DeviceEnv& env) {
  std::vector<int64_t> shape{env.num_envs(), env.dims().num_agents};
  if (env.action_width() > 0) shape.push_back(env.action_width());
  return shape;
}

// The stream a consumer passes to __dlpack__: torch's legacy default stream is 1 in the array API, not 0.
py::object dlpack_stream(uintptr_t stream) { return py::int_(stream == 0 ? 1 : stream); }

template <class Env>
std::unique_ptr<DeviceEnv> make_env(const typename Env::Config& config, int32_t num_envs, uint64_t seed,
                                    int32_t device, const std::string& autoreset, int64_t first_env) {
  int32_t mode;
  if (autoreset == "same_step") mode = 0;
  else if (autoreset == "disabled") mode = 1;
  else if (autoreset == "next_step") mode = 2;
  else throw py::value_error("autoreset must be 'same_step', 'next_step' or 'disabled', got '" + autoreset + "'");
  return hmasd::make_device_env<Env>(config, num_envs, seed, as_first_env(first_env), device, mode);
}

}  // namespace

void bind_cuda(py::module_& m) {
  py::class_<DeviceEnv>(m, "DeviceEnv", "A batch of env copies in CUDA device memory (see hmasd.envs.make).")
      .def_property_readonly("device", &DeviceEnv::device)
      .def_property_readonly("num_envs", &DeviceEnv::num_envs)
      .def_property_readonly("num_agents", [](const DeviceEnv& e) { return e.dims().num_agents; })
      .def_property_readonly("obs_dim", [](const DeviceEnv& e) { return e.dims().obs_dim; })
      .def_property_readonly("state_dim", [](const DeviceEnv& e) { return e.dims().state_dim; })
      .def_property_readonly("num_actions", [](const DeviceEnv& e) { return e.dims().num_actions; })
      .def_property_readonly("action_dim", &DeviceEnv::action_width)
      .def_property_readonly("seed", &DeviceEnv::seed)
      .def_property_readonly("first_env", &DeviceEnv::first_env,
                             "Env copy e draws the random stream of env index first_env + e.")
      .def_property_readonly("has_reset", &DeviceEnv::has_reset)
      .def_property_readonly("info_fields",
                             [](const DeviceEnv& e) {
                               py::list fields;
                               for (const auto& f : e.info_fields()) fields.append(py::make_tuple(f.name, f.per_agent));
                               return fields;
                             })
      .def(
          "reset",
          [](DeviceEnv& e, std::optional<uint64_t> seed, uintptr_t stream) {
            e.reset(seed.has_value(), seed.value_or(0), stream);
          },
          py::arg("seed") = py::none(), py::arg("stream") = 0)
      .def(
          "reset_envs",
          [](DeviceEnv& e, const py::object& chosen, uintptr_t stream) {
            ImportedTensor flags(chosen, "reset mask", dlpack_stream(stream));
            flags.expect_device(kDLCUDA, e.device());
            flags.expect_shape({e.num_envs()}, "(num_envs,)");
            if (!flags.is(kDLBool, 8)) throw py::type_error("reset mask must be a bool tensor, got " + flags.dtype_text());
            e.reset_envs(static_cast<const bool*>(flags.data()), stream);
          },
          py::arg("chosen"), py::arg("stream") = 0)
      .def(
          "step",
          [](DeviceEnv& e, const py::object& actions, uintptr_t stream, bool check_now) {
            ImportedTensor a(actions, "actions", dlpack_stream(stream));
            a.expect_device(kDLCUDA, e.device());
            a.expect_shape(action_shape(e), e.action_width() ? "(num_envs, num_agents, action_dim)"
                                                             : "(num_envs, num_agents)");
            e.step(a.data(), imported_dtype(a, "actions"), stream, check_now);
          },
          py::arg("actions"), py::arg("stream") = 0, py::arg("check_now") = true)
      .def("check_errors", &DeviceEnv::check_errors, py::arg("stream") = 0)
      .def("buffers", [](py::object self) {
        DeviceEnv& e = self.cast<DeviceEnv&>();
        return export_buffers(self, e.buffers(), e.device());
      })
      .def(
          "drain_episode_log",
          [](DeviceEnv& e, uintptr_t stream) {
            const hmasd::EpisodeLog log = e.drain_log(stream);
            py::dict out;
            out["episodes"] = log.episodes;
            out["length_sum"] = log.length_sum;
            out["return_sum"] = py::cast(log.return_sum);
            out["info_sum"] = py::cast(log.info_sum);
            return out;
          },
          py::arg("stream") = 0)
      .def(
          "make_engine",
          [](DeviceEnv& e, int32_t horizon, int32_t skill_interval, int32_t num_team_skills, int32_t num_indiv_skills,
             const std::string& clock, int64_t ring_capacity) {
            if (clock != "episode" && clock != "global")
              throw py::value_error("clock must be 'episode' or 'global', got '" + clock + "'");
            return e.make_engine(horizon, skill_interval, num_team_skills, num_indiv_skills, clock == "global",
                                 ring_capacity);
          },
          py::arg("horizon"), py::arg("skill_interval"), py::arg("num_team_skills"), py::arg("num_indiv_skills"),
          py::arg("clock") = "episode", py::arg("ring_capacity") = 0, py::keep_alive<0, 1>());

  py::class_<DeviceEngine>(m, "DeviceEngine", "The rollout engine of a DeviceEnv, on its device.")
      .def_property_readonly("horizon", &DeviceEngine::horizon)
      .def_property_readonly("steps_in_batch", &DeviceEngine::steps_in_batch)
      .def_property_readonly("ready", &DeviceEngine::ready)
      .def_property_readonly("policy_version", &DeviceEngine::policy_version)
      .def_property_readonly("slots_per_env", &DeviceEngine::slots_per_env)
      .def_property_readonly("samples_collected", &DeviceEngine::samples_collected)
      .def("transitions_emitted", &DeviceEngine::transitions_emitted, py::arg("stream") = 0)
      .def("transitions_in_batch", &DeviceEngine::transitions_in_batch, py::arg("stream") = 0)
      .def("forced_closed", &DeviceEngine::forced_closed, py::arg("stream") = 0)
      .def("restore_counters", &DeviceEngine::restore_counters, py::arg("policy_version"), py::arg("samples"),
           py::arg("emitted"), py::arg("forced_closed"), py::arg("stream") = 0)
      .def(
          "decide",
          [](DeviceEngine& g, int32_t device, int32_t num_agents, const py::object& env_ids, const py::object& team,
             const py::object& indiv, const py::object& logp, const py::object& values, uintptr_t stream,
             bool check_now) {
            const py::object s = dlpack_stream(stream);
            ImportedTensor ids(env_ids, "env_ids", s), z(team, "team_skill", s), zi(indiv, "indiv_skill", s),
                lp(logp, "logp", s), v(values, "values", s);
            for (const ImportedTensor* t : {&ids, &z, &zi, &lp, &v}) t->expect_device(kDLCUDA, device);
            if (ids.shape().size() != 1) throw py::value_error("env_ids must be one-dimensional");
            const int64_t d = ids.shape()[0], n = num_agents;
            g.decide(int_tensor(ids, "env_ids", {d}, "(D,)"), static_cast<int32_t>(d),
                     int_tensor(z, "team_skill", {d}, "(D,)"), int_tensor(zi, "indiv_skill", {d, n}, "(D, num_agents)"),
                     float_tensor(lp, "logp", {d, n + 1}, "(D, num_agents + 1)"),
                     float_tensor(v, "values", {d, n + 1}, "(D, num_agents + 1)"), stream, check_now);
          },
          py::arg("device"), py::arg("num_agents"), py::arg("env_ids"), py::arg("team_skill"), py::arg("indiv_skill"),
          py::arg("logp"), py::arg("values"), py::arg("stream") = 0, py::arg("check_now") = true)
      .def(
          "decide_all",
          [](DeviceEngine& g, int32_t device, int32_t num_envs, int32_t num_agents, const py::object& team,
             const py::object& indiv, const py::object& logp, const py::object& values, uintptr_t stream,
             bool check_now) {
            const py::object s = dlpack_stream(stream);
            ImportedTensor z(team, "team_skill", s), zi(indiv, "indiv_skill", s), lp(logp, "logp", s),
                v(values, "values", s);
            for (const ImportedTensor* t : {&z, &zi, &lp, &v}) t->expect_device(kDLCUDA, device);
            const int64_t e = num_envs, n = num_agents;
            g.decide_all(int_tensor(z, "team_skill", {e}, "(num_envs,)"),
                         int_tensor(zi, "indiv_skill", {e, n}, "(num_envs, num_agents)"),
                         float_tensor(lp, "logp", {e, n + 1}, "(num_envs, num_agents + 1)"),
                         float_tensor(v, "values", {e, n + 1}, "(num_envs, num_agents + 1)"), stream, check_now);
          },
          py::arg("device"), py::arg("num_envs"), py::arg("num_agents"), py::arg("team_skill"), py::arg("indiv_skill"),
          py::arg("logp"), py::arg("values"), py::arg("stream") = 0, py::arg("check_now") = true)
      .def(
          "step",
          [](DeviceEngine& g, const DeviceEnv& env, const py::object& actions, const py::object& logp,
             const py::object& values, uintptr_t stream, bool check_now) {
            const py::object s = dlpack_stream(stream);
            ImportedTensor a(actions, "actions", s), lp(logp, "logp", s), v(values, "values", s);
            for (const ImportedTensor* t : {&a, &lp, &v}) t->expect_device(kDLCUDA, env.device());
            a.expect_shape(action_shape(env), env.action_width() ? "(num_envs, num_agents, action_dim)"
                                                                 : "(num_envs, num_agents)");
            const int64_t e = env.num_envs(), n = env.dims().num_agents;
            g.step(a.data(), imported_dtype(a, "actions"), float_tensor(lp, "logp", {e, n}, "(num_envs, num_agents)"),
                   float_tensor(v, "values", {e, n}, "(num_envs, num_agents)"), stream, check_now);
          },
          py::arg("env"), py::arg("actions"), py::arg("logp"), py::arg("values"), py::arg("stream") = 0,
          py::arg("check_now") = true)
      .def("resume", &DeviceEngine::resume, py::arg("stream") = 0)
      .def("check_errors", &DeviceEngine::check_errors, py::arg("stream") = 0)
      .def("buffers", [](py::object self, int32_t device) {
        DeviceEngine& g = self.cast<DeviceEngine&>();
        return export_buffers(self, g.buffers(), device);
      }, py::arg("device"));

  m.def("make_device_env", &make_env<hmasd::AliceAndBob>, py::arg("config"), py::arg("num_envs"), py::arg("seed"),
        py::arg("device"), py::arg("autoreset"), py::arg("first_env") = 0);
  m.def("make_device_env", &make_env<hmasd::StagHunt>, py::arg("config"), py::arg("num_envs"), py::arg("seed"),
        py::arg("device"), py::arg("autoreset"), py::arg("first_env") = 0);
  m.def(
      "make_device_env",
      [](const hmasd::UavCoverageConfig& config, int32_t num_envs, uint64_t seed, int32_t device,
         const std::string& autoreset, int64_t first_env) {
        return config.action_type == 0
                   ? make_env<hmasd::UavCoverage>(config, num_envs, seed, device, autoreset, first_env)
                   : make_env<hmasd::UavCoverageDiscrete>(config, num_envs, seed, device, autoreset, first_env);
      },
      py::arg("config"), py::arg("num_envs"), py::arg("seed"), py::arg("device"), py::arg("autoreset"),
      py::arg("first_env") = 0);
}

int cuda_device_count() { return hmasd::cuda_device_count(); }
void synchronize_device(int32_t device) { hmasd::synchronize_device(device); }

}  // namespace hmasd_bindings
