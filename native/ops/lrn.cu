// Local response normalisation on CUDA: one thread per element, no serial walk over C. Memory-bound: the
// forward reads x and writes y; the backward reads x and dy and writes dx (scale and b are recomputed
// from x, see lrn.h). A thread sums its own window of at most `size` channels (the backward: the scales
// of the ≤ size channels whose window holds its own, ≤ 2·size − 1 channels of x); consecutive threads
// take consecutive s, so every load coalesces, and the neighbouring channels' threads load the same
// lines, which L2 serves: DRAM sees each tensor about once. Float sums over the short window, rounded
// operations (__fmul_rn, __fadd_rn) so that nvcc contracts nothing: the arithmetic is lrn.h's, the
// CPU oracle's.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/context.h"
#include "cuda/launch.h"
#include "ops/lrn.h"

#if defined(__USE_FAST_MATH__)
#error "lrn.cu: --use_fast_math changes powf and sqrtf and flushes subnormals; the LRN kernels' arithmetic (lrn.h) and their tests assume IEEE single operations"
#endif

namespace axn::ops {
namespace {

using cuda::gridFor;
using cuda::kThreads;

struct LrnArgs {
  int C;
  int64_t S;
  int before, after;  // win(c) = [c − before, c + after]
  float a_n, beta, k, coef;
};

__device__ __forceinline__ float pow_neg_beta(float s, float beta) {
  if (beta == 0.75f) return __fmul_rn(rsqrtf(s), rsqrtf(sqrtf(s)));
  return powf(s, -beta);
}

// x's element through the read-only cache, widened.
__device__ __forceinline__ float ldx(const float* p) { return __ldg(p); }
__device__ __forceinline__ float ldx(const bf16_t* p) { return from_bf16(__ldg(p)); }

// scale of channel c at the column whose channel 0 is xn[0]: k + a_n · Σ_{win(c)} x², ascending.
template <typename T>
__device__ __forceinline__ float window_scale(const T* __restrict__ xn, int c, const LrnArgs& a) {
  const int lo = max(c - a.before, 0);
  int hi = min(c + a.after, a.C - 1);
  if (AXN_PLANTED(kPlantLrnShortWindow)) hi -= 1;  // tests only: a window one channel short
  float sum = 0.f;
  for (int cc = lo; cc <= hi; cc++) {
    const float v = ldx(xn + cc * a.S);
    sum = __fadd_rn(sum, __fmul_rn(v, v));
  }
  return __fadd_rn(a.k, __fmul_rn(a.a_n, sum));
}

template <typename T>
__global__ void lrn_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t total, LrnArgs a) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t col = idx / a.S, s = idx - col * a.S;  // col = n·C + c
    const int64_t n = col / a.C;
    const int c = (int)(col - n * a.C);
    const T* xn = x + n * a.C * a.S + s;
    const float sc = window_scale(xn, c, a);
    store_act(y + idx, __fmul_rn(ldx(x + idx), pow_neg_beta(sc, a.beta)));
  }
}

template <typename TX>
__global__ void lrn_backward_kernel(const float* __restrict__ dy, const TX* __restrict__ x, float* __restrict__ dx,
                                    int64_t total, LrnArgs a) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t col = idx / a.S, s = idx - col * a.S;
    const int64_t n = col / a.C;
    const int c = (int)(col - n * a.C);
    const int64_t off = n * a.C * a.S + s;  // element (n, 0, s)
    const TX* xn = x + off;
    // T = Σ t_{c'} over the channels c' whose window contains c: [c − after, c + before], ascending
    float T = 0.f, pc = 0.f;
    const int lo = max(c - a.after, 0), hi = min(c + a.before, a.C - 1);
    for (int cc = lo; cc <= hi; cc++) {
      const float sc = window_scale(xn, cc, a);
      const float p = pow_neg_beta(sc, a.beta);
      if (cc == c) pc = p;
      const float b = __fmul_rn(ldx(xn + cc * a.S), p);
      T = __fadd_rn(T, __fdiv_rn(__fmul_rn(__ldg(dy + off + cc * a.S), b), sc));
    }
    dx[idx] = __fsub_rn(__fmul_rn(__ldg(dy + idx), pc), __fmul_rn(__fmul_rn(a.coef, ldx(x + idx)), T));
  }
}

LrnArgs args(int C, int64_t S, int size, float alpha, float beta, float k) {
  // the same float expressions as the CPU's (lrn.cc)
  return LrnArgs{C, S, size / 2, (size - 1) / 2, alpha / (float)size, beta, k, 2.f * alpha * beta / (float)size};
}


