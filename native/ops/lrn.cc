// Local response normalisation on the CPU: the oracle for lrn.cu, with the same arithmetic in the same
// order (see lrn.h). The forward works plane by plane, threads over (n, c); the backward works on tiles of
// columns of one image, threads over (n, tile): it computes each channel's scale, p and t once into
// per-thread buffers, then sums the t rows of each mirror window.
#include "ops/lrn.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include <omp.h>

namespace axn::ops {

namespace {
// scale^(−beta) as the CUDA kernels compute it; for beta = 0.75, rsqrt(s)·rsqrt(sqrt(s)) with rsqrt as
// 1/sqrt (the emulated device's rsqrtf), about 10× faster than pow.
// The loops are instantiated for beta = 0.75 apart (kP075), so that they vectorise (sqrt and division
// have vector instructions; the build's -fno-math-errno lets the compiler use them).
template <bool kP075>
inline float pow_neg_beta(float s, float beta) {
  if constexpr (kP075) return (1.f / std::sqrt(s)) * (1.f / std::sqrt(std::sqrt(s)));
  else return std::pow(s, -beta);
}

// Into sp[0, S): k + a_n · Σ_{cc ∈ [c0, c1]} x_cc², summed in ascending cc. xn: the image's first plane.
template <typename T>
inline void window_scale(const T* xn, float* sp, int64_t S, int c0, int c1, float a_n, float k) {
  std::fill(sp, sp + S, 0.f);
  for (int cc = c0; cc <= c1; cc++) {
    const T* xq = xn + cc * S;
    for (int64_t s = 0; s < S; s++) {
      const float v = load_act(xq[s]);
      sp[s] += v * v;
    }
  }
  for (int64_t s = 0; s < S; s++) sp[s] = k + a_n * sp[s];
}
// From a row of window sums: p = scale^(−beta) and t = dy·(x·p)/scale.
template <bool kP075, typename T>
inline void p_and_t(const float* __restrict__ sums, const T* __restrict__ xp, const float* __restrict__ dyp,
                    float* __restrict__ pp, float* __restrict__ tp, int64_t L, float a_n, float beta, float k) {
  for (int64_t s = 0; s < L; s++) {
    const float sc = k + a_n * sums[s];
    pp[s] = pow_neg_beta<kP075>(sc, beta);
    tp[s] = dyp[s] * (load_act(xp[s]) * pp[s]) / sc;
  }
}

// One plane of the forward: y = x · scale^(−beta), the scales summed into sp (y itself for float32).
template <bool kP075, typename T>
inline void forward_plane(const T* xn, const T* xp, T* yp, float* sp, int64_t S, int c0, int c1, float a_n,
                          float beta, float k) {
  window_scale(xn, sp, S, c0, c1, a_n, k);
  for (int64_t s = 0; s < S; s++) store_act(yp + s, load_act(xp[s]) * pow_neg_beta<kP075>(sp[s], beta));
}
}  // namespace

template <typename T>
void lrn_forward_cpu(const T* x, T* y, int N, int C, int64_t S, int size, float alpha, float beta, float k) {
  const int before = size / 2, after = (size - 1) / 2;
  const float a_n = alpha / (float)size;
  const int64_t planes = (int64_t)N * C;
  // bf16 y cannot hold the float sums: a row of S floats per thread, allocated before the parallel region
  // (an allocation failure inside it would end the process).
  constexpr bool kFloat = std::is_same_v<T, float>;
  const int threads = std::max(1, omp_get_max_threads());
  std::vector<float> rows(kFloat ? 0 : (size_t)S * (size_t)threads);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t p = 0; p < planes; p++) {
    const int64_t n = p / C;
    const int c = (int)(p - n * C);
    T* yp = y + p * S;
    float* sp;
    if constexpr (kFloat) sp = yp;
    else sp = rows.data() + (size_t)S * (size_t)omp_get_thread_num();
    const int c0 = std::max(c - before, 0), c1 = std::min(c + after, C - 1);
    if (beta == 0.75f) forward_plane<true>(x + n * C * S, x + p * S, yp, sp, S, c0, c1, a_n, beta, k);
    else forward_plane<false>(x + n * C * S, x + p * S, yp, sp, S, c0, c1, a_n, beta, k);
  }
}

