// Functions shared by the CPU code and the CUDA kernels (window bounds, the Philox RNG, ...): compiled
// for both host and device under nvcc, as plain host code under g++.
#pragma once
#if defined(__CUDACC__)
#define AXN_HD __host__ __device__
#define AXN_HD_INLINE __host__ __device__ __forceinline__
#else
#define AXN_HD
#define AXN_HD_INLINE inline
#endif
