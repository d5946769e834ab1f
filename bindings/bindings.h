// Declarations shared by the binding translation units of hmasd._native (split by concern to keep builds fast).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace hmasd_bindings {

void bind_envs(pybind11::module_& m);
void bind_rollout(pybind11::module_& m);
void bind_cuda(pybind11::module_& m);  // only in CUDA builds
int cuda_device_count();               // 0 without a CUDA build or without a usable device
void synchronize_device(int32_t device);

// A first_env argument as the env index it is (a uint32): a ValueError names anything outside that range, which
// pybind11's own uint32 conversion would only call "incompatible arguments". The owners check first_env + num_envs.
inline uint32_t as_first_env(int64_t first_env) {
  if (first_env < 0 || first_env > int64_t(UINT32_MAX))
    throw pybind11::value_error("first_env must be in [0, 2**32 - 1], got " + std::to_string(first_env));
  return static_cast<uint32_t>(first_env);
}

}  // namespace hmasd_bindings