template <typename T>
void lrn_backward_cpu(const float* dy, const T* x, float* dx, int N, int C, int64_t S, int size, float alpha,
                      float beta, float k) {
  const int before = size / 2, after = (size - 1) / 2;
  const float a_n = alpha / (float)size;
  const float coef = 2.f * alpha * beta / (float)size;
  // Tiles of kTile columns of one image: a tile's p and t for all C channels (2·C·kTile floats: 192 KB at
  // C = 96, 512 KB at C = 256) stay in cache between the two passes, and x's rows are reused from it by
  // the ≤ size windows that read them.
  constexpr int64_t kTile = 256;
  const int64_t tiles = (S + kTile - 1) / kTile;
  const int64_t plane = (int64_t)C * S;
  // Per-thread buffers, allocated before the parallel region: an allocation failure inside it would end
  // the process (std::terminate), here it is an error the caller sees.
  const int threads = std::max(1, omp_get_max_threads());
  const size_t per = (2 * (size_t)C + 1) * kTile;
  std::vector<float> buffers(per * (size_t)threads);
#pragma omp parallel num_threads(threads)
  {
    float* const mine = buffers.data() + per * (size_t)omp_get_thread_num();
    float* const pwd = mine;                           // p of every channel: C rows of kTile
    float* const twd = mine + (size_t)C * kTile;       // t of every channel
    float* const swd = mine + 2 * (size_t)C * kTile;   // one row of window sums
#pragma omp for schedule(static)
    for (int64_t job = 0; job < (int64_t)N * tiles; job++) {
      const int64_t n = job / tiles, s0 = (job - n * tiles) * kTile, L = std::min(kTile, S - s0);
      const T* xn = x + n * plane + s0;  // (c, s) of the tile at xn[c·S + s − s0]
      const float* dyn = dy + n * plane + s0;
      for (int c = 0; c < C; c++) {
        float* sp = swd;
        std::fill(sp, sp + L, 0.f);
        for (int cc = std::max(c - before, 0); cc <= std::min(c + after, C - 1); cc++) {
          const T* xq = xn + cc * S;
          for (int64_t s = 0; s < L; s++) {
            const float v = load_act(xq[s]);
            sp[s] += v * v;
          }
        }
        const T* xp = xn + c * S;
        const float* dyp = dyn + c * S;
        float* pp = pwd + c * kTile;
        float* tp = twd + c * kTile;
        if (beta == 0.75f)
          p_and_t<true>(sp, xp, dyp, pp, tp, L, a_n, beta, k);
        else
          p_and_t<false>(sp, xp, dyp, pp, tp, L, a_n, beta, k);
      }
      for (int c = 0; c < C; c++) {
        // the channels whose window contains c
        const int c0 = std::max(c - after, 0), c1 = std::min(c + before, C - 1);
        float* dxp = dx + n * plane + c * S + s0;
        std::fill(dxp, dxp + L, 0.f);
        for (int cc = c0; cc <= c1; cc++) {
          const float* tq = twd + cc * kTile;
          for (int64_t s = 0; s < L; s++) dxp[s] += tq[s];
        }
        const T* xp = xn + c * S;
        const float* dyp = dyn + c * S;
        const float* pp = pwd + c * kTile;
        for (int64_t s = 0; s < L; s++) dxp[s] = dyp[s] * pp[s] - coef * load_act(xp[s]) * dxp[s];
      }
    }
  }
}

// ---- The legacy path (lrn.h): per column the legacy CUDA kernels' arithmetic, in their order; here a tile
// of a single image's columns walks the channels together (threads over (n, tile)).
namespace {
// The kernels' walk down the channels, for every column: sum = Σ_{c ≤ min(ahead, C−1)} term(c), ascending;
// then for c = 0 … C−1: emit(c, sum); sum += term(c + 1 + ahead) if < C; sum −= term(c − behind) if ≥ 0.
// term(q) (a double) and emit(q, sum) take the flat index q of element (n, c, s).
template <class Term, class Emit>
void legacy_walk(int N, int C, int64_t S, int ahead, int behind, Term term, Emit emit) {
  constexpr int64_t kTile = 256;
  const int64_t tiles = (S + kTile - 1) / kTile;
#pragma omp parallel for schedule(static)
  for (int64_t job = 0; job < (int64_t)N * tiles; job++) {
    const int64_t n = job / tiles, s0 = (job - n * tiles) * kTile, L = std::min(kTile, S - s0);
    const int64_t base = n * C * S + s0;  // element (n, 0, s0)
    double sum[kTile];
    std::fill(sum, sum + L, 0.0);
    for (int c = 0; c <= std::min(ahead, C - 1); c++)
      for (int64_t s = 0; s < L; s++) sum[s] += term(base + c * S + s);
    for (int c = 0; c < C; c++) {
      for (int64_t s = 0; s < L; s++) emit(base + c * S + s, sum[s]);
      const int cin = c + 1 + ahead, cout = c - behind;
      if (cin < C)
        for (int64_t s = 0; s < L; s++) sum[s] += term(base + cin * S + s);
      if (cout >= 0)
        for (int64_t s = 0; s < L; s++) sum[s] -= term(base + cout * S + s);
    }
  }
}
}  // namespace

void lrn_forward_legacy_cpu(const float* x, float* y, float* scale, int N, int C, int64_t S, int size, float alpha,
                            float beta, float k) {
  const float a_n = alpha / (float)size;
  legacy_walk(
      N, C, S, (size - 1) / 2, size / 2,
      [&](int64_t q) {
        const double v = x[q];
        return v * v;
      },
      [&](int64_t q, double sum) {
        const float sc = k + a_n * (float)sum;
        scale[q] = sc;
        y[q] = x[q] * std::pow(sc, -beta);
      });
}

void lrn_backward_legacy_cpu(const float* dy, const float* x, const float* y, const float* scale, float* dx, int N,
                             int C, int64_t S, int size, float alpha, float beta, float k) {
  const float coef = 2.f * alpha * beta / (float)size;
  // the channels whose window contains c: [c − after, c + before]; t = dy·y/scale in float, as on CUDA
  legacy_walk(
      N, C, S, size / 2, (size - 1) / 2, [&](int64_t q) { return (double)(dy[q] * y[q] / scale[q]); },
      [&](int64_t q, double sum) { dx[q] = dy[q] * std::pow(scale[q], -beta) - coef * x[q] * (float)sum; });
}

template void lrn_forward_cpu<float>(const float*, float*, int, int, int64_t, int, float, float, float);
template void lrn_forward_cpu<bf16_t>(const bf16_t*, bf16_t*, int, int, int64_t, int, float, float, float);
template void lrn_backward_cpu<float>(const float*, const float*, float*, int, int, int64_t, int, float, float, float);
template void lrn_backward_cpu<bf16_t>(const float*, const bf16_t*, float*, int, int, int64_t, int, float, float,
                                       float);

}  // namespace axn::ops
