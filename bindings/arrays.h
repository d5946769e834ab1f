// NumPy argument checks and zero-copy views shared by the binding translation units.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hmasd_bindings {

namespace py = pybind11;

inline std::string shape_text(const std::vector<py::ssize_t>& shape) {
  std::string out = "(";
  for (size_t d = 0; d < shape.size(); ++d) out += (d ? ", " : "") + std::to_string(shape[d]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

// `obj` as a C-contiguous array of exactly `shape`: kind 'i' accepts int32 and int64 (kept as given), 'f' float32.
// `dims` names the expected dimensions in the error message, e.g. "(num_envs, num_agents)".
inline py::array checked_array(const py::object& obj, const char* name, char kind,
                               const std::vector<py::ssize_t>& shape, const char* dims = nullptr) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array, got " +
                         std::string(py::str(obj.attr("__class__").attr("__name__"))));
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  const py::dtype dtype = arr.dtype();
  const bool ok = kind == 'i' ? (dtype.kind() == 'i' && (dtype.itemsize() == 4 || dtype.itemsize() == 8))
                              : (dtype.kind() == 'f' && dtype.itemsize() == 4);
  if (!ok)
    throw py::type_error(std::string(name) + " must be " + (kind == 'i' ? "an int32 or int64" : "a float32") +
                         " array, got dtype " + std::string(py::str(dtype)));
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

// A NumPy array over native memory; `owner` keeps the memory alive as long as the array is.
template <class T>
py::array view(const py::object& owner, T* data, std::vector<py::ssize_t> shape) {
  return py::array(py::dtype::of<T>(), std::move(shape), data, owner);
}

}  // namespace hmasd_bindings
