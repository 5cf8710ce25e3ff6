// Local response normalisation on the CPU: the plain oracle for lrn.cu. Each (n, c) plane sums its
// window's planes directly (no running sum), so it is obviously right; threads over (n, c).
#include "ops/lrn.h"

#include <algorithm>
#include <cmath>

namespace axn::ops {

namespace {
// s^(−β). The paper's β = 0.75 takes two square roots and a division (a few ulp, ~10× faster than pow,
// which dominated the small arch's LRN time on the CPU); other β use pow.
inline float pow_neg_beta(float s, float beta) {
  if (beta == 0.75f) {
    const float r = std::sqrt(s);
    return 1.f / (r * std::sqrt(r));
  }
  return std::pow(s, -beta);
}
}  // namespace

void lrn_forward_cpu(const float* x, float* y, float* scale, int N, int C, int64_t S, int size, float alpha,
                     float beta, float k) {
  const int before = size / 2, after = (size - 1) / 2;
  const float a_n = alpha / (float)size;
  const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    const int64_t n = p / C;
    const int c = (int)(p - n * C);
    const int c0 = std::max(c - before, 0), c1 = std::min(c + after, C - 1);
    float* sp = scale + p * S;
    std::fill(sp, sp + S, 0.f);
    for (int cc = c0; cc <= c1; cc++) {
      const float* xq = x + (n * C + cc) * S;
      for (int64_t s = 0; s < S; s++) sp[s] += xq[s] * xq[s];
    }
    const float* xp = x + p * S;
    float* yp = y + p * S;
    for (int64_t s = 0; s < S; s++) {
      sp[s] = k + a_n * sp[s];
      yp[s] = xp[s] * pow_neg_beta(sp[s], beta);
    }
  }
}

void lrn_backward_cpu(const float* dy, const float* x, const float* y, const float* scale, float* dx, int N, int C,
                      int64_t S, int size, float alpha, float beta, float k) {
  const int before = size / 2, after = (size - 1) / 2;
  const float coef = 2.f * alpha * beta / (float)size;
  const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    const int64_t n = p / C;
    const int c = (int)(p - n * C);
    // Channels c' whose window contains c.
    const int c0 = std::max(c - after, 0), c1 = std::min(c + before, C - 1);
    float* dxp = dx + p * S;
    std::fill(dxp, dxp + S, 0.f);
    for (int cc = c0; cc <= c1; cc++) {
      const int64_t q = (n * C + cc) * S;
      for (int64_t s = 0; s < S; s++) dxp[s] += dy[q + s] * y[q + s] / scale[q + s];
    }
    const float* xp = x + p * S;
    const float* dyp = dy + p * S;
    const float* sp = scale + p * S;
    for (int64_t s = 0; s < S; s++) dxp[s] = dyp[s] * pow_neg_beta(sp[s], beta) - coef * xp[s] * dxp[s];
  }
}

}  // namespace axn::ops
