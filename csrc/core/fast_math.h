// Inline, branch-free float64 exp, log and atan for the radio loops, so that the compiler can vectorise a loop over
// users (libm's calls are opaque: a uav_coverage step spent ~60% of its time in them). Within a few ulp of libm on
// the envs' ranges; the NumPy reference uses libm and the parity tests hold the two together to 1e-9 relative.
// Integer <-> double conversions go through the 2^52 "magic number" so that they stay in 64-bit lanes.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/hd.h"

// A loop the compiler should vectorise (OpenMP SIMD on the host; nothing on the device, where each env is a thread).
#if defined(__CUDA_ARCH__) || !defined(_OPENMP)
#define HMASD_SIMD
#else
#define HMASD_SIMD _Pragma("omp simd")
#endif

// Hot host loops are compiled three times, for AVX-512, AVX2 and the x86-64 baseline, and the loader picks the best
// one the CPU runs (GCC function multiversioning on Linux). The clones round identically: no FMA in any of them
// (-ffp-contract=off), and every lane computes the same scalar formula.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(__CUDACC__)
#define HMASD_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HMASD_TARGET_CLONES
#endif

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

constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer held in the low bits
constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;

// Polynomials by Estrin's scheme (independent halves) rather than Horner's: shorter dependency chains.
// e^x for x in [-700, 700] (clamped): x = k ln2 + r, |r| <= ln2 / 2, e^r by its Taylor series to degree 13.
HD inline double fast_exp(double x) {
  x = x < -700.0 ? -700.0 : (x > 700.0 ? 700.0 : x);
  const double k = (x * 1.4426950408889634 + kMagic) - kMagic;
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;
  const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const double c01 = 1.0 + r, c23 = 0.5 + r * (1.0 / 6.0), c45 = 1.0 / 24.0 + r * (1.0 / 120.0);
  const double c67 = 1.0 / 720.0 + r * (1.0 / 5040.0), c89 = 1.0 / 40320.0 + r * (1.0 / 362880.0);
  const double c1011 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0);
  const double c1213 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
  const double low = (c01 + r2 * c23) + r4 * (c45 + r2 * c67);
  const double high = (c89 + r2 * c1011) + r4 * c1213;
  const double scale = bits_to_double((double_to_bits(k + (kMagic + 1023.0)) & 0x7ffULL) << 52);
  return (low + r8 * high) * scale;
}

// Each function below is a range reduction to a quotient num / den, then a series in that quotient. They are split
// in two halves so that fast_log_atan2_positive() can share one division between a log and an atan2: a division
// occupies the divider for as long as a dozen multiplies, and the radio loop was bound by its three per link.

// ln x for normal x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m - 1) / (m + 1),
// |s| < 0.172, by its series to s^19 (the next term is below 3e-17 of the sum).
struct LogReduction {
  double e, num, den;  // ln x = e ln2 + 2 atanh(num / den)
};
HD inline LogReduction log_reduce(double x) {
  const uint64_t bits = double_to_bits(x);
  const double exponent = bits_to_double((bits >> 52) | 0x4330000000000000ULL) - (4503599627370496.0 + 1023.0);
  const double mantissa = bits_to_double((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  const bool high = mantissa > 1.4142135623730951;
  const double m = high ? mantissa * 0.5 : mantissa;
  return {high ? exponent + 1.0 : exponent, m - 1.0, m + 1.0};
}
HD inline double log_finish(const LogReduction& r, double s) {
  const double s2 = s * s, s4 = s2 * s2, s8 = s4 * s4;
  const double c0 = 1.0 + s2 * (1.0 / 3.0), c1 = 1.0 / 5.0 + s2 * (1.0 / 7.0), c2 = 1.0 / 9.0 + s2 * (1.0 / 11.0);
  const double c3 = 1.0 / 13.0 + s2 * (1.0 / 15.0), c4 = 1.0 / 17.0 + s2 * (1.0 / 19.0);
  const double series = (c0 + s4 * c1) + s8 * ((c2 + s4 * c3) + s8 * c4);
  return r.e * kLn2Hi + (2.0 * s * series + r.e * kLn2Lo);
}
HD inline double fast_log(double x) {
  const LogReduction r = log_reduce(x);
  return log_finish(r, r.num / r.den);
}

HD inline double fast_log10(double x) { return fast_log(x) * 0.43429448190325176; }
HD inline double fast_log2(double x) { return fast_log(x) * 1.4426950408889634; }

// atan2(y, x) for y, x >= 0 (an elevation angle): with t = min / max in [0, 1], atan(t) = atan(c) +
// atan(u), u = (t - c) / (1 + t c) = (min - c max) / (max + c min), |u| <= 1/8 around the nearest c of 0, 1/4, 1/2,
// 3/4, 1 (chosen by comparisons, not a table lookup), and atan(u) by its series to u^17 (the next term is below
// 1e-18). atan2(0, 0) = 0, as libm.
struct AtanReduction {
  double atan_c, num, den;  // atan(min / max) = atan_c + atan(num / den)
  bool swap;                // y > x: the angle is pi/2 minus that
};
HD inline AtanReduction atan2_reduce(double y, double x) {
  const bool swap = y > x;
  const double low = swap ? x : y, high = swap ? y : x;
  const double s1 = low > 0.125 * high ? 1.0 : 0.0, s2 = low > 0.375 * high ? 1.0 : 0.0;
  const double s3 = low > 0.625 * high ? 1.0 : 0.0, s4 = low > 0.875 * high ? 1.0 : 0.0;
  const double c = 0.25 * (s1 + s2 + s3 + s4);
  const double atan_c = s1 * 0.24497866312686414 + s2 * (0.4636476090008061 - 0.24497866312686414) +
                        s3 * (0.6435011087932844 - 0.4636476090008061) +
                        s4 * (0.7853981633974483 - 0.6435011087932844);
  // At the origin low = high = 0: num = 0 over den = 1 keeps the quotient (and a shared one) finite.
  return {atan_c, low - c * high, high > 0.0 ? high + c * low : 1.0, swap};
}
HD inline double atan2_finish(const AtanReduction& r, double u) {
  const double u2 = u * u, u4 = u2 * u2, u8 = u4 * u4;
  const double c0 = 1.0 / 3.0 - u2 * (1.0 / 5.0), c1 = 1.0 / 7.0 - u2 * (1.0 / 9.0);
  const double c2 = 1.0 / 11.0 - u2 * (1.0 / 13.0), c3 = 1.0 / 15.0 - u2 * (1.0 / 17.0);
  const double p = (c0 + u4 * c1) + u8 * (c2 + u4 * c3);
  const double atan_t = r.atan_c + (u - u * u2 * p);
  return r.swap ? 1.5707963267948966 - atan_t : atan_t;
}
HD inline double fast_atan2_positive(double y, double x) {
  const AtanReduction r = atan2_reduce(y, x);
  return atan2_finish(r, r.num / r.den);
}

// ln x and atan2(y, z) (y, z >= 0) with one division: a / b and c / d as (a d) / (b d) and (c b) / (b d), each a
// rounding or two further from the exact quotient than a division of its own (a few 1e-16).
HD inline void fast_log_atan2_positive(double x, double y, double z, double& log_x, double& atan2_yz) {
  const LogReduction lr = log_reduce(x);
  const AtanReduction ar = atan2_reduce(y, z);
  const double q = 1.0 / (lr.den * ar.den);
  log_x = log_finish(lr, lr.num * ar.den * q);
  atan2_yz = atan2_finish(ar, ar.num * lr.den * q);
}

}  // namespace hmasd
