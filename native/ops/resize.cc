// Bilinear resize on the CPU: the plain oracle for resize.cu. The taps of every output row and column are
// computed once per call (resize.h), then each plane is an independent loop (OpenMP over planes).
#include <cstring>
#include <vector>

#include "ops/resize.h"

namespace axn::ops {
namespace {

std::vector<ResizeTap> taps(int in, int out, bool alignCorners) {
  const float scale = resize_scale(in, out, alignCorners);
  std::vector<ResizeTap> t((size_t)out);
  for (int o = 0; o < out; o++) t[(size_t)o] = resize_tap(o, in, out, scale, alignCorners);
  return t;
}

}  // namespace

void resize_bilinear_forward_cpu(const float* x, float* y, int N, int C, int H, int W, int Ho, int Wo,
                                 bool alignCorners) {
  const int64_t planes = (int64_t)N * C;
  if (planes == 0 || Ho == 0 || Wo == 0) return;
  const std::vector<ResizeTap> rows = taps(H, Ho, alignCorners), cols = taps(W, Wo, alignCorners);
  const ResizeTap* rt = rows.data();
  const ResizeTap* ct = cols.data();
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    const float* xp = x + p * (int64_t)H * W;
    float* yp = y + p * (int64_t)Ho * Wo;
    for (int oh = 0; oh < Ho; oh++) {
      const ResizeTap r = rt[oh];
      const float* x0 = xp + (int64_t)r.i0 * W;
      const float* x1 = xp + (int64_t)r.i1 * W;
      float* yr = yp + (int64_t)oh * Wo;
      for (int ow = 0; ow < Wo; ow++) {
        const ResizeTap c = ct[ow];
        const float t0 = c.l0 * x0[c.i0] + c.l1 * x0[c.i1];
        const float t1 = c.l0 * x1[c.i0] + c.l1 * x1[c.i1];
        yr[ow] = r.l0 * t0 + r.l1 * t1;
      }
    }
  }
}

void resize_bilinear_backward_cpu(const float* dy, float* dx, int N, int C, int H, int W, int Ho, int Wo,
                                  bool alignCorners) {
  const int64_t planes = (int64_t)N * C;
  if (planes == 0) return;
  const std::vector<ResizeTap> rows = taps(H, Ho, alignCorners), cols = taps(W, Wo, alignCorners);
  const ResizeTap* rt = rows.data();
  const ResizeTap* ct = cols.data();
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    float* dxp = dx + p * (int64_t)H * W;
    const float* dyp = dy + p * (int64_t)Ho * Wo;
    std::memset(dxp, 0, sizeof(float) * (size_t)H * (size_t)W);
    for (int oh = 0; oh < Ho; oh++) {
      const ResizeTap r = rt[oh];
      float* d0 = dxp + (int64_t)r.i0 * W;
      float* d1 = dxp + (int64_t)r.i1 * W;
      const float* g = dyp + (int64_t)oh * Wo;
      for (int ow = 0; ow < Wo; ow++) {
        const ResizeTap c = ct[ow];
        // Order 00, 01, 10, 11: the CUDA gather adds in the same order (resize.h).
        d0[c.i0] += (r.l0 * c.l0) * g[ow];
        d0[c.i1] += (r.l0 * c.l1) * g[ow];
        d1[c.i0] += (r.l1 * c.l0) * g[ow];
        d1[c.i1] += (r.l1 * c.l1) * g[ow];
      }
    }
  }
}

}  // namespace axn::ops
