// Native driver: steps a batch of one env with uniform random actions and reports agent-steps per second.
// Profiles the env code without Python in the way: `hmasd_env_driver stag_hunt 4096 200 1`.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/philox.h"
#include "cpu/batched_env.h"
#include "envs/alice_and_bob.h"
#include "envs/stag_hunt.h"

namespace {

template <class Env>
double run(int32_t num_envs, int32_t steps, int32_t threads) {
  hmasd::BatchedEnv<Env> env(typename Env::Config{}, num_envs, 0, threads, hmasd::Autoreset::kSameStep);
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

}  // namespace

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "stag_hunt";
  const int32_t num_envs = argc > 2 ? std::atoi(argv[2]) : 4096;
  const int32_t steps = argc > 3 ? std::atoi(argv[3]) : 200;
  const int32_t threads = argc > 4 ? std::atoi(argv[4]) : 1;
  double rate = 0.0;
  if (name == "alice_and_bob") {
    rate = run<hmasd::AliceAndBob>(num_envs, steps, threads);
  } else if (name == "stag_hunt") {
    rate = run<hmasd::StagHunt>(num_envs, steps, threads);
  } else {
    std::fprintf(stderr, "unknown env '%s' (alice_and_bob, stag_hunt)\n", name.c_str());
    return 2;
  }
  std::printf("%s E=%d threads=%d: %.2f M agent-steps/s\n", name.c_str(), num_envs, threads, rate / 1e6);
  return 0;
}
