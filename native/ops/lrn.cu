// Local response normalisation on CUDA. Memory-bound (forward reads x, writes y and scale; backward reads
// dy, x, y, scale, writes dx): one thread per (n, s) column walks the C channels with a running window sum,
// so each element is loaded once on entering the window and once more (from cache) on leaving it. Threads
// with consecutive s touch consecutive addresses: every load and store coalesces. The running sum is kept
// in double: a float square is exact in double, so adding and later subtracting it does not drift over
// 256 channels the way a float running sum would when large values leave the window.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/context.h"
#include "cuda/launch.h"
#include "ops/lrn.h"

namespace axn::ops {
namespace {

using cuda::gridFor;
using cuda::kThreads;

__global__ void lrn_forward_kernel(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ scale,
                                   int64_t columns, int C, int64_t S, int before, int after, float a_n, float beta,
                                   float k) {
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

__global__ void lrn_backward_kernel(const float* __restrict__ dy, const float* __restrict__ x,
                                    const float* __restrict__ y, const float* __restrict__ scale,
                                    float* __restrict__ dx, int64_t columns, int C, int64_t S, int before, int after,
                                    float coef, float beta) {
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

void lrn_forward_cuda(const float* x, float* y, float* scale, int N, int C, int64_t S, int size, float alpha,
                      float beta, float k) {
  const int64_t columns = (int64_t)N * S;
  if (columns == 0 || C == 0) return;
  AXN_LAUNCH("lrn_forward", lrn_forward_kernel, gridFor(columns), kThreads, 0, x, y, scale, columns, C, S, size / 2, (size - 1) / 2, alpha / (float)size, beta, k);
}

void lrn_backward_cuda(const float* dy, const float* x, const float* y, const float* scale, float* dx, int N, int C,
                       int64_t S, int size, float alpha, float beta, float k) {
  const int64_t columns = (int64_t)N * S;
  if (columns == 0 || C == 0) return;
  AXN_LAUNCH("lrn_backward", lrn_backward_kernel, gridFor(columns), kThreads, 0, dy, x, y, scale, dx, columns, C, S, size / 2, (size - 1) / 2, 2.f * alpha * beta / (float)size, beta);
}

}  // namespace axn::ops
