// DLPack (the array-exchange ABI of the Python array API) for the bindings: the C structs of the spec, a buffer
// object with __dlpack__ / __dlpack_device__ over native memory, and the reading of another library's capsule.
// Host and CUDA memory alike: torch.from_dlpack then aliases the native buffer without a copy.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace hmasd_bindings {

namespace py = pybind11;

// ---- the structs of the DLPack spec (legacy, unversioned capsules named "dltensor") ------------------------------
enum DLDeviceType : int32_t { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13 };
enum DLDataTypeCode : uint8_t { kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBool = 6 };
struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};
struct DLDataType {
  uint8_t code, bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // null: C-contiguous
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

// A buffer of native memory as the DLPack producer sees it. `owner` keeps the memory alive while any consumer holds
// a tensor of it.
struct DLPackBuffer {
  py::object owner;
  void* data;
  DLDataType dtype;
  std::vector<int64_t> shape;
  DLDevice device;
};

namespace detail {
struct Exported {
  DLManagedTensor managed;
  std::vector<int64_t> shape;
  PyObject* owner;
};
inline void delete_exported(DLManagedTensor* self) {
  auto* exported = static_cast<Exported*>(self->manager_ctx);
  py::gil_scoped_acquire gil;
  Py_XDECREF(exported->owner);
  delete exported;
}
inline void capsule_destructor(PyObject* capsule) {
  // Not consumed (still named "dltensor"): the capsule owns the tensor.
  if (!PyCapsule_IsValid(capsule, "dltensor")) return;
  auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
  if (managed != nullptr && managed->deleter != nullptr) managed->deleter(managed);
}
}  // namespace detail

inline py::capsule to_capsule(const DLPackBuffer& buffer) {
  auto* exported = new detail::Exported{};
  exported->shape = buffer.shape;
  exported->owner = buffer.owner.ptr();
  Py_XINCREF(exported->owner);
  DLTensor& t = exported->managed.dl_tensor;
  t.data = buffer.data;
  t.device = buffer.device;
  t.ndim = static_cast<int32_t>(exported->shape.size());
  t.dtype = buffer.dtype;
  t.shape = exported->shape.data();
  t.strides = nullptr;
  t.byte_offset = 0;
  exported->managed.manager_ctx = exported;
  exported->managed.deleter = detail::delete_exported;
  PyObject* capsule = PyCapsule_New(&exported->managed, "dltensor", detail::capsule_destructor);
  if (capsule == nullptr) {
    detail::delete_exported(&exported->managed);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(capsule);
}

// Another library's array (anything with __dlpack__) read in place: the pointer, dims and dtype of a C-contiguous
// tensor, alive until release(). Refuses other layouts by name instead of reading them as raw bytes.
class ImportedTensor {
 public:
  ImportedTensor(const py::object& obj, const char* name, py::object stream) : name_(name) {
    if (!py::hasattr(obj, "__dlpack__"))
      throw py::type_error(std::string(name) + " must be a tensor on the env's device (an object with __dlpack__, "
                           "e.g. a torch tensor), got " + std::string(py::str(obj.attr("__class__").attr("__name__"))));
    // The stream is a CUDA notion: a host producer (torch refuses one for CPU tensors) is asked without it.
    bool on_cuda = false;
    if (py::hasattr(obj, "__dlpack_device__")) on_cuda = obj.attr("__dlpack_device__")().cast<py::tuple>()[0].cast<int32_t>() == kDLCUDA;
    capsule_ = stream.is_none() || !on_cuda ? obj.attr("__dlpack__")()
                                            : obj.attr("__dlpack__")(py::arg("stream") = stream);
    if (!PyCapsule_IsValid(capsule_.ptr(), "dltensor"))
      throw py::type_error(std::string(name) + ".__dlpack__() did not return a DLPack capsule");
    managed_ = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule_.ptr(), "dltensor"));
    PyCapsule_SetName(capsule_.ptr(), "used_dltensor");  // consumed: we call the deleter
    const DLTensor& t = managed_->dl_tensor;
    shape_.assign(t.shape, t.shape + t.ndim);
    if (t.strides != nullptr) {
      int64_t expected = 1;
      for (int32_t d = t.ndim; d-- > 0;) {
        if (t.shape[d] != 1 && t.strides[d] != expected) {
          release();
          throw py::value_error(std::string(name) + " must be C-contiguous (call .contiguous() first)");
        }
        expected *= t.shape[d];
      }
    }
    if (t.dtype.lanes != 1) {
      release();
      throw py::type_error(std::string(name) + " must not be a vector dtype");
    }
    data_ = static_cast<char*>(t.data) + t.byte_offset;
    if (reinterpret_cast<uintptr_t>(data_) % (t.dtype.bits / 8 ? t.dtype.bits / 8 : 1) != 0) {
      release();
      throw py::value_error(std::string(name) + " is not aligned to its element size");
    }
  }
  ~ImportedTensor() { release(); }
  ImportedTensor(const ImportedTensor&) = delete;
  ImportedTensor& operator=(const ImportedTensor&) = delete;

