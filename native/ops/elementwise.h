// Element-wise utilities training needs (flat float32 buffers of n elements; shapes don't matter).
// All memory-bound: on CUDA one grid-stride kernel each, float4 loads/stores when every pointer is 16-byte
// aligned (a scalar loop covers the n % 4 tail), otherwise a scalar loop.
//
// The CUDA arithmetic uses __fmul_rn / __fadd_rn so nvcc cannot contract a*b + c into an FMA: the results
// are then rounded exactly as the CPU's (x86-64 without -mfma), bit for bit.
#pragma once
#include <cstdint>

#include "gemm.h"  // bf16_t, to_bf16, from_bf16

namespace axn::ops {

// y: (n) += alpha * x: (n)            y[i] = y[i] + alpha * x[i] (two roundings)
void axpy_cpu(float* y, const float* x, int64_t n, float alpha);
// x: (n) *= alpha
void scale_cpu(float* x, int64_t n, float alpha);
// x: (n) = value
void fill_cpu(float* x, int64_t n, float value);
// z: (n) = x: (n) + y: (n)   (z may alias x or y)
void add_cpu(const float* x, const float* y, float* z, int64_t n);
// out: (1) = Σ x[i]², accumulated in double and rounded once (a gradient-norm check; NaN/inf propagate).
void sum_squares_cpu(const float* x, float* out, int64_t n);
// The bfloat16 casts (Tensor dtype "bfloat16", ops.cast): dst[i] = to_bf16(src[i]), rounded to nearest even
// (gemm.h's round_bf16: a NaN stays a quiet NaN, a finite value past bf16's largest becomes infinity); and
// dst[i] = from_bf16(src[i]), exact. The CPU loops are the CUDA kernels' oracle, bit for bit.
void to_bf16_cpu(const float* src, bf16_t* dst, int64_t n);
void from_bf16_cpu(const bf16_t* src, float* dst, int64_t n);

#ifdef AXN_WITH_CUDA
void axpy_cuda(float* y, const float* x, int64_t n, float alpha);
void scale_cuda(float* x, int64_t n, float alpha);
void fill_cuda(float* x, int64_t n, float value);
void add_cuda(const float* x, const float* y, float* z, int64_t n);
// Two passes, deterministic: per-block partial sums in double (into axn::Scratch), then one block adds them.
void sum_squares_cuda(const float* x, float* out, int64_t n);
// op names the launch (the linear layers' bf16 operand copies launch it under their own names).
void to_bf16_cuda(const char* op, const float* src, bf16_t* dst, int64_t n);
void from_bf16_cuda(const char* op, const bf16_t* src, float* dst, int64_t n);
#endif

}  // namespace axn::ops

// ---- shared by the pointwise .cu files (relu, dropout, softmax_xent, sgd, elementwise) ----------------
#if defined(__CUDACC__)
#include <algorithm>

#include "../cuda/context.h"
#include "../cuda/launch.h"

namespace axn::ops::ew {

constexpr int kThreads = 256;

// Blocks for `work` items in a grid-stride loop: enough to fill an H100/H200 many times over (132 SMs ×
// 2048 threads = 1056 blocks of 256), capped; the loop covers the rest. At least 1.
inline unsigned gridFor(int64_t work) {
  return (unsigned)std::max<int64_t>(1, std::min<int64_t>((work + kThreads - 1) / kThreads, 8192));
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

__device__ __forceinline__ float4 ld4(const float* p, int64_t j) { return reinterpret_cast<const float4*>(p)[j]; }
__device__ __forceinline__ void st4(float* p, int64_t j, float4 v) { reinterpret_cast<float4*>(p)[j] = v; }
// Four bfloat16 activations (8 bytes), widened on load and rounded to nearest even on store.
__device__ __forceinline__ float4 ld4(const bf16_t* p, int64_t j) {
  const ushort4 u = reinterpret_cast<const ushort4*>(p)[j];
  return make_float4(from_bf16(u.x), from_bf16(u.y), from_bf16(u.z), from_bf16(u.w));
}
__device__ __forceinline__ void st4(bf16_t* p, int64_t j, float4 v) {
  reinterpret_cast<ushort4*>(p)[j] = make_ushort4(to_bf16(v.x), to_bf16(v.y), to_bf16(v.z), to_bf16(v.w));
}

// Runs f.scalar(i) for every i in [0, n), or, when `vec`, f.vec4(j) for the float4 chunks
// j in [0, n / 4) and f.scalar(i) for the tail i in [4·(n / 4), n). Each element is touched by exactly one
// thread, which reads before it writes, so in-place use (an output aliasing an input) is safe.
template <class F>
__global__ void map_kernel(F f, int64_t n, bool vec) {
  const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  if (vec) {
    const int64_t n4 = n >> 2;
    for (int64_t j = tid; j < n4; j += stride) f.vec4(j);
    for (int64_t i = (n4 << 2) + tid; i < n; i += stride) f.scalar(i);
  } else {
    for (int64_t i = tid; i < n; i += stride) f.scalar(i);
  }
}

template <class F>
void launch_map(const char* op, const F& f, int64_t n, bool vec) {
  static_assert(cuda::ListsDevicePointers<F>::value,
                "a map functor lists its device pointers: template <class V> void device_pointers(V&) const");
  if (n <= 0) return;
  const int64_t work = vec ? std::max<int64_t>(n >> 2, n & 3) : n;
  AXN_LAUNCH(op, map_kernel<F>, gridFor(work), kThreads, 0, f, n, vec);
}

}  // namespace axn::ops::ew
#endif
