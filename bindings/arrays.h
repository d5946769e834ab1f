// NumPy argument checks and zero-copy views shared by the binding translation units.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace hmasd_bindings {

namespace py = pybind11;

inline std::string shape_text(const std::vector<py::ssize_t>& shape) {
  std::string out = "(";
  for (size_t d = 0; d < shape.size(); ++d) out += (d ? ", " : "") + std::to_string(shape[d]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

// `obj` as a C-contiguous array of exactly `shape`: kind 'i' accepts int32 and int64 (kept as given), 'f' float32,
// 'F' float32 or float64 (kept as given).
// `dims` names the expected dimensions in the error message, e.g. "(num_envs, num_agents)".
inline py::array checked_array(const py::object& obj, const char* name, char kind,
                               const std::vector<py::ssize_t>& shape, const char* dims = nullptr) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array, got " +
                         std::string(py::str(obj.attr("__class__").attr("__name__"))));
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  const py::dtype dtype = arr.dtype();
  const bool wide_ok = kind == 'i' || kind == 'F';
  const bool ok = dtype.kind() == (kind == 'i' ? 'i' : 'f') &&
                  (dtype.itemsize() == 4 || (wide_ok && dtype.itemsize() == 8));
  const char* expected = kind == 'i' ? "an int32 or int64" : (kind == 'F' ? "a float32 or float64" : "a float32");
  if (!ok)
    throw py::type_error(std::string(name) + " must be " + expected + " array, got dtype " +
                         std::string(py::str(dtype)));
  const std::vector<py::ssize_t> got(arr.shape(), arr.shape() + arr.ndim());
  if (got != shape)
    throw py::value_error(std::string(name) + " must have shape " + (dims ? std::string(dims) + " = " : "") +
                          shape_text(shape) + ", got " + shape_text(got));
  if (!(arr.flags() & py::array::c_style)) arr = py::array::ensure(arr, py::array::c_style);
  return arr;
}

// An int array from checked_array as int32. int64 values outside int32 are rejected (naming the first), never
// wrapped into range.
inline py::array as_int32(const py::array& arr, const char* name) {
  if (arr.dtype().itemsize() == 4) return arr;
  const auto* values = static_cast<const int64_t*>(arr.data());
  for (py::ssize_t k = 0; k < arr.size(); ++k)
    if (values[k] < INT32_MIN || values[k] > INT32_MAX)
      throw py::value_error(std::string(name) + " holds " + std::to_string(values[k]) + " at flat index " +
                            std::to_string(k) + ", outside int32");
  return py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(arr);
}

// The actions of one step as Env takes them: int32/int64 [E, N] (discrete envs) or float [E, N, width]
// (continuous envs; float64 is rounded to float32, and a value beyond float32 becomes inf, rejected as non-finite).
template <class Env>
py::array checked_actions(const py::object& obj, py::ssize_t num_envs, py::ssize_t num_agents) {
  if constexpr (std::is_floating_point<typename Env::Action>::value) {
    const py::array arr = checked_array(obj, "actions", 'F', {num_envs, num_agents, Env::kActionWidth},
                                        "(num_envs, num_agents, action_dim)");
    if (arr.dtype().itemsize() == 4) return arr;
    return py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(arr);
  } else {
    return checked_array(obj, "actions", 'i', {num_envs, num_agents}, "(num_envs, num_agents)");
  }
}

// Calls fn with a typed pointer to actions from checked_actions (int32, int64 or float).
template <class Env, class Fn>
void with_actions(const py::array& actions, Fn&& fn) {
  const void* data = actions.data();
  if constexpr (std::is_floating_point<typename Env::Action>::value)
    fn(static_cast<const float*>(data));
  else if (actions.dtype().itemsize() == 8)
    fn(static_cast<const int64_t*>(data));
  else
    fn(static_cast<const int32_t*>(data));
}

// A NumPy array over native memory; `owner` keeps the memory alive as long as the array is.
template <class T>
py::array view(const py::object& owner, T* data, std::vector<py::ssize_t> shape) {
  return py::array(py::dtype::of<T>(), std::move(shape), data, owner);
}

}  // namespace hmasd_bindings