// ---- The legacy path (lrn.h; setLrnPath('legacy')): the kernels before issue 19's lever 2, kept as they
// were for the A/B. One thread per (n, s) column walks the C channels with a running window sum in double;
// the forward stores scale beside y, the backward reads dy, x, y and scale.
__global__ void lrn_forward_legacy_kernel(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ scale,
                                          int64_t columns, int C, int64_t S, int before, int after, float a_n,
                                          float beta, float k) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < columns;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t n = idx / S;
    const int64_t base = n * C * S + (idx - n * S);  // element (n, 0, s)
    double sum = 0.0;                                 // Σ a² over win(c) = [c − before, c + after]
    for (int c = 0; c <= min(after, C - 1); c++) {
      const double v = x[base + c * S];
      sum += v * v;
    }
    for (int c = 0; c < C; c++) {
      const int64_t at = base + c * S;
      const float sc = k + a_n * (float)sum;
      scale[at] = sc;
      y[at] = x[at] * powf(sc, -beta);
      const int cin = c + 1 + after, cout = c - before;  // win(c + 1) = win(c) + {cin} − {cout}
      if (cin < C) {
        const double v = x[base + cin * S];
        sum += v * v;
      }
      if (cout >= 0) {
        const double v = x[base + cout * S];
        sum -= v * v;
      }
    }
  }
}

__global__ void lrn_backward_legacy_kernel(const float* __restrict__ dy, const float* __restrict__ x,
                                           const float* __restrict__ y, const float* __restrict__ scale,
                                           float* __restrict__ dx, int64_t columns, int C, int64_t S, int before,
                                           int after, float coef, float beta) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < columns;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t n = idx / S;
    const int64_t base = n * C * S + (idx - n * S);
    // Σ dy·b/scale over the channels c' whose window contains c: [c − after, c + before].
    double sum = 0.0;
    for (int c = 0; c <= min(before, C - 1); c++) {
      const int64_t q = base + c * S;
      sum += dy[q] * y[q] / scale[q];
    }
    for (int c = 0; c < C; c++) {
      const int64_t at = base + c * S;
      dx[at] = dy[at] * powf(scale[at], -beta) - coef * x[at] * (float)sum;
      const int cin = c + 1 + before, cout = c - after;
      if (cin < C) {
        const int64_t q = base + cin * S;
        sum += dy[q] * y[q] / scale[q];
      }
      if (cout >= 0) {
        const int64_t q = base + cout * S;
        sum -= dy[q] * y[q] / scale[q];
      }
    }
  }
}

}  // namespace

template <typename T>
void lrn_forward_cuda(const T* x, T* y, int N, int C, int64_t S, int size, float alpha, float beta, float k) {
  const int64_t total = (int64_t)N * C * S;
  if (total == 0) return;
  AXN_LAUNCH("lrn_forward", lrn_forward_kernel<T>, gridFor(total), kThreads, 0, x, y, total, args(C, S, size, alpha, beta, k));
}

template <typename T>
void lrn_backward_cuda(const float* dy, const T* x, float* dx, int N, int C, int64_t S, int size, float alpha,
                       float beta, float k) {
  const int64_t total = (int64_t)N * C * S;
  if (total == 0) return;
  AXN_LAUNCH("lrn_backward", lrn_backward_kernel<T>, gridFor(total), kThreads, 0, dy, x, dx, total, args(C, S, size, alpha, beta, k));
}

void lrn_forward_legacy_cuda(const float* x, float* y, float* scale, int N, int C, int64_t S, int size, float alpha,
                             float beta, float k) {
  const int64_t columns = (int64_t)N * S;
  if (columns == 0 || C == 0) return;
  AXN_LAUNCH("lrn_forward.legacy", lrn_forward_legacy_kernel, gridFor(columns), kThreads, 0, x, y, scale, columns, C, S, size / 2, (size - 1) / 2, alpha / (float)size, beta, k);
}

void lrn_backward_legacy_cuda(const float* dy, const float* x, const float* y, const float* scale, float* dx, int N,
                              int C, int64_t S, int size, float alpha, float beta, float k) {
  const int64_t columns = (int64_t)N * S;
  if (columns == 0 || C == 0) return;
  AXN_LAUNCH("lrn_backward.legacy", lrn_backward_legacy_kernel, gridFor(columns), kThreads, 0, dy, x, y, scale, dx, columns, C, S, size / 2, (size - 1) / 2, 2.f * alpha * beta / (float)size, beta);
}

template void lrn_forward_cuda<float>(const float*, float*, int, int, int64_t, int, float, float, float);
template void lrn_forward_cuda<bf16_t>(const bf16_t*, bf16_t*, int, int, int64_t, int, float, float, float);
template void lrn_backward_cuda<float>(const float*, const float*, float*, int, int, int64_t, int, float, float, float);
template void lrn_backward_cuda<bf16_t>(const float*, const bf16_t*, float*, int, int, int64_t, int, float, float,
                                        float);

}  // namespace axn::ops