  void release() {
    if (managed_ != nullptr && managed_->deleter != nullptr) managed_->deleter(managed_);
    managed_ = nullptr;
  }
  const DLDevice& device() const { return managed_->dl_tensor.device; }
  const DLDataType& dtype() const { return managed_->dl_tensor.dtype; }
  const std::vector<int64_t>& shape() const { return shape_; }
  void* data() const { return data_; }

  void expect_device(int32_t device_type, int32_t device_id) const {
    const DLDevice& d = device();
    if (d.device_type == device_type && (device_type == kDLCPU || d.device_id == device_id)) return;
    auto where = [](int32_t type, int32_t id) {
      return type == kDLCPU ? std::string("the host (cpu)")
                            : (type == kDLCUDA ? "cuda:" + std::to_string(id) : "device type " + std::to_string(type));
    };
    throw py::value_error(std::string(name_) + " is on " + where(d.device_type, d.device_id) +
                          " but the env is on " + where(device_type, device_id) + "; move it there first");
  }
  void expect_shape(const std::vector<int64_t>& shape, const char* dims) const {
    if (shape_ == shape) return;
    auto text = [](const std::vector<int64_t>& s) {
      std::string out = "(";
      for (size_t d = 0; d < s.size(); ++d) out += (d ? ", " : "") + std::to_string(s[d]);
      return out + (s.size() == 1 ? ",)" : ")");
    };
    throw py::value_error(std::string(name_) + " must have shape " + dims + " = " + text(shape) + ", got " +
                          text(shape_));
  }
  bool is(uint8_t code, uint8_t bits) const { return dtype().code == code && dtype().bits == bits; }
  std::string dtype_text() const {
    const char* kind = dtype().code == kDLInt ? "int" : dtype().code == kDLUInt ? "uint" : dtype().code == kDLFloat ? "float"
                       : dtype().code == kDLBool ? "bool" : "code";
    return std::string(kind) + std::to_string(dtype().bits);
  }

 private:
  const char* name_;
  py::object capsule_;
  DLManagedTensor* managed_ = nullptr;
  std::vector<int64_t> shape_;
  void* data_ = nullptr;
};

// Binds DLPackBuffer as a Python class; `synchronize(device_id)` makes device work visible to another stream.
template <class Synchronize>
void bind_dlpack_buffer(py::module_& m, Synchronize synchronize) {
  py::class_<DLPackBuffer>(m, "DLPackBuffer", "Native memory exported through DLPack (no copy).")
      .def_property_readonly("shape", [](const DLPackBuffer& b) { return py::tuple(py::cast(b.shape)); })
      .def_property_readonly("data_ptr", [](const DLPackBuffer& b) { return reinterpret_cast<uintptr_t>(b.data); })
      .def("__dlpack_device__", [](const DLPackBuffer& b) { return py::make_tuple(b.device.device_type, b.device.device_id); })
      .def(
          "__dlpack__",
          [synchronize](const DLPackBuffer& b, const py::object& stream, const py::object& max_version,
                        const py::object& dl_device, const py::object& copy) {
            (void)max_version;  // we produce the unversioned capsule, which every consumer accepts
            if (!copy.is_none() && copy.cast<bool>())
              throw py::buffer_error("hmasd buffers are exported without a copy (copy=True is not supported)");
            if (!dl_device.is_none()) {
              const auto wanted = dl_device.cast<std::pair<int32_t, int32_t>>();
              if (wanted.first != b.device.device_type || wanted.second != b.device.device_id)
                throw py::buffer_error("hmasd buffers are exported on their own device only");
            }
            // The native layer writes on the caller's stream; a consumer on another stream waits for the device.
            if (b.device.device_type == kDLCUDA && !stream.is_none()) synchronize(b.device.device_id);
            return to_capsule(b);
          },
          py::kw_only(), py::arg("stream") = py::none(), py::arg("max_version") = py::none(),
          py::arg("dl_device") = py::none(), py::arg("copy") = py::none());
}

}  // namespace hmasd_bindings
