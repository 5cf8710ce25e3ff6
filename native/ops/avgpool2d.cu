// Adaptive average pooling on CUDA: one thread per output (forward) or per input element (backward, a
// gather over the outputs whose windows contain it — no atomics, deterministic). Memory-bound; consecutive
// threads on consecutive columns; grid-stride loops over int64 flat indices.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/context.h"
#include "cuda/launch.h"
#include "ops/avgpool2d.h"

namespace axn::ops {
namespace {

using cuda::gridFor;
using cuda::kThreads;

__global__ void adaptive_avgpool2d_forward_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t total,
                                                  int H, int W, int Ho, int Wo) {
  const int ohw = Ho * Wo;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = idx / ohw;
    const int r = (int)(idx - p * ohw);
    const int oh = r / Wo;
    const int ow = r - oh * Wo;
    const int h0 = adaptive_start(oh, Ho, H), h1 = adaptive_end(oh, Ho, H);
    const int w0 = adaptive_start(ow, Wo, W), w1 = adaptive_end(ow, Wo, W);
    const float* xp = x + p * H * W;
    float sum = 0.f;
    for (int ih = h0; ih < h1; ih++)
      for (int iw = w0; iw < w1; iw++) sum += xp[ih * W + iw];
    y[idx] = sum / (float)((h1 - h0) * (w1 - w0));
  }
}

__global__ void adaptive_avgpool2d_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx,
                                                   int64_t total, int H, int W, int Ho, int Wo) {
  const int hw = H * W;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = idx / hw;
    const int r = (int)(idx - p * hw);
    const int ih = r / W;
    const int iw = r - ih * W;
    // Outputs whose windows contain (ih, iw): the inverse map (avgpool2d.h), in raster order as the CPU.
    const int oh0 = adaptive_start(ih, H, Ho), oh1 = adaptive_end(ih, H, Ho);
    const int ow0 = adaptive_start(iw, W, Wo), ow1 = adaptive_end(iw, W, Wo);
    const float* dyp = dy + p * Ho * Wo;
    float g = 0.f;
    for (int oh = oh0; oh < oh1; oh++) {
      const int kh = adaptive_end(oh, Ho, H) - adaptive_start(oh, Ho, H);
      for (int ow = ow0; ow < ow1; ow++) {
        const int kw = adaptive_end(ow, Wo, W) - adaptive_start(ow, Wo, W);
        g += dyp[oh * Wo + ow] / (float)(kh * kw);
      }
    }
    dx[idx] = g;
  }
}

}  // namespace

void adaptive_avgpool2d_forward_cuda(const float* x, float* y, int N, int C, int H, int W, int Ho, int Wo) {
  const int64_t total = (int64_t)N * C * Ho * Wo;
  if (total == 0) return;
  AXN_LAUNCH("adaptive_avgpool2d_forward", adaptive_avgpool2d_forward_kernel, gridFor(total), kThreads, 0, x, y, total, H, W, Ho, Wo);
}

void adaptive_avgpool2d_backward_cuda(const float* dy, float* dx, int N, int C, int H, int W, int Ho, int Wo) {
  const int64_t total = (int64_t)N * C * H * W;
  if (total == 0) return;
  AXN_LAUNCH("adaptive_avgpool2d_backward", adaptive_avgpool2d_backward_kernel, gridFor(total), kThreads, 0, dy, dx, total, H, W, Ho, Wo);
}

}  // namespace axn::ops
