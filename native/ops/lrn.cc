// Local response normalisation on the CPU: the oracle for lrn.cu, with the same arithmetic in the same
// order (see lrn.h). The forward works plane by plane, threads over (n, c); the backward works image by
// image, threads over n: it computes each plane's scale, p and t once into per-thread buffers, then sums
// the t planes of each mirror window.
#include "ops/lrn.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace axn::ops {

namespace {
// scale^(−beta) as the CUDA kernels compute it; for beta = 0.75, rsqrt(s)·rsqrt(sqrt(s)) with rsqrt as
// 1/sqrt (the emulated device's rsqrtf), about 10× faster than pow.
inline float pow_neg_beta(float s, float beta) {
  if (beta == 0.75f) return (1.f / std::sqrt(s)) * (1.f / std::sqrt(std::sqrt(s)));
  return std::pow(s, -beta);
}

// Into sp[0, S): k + a_n · Σ_{cc ∈ [c0, c1]} x_cc², summed in ascending cc. xn: the image's first plane.
inline void window_scale(const float* xn, float* sp, int64_t S, int c0, int c1, float a_n, float k) {
  std::fill(sp, sp + S, 0.f);
  for (int cc = c0; cc <= c1; cc++) {
    const float* xq = xn + cc * S;
    for (int64_t s = 0; s < S; s++) sp[s] += xq[s] * xq[s];
  }
  for (int64_t s = 0; s < S; s++) sp[s] = k + a_n * sp[s];
}
}  // namespace

void lrn_forward_cpu(const float* x, float* y, int N, int C, int64_t S, int size, float alpha, float beta, float k) {
  const int before = size / 2, after = (size - 1) / 2;
  const float a_n = alpha / (float)size;
  const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    const int64_t n = p / C;
    const int c = (int)(p - n * C);
    float* yp = y + p * S;
    window_scale(x + n * C * S, yp, S, std::max(c - before, 0), std::min(c + after, C - 1), a_n, k);
    const float* xp = x + p * S;
    for (int64_t s = 0; s < S; s++) yp[s] = xp[s] * pow_neg_beta(yp[s], beta);
  }
}

void lrn_backward_cpu(const float* dy, const float* x, float* dx, int N, int C, int64_t S, int size, float alpha,
                      float beta, float k) {
  const int before = size / 2, after = (size - 1) / 2;
  const float a_n = alpha / (float)size;
  const float coef = 2.f * alpha * beta / (float)size;
  const int64_t plane = (int64_t)C * S;
#pragma omp parallel
  {
    // p and t of every plane of one image (reused across the thread's images), and one scale plane
    std::vector<float> pw(plane), tw(plane), sw(S);
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      const float* xn = x + n * plane;
      const float* dyn = dy + n * plane;
      for (int c = 0; c < C; c++) {
        float* sp = sw.data();
        window_scale(xn, sp, S, std::max(c - before, 0), std::min(c + after, C - 1), a_n, k);
        const float* xp = xn + c * S;
        const float* dyp = dyn + c * S;
        float* pp = pw.data() + c * S;
        float* tp = tw.data() + c * S;
        for (int64_t s = 0; s < S; s++) {
          pp[s] = pow_neg_beta(sp[s], beta);
          const float b = xp[s] * pp[s];
          tp[s] = dyp[s] * b / sp[s];
        }
      }
      for (int c = 0; c < C; c++) {
        // the channels whose window contains c
        const int c0 = std::max(c - after, 0), c1 = std::min(c + before, C - 1);
        float* dxp = dx + n * plane + c * S;
        std::fill(dxp, dxp + S, 0.f);
        for (int cc = c0; cc <= c1; cc++) {
          const float* tq = tw.data() + cc * S;
          for (int64_t s = 0; s < S; s++) dxp[s] += tq[s];
        }
        const float* xp = xn + c * S;
        const float* dyp = dyn + c * S;
        const float* pp = pw.data() + c * S;
        for (int64_t s = 0; s < S; s++) dxp[s] = dyp[s] * pp[s] - coef * xp[s] * dxp[s];
      }
    }
  }
}

}  // namespace axn::ops
