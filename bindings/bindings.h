// Declarations shared by the binding translation units of hmasd._native (split by concern to keep builds fast).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>

namespace hmasd_bindings {

void bind_envs(pybind11::module_& m);
void bind_rollout(pybind11::module_& m);
void bind_cuda(pybind11::module_& m);  // only in CUDA builds
int cuda_device_count();               // 0 without a CUDA build or without a usable device
void synchronize_device(int32_t device);

}  // namespace hmasd_bindings
