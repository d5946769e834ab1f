// The envs this build contains, listed once: the bindings bind each one's options from it and build_info() reports
// its names. An env compiled once per action type (uav_coverage) appears once: its variants share name and options.
#pragma once

#include <string>
#include <vector>

#include "envs/alice_and_bob.h"
#include "envs/stag_hunt.h"
#include "envs/uav_coverage.h"

namespace hmasd {

template <class... Envs>
struct EnvList {
  // Calls fn(static_cast<Env*>(nullptr)) for each env in order: the null pointer carries only the type.
  template <class Fn>
  static void for_each(Fn&& fn) {
    (fn(static_cast<Envs*>(nullptr)), ...);
  }

  static std::vector<std::string> names() { return {Envs::kName...}; }
};

using NativeEnvs = EnvList<AliceAndBob, StagHunt, UavCoverage>;

}  // namespace hmasd
