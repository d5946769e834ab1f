// Which rollout engine steps an env, and whether its batch is open. While it is, the env's own observation rows are
// stale (the engine's batch holds the current ones), so direct steps, resets and restores are refused instead of
// silently losing data. Host code, shared by the CPU and CUDA env owners.
#pragma once

#include <stdexcept>
#include <string>

namespace hmasd {

class EngineLease {
 public:
  void attach(const void* engine) {
    if (engine_ != nullptr)
      throw std::runtime_error("this env is already stepped by a RolloutEngine; one engine per env (delete the "
                               "other engine first)");
    engine_ = engine;
  }
  // Returns whether `engine` held the lease.
  bool detach(const void* engine) {
    if (engine_ != engine) return false;
    engine_ = nullptr;
    batch_open_ = false;
    return true;
  }
  void set_batch_open(bool open) { batch_open_ = open; }
  bool batch_open() const { return batch_open_; }
  void check_not_in_batch(const char* what) const {
    if (batch_open_)
      throw std::runtime_error(std::string(what) + " on an env whose RolloutEngine batch is in progress: the "
                               "engine holds its current observations; step it through the engine, or finish the "
                               "batch (or delete the engine) first");
  }

 private:
  const void* engine_ = nullptr;
  bool batch_open_ = false;
};

}  // namespace hmasd
