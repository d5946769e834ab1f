// Runs a per-env function over [0, count) on the OpenMP thread team, or inline when one thread suffices.
#pragma once

#include <cstdint>

namespace hmasd {

template <class Fn>
void parallel_for(int32_t count, int32_t num_threads, const Fn& fn) {
#if defined(HMASD_WITH_OPENMP)
  // Below ~64 envs per thread the fork/join costs more than it saves. Chunks are handed out dynamically so that
  // a thread the OS has descheduled (a busy machine) delays one chunk, not half the batch.
  if (num_threads > 1 && count >= 64 * num_threads) {
    const int32_t chunk = count >= 64 * 8 * num_threads ? 64 : 16;
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, chunk)
    for (int32_t i = 0; i < count; ++i) fn(i);
    return;
  }
#else
  (void)num_threads;
#endif
  for (int32_t i = 0; i < count; ++i) fn(i);
}

// The same split over [0, count) handed out as ranges [begin, end), for per-env work that then writes each of its
// arrays in one contiguous run (the engine's records). Serially: one range.
template <class Fn>
void parallel_for_ranges(int32_t count, int32_t num_threads, const Fn& fn) {
#if defined(HMASD_WITH_OPENMP)
  if (num_threads > 1 && count >= 64 * num_threads) {
    const int32_t chunk = count >= 64 * 8 * num_threads ? 64 : 16;
    const int32_t ranges = (count + chunk - 1) / chunk;
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 1)
    for (int32_t r = 0; r < ranges; ++r) fn(r * chunk, r * chunk + chunk < count ? r * chunk + chunk : count);
    return;
  }
#else
  (void)num_threads;
#endif
  fn(0, count);
}

}  // namespace hmasd
