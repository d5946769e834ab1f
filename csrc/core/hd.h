// HD marks a function as callable from host and device: every per-env function is written once for both.
#pragma once

#if defined(__CUDACC__)
#define HD __host__ __device__
#else
#define HD
#endif
