// Bilinear resize on CUDA. Forward: one thread per output element; backward: one thread per input element, a
// gather over the outputs that tap it (no atomics, deterministic, bit-equal to the CPU). Memory-bound;
// consecutive threads on consecutive columns; grid-stride loops over int64 flat indices. The taps are
// recomputed per thread (a few double operations) rather than tabulated: no scratch, no extra launch.
// Products and sums use explicit-rounding intrinsics so nvcc does not contract them into FMAs, which keeps
// the results bit-identical to the CPU oracle (resize.cc) on hosts that do not contract either (x86-64).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/context.h"
#include "cuda/launch.h"
#include "ops/resize.h"

namespace axn::ops {
namespace {

using cuda::gridFor;
using cuda::kThreads;

__global__ void resize_bilinear_forward_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t total,
                                               int H, int W, int Ho, int Wo, float sh, float sw,
                                               bool alignCorners) {
  const int64_t ohw = (int64_t)Ho * Wo;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = idx / ohw;
    const int64_t rem = idx - p * ohw;
    const int oh = (int)(rem / Wo);
    const int ow = (int)(rem - (int64_t)oh * Wo);
    const ResizeTap r = resize_tap(oh, H, Ho, sh, alignCorners);
    const ResizeTap c = resize_tap(ow, W, Wo, sw, alignCorners);
    const float* xp = x + p * ((int64_t)H * W);
    const float* x0 = xp + (int64_t)r.i0 * W;
    const float* x1 = xp + (int64_t)r.i1 * W;
    const float t0 = __fadd_rn(__fmul_rn(c.l0, x0[c.i0]), __fmul_rn(c.l1, x0[c.i1]));
    const float t1 = __fadd_rn(__fmul_rn(c.l0, x1[c.i0]), __fmul_rn(c.l1, x1[c.i1]));
    y[idx] = __fadd_rn(__fmul_rn(r.l0, t0), __fmul_rn(r.l1, t1));
  }
}

__device__ __forceinline__ float addTerm(float g, float a, float b, float dy) {
  return __fadd_rn(g, __fmul_rn(__fmul_rn(a, b), dy));
}

__global__ void resize_bilinear_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx,
                                                int64_t total, int H, int W, int Ho, int Wo, float sh, float sw,
                                                bool alignCorners) {
  const int64_t hw = (int64_t)H * W;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t p = idx / hw;
    const int64_t rem = idx - p * hw;
    const int ih = (int)(rem / W);
    const int iw = (int)(rem - (int64_t)ih * W);
    // Outputs with a tap on row ih have i0 ∈ {ih − 1, ih} (i1 is i0 + 1 or i0): a contiguous range of oh.
    const int oh0 = resize_first_output(ih - 1, H, Ho, sh, alignCorners);
    const int oh1 = resize_first_output(ih + 1, H, Ho, sh, alignCorners);
    const int ow0 = resize_first_output(iw - 1, W, Wo, sw, alignCorners);
    const int ow1 = resize_first_output(iw + 1, W, Wo, sw, alignCorners);
    const float* dyp = dy + p * ((int64_t)Ho * Wo);
    float g = 0.f;
    // Outputs in raster order, taps in the order 00, 01, 10, 11: the CPU scatter's order of additions.
    for (int oh = oh0; oh < oh1; oh++) {
      const ResizeTap r = resize_tap(oh, H, Ho, sh, alignCorners);
      const bool r0 = r.i0 == ih, r1 = r.i1 == ih;
      if (!r0 && !r1) continue;
      const float* dyr = dyp + (int64_t)oh * Wo;
      for (int ow = ow0; ow < ow1; ow++) {
        const ResizeTap c = resize_tap(ow, W, Wo, sw, alignCorners);
        const bool c0 = c.i0 == iw, c1 = c.i1 == iw;
        if (!c0 && !c1) continue;
        const float d = dyr[ow];
        if (r0 && c0) g = addTerm(g, r.l0, c.l0, d);
        if (r0 && c1) g = addTerm(g, r.l0, c.l1, d);
        if (r1 && c0) g = addTerm(g, r.l1, c.l0, d);
        if (r1 && c1) g = addTerm(g, r.l1, c.l1, d);
      }
    }
    dx[idx] = g;
  }
}

}  // namespace

void resize_bilinear_forward_cuda(const float* x, float* y, int N, int C, int H, int W, int Ho, int Wo,
                                  bool alignCorners) {
  const int64_t total = (int64_t)N * C * Ho * Wo;
  if (total == 0) return;
  const float sh = resize_scale(H, Ho, alignCorners), sw = resize_scale(W, Wo, alignCorners);
  AXN_LAUNCH("resize_bilinear_forward", resize_bilinear_forward_kernel, gridFor(total), kThreads, 0, x, y, total, H, W, Ho, Wo, sh, sw, alignCorners);
}

void resize_bilinear_backward_cuda(const float* dy, float* dx, int N, int C, int H, int W, int Ho, int Wo,
                                   bool alignCorners) {
  const int64_t total = (int64_t)N * C * H * W;
  if (total == 0) return;
  const float sh = resize_scale(H, Ho, alignCorners), sw = resize_scale(W, Wo, alignCorners);
  AXN_LAUNCH("resize_bilinear_backward", resize_bilinear_backward_kernel, gridFor(total), kThreads, 0, dy, dx, total, H, W, Ho, Wo, sh, sw, alignCorners);
}

}  // namespace axn::ops
