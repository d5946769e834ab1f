// Inline float64 log and atan for the radio hot loops, where libm's atan2 (~30 ns) and log10 (~17 ns) were a third
// of a uav_coverage step; these take ~16 and ~13 ns and are within 1 ulp of libm on the envs' ranges (libm's
// table-driven exp beat a polynomial one, so exp stays libm's). The parity tests hold them to 1e-9 relative.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/hd.h"

namespace hmasd {

HD inline double bits_to_double(uint64_t bits) {
  double out;
  memcpy(&out, &bits, sizeof(out));
  return out;
}
HD inline uint64_t double_to_bits(double value) {
  uint64_t out;
  memcpy(&out, &value, sizeof(out));
  return out;
}

// ln x for finite x > 0 (normal numbers): x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s) with
// s = (m - 1) / (m + 1), |s| < 0.172, by its series to s^23 (truncation < 1e-18 relative).
HD inline double fast_log(double x) {
  uint64_t bits = double_to_bits(x);
  int32_t e = static_cast<int32_t>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
  double m = bits_to_double(bits);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  double p = 1.0 / 23.0;
  p = p * s2 + 1.0 / 21.0;
  p = p * s2 + 1.0 / 19.0;
  p = p * s2 + 1.0 / 17.0;
  p = p * s2 + 1.0 / 15.0;
  p = p * s2 + 1.0 / 13.0;
  p = p * s2 + 1.0 / 11.0;
  p = p * s2 + 1.0 / 9.0;
  p = p * s2 + 1.0 / 7.0;
  p = p * s2 + 1.0 / 5.0;
  p = p * s2 + 1.0 / 3.0;
  p = p * s2 + 1.0;
  const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  return e * ln2_hi + (2.0 * s * p + e * ln2_lo);
}

HD inline double fast_log10(double x) { return fast_log(x) * 0.43429448190325176; }
HD inline double fast_log2(double x) { return fast_log(x) * 1.4426950408889634; }

// atan2(y, x) for y >= 0, x >= 0 (an elevation angle): reduced to t = min / max in [0, 1], then around the nearest
// of 0, 1/4, 1/2, 3/4, 1 to |u| <= 1/8 by atan(t) = atan(c) + atan((t - c) / (1 + t c)), and a series to u^21.
HD inline double fast_atan2_positive(double y, double x) {
  const double half_pi = 1.5707963267948966;
  if (y == 0.0 && x == 0.0) return 0.0;
  const bool swap = y > x;
  const double t = swap ? x / y : y / x;
  const int32_t nearest = static_cast<int32_t>(t * 4.0 + 0.5);
  const double centres[5] = {0.0, 0.25, 0.5, 0.75, 1.0};
  const double atan_centres[5] = {0.0, 0.24497866312686414, 0.4636476090008061, 0.6435011087932844,
                                  0.7853981633974483};
  const double c = centres[nearest];
  const double u = (t - c) / (1.0 + t * c), u2 = u * u;
  double p = -1.0 / 21.0;
  p = p * u2 + 1.0 / 19.0;
  p = p * u2 - 1.0 / 17.0;
  p = p * u2 + 1.0 / 15.0;
  p = p * u2 - 1.0 / 13.0;
  p = p * u2 + 1.0 / 11.0;
  p = p * u2 - 1.0 / 9.0;
  p = p * u2 + 1.0 / 7.0;
  p = p * u2 - 1.0 / 5.0;
  p = p * u2 + 1.0 / 3.0;
  const double atan_t = atan_centres[nearest] + (u - u * u2 * p);
  return swap ? half_pi - atan_t : atan_t;
}

}  // namespace hmasd
