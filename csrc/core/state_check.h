// Range checks of an env state read from a snapshot (host code): each env's check_state() names the first field an
// env could not have reached, so a damaged or forged snapshot is refused instead of stepped.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace hmasd {

// Range checks of a state read from a snapshot; each names the field and the env copy.
struct StateCheck {
  int32_t env;
  std::string problem;

  void in_range(const char* field, int64_t value, int64_t low, int64_t high) {
    if (problem.empty() && (value < low || value > high))
      problem = std::string(field) + " = " + std::to_string(value) + " outside [" + std::to_string(low) + ", " +
                std::to_string(high) + "]";
  }
  void finite_in(const char* field, double value, double low, double high) {
    if (problem.empty() && !(std::isfinite(value) && value >= low && value <= high))
      problem = std::string(field) + " = " + std::to_string(value) + " outside [" + std::to_string(low) + ", " +
                std::to_string(high) + "]";
  }
  void flag(const char* field, const void* bool_byte) {
    uint8_t byte;
    std::memcpy(&byte, bool_byte, 1);  // read the byte, not the bool: a byte other than 0 or 1 is no bool
    in_range(field, byte, 0, 1);
  }
};

}  // namespace hmasd
