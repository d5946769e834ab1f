// NumPy argument intake and zero-copy views shared by the binding translation units.
//
// Intake rule: an argument may arrive as any array-like of an allowed dtype, in any byte order, alignment and
// strides; native code only ever reads a native-order, aligned, C-contiguous array of the canonical dtype (zero
// copy when the input already is one). Conversions that would change a value are refused, by name.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <limits>
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

inline std::string type_name(const py::handle& obj) {
  return std::string(py::str(obj.attr("__class__").attr("__name__")));
}

// `obj` as a NumPy array: arrays as they are, other array-likes (lists, tuples, CPU tensors) through
// numpy.asarray, with NumPy's complaint (a ragged list, say) re-raised under the argument's name.
inline py::array as_numpy(const py::object& obj, const std::string& name) {
  if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);
  if (obj.is_none()) throw py::type_error(name + " must be an array, got None");
  py::object arr;
  try {
    arr = py::module_::import("numpy").attr("asarray")(obj);
  } catch (py::error_already_set& e) {
    throw py::value_error(name + " must be an array-like of numbers, got a " + type_name(obj) + " NumPy cannot read (" +
                          std::string(py::str(e.value())) + ")");
  }
  return py::reinterpret_borrow<py::array>(arr);
}

// What an argument of `kind` is read as, given the dtype it came in:
//   'i' integers of any width and sign: 64-bit ones and uint32 as int64 (uint64 range-checked), the rest as int32;
//   'f' float32 (from a list also Python's float64: a list carries no dtype to keep);
//   'F' float16 and float32 as float32, float64 and integers as float64.
// Returns false where `kind` refuses the dtype: bools, complex, objects, strings, and floats for ints.
inline bool canonical_dtype(const py::dtype& dtype, char kind, bool from_sequence, py::dtype& out) {
  const char k = dtype.kind();
  const py::ssize_t size = dtype.itemsize();
  if (kind == 'i') {
    if (k != 'i' && k != 'u') return false;
    const bool wide = size == 8 || (k == 'u' && size == 4);
    out = wide ? py::dtype::of<int64_t>() : py::dtype::of<int32_t>();
    return size <= 8;
  }
  if (kind == 'F' && (k == 'i' || k == 'u')) {  // whole metres or a 0/1 action: read as float64, exact to 2**53
    out = py::dtype::of<double>();
    return size <= 8;
  }
  if (k != 'f') return false;
  if (kind == 'f') {
    out = py::dtype::of<float>();
    return size == 4 || (from_sequence && size == 8);
  }
  out = size == 8 ? py::dtype::of<double>() : py::dtype::of<float>();
  return size == 2 || size == 4 || size == 8;
}

inline const char* kind_text(char kind) {
  return kind == 'i' ? "an integer" : (kind == 'f' ? "a float32" : "a real-valued (float or integer)");
}

// Native byte order read from the descriptor itself ('=' native, '|' not applicable, or this host's explicit
// letter): no Python attribute lookup on the per-step path.
inline bool native_order(const py::dtype& dtype) {
  const char order = dtype.byteorder();
  const uint16_t probe = 1;
  const char host = *reinterpret_cast<const char*>(&probe) == 1 ? '<' : '>';
  return order == '=' || order == '|' || order == host;
}

inline bool reads_in_place(const py::array& arr, const py::dtype& canonical) {
  const int needed = py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  const py::dtype dtype = arr.dtype();
  return (arr.flags() & needed) == needed && dtype.kind() == canonical.kind() &&
         dtype.itemsize() == canonical.itemsize() && native_order(dtype);
}

// `obj` as a native-order, aligned, C-contiguous array of exactly `shape` and the canonical dtype of `kind`
// (see canonical_dtype). `dims` names the expected dimensions in the error message, e.g. "(num_envs, num_agents)".
inline py::array checked_array(const py::object& obj, const char* name, char kind,
                               const std::vector<py::ssize_t>& shape, const char* dims = nullptr) {
  const bool from_sequence = !py::isinstance<py::array>(obj);
  const py::array arr = as_numpy(obj, name);
  py::dtype canonical;
  if (!canonical_dtype(arr.dtype(), kind, from_sequence, canonical))
    throw py::type_error(std::string(name) + " must be " + kind_text(kind) + " array, got dtype " +
                         std::string(py::str(arr.dtype())));
  const std::vector<py::ssize_t> got(arr.shape(), arr.shape() + arr.ndim());
  if (got != shape)
    throw py::value_error(std::string(name) + " must have shape " + (dims ? std::string(dims) + " = " : "") +
                          shape_text(shape) + ", got " + shape_text(got));
  if (reads_in_place(arr, canonical)) return arr;
  const auto require = py::module_::import("numpy").attr("require");
  if (arr.dtype().kind() == 'u' && arr.dtype().itemsize() == 8) {
    // uint64 beyond int64 would wrap in the cast: check the values first, in a native aligned copy
    const py::array wide = require(arr, py::dtype::of<uint64_t>(), "CA");
    const auto* values = static_cast<const uint64_t*>(wide.data());
    for (py::ssize_t k = 0; k < wide.size(); ++k)
      if (values[k] > static_cast<uint64_t>(INT64_MAX))
        throw py::value_error(std::string(name) + " holds " + std::to_string(values[k]) + " at flat index " +
                              std::to_string(k) + ", outside int64");
  }
  return require(arr, canonical, "CA");
}

// `arr` converted to T. pybind11's ensure() returns a null array when NumPy's cast fails (a warning turned into an
// error, say); reading that would crash, so it becomes the Python error NumPy raised, or a TypeError naming `name`.
template <class T>
py::array_t<T, py::array::c_style | py::array::forcecast> converted(const py::array& arr, const char* name) {
  auto out = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(arr);
  if (!out) throw py::type_error(std::string(name) + " could not be converted to " +
                                 std::string(py::str(py::dtype::of<T>())));
  return out;
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
  return converted<int32_t>(arr, name);
}

// The actions of one step as Env takes them: integers [E, N] (discrete envs, as int32 or int64) or floats
// [E, N, width] (continuous envs; float64 is rounded to float32, and a value beyond float32 becomes inf, rejected
// as non-finite).
template <class Env>
py::array checked_actions(const py::object& obj, py::ssize_t num_envs, py::ssize_t num_agents) {
  if constexpr (std::is_floating_point<typename Env::Action>::value) {
    const py::array arr = checked_array(obj, "actions", 'F', {num_envs, num_agents, Env::kActionWidth},
                                        "(num_envs, num_agents, action_dim)");
    if (arr.dtype().itemsize() == 4) return arr;
    // float64 (or integers, read as float64): a value beyond float32 is refused here, by position, rather than
    // becoming inf in the cast
    const auto* values = static_cast<const double*>(arr.data());
    for (py::ssize_t k = 0; k < arr.size(); ++k) {
      if (std::fabs(values[k]) <= static_cast<double>(std::numeric_limits<float>::max())) continue;
      const py::ssize_t agent = k / Env::kActionWidth;
      throw py::value_error("actions[" + std::to_string(agent / num_agents) + ", " +
                            std::to_string(agent % num_agents) + ", " + std::to_string(k % Env::kActionWidth) +
                            "] = " + std::string(py::repr(py::float_(values[k]))) + " is not finite in float32");
    }
    return converted<float>(arr, "actions");
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
