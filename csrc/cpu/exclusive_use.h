// One call at a time on an env and its engine. The bindings release the GIL around batched work, so without this
// two Python threads could step one env at once and leave its copies' clocks torn; the second caller is refused.
#pragma once

#include <atomic>
#include <string>

#include "core/errors.h"

namespace hmasd {

class ExclusiveUse {
 public:
  // Takes `flag` for the guard's lifetime, or throws ConcurrentUse naming `what` when another call holds it.
  ExclusiveUse(std::atomic<bool>& flag, const char* what) : flag_(flag) {
    if (flag_.exchange(true, std::memory_order_acquire))
      throw ConcurrentUse(std::string(what) +
                          ": this env is in use by another thread; an env and its rollout engine take one call at a "
                          "time (give each thread its own env, or hold a lock around the calls)");
  }
  ~ExclusiveUse() { flag_.store(false, std::memory_order_release); }
  ExclusiveUse(const ExclusiveUse&) = delete;
  ExclusiveUse& operator=(const ExclusiveUse&) = delete;

 private:
  std::atomic<bool>& flag_;
};

}  // namespace hmasd
