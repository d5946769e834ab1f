// Runs a per-env function over [0, count) on the OpenMP thread team, or inline when one thread suffices.
#pragma once

#include <cstdint>
#include <thread>

#if defined(HMASD_WITH_OPENMP)
#include <omp.h>
#endif

#if defined(__linux__)
#include <sched.h>
#endif

namespace hmasd {

// The CPUs this process may run on (its affinity mask, which a container's cpuset narrows), at least 1.
inline int32_t usable_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int32_t>(n) : 1;
}

// The most threads a batch may ask for. OpenMP ends the process when it cannot create a thread, so requests are
// capped where thread creation is sure to be affordable: the usable CPUs, but at least 8 so that tests of
// thread-count independence run anywhere.
inline int32_t max_threads() { return usable_cpus() > 8 ? usable_cpus() : 8; }

// Both return the number of threads that ran the work (1 when it ran inline), so tests can check that they forked.
template <class Fn>
int32_t parallel_for(int32_t count, int32_t num_threads, const Fn& fn) {
#if defined(HMASD_WITH_OPENMP)
  // Below ~64 envs per thread the fork/join costs more than it saves. Chunks are handed out dynamically so that
  // a thread the OS has descheduled (a busy machine) delays one chunk, not half the batch.
  if (num_threads > 1 && count >= 64 * num_threads) {
    const int32_t chunk = count >= 64 * 8 * num_threads ? 64 : 16;
    int32_t team = 1;
#pragma omp parallel num_threads(num_threads)
    {
#pragma omp single nowait
      team = omp_get_num_threads();
#pragma omp for schedule(dynamic, chunk)
      for (int32_t i = 0; i < count; ++i) fn(i);
    }
    return team;
  }
#else
  (void)num_threads;
#endif
  for (int32_t i = 0; i < count; ++i) fn(i);
  return 1;
}

// The same split over [0, count) handed out as ranges [begin, end), for per-env work that then writes each of its
// arrays in one contiguous run (the engine's records). Serially: one range.
template <class Fn>
int32_t parallel_for_ranges(int32_t count, int32_t num_threads, const Fn& fn) {
#if defined(HMASD_WITH_OPENMP)
  if (num_threads > 1 && count >= 64 * num_threads) {
    const int32_t chunk = count >= 64 * 8 * num_threads ? 64 : 16;
    const int32_t ranges = (count + chunk - 1) / chunk;
    int32_t team = 1;
#pragma omp parallel num_threads(num_threads)
    {
#pragma omp single nowait
      team = omp_get_num_threads();
#pragma omp for schedule(dynamic, 1)
      for (int32_t r = 0; r < ranges; ++r) fn(r * chunk, r * chunk + chunk < count ? r * chunk + chunk : count);
    }
    return team;
  }
#else
  (void)num_threads;
#endif
  fn(0, count);
  return 1;
}

}  // namespace hmasd
