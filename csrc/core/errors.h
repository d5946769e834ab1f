// Errors the bindings translate to their own Python types (module.cpp); the rest are std exceptions, which pybind11
// maps by kind (std::invalid_argument -> ValueError, std::runtime_error -> RuntimeError).
#pragma once

#include <stdexcept>
#include <string>

namespace hmasd {

// Buffers too large for this machine: Python's MemoryError, naming what was being built.
struct OutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A second thread calling an object that is still busy with the first one's call: Python's RuntimeError.
struct ConcurrentUse : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace hmasd
