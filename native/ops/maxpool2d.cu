// Max pooling on CUDA. Memory-bound: one thread per output (forward) or per input element (backward),
// consecutive threads on consecutive columns so loads and stores coalesce; grid-stride loops over int64
// flat indices (AlexNet batch 128 has 37M conv1 outputs, and larger inputs must not overflow).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/context.h"
#include "cuda/launch.h"
#include "ops/maxpool2d.h"

namespace axn::ops {
namespace {

using cuda::gridFor;
using cuda::kThreads;

template <typename T>
__global__ void maxpool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int32_t* __restrict__ argmax,
                                         int64_t total, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                                         int Ho, int Wo) {
  const int ohw = Ho * Wo;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = idx / ohw;  // (n, c) plane
    const int r = (int)(idx - p * ohw);
    const int oh = r / Wo;
    const int ow = r - oh * Wo;
    const int h0 = max(oh * sh - ph, 0);
    const int h1 = min(oh * sh - ph + kh, H);
    const int w0 = max(ow * sw - pw, 0);
    const int w1 = min(ow * sw - pw + kw, W);
    const T* xp = x + p * H * W;
    float best = -INFINITY;
    int at = h0 * W + w0;
    for (int ih = h0; ih < h1; ih++) {
      for (int iw = w0; iw < w1; iw++) {
        const float v = load_act(xp[ih * W + iw]);
        if (v > best || isnan(v)) {
          best = v;
          at = ih * W + iw;
        }
      }
    }
    store_act(y + idx, best);
    argmax[idx] = at;
  }
}

// One thread per input element: the windows containing row ih are oh in
// [ceil((ih + ph - kh + 1) / sh), floor((ih + ph) / sh)] ∩ [0, Ho), and likewise for columns.
__global__ void maxpool2d_backward_kernel(const float* __restrict__ dy, const int32_t* __restrict__ argmax,
                                          float* __restrict__ dx, int64_t total, int H, int W, int kh, int kw,
                                          int sh, int sw, int ph, int pw, int Ho, int Wo) {
  const int hw = H * W;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = idx / hw;
    const int r = (int)(idx - p * hw);
    const int ih = r / W;
    const int iw = r - ih * W;
    const int th = ih + ph - kh + 1;
    const int tw = iw + pw - kw + 1;
    const int oh0 = th <= 0 ? 0 : (th + sh - 1) / sh;
    const int oh1 = min((ih + ph) / sh, Ho - 1);
    const int ow0 = tw <= 0 ? 0 : (tw + sw - 1) / sw;
    const int ow1 = min((iw + pw) / sw, Wo - 1);
    const int64_t base = p * Ho * Wo;
    float g = 0.f;
    for (int oh = oh0; oh <= oh1; oh++) {
      for (int ow = ow0; ow <= ow1; ow++) {
        const int64_t o = base + oh * Wo + ow;
        if (argmax[o] == r) g += dy[o];
      }
    }
    dx[idx] = g;
  }
}

__global__ void maxpool2d_backward_scatter_kernel(const float* __restrict__ dy, const int32_t* __restrict__ argmax,
                                                  float* __restrict__ dx, int64_t total, int hw, int ohw) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = idx / ohw;
    const int32_t i = argmax[idx];
    if (i >= 0 && i < hw) atomicAdd(dx + p * hw + i, dy[idx]);
  }
}

}  // namespace

template <typename T>
void maxpool2d_forward_cuda(const T* x, T* y, int32_t* argmax, int N, int C, int H, int W, int kh, int kw, int sh,
                            int sw, int ph, int pw, int Ho, int Wo) {
  const int64_t total = (int64_t)N * C * Ho * Wo;
  if (total == 0) return;
  AXN_LAUNCH("maxpool2d_forward", maxpool2d_forward_kernel<T>, gridFor(total), kThreads, 0, x, y, argmax, total, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo);
}
template void maxpool2d_forward_cuda<float>(const float*, float*, int32_t*, int, int, int, int, int, int, int, int,
                                            int, int, int, int);
template void maxpool2d_forward_cuda<bf16_t>(const bf16_t*, bf16_t*, int32_t*, int, int, int, int, int, int, int, int,
                                             int, int, int, int);

void maxpool2d_backward_cuda(const float* dy, const int32_t* argmax, float* dx, int N, int C, int H, int W, int kh,
                             int kw, int sh, int sw, int ph, int pw, int Ho, int Wo) {
  const int64_t total = (int64_t)N * C * H * W;
  if (total == 0) return;
  AXN_LAUNCH("maxpool2d_backward", maxpool2d_backward_kernel, gridFor(total), kThreads, 0, dy, argmax, dx, total, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo);
}

void maxpool2d_backward_scatter_cuda(const float* dy, const int32_t* argmax, float* dx, int N, int C, int H, int W,
                                     int Ho, int Wo) {
  const int64_t total = (int64_t)N * C * Ho * Wo;
  cuda::memsetZero(dx, sizeof(float) * (size_t)N * C * H * W);
  if (total == 0) return;
  AXN_LAUNCH("maxpool2d_backward", maxpool2d_backward_scatter_kernel, gridFor(total), kThreads, 0, dy, argmax, dx, total, H * W, Ho * Wo);
}

}  // namespace axn::ops
