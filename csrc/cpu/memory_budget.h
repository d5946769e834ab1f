// Refusing a batch too large for the machine before allocating it: a storage struct instantiated over ByteCount
// allocates nothing and adds up the bytes the real one would hold. (Catching std::bad_alloc is not enough: an
// allocator may abort instead of throwing, as AddressSanitizer's does, or overcommit and be killed later.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "core/errors.h"

namespace hmasd {

struct ByteTally {
  static size_t& total() {
    thread_local size_t bytes = 0;
    return bytes;
  }
};

// The Array of EnvStorage / RolloutStorage that only counts.
template <class T>
class ByteCount {
 public:
  ByteCount() = default;
  explicit ByteCount(size_t size) { ByteTally::total() += size * sizeof(T); }
  T* data() { return nullptr; }
};

// Bytes the arrays of `Storage` built from `args` would hold.
template <class Storage, class... Args>
size_t storage_bytes(const Args&... args) {
  ByteTally::total() = 0;
  const Storage counted(args...);
  (void)counted;
  return ByteTally::total();
}

// Physical memory of this machine (0 where unknown: then nothing is refused up front).
inline size_t physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return static_cast<size_t>(pages) * static_cast<size_t>(page);
#endif
  return 0;
}

inline std::string gib_text(size_t bytes) {
  return std::to_string(bytes / (size_t(1) << 30)) + "." + std::to_string((bytes % (size_t(1) << 30)) * 10 >> 30) +
         " GiB";
}

// Throws OutOfMemory naming `what` when `bytes` exceed the machine's physical memory.
inline void check_fits_in_memory(size_t bytes, const std::string& what) {
  const size_t physical = physical_memory_bytes();
  if (physical != 0 && bytes > physical)
    throw OutOfMemory(what + " needs " + gib_text(bytes) + " of buffers; this machine has " + gib_text(physical));
}

}  // namespace hmasd
