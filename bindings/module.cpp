// The module entry point: build information and the RNG, plus the env bindings from bind_envs.cpp.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "core/philox.h"
#include "envs/env_list.h"

namespace py = pybind11;

#if defined(HMASD_WITH_CUDA)
extern "C" int hmasd_cuda_device_count();
#endif

namespace hmasd_bindings {
int cuda_device_count() {
#if defined(HMASD_WITH_CUDA)
  return hmasd_cuda_device_count();
#else
  return 0;
#endif
}
}  // namespace hmasd_bindings

#ifndef HMASD_VERSION
#define HMASD_VERSION "unknown"
#endif

PYBIND11_MODULE(_native, m) {
  m.doc() = "hmasd native core: batched environments (CPU backend) and build information";

  m.def(
      "build_info",
      []() {
        py::dict info;
        info["version"] = HMASD_VERSION;
#if defined(HMASD_WITH_CUDA)
        info["cuda"] = true;
#else
        info["cuda"] = false;
#endif
#if defined(HMASD_WITH_OPENMP)
        info["openmp"] = true;
#else
        info["openmp"] = false;
#endif
        info["cuda_devices"] = hmasd_bindings::cuda_device_count();
#if defined(__VERSION__)
        info["compiler"] = __VERSION__;
#endif
        info["envs"] = py::tuple(py::cast(hmasd::NativeEnvs::names()));
        return info;
      },
      "What this build of the native module contains: version, CUDA and OpenMP support, visible CUDA devices, "
      "compiler and environments.");

  m.def(
      "philox4x32_10",
      [](std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
        const hmasd::Philox4x32 out = hmasd::philox4x32_10(hmasd::Philox4x32{{counter[0], counter[1], counter[2],
                                                                              counter[3]}},
                                                           key[0], key[1]);
        return py::make_tuple(out.v[0], out.v[1], out.v[2], out.v[3]);
      },
      py::arg("counter"), py::arg("key"), "Philox4x32-10 block (Random123) of a 4-word counter and a 2-word key.");

  m.def(
      "env_rng_word",
      [](uint64_t seed, uint32_t env_index, uint32_t episode, uint32_t t, uint32_t purpose, uint32_t index) {
        const hmasd::EnvRng rng{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), env_index, episode};
        return rng.word(t, purpose, index);
      },
      py::arg("seed"), py::arg("env_index"), py::arg("episode"), py::arg("t"), py::arg("purpose"), py::arg("index"),
      "One word of an env copy's random stream, as the envs draw it (docs/envs.md).");

  hmasd_bindings::bind_envs(m);
  hmasd_bindings::bind_rollout(m);
}
