// pybind11 glue for the rollout engine: the step protocol, counters, and zero-copy views of every buffer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "arrays.h"
#include "bindings.h"
#include "cpu/rollout_engine.h"
#include "envs/alice_and_bob.h"
#include "envs/stag_hunt.h"
#include "envs/uav_coverage.h"

namespace py = pybind11;
using hmasd::BatchedEnv;
using hmasd::Clock;
using hmasd::RolloutEngine;

namespace hmasd_bindings {
namespace {

// A no-argument member of the engine, called under its env's one-caller-at-a-time guard.
template <class Engine>
auto guarded(const char* what, void (Engine::*method)()) {
  return [what, method](Engine& g) {
    const auto guard = g.exclusive_use(what);
    (g.*method)();
  };
}

template <class Env>
void bind_engine(py::module_& m, const char* class_name) {
  using Engine = RolloutEngine<Env>;
  using Pool = BatchedEnv<Env>;
  py::class_<Engine> engine(m, class_name);
  engine.def(py::init([](Pool& env, int32_t horizon, int32_t skill_interval, int32_t num_team_skills,
                       int32_t num_indiv_skills, const std::string& clock, int64_t ring_capacity) {
             Clock parsed;
             if (clock == "episode")
               parsed = Clock::kEpisode;
             else if (clock == "global")
               parsed = Clock::kGlobal;
             else
               throw py::value_error("clock must be 'episode' or 'global', got '" + clock + "'");
             const auto guard = env.exclusive_use("RolloutEngine()");
             return new Engine(env, horizon, skill_interval, num_team_skills, num_indiv_skills, parsed, ring_capacity);
           }),
           py::arg("env"), py::arg("horizon"), py::arg("skill_interval"), py::arg("num_team_skills"),
           py::arg("num_indiv_skills"), py::arg("clock") = "episode", py::arg("ring_capacity") = 0,
           py::keep_alive<1, 2>())
      .def_property_readonly("num_envs", &Engine::num_envs)
      .def_property_readonly("num_agents", &Engine::num_agents)
      .def_property_readonly("horizon", &Engine::horizon)
      .def_property_readonly("skill_interval", &Engine::skill_interval)
      .def_property_readonly("num_team_skills", &Engine::num_team_skills)
      .def_property_readonly("num_indiv_skills", &Engine::num_indiv_skills)
      .def_property_readonly("ring_capacity", &Engine::capacity)
      .def_property_readonly("slots_per_env", &Engine::slots_per_env)
      .def_property_readonly("clock", [](const Engine& g) { return g.clock() == Clock::kEpisode ? "episode" : "global"; })
      .def_property_readonly("steps_in_batch", &Engine::steps_in_batch)
      .def_property_readonly("ready", &Engine::ready)
      .def_property_readonly("collecting", &Engine::collecting)
      .def_property_readonly("policy_version", &Engine::policy_version)
      .def_property_readonly("samples_collected", &Engine::samples_collected)
      .def_property_readonly("transitions_emitted", &Engine::transitions_emitted)
      .def_property_readonly("transitions_in_batch", &Engine::transitions_in_batch)
      .def_property_readonly("forced_closed", &Engine::forced_closed)
      .def_property_readonly("ring_overflows", &Engine::ring_overflows)
      .def(
          "decide",
          [](Engine& g, const py::object& env_ids, const py::object& team, const py::object& indiv,
             const py::object& logp, const py::object& values) {
            const auto guard = g.exclusive_use("decide()");
            const py::array ids_in = as_numpy(env_ids, "env_ids");
            if (ids_in.ndim() != 1)
              throw py::value_error("env_ids must be one-dimensional, got shape " +
                                    shape_text({ids_in.shape(), ids_in.shape() + ids_in.ndim()}));
            const py::ssize_t d = ids_in.shape(0);
            const py::ssize_t n = g.num_agents();
            const py::array ids = as_int32(checked_array(ids_in, "env_ids", 'i', {d}), "env_ids");
            const py::array z_team = as_int32(checked_array(team, "team_skill", 'i', {d}), "team_skill");
            const py::array z_indiv = as_int32(checked_array(indiv, "indiv_skill", 'i', {d, n}), "indiv_skill");
            const py::array lp = checked_array(logp, "logp", 'f', {d, n + 1});
            const py::array v = checked_array(values, "values", 'f', {d, n + 1});
            g.decide(static_cast<const int32_t*>(ids.data()), static_cast<int32_t>(d),
                     static_cast<const int32_t*>(z_team.data()), static_cast<const int32_t*>(z_indiv.data()),
                     static_cast<const float*>(lp.data()), static_cast<const float*>(v.data()));
          },
          py::arg("env_ids"), py::arg("team_skill"), py::arg("indiv_skill"), py::arg("logp"), py::arg("values"))
      .def(
          "step",
          [](Engine& g, const py::object& actions, const py::object& logp, const py::object& values) {
            const auto guard = g.exclusive_use("step()");
            const py::ssize_t e = g.num_envs(), n = g.num_agents();
            // int32 or int64 as given: the engine range-checks either type before anything moves
            const py::array a = checked_actions<Env>(actions, e, n);
            const py::array lp = checked_array(logp, "logp", 'f', {e, n});
            const py::array v = checked_array(values, "values", 'f', {e, n});
            const auto* lpp = static_cast<const float*>(lp.data());
            const auto* vp = static_cast<const float*>(v.data());
            with_actions<Env>(a, [&](const auto* ap) {
              py::gil_scoped_release release;
              g.step(ap, lpp, vp);
            });
          },
          py::arg("actions"), py::arg("logp"), py::arg("values"))
      .def("resume", guarded<Engine>("resume()", &Engine::resume))
      .def("restore_counters",
           [](Engine& g, int32_t version, int64_t samples, int64_t emitted, int64_t forced_closed) {
             const auto guard = g.exclusive_use("restore_counters()");
             g.restore_counters(version, samples, emitted, forced_closed);
           },
           py::arg("policy_version"), py::arg("samples"), py::arg("emitted"), py::arg("forced_closed"))
      .def("disable_collection", guarded<Engine>("disable_collection()", &Engine::disable_collection))
      .def("enable_collection", guarded<Engine>("enable_collection()", &Engine::enable_collection))
      .def("buffers", [](py::object self) {
        Engine& g = self.cast<Engine&>();
        auto& b = g.buffers();
        const py::ssize_t t = g.horizon(), e = g.num_envs(), n = g.num_agents(), c = g.capacity();
        const py::ssize_t o = b.ll_obs.size() / (t * e * n), s = b.ll_state.size() / (t * e);
        const py::ssize_t a = b.ll_mask.size() / (t * e * n);
        py::dict low, windows, high;
        low["obs"] = view(self, b.ll_obs.data(), {t, e, n, o});
        low["state"] = view(self, b.ll_state.data(), {t, e, s});
        low["action_mask"] = view(self, b.ll_mask.data(), {t, e, n, a});
        if (Pool::kContinuous)
          low["actions"] = view(self, b.ll_action.data(), {t, e, n, Engine::kActionWidth});
        else
          low["actions"] = view(self, b.ll_action.data(), {t, e, n});
        low["logp"] = view(self, b.ll_logp.data(), {t, e, n});
        low["values"] = view(self, b.ll_value.data(), {t, e, n});
        low["rewards"] = view(self, b.ll_reward.data(), {t, e, n});
        low["terminated"] = view(self, b.ll_terminated.data(), {t, e});
        low["truncated"] = view(self, b.ll_truncated.data(), {t, e});
        low["final_obs"] = view(self, b.ll_final_obs.data(), {t, e, n, o});
        low["final_state"] = view(self, b.ll_final_state.data(), {t, e, s});
        low["team_skill"] = view(self, b.ll_team.data(), {t, e});
        low["indiv_skill"] = view(self, b.ll_indiv.data(), {t, e, n});
        low["policy_version"] = view(self, b.ll_version.data(), {t, e});
        windows["start"] = view(self, b.win_start.data(), {e});
        windows["length"] = view(self, b.win_length.data(), {e});
        windows["team_skill"] = view(self, b.win_team.data(), {e});
        windows["indiv_skill"] = view(self, b.win_indiv.data(), {e, n});
        windows["logp"] = view(self, b.win_logp.data(), {e, n + 1});
        windows["values"] = view(self, b.win_value.data(), {e, n + 1});
        windows["reward_sum"] = view(self, b.win_reward.data(), {e, n});
        windows["needs_decision"] = view(self, b.needs_decision.data(), {e});
        windows["bootstrap_obs"] = view(self, b.boot_obs.data(), {e, n, o});
        windows["bootstrap_state"] = view(self, b.boot_state.data(), {e, s});
        high["count"] = view(self, b.hl_count.data(), {e});
        high["published"] = view(self, b.hl_published.data(), {c});
        high["env"] = view(self, b.hl_env.data(), {c});
        high["start"] = view(self, b.hl_start.data(), {c});
        high["length"] = view(self, b.hl_length.data(), {c});
        high["team_skill"] = view(self, b.hl_team.data(), {c});
        high["indiv_skill"] = view(self, b.hl_indiv.data(), {c, n});
        high["logp"] = view(self, b.hl_logp.data(), {c, n + 1});
        high["values"] = view(self, b.hl_value.data(), {c, n + 1});
        high["reward_sum"] = view(self, b.hl_reward.data(), {c, n});
        high["terminated"] = view(self, b.hl_terminated.data(), {c});
        high["truncated"] = view(self, b.hl_truncated.data(), {c});
        high["at_barrier"] = view(self, b.hl_at_barrier.data(), {c});
        high["policy_version"] = view(self, b.hl_version.data(), {c});
        py::dict out;
        out["low"] = low;
        out["windows"] = windows;
        out["high"] = high;
        return out;
      });
  // The env class names its engine, so Python finds the engine of any native env without a table of names.
  py::type::of<Pool>().attr("Rollout") = engine;
}

}  // namespace

void bind_rollout(py::module_& m) {
  py::register_exception<hmasd::RingOverflow>(m, "RingOverflowError", PyExc_OverflowError);
  bind_engine<hmasd::AliceAndBob>(m, "AliceAndBobRollout");
  bind_engine<hmasd::StagHunt>(m, "StagHuntRollout");
  bind_engine<hmasd::UavCoverage>(m, "UavCoverageRollout");
  bind_engine<hmasd::UavCoverageDiscrete>(m, "UavCoverageDiscreteRollout");
}

}  // namespace hmasd_bindings
