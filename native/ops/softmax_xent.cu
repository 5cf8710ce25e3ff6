// Softmax + cross-entropy on CUDA. Forward: one block per row (C up to anything: each thread strides over
// the row), max and sum reduced with warp shuffles then across warps in shared memory; per-row losses go
// to scratch and one block averages them in a fixed order. Backward: a grid-stride map over N·C.
// See softmax_xent.h.
#include <cuda_runtime.h>
#include <math_constants.h>

#include <algorithm>
#include <cstdint>

#include "cuda/context.h"
#include "ops/elementwise.h"
#include "ops/softmax_xent.h"
#include "scratch.h"

namespace axn::ops {
namespace {

constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Block-wide max or sum of `v` (blockDim.x a multiple of 32, at most 1024), returned to every thread.
// `sh` holds one slot per warp; the trailing barrier lets the caller reuse it at once.
template <bool kMax, typename T>
__device__ T block_allreduce(T v, T* sh) {
  if constexpr (kMax) v = warp_max(v);
  else v = warp_sum(v);
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (lane == 0) sh[w] = v;
  __syncthreads();
  T r = sh[0];
  for (int i = 1; i < nw; i++) {
    if constexpr (kMax) r = fmaxf(r, sh[i]);
    else r += sh[i];
  }
  __syncthreads();
  return r;
}

__global__ void softmax_xent_forward_kernel(const float* __restrict__ logits, const int32_t* __restrict__ labels,
                                            float* __restrict__ probs, float* __restrict__ rowLoss, int C) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  const float* x = logits + row * C;
  float* p = probs + row * C;

  float m = -CUDART_INF_F;
  for (int c = threadIdx.x; c < C; c += blockDim.x) m = fmaxf(m, x[c]);
  m = block_allreduce<true>(m, sh);

  float s = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) s += expf(x[c] - m);
  s = block_allreduce<false>(s, sh);

  for (int c = threadIdx.x; c < C; c += blockDim.x) p[c] = expf(x[c] - m) / s;
  if (threadIdx.x == 0) {
    const int lab = labels[row];
    rowLoss[row] = (lab >= 0 && lab < C) ? logf(s) - (x[lab] - m) : CUDART_NAN_F;
  }
}

constexpr int kMeanThreads = 256;

// loss[0] = (Σ rowLoss) / N, in double, by one block in a fixed order (deterministic).
__global__ void mean_kernel(const float* __restrict__ rowLoss, int N, float* __restrict__ loss) {
  __shared__ double sh[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < N; i += blockDim.x) s += rowLoss[i];
  s = block_allreduce<false>(s, sh);
  if (threadIdx.x == 0) loss[0] = (float)(s / N);
}

// No __restrict__: dlogits may alias probs.
__global__ void softmax_xent_backward_kernel(const float* probs, const int32_t* __restrict__ labels, float* dlogits,
                                             int64_t total, int C, float scale) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t row = i / C;
    const int c = (int)(i - row * C);
    const int lab = labels[row];
    dlogits[i] = (lab >= 0 && lab < C) ? __fmul_rn(__fsub_rn(probs[i], c == lab ? 1.0f : 0.0f), scale)
                                       : CUDART_NAN_F;
  }
}

}  // namespace

void softmax_xent_forward_cuda(const float* logits, const int32_t* labels, float* loss, float* probs, int N, int C) {
  if (N <= 0 || C <= 0) return;  // TypeScript rejects these
  const int threads = C <= 32 ? 32 : C <= 64 ? 64 : C <= 128 ? 128 : 256;
  Scratch rowLoss(true, sizeof(float) * (size_t)N);
  AXN_LAUNCH("softmaxCrossEntropy", softmax_xent_forward_kernel, (unsigned)N, threads, 0, logits, labels, probs, rowLoss.as<float>(), C);
  AXN_LAUNCH("softmaxCrossEntropy", mean_kernel, 1, kMeanThreads, 0, rowLoss.as<float>(), N, loss);
}

void softmax_xent_backward_cuda(const float* probs, const int32_t* labels, float* dlogits, int N, int C,
                                float scale) {
  const int64_t total = (int64_t)N * C;
  if (total <= 0) return;
  AXN_LAUNCH("softmaxCrossEntropyBackward", softmax_xent_backward_kernel, ew::gridFor(total), ew::kThreads, 0, probs, labels, dlogits, total, C, scale);
}

}  // namespace axn::ops
