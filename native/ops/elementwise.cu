// Element-wise utilities on CUDA: grid-stride map kernels (float4 when aligned, scalar tail) and a
// deterministic two-pass sum of squares. See elementwise.h.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/context.h"
#include "ops/elementwise.h"
#include "scratch.h"

namespace axn::ops {
namespace {

using ew::ld4;
using ew::st4;

struct AxpyF {
  float* y;
  const float* x;
  float alpha;
  template <class V>
  void device_pointers(V& visit) const {
    visit(y);
    visit(x);
  }
  __device__ float f(float yv, float xv) const { return __fadd_rn(yv, __fmul_rn(alpha, xv)); }
  __device__ void scalar(int64_t i) const { y[i] = f(y[i], x[i]); }
  __device__ void vec4(int64_t j) const {
    const float4 a = ld4(y, j), b = ld4(x, j);
    st4(y, j, make_float4(f(a.x, b.x), f(a.y, b.y), f(a.z, b.z), f(a.w, b.w)));
  }
};

struct ScaleF {
  float* x;
  float alpha;
  template <class V>
  void device_pointers(V& visit) const {
    visit(x);
  }
  __device__ void scalar(int64_t i) const { x[i] = __fmul_rn(x[i], alpha); }
  __device__ void vec4(int64_t j) const {
    const float4 a = ld4(x, j);
    st4(x, j, make_float4(__fmul_rn(a.x, alpha), __fmul_rn(a.y, alpha), __fmul_rn(a.z, alpha), __fmul_rn(a.w, alpha)));
  }
};

struct FillF {
  float* x;
  float v;
  template <class V>
  void device_pointers(V& visit) const {
    visit(x);
  }
  __device__ void scalar(int64_t i) const { x[i] = v; }
  __device__ void vec4(int64_t j) const { st4(x, j, make_float4(v, v, v, v)); }
};

struct AddF {
  const float* x;
  const float* y;
  float* z;
  template <class V>
  void device_pointers(V& visit) const {
    visit(x);
    visit(y);
    visit(z);
  }
  __device__ void scalar(int64_t i) const { z[i] = __fadd_rn(x[i], y[i]); }
  __device__ void vec4(int64_t j) const {
    const float4 a = ld4(x, j), b = ld4(y, j);
    st4(z, j, make_float4(__fadd_rn(a.x, b.x), __fadd_rn(a.y, b.y), __fadd_rn(a.z, b.z), __fadd_rn(a.w, b.w)));
  }
};

// The bfloat16 casts: scalar grid-stride loops (a cast's 6 bytes per element are memory-bound either way).
__global__ void to_bf16_kernel(const float* __restrict__ src, bf16_t* __restrict__ dst, int64_t n) {
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[t] = to_bf16(__ldg(src + t));
}

__global__ void from_bf16_kernel(const bf16_t* __restrict__ src, float* __restrict__ dst, int64_t n) {
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[t] = from_bf16(__ldg(src + t));
}

constexpr int kSumThreads = 256;
constexpr int kSumMaxBlocks = 1024;

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum of a value held by every thread of a kSumThreads block; the result is valid in thread 0.
__device__ double block_sum(double v) {
  __shared__ double warps[kSumThreads / 32];
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) warps[w] = v;
  __syncthreads();
  double s = 0.0;
  if (threadIdx.x == 0)
    for (int i = 0; i < kSumThreads / 32; i++) s += warps[i];
  return s;
}

// Pass 1: block b writes Σ x[i]² over its grid-stride share into partial[b] (double).
__global__ void sum_squares_partial_kernel(const float* __restrict__ x, double* __restrict__ partial, int64_t n,
                                           bool vec) {
  const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  double s = 0.0;
  int64_t start = 0;
  if (vec) {
    const int64_t n4 = n >> 2;
    for (int64_t j = tid; j < n4; j += stride) {
      const float4 v = ld4(x, j);
      s += (double)v.x * v.x + (double)v.y * v.y + (double)v.z * v.z + (double)v.w * v.w;
    }
    start = n4 << 2;
  }
  for (int64_t i = start + tid; i < n; i += stride) s += (double)x[i] * x[i];
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Pass 2: one block adds the `blocks` partial sums, in a fixed order, and rounds once to float.
__global__ void sum_squares_final_kernel(const double* __restrict__ partial, int blocks, float* __restrict__ out) {
  double s = 0.0;
  for (int i = threadIdx.x; i < blocks; i += blockDim.x) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) out[0] = (float)s;
}

}  // namespace

void axpy_cuda(float* y, const float* x, int64_t n, float alpha) {
  ew::launch_map("axpy", AxpyF{y, x, alpha}, n, ew::aligned16(y) && ew::aligned16(x));
}

void scale_cuda(float* x, int64_t n, float alpha) {
  ew::launch_map("scale", ScaleF{x, alpha}, n, ew::aligned16(x));
}

void fill_cuda(float* x, int64_t n, float value) {
  ew::launch_map("fill", FillF{x, value}, n, ew::aligned16(x));
}

void add_cuda(const float* x, const float* y, float* z, int64_t n) {
  ew::launch_map("add", AddF{x, y, z}, n, ew::aligned16(x) && ew::aligned16(y) && ew::aligned16(z));
}

void to_bf16_cuda(const char* op, const float* src, bf16_t* dst, int64_t n) {
  if (n <= 0) return;
  AXN_LAUNCH(op, to_bf16_kernel, cuda::gridFor(n), cuda::kThreads, 0, src, dst, n);
}

void from_bf16_cuda(const char* op, const bf16_t* src, float* dst, int64_t n) {
  if (n <= 0) return;
  AXN_LAUNCH(op, from_bf16_kernel, cuda::gridFor(n), cuda::kThreads, 0, src, dst, n);
}

void sum_squares_cuda(const float* x, float* out, int64_t n) {
  const bool vec = ew::aligned16(x);
  const int64_t work = vec ? std::max<int64_t>(n >> 2, n & 3) : n;
  const int blocks = (int)std::max<int64_t>(1, std::min<int64_t>((work + kSumThreads - 1) / kSumThreads, kSumMaxBlocks));
  Scratch partial(true, sizeof(double) * blocks);
  AXN_LAUNCH("sumSquares", sum_squares_partial_kernel, blocks, kSumThreads, 0, x, partial.as<double>(), n, vec);
  AXN_LAUNCH("sumSquares", sum_squares_final_kernel, 1, kSumThreads, 0, partial.as<double>(), blocks, out);
}

}  // namespace axn::ops
