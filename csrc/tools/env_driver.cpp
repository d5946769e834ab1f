// Native driver: steps a batch of one env with uniform random actions and reports agent-steps per second.
// Profiles the env code without Python in the way: `hmasd_env_driver stag_hunt 4096 200 1 [engine]`.
// `uav_coverage` runs the default config with discrete actions (the radio is the same as with continuous ones).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/philox.h"
#include "cpu/batched_env.h"
#include "cpu/rollout_engine.h"
#include "envs/alice_and_bob.h"
#include "envs/stag_hunt.h"
#include "envs/uav_coverage.h"

namespace {

template <class Env>
typename Env::Config default_config() {
  typename Env::Config config{};
  if constexpr (std::is_same_v<Env, hmasd::UavCoverageDiscrete>) config.action_type = 1;
  return config;
}

template <class Env>
double run(int32_t num_envs, int32_t steps, int32_t threads) {
  hmasd::BatchedEnv<Env> env(default_config<Env>(), num_envs, 0, threads, hmasd::Autoreset::kSameStep);
  env.reset(false, 0);
  const int32_t n = env.dims().num_agents;
  std::vector<int32_t> actions(static_cast<size_t>(num_envs) * n * 16);
  for (size_t k = 0; k < actions.size(); ++k)
    actions[k] = hmasd::uniform_int(hmasd::philox4x32_10({{uint32_t(k), 0, 0, 0}}, 7, 7).v[0], 5);
  const auto start = std::chrono::steady_clock::now();
  for (int32_t t = 0; t < steps; ++t) env.step(actions.data() + size_t(t % 16) * num_envs * n);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return double(steps) * num_envs * n / seconds;
}

// The same stepping through the rollout engine: batches of `horizon` steps, decisions every k (global clock).
template <class Env>
double run_engine(int32_t num_envs, int32_t steps, int32_t threads, int32_t horizon, int32_t k) {
  hmasd::BatchedEnv<Env> env(default_config<Env>(), num_envs, 0, threads, hmasd::Autoreset::kSameStep);
  env.reset(false, 0);
  hmasd::RolloutEngine<Env> engine(env, horizon, k, 2, 4, hmasd::Clock::kGlobal, 0);
  const int32_t n = env.dims().num_agents;
  std::vector<int32_t> actions(static_cast<size_t>(num_envs) * n * 16), ids(num_envs), team(num_envs, 0),
      indiv(size_t(num_envs) * n, 0);
  std::vector<float> logp(size_t(num_envs) * (n + 1), 0.0f);
  for (size_t k2 = 0; k2 < actions.size(); ++k2)
    actions[k2] = hmasd::uniform_int(hmasd::philox4x32_10({{uint32_t(k2), 0, 0, 0}}, 7, 7).v[0], 5);
  for (int32_t e = 0; e < num_envs; ++e) ids[e] = e;
  const auto start = std::chrono::steady_clock::now();
  for (int32_t t = 0; t < steps; ++t) {
    if (engine.ready()) engine.resume();
    if (engine.steps_in_batch() % k == 0)
      engine.decide(ids.data(), num_envs, team.data(), indiv.data(), logp.data(), logp.data());
    engine.step(actions.data() + size_t(t % 16) * num_envs * n, logp.data(), logp.data());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return double(steps) * num_envs * n / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "stag_hunt";
  const int32_t num_envs = argc > 2 ? std::atoi(argv[2]) : 4096;
  const int32_t steps = argc > 3 ? std::atoi(argv[3]) : 200;
  const int32_t threads = argc > 4 ? std::atoi(argv[4]) : 1;
  const bool engine = argc > 5 && std::strcmp(argv[5], "engine") == 0;
  double rate = 0.0;
  if (name == "alice_and_bob") {
    rate = engine ? run_engine<hmasd::AliceAndBob>(num_envs, steps, threads, 50, 10)
                  : run<hmasd::AliceAndBob>(num_envs, steps, threads);
  } else if (name == "stag_hunt") {
    rate = engine ? run_engine<hmasd::StagHunt>(num_envs, steps, threads, 50, 10)
                  : run<hmasd::StagHunt>(num_envs, steps, threads);
  } else if (name == "uav_coverage" && !engine) {
    rate = run<hmasd::UavCoverageDiscrete>(num_envs, steps, threads);
  } else {
    std::fprintf(stderr, "unknown env '%s' (alice_and_bob, stag_hunt, uav_coverage without engine)\n", name.c_str());
    return 2;
  }
  std::printf("%s%s E=%d threads=%d: %.2f M agent-steps/s\n", name.c_str(), engine ? " (engine)" : "", num_envs,
              threads, rate / 1e6);
  return 0;
}
