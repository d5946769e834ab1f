// What every env header declares about itself: sizes, bounds and episode-info fields, as plain data that the
// pool and the Python layer are built from (spaces are never retyped in Python).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hmasd {

struct EnvDims {
  int32_t num_agents;
  int32_t obs_dim;
  int32_t state_dim;
  int32_t num_actions;
};

// One named episode statistic, written by the env when an episode ends; per_agent fields take N slots.
struct InfoField {
  std::string name;
  bool per_agent;
};

struct StepStatus {
  bool terminated;
  bool truncated;
};

inline int32_t info_width(const std::vector<InfoField>& fields, int32_t num_agents) {
  int32_t width = 0;
  for (const InfoField& field : fields) width += field.per_agent ? num_agents : 1;
  return width;
}

}  // namespace hmasd
