// The module entry point: build information and the RNG, plus the env bindings from bind_envs.cpp.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <pybind11/numpy.h>

#include "bindings.h"
#include "core/errors.h"
#include "core/philox.h"
#include "cpu/parallel_for.h"
#include "dlpack.h"
#include "envs/env_list.h"

namespace py = pybind11;

#if !defined(HMASD_WITH_CUDA)
namespace hmasd_bindings {
int cuda_device_count() { return 0; }
void synchronize_device(int32_t) {}
}  // namespace hmasd_bindings
#endif

namespace hmasd_bindings {
namespace {

// DLPack views of host memory: the same export and import paths as the CUDA buffers, checked on every build.
void bind_dlpack(py::module_& m) {
  bind_dlpack_buffer(m, [](int32_t device) { synchronize_device(device); });
  m.def(
      "dlpack_view",
      [](const py::array& array) {
        if (!(array.flags() & py::array::c_style)) throw py::value_error("dlpack_view needs a C-contiguous array");
        const py::dtype dt = array.dtype();
        const char kind = dt.kind();
        const uint8_t code = kind == 'f' ? kDLFloat : kind == 'i' ? kDLInt : kind == 'u' ? kDLUInt : kDLBool;
        if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
          throw py::type_error("dlpack_view supports bool, int, uint and float arrays");
        std::vector<int64_t> shape(array.shape(), array.shape() + array.ndim());
        return DLPackBuffer{array, const_cast<void*>(array.data()),
                            DLDataType{code, static_cast<uint8_t>(dt.itemsize() * 8), 1}, shape, {kDLCPU, 0}};
      },
      py::arg("array"), "A host array exported through hmasd's DLPack path (no copy).");
  m.def(
      "dlpack_describe",
      [](const py::object& obj) {
        ImportedTensor t(obj, "tensor", py::none());
        py::dict out;
        out["data_ptr"] = reinterpret_cast<uintptr_t>(t.data());
        out["shape"] = py::tuple(py::cast(t.shape()));
        out["dtype"] = t.dtype_text();
        out["device"] = py::make_tuple(t.device().device_type, t.device().device_id);
        return out;
      },
      py::arg("tensor"), "How hmasd reads another library's tensor through DLPack (pointer, shape, dtype, device).");
}

}  // namespace
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

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const hmasd::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });
  m.def("max_threads", &hmasd::max_threads,
        "The most CPU threads a batch may use: the CPUs this process may run on, at least 8.");
  m.def("usable_cpus", &hmasd::usable_cpus, "The CPUs this process may run on (its affinity mask).");

  hmasd_bindings::bind_envs(m);
  hmasd_bindings::bind_rollout(m);
  hmasd_bindings::bind_dlpack(m);
#if defined(HMASD_WITH_CUDA)
  hmasd_bindings::bind_cuda(m);
#endif
}
