// conv2d: the CPU pieces (im2col, col2im, permute, bias) with OpenMP, and the driver shared by both devices
// (chunking, GEMM calls, workspace; see conv2d.h). The CPU version is the oracle for the CUDA one.
#include "conv2d.h"

#include <algorithm>
#include <climits>
#include <type_traits>
#include <cstring>
#include <string>
#include <vector>

#include "../scratch.h"
#include "relu.h"

namespace axn::ops {

namespace {
// Loops over fewer elements than this run on one thread: waking the team costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
}  // namespace

void conv2d_check_dims(const char* op, const Conv2dDims& d) {
  auto bad = [&](const std::string& msg) { fail(op, msg, __FILE__, __LINE__); };
  if (d.N < 0) bad("negative batch size");
  if (d.C < 1 || d.H < 1 || d.W < 1 || d.K < 1 || d.kh < 1 || d.kw < 1)
    bad("every dimension of x (but the batch) and w must be ≥ 1");
  if (d.sh < 1 || d.sw < 1 || d.ph < 0 || d.pw < 0 || d.groups < 1) bad("stride, groups must be ≥ 1, padding ≥ 0");
  if (d.C % d.groups || d.K % d.groups)
    bad("C = " + std::to_string(d.C) + " and K = " + std::to_string(d.K) + " must be divisible by groups " +
        std::to_string(d.groups));
  if (d.H + 2 * static_cast<int64_t>(d.ph) < d.kh || d.W + 2 * static_cast<int64_t>(d.pw) < d.kw)
    bad("kernel larger than the padded input");
  const int64_t P = static_cast<int64_t>(d.Ho()) * d.Wo();
  const int64_t CRS = static_cast<int64_t>(d.C) * d.kh * d.kw;
  if (static_cast<int64_t>(d.C) * d.H * d.W > INT_MAX || d.C * P > INT_MAX || CRS > INT_MAX ||
      static_cast<int64_t>(d.K) * P > INT_MAX)
    bad("one image's input, output or kernel footprint exceeds 2^31 elements");
}

namespace {
template <class TX>
void im2col_any(const TX* x, float* col, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                int64_t groupRows) {
  const int C = d.C, H = d.H, W = d.W, kh = d.kh, kw = d.kw, sh = d.sh, sw = d.sw, ph = d.ph, pw = d.pw;
  const int Ho = d.Ho(), Wo = d.Wo();
  const int Cg = C / d.groups;
  const int64_t gr = groupRows ? groupRows : static_cast<int64_t>(Cg) * kh * kw;
#pragma omp parallel for collapse(2) schedule(static) if (static_cast<int64_t>(n) * C * kh * kw * Ho * Wo >= kParallelMin)
  for (int i = 0; i < n; i++) {
    for (int c = 0; c < C; c++) {
      const TX* xc = x + (static_cast<int64_t>(i) * C + c) * H * W;
      for (int ki = 0; ki < kh; ki++) {
        for (int kj = 0; kj < kw; kj++) {
          const int64_t r = (c / Cg) * gr + (static_cast<int64_t>(c % Cg) * kh + ki) * kw + kj;
          float* dst = col + i * strideImage + r * strideRow;
          // Output columns whose input column ow·sw − pw + kj lies inside [0, W): [owLo, owHi).
          const int lo = pw - kj, hi = W - 1 + pw - kj;
          int owLo = lo <= 0 ? 0 : (lo + sw - 1) / sw;
          int owHi = hi < 0 ? 0 : std::min(Wo, hi / sw + 1);
          owLo = std::min(owLo, Wo);
          owHi = std::max(owHi, owLo);
          for (int oh = 0; oh < Ho; oh++) {
            float* drow = dst + static_cast<int64_t>(oh) * Wo;
            const int ih = oh * sh - ph + ki;
            if (ih < 0 || ih >= H) {
              std::fill(drow, drow + Wo, 0.0f);
              continue;
            }
            const int64_t off = static_cast<int64_t>(ih) * W - pw + kj;  // x index of ow = 0 (may be < 0)
            std::fill(drow, drow + owLo, 0.0f);
            bool copied = false;
            if constexpr (std::is_same_v<TX, float>) {
              if (sw == 1) {
                std::memcpy(drow + owLo, xc + off + owLo, sizeof(float) * (owHi - owLo));
                copied = true;
              }
            }
            if (!copied)
              for (int ow = owLo; ow < owHi; ow++) drow[ow] = load_act(xc[off + static_cast<int64_t>(ow) * sw]);
            std::fill(drow + owHi, drow + Wo, 0.0f);
          }
        }
      }
    }
  }
}
}  // namespace

void im2col_cpu(const float* x, float* col, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                int64_t groupRows) {
  im2col_any(x, col, n, d, strideImage, strideRow, groupRows);
}
void im2col_cpu(const bf16_t* x, float* col, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                int64_t groupRows) {
  im2col_any(x, col, n, d, strideImage, strideRow, groupRows);
}

void col2im_cpu(const float* col, float* x, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                int64_t groupRows) {
  const int C = d.C, H = d.H, W = d.W, kh = d.kh, kw = d.kw, sh = d.sh, sw = d.sw, ph = d.ph, pw = d.pw;
  const int Ho = d.Ho(), Wo = d.Wo();
  const int64_t P = static_cast<int64_t>(Ho) * Wo;
  const int Cg = C / d.groups;
  const int64_t gr = groupRows ? groupRows : static_cast<int64_t>(Cg) * kh * kw;
  // Each (image, channel) plane is owned by one thread: a scatter-add without races.
#pragma omp parallel for collapse(2) schedule(static) if (static_cast<int64_t>(n) * C * kh * kw * P >= kParallelMin)
  for (int i = 0; i < n; i++) {
    for (int c = 0; c < C; c++) {
      float* xc = x + (static_cast<int64_t>(i) * C + c) * H * W;
      std::fill(xc, xc + static_cast<int64_t>(H) * W, 0.0f);
      for (int ki = 0; ki < kh; ki++) {
        for (int kj = 0; kj < kw; kj++) {
          const int64_t r = (c / Cg) * gr + (static_cast<int64_t>(c % Cg) * kh + ki) * kw + kj;
          const float* src = col + i * strideImage + r * strideRow;
          const int lo = pw - kj, hi = W - 1 + pw - kj;
          int owLo = lo <= 0 ? 0 : (lo + sw - 1) / sw;
          int owHi = hi < 0 ? 0 : std::min(Wo, hi / sw + 1);
          owLo = std::min(owLo, Wo);
          owHi = std::max(owHi, owLo);
          for (int oh = 0; oh < Ho; oh++) {
            const int ih = oh * sh - ph + ki;
            if (ih < 0 || ih >= H) continue;
            const int64_t off = static_cast<int64_t>(ih) * W - pw + kj;
            const float* srow = src + static_cast<int64_t>(oh) * Wo;
            for (int ow = owLo; ow < owHi; ow++) xc[off + static_cast<int64_t>(ow) * sw] += srow[ow];
          }
        }
      }
    }
  }
}

void permute_nkp_cpu(const float* src, float* dst, int n, int K, int64_t P) {
#pragma omp parallel for collapse(2) schedule(static) if (static_cast<int64_t>(n) * K * P >= kParallelMin)
  for (int i = 0; i < n; i++)
    for (int k = 0; k < K; k++)
      std::memcpy(dst + (static_cast<int64_t>(k) * n + i) * P, src + (static_cast<int64_t>(i) * K + k) * P,
                  sizeof(float) * P);
}

void pad_rows_cpu(const float* src, float* dst, int64_t rows, int64_t cols, int64_t ldDst) {
  for (int64_t r = 0; r < rows; r++) {
    std::memcpy(dst + r * ldDst, src + r * cols, sizeof(float) * cols);
    std::fill(dst + r * ldDst + cols, dst + (r + 1) * ldDst, 0.0f);
  }
}

void unpad_rows_cpu(const float* src, int64_t ldSrc, float* dst, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) std::memcpy(dst + r * cols, src + r * ldSrc, sizeof(float) * cols);
}

namespace {
template <class TY>
void epilogue_any(const float* src, int64_t ld, const float* b, TY* y, int n, int K, int64_t P, bool relu) {
#pragma omp parallel for collapse(2) schedule(static) if (static_cast<int64_t>(n) * K * P >= kParallelMin)
  for (int i = 0; i < n; i++)
    for (int k = 0; k < K; k++) {
      const float* s = src + static_cast<int64_t>(k) * ld + static_cast<int64_t>(i) * P;
      TY* row = y + (static_cast<int64_t>(i) * K + k) * P;
      if (b) {
        const float v = b[k];
        if (relu)
          for (int64_t p = 0; p < P; p++) store_act(row + p, relu_fwd(s[p] + v));
        else
          for (int64_t p = 0; p < P; p++) store_act(row + p, s[p] + v);
      } else if (relu) {
        for (int64_t p = 0; p < P; p++) store_act(row + p, relu_fwd(s[p]));
      } else if constexpr (std::is_same_v<TY, float>) {
        std::memcpy(row, s, sizeof(float) * P);
      } else {
        for (int64_t p = 0; p < P; p++) store_act(row + p, s[p]);
      }
    }
}
}  // namespace

void conv_epilogue_cpu(const float* src, int64_t ld, const float* b, float* y, int n, int K, int64_t P, bool relu) {
  epilogue_any(src, ld, b, y, n, K, P, relu);
}
void conv_epilogue_cpu(const float* src, int64_t ld, const float* b, bf16_t* y, int n, int K, int64_t P, bool relu) {
  epilogue_any(src, ld, b, y, n, K, P, relu);
}

void fill_bias_cpu(float* y, const float* b, int N, int K, int64_t P) {
#pragma omp parallel for collapse(2) schedule(static) if (static_cast<int64_t>(N) * K * P >= kParallelMin)
  for (int i = 0; i < N; i++)
    for (int k = 0; k < K; k++) {
      float* row = y + (static_cast<int64_t>(i) * K + k) * P;
      std::fill(row, row + P, b[k]);
    }
}

namespace {
// One (channel k, chunk of images [i0, i0 + nc)) pair of the bias gradient's stage 1 (conv2d.h): element
// e = (i − i0)·P + p goes to acc[e mod B], then the pairwise tree — what a stage-1 block does on CUDA.
// Plain: g = dy. Relu: g = relu_bwd(dy, y), also written to dz (which may alias dy) — the same sum as the
// plain one over dz, so the same bits.
// dz (null: not written) in NCHW (dzLd = 0) or at dz[k·dzLd + i·P + p] (the columns path's (K, N, P)).
template <bool Relu, class TY>
double bias_grad_pair(const float* dy, const TY* y, float* dz, int64_t dzLd, int i0, int nc, int K, int k,
                      int64_t P) {
  constexpr int B = kBiasGradLanes;
  double acc[B];
  std::fill(acc, acc + B, 0.0);
  int lane = 0;  // e mod B
  for (int i = i0; i < i0 + nc; i++) {
    const int64_t off = (static_cast<int64_t>(i) * K + k) * P;
    const int64_t zoff = dzLd ? k * dzLd + static_cast<int64_t>(i) * P : off;
    for (int64_t p = 0; p < P;) {
      // A run of consecutive lanes: acc[lane + q] += g[p + q] (independent lanes: vectorisable, same sums).
      const int len = static_cast<int>(std::min<int64_t>(B - lane, P - p));
      double* a = acc + lane;
      if constexpr (Relu) {
        // Through a local buffer: every load comes before any store, so the loops vectorise even when dz
        // is dy (the in-place case, where a fused loop could not be).
        float g[B];
        const float* d = dy + off + p;
        const TY* yy = y + off + p;
        for (int q = 0; q < len; q++) g[q] = relu_bwd(d[q], load_act(yy[q]));
        if (dz) std::memcpy(dz + zoff + p, g, sizeof(float) * len);
        for (int q = 0; q < len; q++) a[q] += g[q];
      } else {
        const float* src = dy + off + p;
        if (dz) std::memcpy(dz + zoff + p, src, sizeof(float) * len);
        for (int q = 0; q < len; q++) a[q] += src[q];
      }
      p += len;
      lane += len;
      if (lane == B) lane = 0;
    }
  }
  for (int s = B / 2; s > 0; s >>= 1)
    for (int t = 0; t < s; t++) acc[t] += acc[t + s];
  return acc[0];
}

// The legacy bias gradient (conv2d.h, kBiasGradLegacyThreads): per channel, B' accumulators over every
// image's pixels, then the warp-by-warp tree — what bias_grad_legacy_kernel's block does on CUDA.
template <bool Relu, class TY>
void bias_grad_legacy_loop(const float* dy, const TY* y, float* dz, int64_t dzLd, float* db, int N, int K, int64_t P) {
  constexpr int B = kBiasGradLegacyThreads, kWarp = 32;
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * K * P >= kParallelMin)
  for (int k = 0; k < K; k++) {
    double acc[B];
    std::fill(acc, acc + B, 0.0);
    for (int i = 0; i < N; i++) {
      const int64_t off = (static_cast<int64_t>(i) * K + k) * P;
      const int64_t zoff = dzLd ? k * dzLd + static_cast<int64_t>(i) * P : off;
      for (int64_t p0 = 0; p0 < P; p0 += B) {
        const int len = static_cast<int>(std::min<int64_t>(B, P - p0));
        float g[B];
        for (int q = 0; q < len; q++) {
          if constexpr (Relu) g[q] = relu_bwd(dy[off + p0 + q], load_act(y[off + p0 + q]));
          else g[q] = dy[off + p0 + q];
        }
        if (dz) std::memcpy(dz + zoff + p0, g, sizeof(float) * len);
        for (int q = 0; q < len; q++) acc[q] += g[q];
      }
    }
    double roots[B / kWarp];
    for (int w = 0; w < B / kWarp; w++) {
      double* a = acc + w * kWarp;
      for (int st = kWarp / 2; st > 0; st >>= 1)
        for (int t = 0; t < st; t++) a[t] += a[t + st];
      roots[w] = a[0];
    }
    static_assert(B / kWarp == kWarp, "the second tree is one warp's");
    for (int st = kWarp / 2; st > 0; st >>= 1)
      for (int t = 0; t < st; t++) roots[t] += roots[t + st];
    if (db) db[k] = static_cast<float>(roots[0]);
  }
}

// db[k] = Σ_{n, p} g[n, k, p]: stage 1 over the K·J (channel, chunk) pairs in parallel, then stage 2 per
// channel, summing its J partials in chunk order (conv2d.h).
template <bool Relu, class TY = float>
void bias_grad_loop(const float* dy, const TY* y, float* dz, int64_t dzLd, float* db, int N, int K, int64_t P,
                    bool legacy) {
  if (K <= 0) return;
  if (legacy) {
    bias_grad_legacy_loop<Relu, TY>(dy, y, dz, dzLd, db, N, K, P);
    return;
  }
  if (N <= 0) {
    if (db) std::fill(db, db + K, 0.0f);
    return;
  }
  const int T = bias_grad_chunk_images(N, P), J = bias_grad_chunks(N, T);
  const int64_t pairs = static_cast<int64_t>(K) * J;
  std::vector<double> partial(static_cast<size_t>(pairs));
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * K * P >= kParallelMin)
  for (int64_t b = 0; b < pairs; b++) {
    const int k = static_cast<int>(b / J), j = static_cast<int>(b - static_cast<int64_t>(k) * J);
    const int i0 = j * T;
    partial[b] = bias_grad_pair<Relu, TY>(dy, y, dz, dzLd, i0, std::min(T, N - i0), K, k, P);
  }
  if (!db) return;
  for (int k = 0; k < K; k++) {
    double s = 0.0;
    for (int j = 0; j < J; j++) s += partial[static_cast<size_t>(k) * J + j];
    db[k] = static_cast<float>(s);
  }
}
}  // namespace

void bias_grad_cpu(const float* dy, float* db, int N, int K, int64_t P, bool legacy) {
  bias_grad_loop<false>(dy, static_cast<const float*>(nullptr), nullptr, 0, db, N, K, P, legacy);
}

void relu_bias_grad_cpu(const float* dy, const float* y, float* dz, float* db, int N, int K, int64_t P, bool legacy) {
  bias_grad_loop<true>(dy, y, dz, 0, db, N, K, P, legacy);
}

void conv_grad_knp_cpu(const float* dy, const float* y, float* dz, int64_t ldZ, float* db, int N, int K, int64_t P,
                       bool legacy) {
  if (y) bias_grad_loop<true>(dy, y, dz, ldZ, db, N, K, P, legacy);
  else bias_grad_loop<false>(dy, static_cast<const float*>(nullptr), dz, ldZ, db, N, K, P, legacy);
}
void conv_grad_knp_cpu(const float* dy, const bf16_t* y, float* dz, int64_t ldZ, float* db, int N, int K, int64_t P,
                       bool legacy) {
  if (y) bias_grad_loop<true, bf16_t>(dy, y, dz, ldZ, db, N, K, P, legacy);
  else bias_grad_loop<false>(dy, static_cast<const float*>(nullptr), dz, ldZ, db, N, K, P, legacy);
}

void round_bf16_cpu(float* p, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) p[i] = round_bf16(p[i]);
}

void zero_cpu(float* p, int64_t n) {
  if (n > 0) std::memset(p, 0, sizeof(float) * n);
}

namespace {

// Images per chunk: as many as fit in `cap` bytes at `perImage` bytes each (at least one, at most N),
// and few enough that n·P (the dw GEMM's reduction dimension) fits in an int.
inline int conv2d_chunk_images(int N, size_t perImage, size_t cap, int64_t P) {
  if (N <= 0) return 1;
  int64_t n = perImage == 0 ? N : static_cast<int64_t>(cap / perImage);
  n = std::min<int64_t>(n, N);
  n = std::min<int64_t>(n, INT_MAX / std::max<int64_t>(P, 1));
  return static_cast<int>(std::max<int64_t>(n, 1));
}


// The device-independent driver: `Dev` supplies the pieces (CpuConv, CudaConv below: im2col, col2im, permute_nkp, fill_bias, bias_grad, zero, gemm, gemm_sb — the GEMMs at the call's
// precision — and the constants kCuda, kDefaultWorkspace), so both devices chunk, lay out and call
// GEMMs identically.
template <class Dev>
void conv2d_forward_legacy(const Dev& dev, const float* x, const float* w, const float* b, float* y, const Conv2dDims& d,
                    size_t workspaceBytes, bool relu) {
  const int G = d.groups, Kg = d.K / G, Cg = d.C / G;
  const int64_t P = static_cast<int64_t>(d.Ho()) * d.Wo();
  const int64_t CRS = static_cast<int64_t>(d.C) * d.kh * d.kw, CgRS = static_cast<int64_t>(Cg) * d.kh * d.kw;
  const int64_t imgIn = static_cast<int64_t>(d.C) * d.H * d.W, imgOut = static_cast<int64_t>(d.K) * P;
  if (d.N == 0) return;
  const bool identity = d.kh == 1 && d.kw == 1 && d.sh == 1 && d.sw == 1 && d.ph == 0 && d.pw == 0;
  const size_t cap = workspaceBytes ? workspaceBytes : Dev::kDefaultWorkspace;
  const int chunk = identity ? d.N : conv2d_chunk_images(d.N, static_cast<size_t>(CRS * P) * sizeof(float), cap, P);
  Scratch ws(Dev::kCuda, identity ? 0 : static_cast<size_t>(chunk) * CRS * P * sizeof(float));
  float* col = ws.as<float>();
  // The bias goes in first (the GEMMs accumulate onto it) unless a fused epilogue adds it with the ReLU.
  const bool epilogue = relu && Dev::kBiasReluEpilogue;
  const bool biasFirst = b && !epilogue;
  if (biasFirst) dev.fill_bias(y, b, d.N, d.K, P);
  for (int n0 = 0; n0 < d.N; n0 += chunk) {
    const int nc = std::min(chunk, d.N - n0);
    const float* src = x + n0 * imgIn;
    if (!identity) {
      dev.im2col(src, col, nc, d, CRS * P, P, 0);
      src = col;
    }
    for (int g = 0; g < G; g++)
      dev.gemm_sb(false, false, Kg, static_cast<int>(P), static_cast<int>(CgRS), 1.0f, w + g * Kg * CgRS,
                   static_cast<int>(CgRS), 0, src + g * CgRS * P, static_cast<int>(P), CRS * P,
                   biasFirst ? 1.0f : 0.0f, y + n0 * imgOut + g * Kg * P, static_cast<int>(P), imgOut, nc);
  }
  if (epilogue) dev.bias_relu(y, b, d.N, d.K, P);
  else if (relu) dev.relu(y, d.N * imgOut);
}

template <class Dev>
void conv2d_backward_legacy(const Dev& dev, const float* dy, const float* x, const float* w, float* dx, float* dw, float* db,
                     const Conv2dDims& d, size_t workspaceBytes, const float* reluY, bool reluInPlace) {
  const int G = d.groups, Kg = d.K / G, Cg = d.C / G;
  const int64_t P = static_cast<int64_t>(d.Ho()) * d.Wo();
  const int64_t CRS = static_cast<int64_t>(d.C) * d.kh * d.kw, CgRS = static_cast<int64_t>(Cg) * d.kh * d.kw;
  const int64_t imgIn = static_cast<int64_t>(d.C) * d.H * d.W, imgOut = static_cast<int64_t>(d.K) * P;
  // Fused ReLU: the gradient at the conv's output, dz = dy where y > 0, in one pass with the bias gradient
  // (over dy itself when the caller gave it up: the binding then holds dy as written).
  const bool scratchDz = reluY && d.N > 0 && !reluInPlace;
  Scratch dzBuf(Dev::kCuda, scratchDz ? static_cast<size_t>(d.N) * imgOut * sizeof(float) : 0);
  if (reluY && d.N > 0) {
    float* dz = scratchDz ? dzBuf.as<float>() : const_cast<float*>(dy);
    if (db) dev.relu_bias_grad(dy, reluY, dz, db, d.N, d.K, P);
    else dev.relu_backward(dy, reluY, dz, d.N * imgOut);
    dy = dz;
  } else if (db) {
    if (d.N == 0) dev.zero(db, d.K);
    else dev.bias_grad(dy, db, d.N, d.K, P);
  }
  if (d.N == 0) {  // an empty batch: the weight gradient is an empty sum
    dev.zero(dw, static_cast<int64_t>(d.K) * CgRS);
    return;
  }
  const bool identity = d.kh == 1 && d.kw == 1 && d.sh == 1 && d.sw == 1 && d.ph == 0 && d.pw == 0;
  const size_t cap = workspaceBytes ? workspaceBytes : Dev::kDefaultWorkspace;
  const size_t perImage = static_cast<size_t>(CRS * P + imgOut) * sizeof(float);
  const int chunk = conv2d_chunk_images(d.N, perImage, cap, P);
  Scratch ws(Dev::kCuda, static_cast<size_t>(chunk) * perImage);
  float* col = ws.as<float>();
  float* dyt = col + static_cast<int64_t>(chunk) * CRS * P;
  for (int n0 = 0; n0 < d.N; n0 += chunk) {
    const int nc = std::min(chunk, d.N - n0);
    const float* dyc = dy + n0 * imgOut;
    if (dx) {
      float* dxc = dx + n0 * imgIn;
      // dcol[i, g] = w_gᵀ · dy[i, g]; for a 1×1/stride-1/no-padding conv, dcol is dx itself.
      float* dcol = identity ? dxc : col;
      for (int g = 0; g < G; g++)
        dev.gemm_sb(true, false, static_cast<int>(CgRS), static_cast<int>(P), Kg, 1.0f, w + g * Kg * CgRS,
                     static_cast<int>(CgRS), 0, dyc + g * Kg * P, static_cast<int>(P), imgOut, 0.0f,
                     dcol + g * CgRS * P, static_cast<int>(P), CRS * P, nc);
      if (!identity) dev.col2im(col, dxc, nc, d, CRS * P, P, 0);
    }
    // dw_g (+)= dyᵀ_g · col'_gᵀ over the chunk's n·P columns.
    dev.im2col(x + n0 * imgIn, col, nc, d, P, nc * P, 0);
    dev.permute_nkp(dyc, dyt, nc, d.K, P);
    const int red = static_cast<int>(nc * P);
    for (int g = 0; g < G; g++)
      dev.gemm(false, true, Kg, static_cast<int>(CgRS), red, 1.0f, dyt + g * Kg * static_cast<int64_t>(red), red,
                col + g * CgRS * red, red, n0 == 0 ? 0.0f : 1.0f, dw + g * Kg * CgRS, static_cast<int>(CgRS));
  }
}


// ---- The columns path (conv2d.h) ----

// Images per chunk on the columns path: the cap's rule, and few enough that padq(n·P) fits an int (a
// GEMM dimension); then down to a multiple of q (the elements per 16 bytes) when the chunks are more than
// one and hold at least q, so that every chunk's offset n0·P into dz is 16-byte aligned.
inline int cols_chunk_images(int N, size_t perImage, size_t cap, int64_t P, int64_t q) {
  int64_t n = conv2d_chunk_images(N, perImage, cap, P);
  n = std::max<int64_t>(1, std::min<int64_t>(n, (INT_MAX - 7) / std::max<int64_t>(P, 1)));
  if (n < N && n >= q) n -= n % q;
  return static_cast<int>(n);
}

// The layout of one call's columns; q: the elements per 16 bytes of its element type.
struct ColsLayout {
  int G, Kg, Cg;
  int64_t q, P, CgRS, CgRSp, rows, imgIn, imgOut;
  ColsLayout(const Conv2dDims& d, bool padK, int64_t quantum)
      : G(d.groups), Kg(d.K / d.groups), Cg(d.C / d.groups), q(quantum), P(static_cast<int64_t>(d.Ho()) * d.Wo()),
        CgRS(static_cast<int64_t>(d.C / d.groups) * d.kh * d.kw), CgRSp(padK ? conv_padq(CgRS, q) : CgRS),
        rows(G * CgRSp), imgIn(static_cast<int64_t>(d.C) * d.H * d.W), imgOut(static_cast<int64_t>(d.K) * P) {}
  bool padded() const { return CgRSp != CgRS; }
  int64_t ld(int64_t n) const { return conv_padq(n * P, q); }
};

// n elements of type T set to zero (bf16: n is even wherever this is called: a row count times a row
// stride that is a multiple of 8).
template <class Dev, class T>
void zero_elems(const Dev& dev, T* p, int64_t n) {
  dev.zero(reinterpret_cast<float*>(p), n * static_cast<int64_t>(sizeof(T)) / static_cast<int64_t>(sizeof(float)));
}

// The GEMM operand copy of w (K × CgRS): made to pad K, and always for bf16 storage (rounded); else w.
template <class T>
size_t weights_copy_bytes(const ColsLayout& L, int K) {
  const bool copied = !std::is_same<T, float>::value || L.padded();
  return copied ? static_cast<size_t>(K * L.CgRSp) * sizeof(T) : 0;
}
// w itself, or its copy in buf (weights_copy_bytes of it).
template <class Dev, class T>
const T* weights_for_gemm(const Dev& dev, const float* w, const Scratch& buf, const ColsLayout& L, int K) {
  if constexpr (std::is_same<T, float>::value) {
    if (!L.padded()) return w;
  }
  dev.pad_rows(w, buf.as<T>(), K, L.CgRS, L.CgRSp);
  return buf.as<T>();
}

// T: the columns' element type (float; bf16_t for bf16 storage on CUDA, conv_bf16_storage).
template <class Dev, class T, class TX, class TY>
void conv2d_forward_cols(const Dev& dev, const TX* x, const float* w, const float* b, TY* y,
                         const Conv2dDims& d, size_t workspaceBytes, bool relu, T* kept) {
  if (d.N == 0) return;
  const ColsLayout L(d, dev.padK(), conv_quantum(std::is_same<T, bf16_t>::value));
  const int64_t P = L.P;
  const size_t cap = workspaceBytes ? workspaceBytes : Dev::kDefaultWorkspace;
  // Per image: its columns and its part of Y'.
  const int chunk = kept ? d.N : cols_chunk_images(d.N, static_cast<size_t>(L.rows * P) * sizeof(T) + static_cast<size_t>(d.K * P) * sizeof(float), cap, P, L.q);
  const int64_t ldMax = L.ld(chunk);
  Scratch colBuf(Dev::kCuda, kept ? 0 : static_cast<size_t>(L.rows * ldMax) * sizeof(T));
  T* col = kept ? kept : colBuf.template as<T>();
  Scratch out(Dev::kCuda, static_cast<size_t>(d.K * ldMax) * sizeof(float));
  Scratch wbuf(Dev::kCuda, weights_copy_bytes<T>(L, d.K));
  const T* wp = weights_for_gemm<Dev, T>(dev, w, wbuf, L, d.K);
  for (int n0 = 0; n0 < d.N; n0 += chunk) {
    const int nc = std::min(chunk, d.N - n0);
    const int64_t ld = L.ld(nc);
    dev.im2col(x + n0 * L.imgIn, col, nc, d, P, ld, L.CgRSp);
    if (L.padded())
      for (int g = 0; g < L.G; g++) zero_elems(dev, col + (g * L.CgRSp + L.CgRS) * ld, (L.CgRSp - L.CgRS) * ld);
    for (int g = 0; g < L.G; g++)
      dev.gemm_t(false, false, L.Kg, static_cast<int>(nc * P), static_cast<int>(L.CgRSp), wp + g * L.Kg * L.CgRSp,
                 static_cast<int>(L.CgRSp), col + g * L.CgRSp * ld, static_cast<int>(ld), 0.0f,
                 out.as<float>() + g * L.Kg * ld, static_cast<int>(ld));
    dev.epilogue(out.as<float>(), ld, b, y + n0 * L.imgOut, nc, d.K, P, relu);
  }
}

template <class Dev, class T, class TX, class TY>
void conv2d_backward_cols(const Dev& dev, const float* dy, const TX* x, const float* w, float* dx, float* dw,
                          float* db, const Conv2dDims& d, size_t workspaceBytes, const TY* reluY, T* kept) {
  const ColsLayout L(d, dev.padK(), conv_quantum(std::is_same<T, bf16_t>::value));
  const int64_t P = L.P;
  if (d.N == 0) {  // empty sums
    if (db) dev.zero(db, d.K);
    dev.zero(dw, d.K * L.CgRS);
    return;
  }
  // dz in (K, N, P), rows ldZ apart; db from the same pass.
  const int64_t ldZ = L.ld(d.N);
  Scratch dzBuf(Dev::kCuda, static_cast<size_t>(d.K * ldZ) * sizeof(T));
  T* dz = dzBuf.template as<T>();
  dev.grad_knp(dy, reluY, dz, ldZ, db, d.N, d.K, P);
  const size_t cap = workspaceBytes ? workspaceBytes : Dev::kDefaultWorkspace;
  const int chunk = kept ? d.N : cols_chunk_images(d.N, static_cast<size_t>(L.rows * P) * sizeof(T), cap, P, L.q);
  const int64_t ldMax = L.ld(chunk);
  Scratch colBuf(Dev::kCuda, kept ? 0 : static_cast<size_t>(L.rows * ldMax) * sizeof(T));
  T* col = kept ? kept : colBuf.template as<T>();
  Scratch wbuf(Dev::kCuda, dx ? weights_copy_bytes<T>(L, d.K) : 0);
  const T* wp = dx ? weights_for_gemm<Dev, T>(dev, w, wbuf, L, d.K) : nullptr;
  Scratch dwpad(Dev::kCuda, L.padded() ? static_cast<size_t>(d.K * L.CgRSp) * sizeof(float) : 0);
  float* dwp = L.padded() ? dwpad.as<float>() : dw;
  for (int n0 = 0; n0 < d.N; n0 += chunk) {
    const int nc = std::min(chunk, d.N - n0);
    const int64_t ld = L.ld(nc);
    const int red = static_cast<int>(nc * P);
    // The padding rows are left as they are here: only dw's padding columns read them, and those are
    // dropped (kept columns have them zero from the forward).
    if (!kept) dev.im2col(x + n0 * L.imgIn, col, nc, d, P, ld, L.CgRSp);
    const T* dzc = dz + n0 * P;
    // dw_g (+)= dz_g · col'_gᵀ over the chunk's n·P columns.
    for (int g = 0; g < L.G; g++)
      dev.gemm_t(false, true, L.Kg, static_cast<int>(L.CgRSp), red, dzc + g * L.Kg * ldZ, static_cast<int>(ldZ),
                 col + g * L.CgRSp * ld, static_cast<int>(ld), n0 == 0 ? 0.0f : 1.0f, dwp + g * L.Kg * L.CgRSp,
                 static_cast<int>(L.CgRSp));
    if (dx) {
      // dcol'_g = w_gᵀ · dz_g over the columns just read (stream order: after the dw GEMM), then col2im.
      for (int g = 0; g < L.G; g++)
        dev.gemm_t(true, false, static_cast<int>(L.CgRSp), red, L.Kg, wp + g * L.Kg * L.CgRSp,
                   static_cast<int>(L.CgRSp), dzc + g * L.Kg * ldZ, static_cast<int>(ldZ), 0.0f, col + g * L.CgRSp * ld,
                   static_cast<int>(ld));
      dev.round_dcol(col, L.rows * ld);  // the CPU in bf16: dcol' as the GPU stores it
      dev.col2im(col, dx + n0 * L.imgIn, nc, d, P, ld, L.CgRSp);
    }
  }
  if (L.padded()) dev.unpad_rows(dwp, L.CgRSp, dw, d.K, L.CgRS);
}

// The whole batch's dz as one (K, N·P) matrix needs padq(N·P) to fit an int (a GEMM's leading dimension).
inline bool cols_backward_fits(const Conv2dDims& d) {
  return static_cast<int64_t>(d.N) * d.Ho() * d.Wo() <= INT_MAX - 7;
}

// The columns path in the device's element type.
template <class Dev, class TX, class TY>
void conv2d_forward_cols_any(const Dev& dev, const TX* x, const float* w, const float* b, TY* y,
                             const Conv2dDims& d, size_t workspaceBytes, bool relu, float* kept) {
  if constexpr (Dev::kCuda) {
    if (conv_bf16_storage(true, dev.math)) {
      conv2d_forward_cols<Dev, bf16_t>(dev, x, w, b, y, d, workspaceBytes, relu, reinterpret_cast<bf16_t*>(kept));
      return;
    }
  }
  conv2d_forward_cols<Dev, float>(dev, x, w, b, y, d, workspaceBytes, relu, kept);
}

template <class Dev, class TX, class TY>
void conv2d_backward_cols_any(const Dev& dev, const float* dy, const TX* x, const float* w, float* dx, float* dw,
                              float* db, const Conv2dDims& d, size_t workspaceBytes, const TY* reluY, float* kept) {
  if constexpr (Dev::kCuda) {
    if (conv_bf16_storage(true, dev.math)) {
      conv2d_backward_cols<Dev, bf16_t>(dev, dy, x, w, dx, dw, db, d, workspaceBytes, reluY, reinterpret_cast<bf16_t*>(kept));
      return;
    }
  }
  conv2d_backward_cols<Dev, float>(dev, dy, x, w, dx, dw, db, d, workspaceBytes, reluY, kept);
}

template <class TX, class TY>
constexpr bool kFloatActivations = std::is_same_v<TX, float> && std::is_same_v<TY, float>;

template <class Dev, class TX, class TY>
void conv2d_forward(const Dev& dev, const TX* x, const float* w, const float* b, TY* y, const Conv2dDims& d,
                    size_t workspaceBytes, bool relu, ConvPath path, float* kept) {
  if (kept && conv2d_columns_floats(d, workspaceBytes, Dev::kCuda, dev.math) == 0)
    fail("conv2d", "columns were given for a convolution that keeps none (a 1×1 convolution, an empty batch, or columns over the workspace cap)", __FILE__, __LINE__);
  if (kept && path == ConvPath::Legacy) fail("conv2d", "columns were given on the legacy path, which keeps none", __FILE__, __LINE__);
  if (path == ConvPath::Legacy || conv2d_identity(d)) {
    if constexpr (kFloatActivations<TX, TY>) conv2d_forward_legacy(dev, x, w, b, y, d, workspaceBytes, relu);
    else fail("conv2d", "bfloat16 activations take the columns path, and this convolution takes the legacy one (a 1×1 stride-1 unpadded convolution, or setConvolutionPath('legacy')): pass float32", __FILE__, __LINE__);
  } else {
    conv2d_forward_cols_any(dev, x, w, b, y, d, workspaceBytes, relu, kept);
  }
}

template <class Dev, class TX, class TY>
void conv2d_backward(const Dev& dev, const float* dy, const TX* x, const float* w, float* dx, float* dw, float* db,
                     const Conv2dDims& d, size_t workspaceBytes, const TY* reluY, bool reluInPlace, ConvPath path,
                     float* kept) {
  if (kept && (path == ConvPath::Legacy || conv2d_columns_floats(d, workspaceBytes, Dev::kCuda, dev.math) == 0))
    fail("conv2dBackward", "columns were given for a convolution that keeps none (the legacy path, a 1×1 convolution, an empty batch, or columns over the workspace cap)", __FILE__, __LINE__);
  if (path == ConvPath::Legacy || conv2d_identity(d) || !cols_backward_fits(d)) {
    if constexpr (kFloatActivations<TX, TY>) conv2d_backward_legacy(dev, dy, x, w, dx, dw, db, d, workspaceBytes, reluY, reluInPlace);
    else fail("conv2dBackward", "bfloat16 activations take the columns path, and this convolution takes the legacy one (a 1×1 stride-1 unpadded convolution, setConvolutionPath('legacy'), or a batch whose N·Ho·Wo exceeds 2^31): pass float32", __FILE__, __LINE__);
  } else {
    conv2d_backward_cols_any(dev, dy, x, w, dx, dw, db, d, workspaceBytes, reluY, kept);
  }
}

struct CpuConv {
  static constexpr bool kCuda = false;
  static constexpr size_t kDefaultWorkspace = kConvWorkspaceCpu;
  // No launches to save on the CPU: the bias fill, the GEMM and a ReLU pass, as unfused (bit for bit).
  static constexpr bool kBiasReluEpilogue = false;
  GemmMath math;
  bool legacyBias = false;  // the legacy bias gradient (conv2d.h)
  bool padK() const { return true; }
  template <class TX>
  void im2col(const TX* x, float* col, int n, const Conv2dDims& d, int64_t sI, int64_t sR, int64_t gr) const {
    im2col_cpu(x, col, n, d, sI, sR, gr);
  }
  void col2im(const float* col, float* x, int n, const Conv2dDims& d, int64_t sI, int64_t sR, int64_t gr) const {
    col2im_cpu(col, x, n, d, sI, sR, gr);
  }
  void pad_rows(const float* s, float* t, int64_t rows, int64_t cols, int64_t ld) const { pad_rows_cpu(s, t, rows, cols, ld); }
  void unpad_rows(const float* s, int64_t ld, float* t, int64_t rows, int64_t cols) const { unpad_rows_cpu(s, ld, t, rows, cols); }
  template <class TY>
  void epilogue(const float* s, int64_t ld, const float* b, TY* y, int n, int K, int64_t P, bool relu) const {
    conv_epilogue_cpu(s, ld, b, y, n, K, P, relu);
  }
  template <class TY>
  void grad_knp(const float* dy, const TY* y, float* dz, int64_t ldZ, float* db, int N, int K, int64_t P) const {
    conv_grad_knp_cpu(dy, y, dz, ldZ, db, N, K, P, legacyBias);
  }
  void permute_nkp(const float* s, float* t, int n, int K, int64_t P) const { permute_nkp_cpu(s, t, n, K, P); }
  void fill_bias(float* y, const float* b, int N, int K, int64_t P) const { fill_bias_cpu(y, b, N, K, P); }
  void bias_grad(const float* dy, float* db, int N, int K, int64_t P) const { bias_grad_cpu(dy, db, N, K, P, legacyBias); }
  void bias_relu(float*, const float*, int, int, int64_t) const {}  // unused (kBiasReluEpilogue)
  void relu(float* y, int64_t n) const { relu_forward_cpu(y, y, n); }
  void relu_bias_grad(const float* dy, const float* y, float* dz, float* db, int N, int K, int64_t P) const {
    relu_bias_grad_cpu(dy, y, dz, db, N, K, P, legacyBias);
  }
  void relu_backward(const float* dy, const float* y, float* dz, int64_t n) const { relu_backward_cpu(dy, y, dz, n); }
  void zero(float* p, int64_t n) const { zero_cpu(p, n); }
  void gemm(bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
            float beta, float* C, int ldc) const {
    gemm_cpu(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, math);
  }
  // The columns path's GEMMs (alpha 1).
  void gemm_t(bool tA, bool tB, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float beta,
              float* C, int ldc) const {
    gemm_cpu(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, math);
  }
  // In bf16 the GPU stores dcol' in bf16 (conv_bf16_storage): the oracle rounds it the same way.
  void round_dcol(float* col, int64_t n) const {
    if (math == GemmMath::Bf16) round_bf16_cpu(col, n);
  }
  void gemm_sb(bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, int64_t sA,
               const float* B, int ldb, int64_t sB, float beta, float* C, int ldc, int64_t sC, int batch) const {
    gemm_strided_batched_cpu(tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch, math);
  }
};

#ifdef AXN_WITH_CUDA
struct CudaConv {
  static constexpr bool kCuda = true;
  static constexpr size_t kDefaultWorkspace = kConvWorkspaceCuda;
  static constexpr bool kBiasReluEpilogue = true;  // one launch adds the bias and applies the ReLU
  GemmMath math;
  bool legacyBias = false;  // the legacy bias gradient (conv2d.h)
  // Planted defect (tests only, the emulated device): the columns path leaves K unpadded.
  bool padK() const { return !AXN_PLANTED(kPlantConvUnpaddedK); }
  template <class TX, class TC>
  void im2col(const TX* x, TC* col, int n, const Conv2dDims& d, int64_t sI, int64_t sR, int64_t gr) const {
    im2col_cuda(x, col, n, d, sI, sR, gr);
  }
  void col2im(const float* col, float* x, int n, const Conv2dDims& d, int64_t sI, int64_t sR, int64_t gr) const {
    col2im_cuda(col, x, n, d, sI, sR, gr);
  }
  void pad_rows(const float* s, float* t, int64_t rows, int64_t cols, int64_t ld) const { pad_rows_cuda(s, t, rows, cols, ld); }
  void unpad_rows(const float* s, int64_t ld, float* t, int64_t rows, int64_t cols) const { unpad_rows_cuda(s, ld, t, rows, cols); }
  template <class TY>
  void epilogue(const float* s, int64_t ld, const float* b, TY* y, int n, int K, int64_t P, bool relu) const {
    conv_epilogue_cuda(s, ld, b, y, n, K, P, relu);
  }
  template <class TY, class TZ>
  void grad_knp(const float* dy, const TY* y, TZ* dz, int64_t ldZ, float* db, int N, int K, int64_t P) const {
    conv_grad_knp_cuda(dy, y, dz, ldZ, db, N, K, P, legacyBias);
  }
  void permute_nkp(const float* s, float* t, int n, int K, int64_t P) const { permute_nkp_cuda(s, t, n, K, P); }
  void fill_bias(float* y, const float* b, int N, int K, int64_t P) const { fill_bias_cuda(y, b, N, K, P); }
  void bias_grad(const float* dy, float* db, int N, int K, int64_t P) const { bias_grad_cuda(dy, db, N, K, P, legacyBias); }
  void bias_relu(float* y, const float* b, int N, int K, int64_t P) const { bias_relu_cuda(y, b, N, K, P); }
  void relu(float* y, int64_t n) const { relu_forward_cuda(y, y, n); }
  void relu_bias_grad(const float* dy, const float* y, float* dz, float* db, int N, int K, int64_t P) const {
    relu_bias_grad_cuda(dy, y, dz, db, N, K, P, legacyBias);
  }
  void relu_backward(const float* dy, const float* y, float* dz, int64_t n) const { relu_backward_cuda(dy, y, dz, n); }
  void zero(float* p, int64_t n) const { zero_cuda(p, n); }
  void gemm(bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
            float beta, float* C, int ldc) const {
    gemm_cuda(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, math);
  }
  // The columns path's GEMMs (alpha 1): float32 storage, or bf16 storage with a float32 or bf16 C.
  void gemm_t(bool tA, bool tB, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float beta,
              float* C, int ldc) const {
    gemm_cuda(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, math);
  }
  void gemm_t(bool tA, bool tB, int M, int N, int K, const bf16_t* A, int lda, const bf16_t* B, int ldb, float beta,
              float* C, int ldc) const {
    gemm_bf16_cuda(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, false, ldc);
  }
  void gemm_t(bool tA, bool tB, int M, int N, int K, const bf16_t* A, int lda, const bf16_t* B, int ldb, float beta,
              bf16_t* C, int ldc) const {
    gemm_bf16_cuda(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, true, ldc);
  }
  void round_dcol(float*, int64_t) const {}   // float32 storage: nothing rounded
  void round_dcol(bf16_t*, int64_t) const {}  // bf16 storage: cuBLAS wrote dcol' in bf16
  void col2im(const bf16_t* col, float* x, int n, const Conv2dDims& d, int64_t sI, int64_t sR, int64_t gr) const {
    col2im_cuda(col, x, n, d, sI, sR, gr);
  }
  void pad_rows(const float* s, bf16_t* t, int64_t rows, int64_t cols, int64_t ld) const { pad_rows_cuda(s, t, rows, cols, ld); }
  void gemm_sb(bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, int64_t sA,
               const float* B, int ldb, int64_t sB, float beta, float* C, int ldc, int64_t sC, int batch) const {
    gemm_strided_batched_cuda(tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch, math);
  }
};
#endif

}  // namespace

int64_t conv2d_columns_floats(const Conv2dDims& d, size_t workspaceBytes, bool cuda, GemmMath math) {
  if (d.N <= 0 || conv2d_identity(d) || !cols_backward_fits(d)) return 0;
  const bool bf = conv_bf16_storage(cuda, math);
  const ColsLayout L(d, true, conv_quantum(bf));
  const int64_t ld = L.ld(d.N);
  const size_t cap = workspaceBytes ? workspaceBytes : cuda ? kConvWorkspaceCuda : kConvWorkspaceCpu;
  // The cap bounds what the forward holds at once: the columns and Y'.
  const double elem = bf ? 2.0 : 4.0;
  if (static_cast<double>(L.rows) * ld * elem + static_cast<double>(d.K) * ld * sizeof(float) > static_cast<double>(cap)) return 0;
  return bf ? L.rows * ld / 2 : L.rows * ld;
}

template <class TX, class TY>
void conv2d_forward_cpu(const TX* x, const float* w, const float* b, TY* y, const Conv2dDims& d,
                        size_t workspaceBytes, GemmMath math, bool relu, ConvPath path, float* columns) {
  conv2d_check_dims("conv2d", d);
  conv2d_forward(CpuConv{math}, x, w, b, y, d, workspaceBytes, relu, path, columns);
}

template <class TX, class TY>
void conv2d_backward_cpu(const float* dy, const TX* x, const float* w, float* dx, float* dw, float* db,
                         const Conv2dDims& d, size_t workspaceBytes, GemmMath math, const TY* reluY,
                         bool reluInPlace, ConvPath path, float* columns, bool legacyBiasGrad) {
  conv2d_check_dims("conv2dBackward", d);
  conv2d_backward(CpuConv{math, legacyBiasGrad}, dy, x, w, dx, dw, db, d, workspaceBytes, reluY, reluInPlace, path, columns);
}

#define AXN_CONV_INSTANTIATE(DEV, TX, TY)                                                                          \
  template void conv2d_forward_##DEV<TX, TY>(const TX*, const float*, const float*, TY*, const Conv2dDims&, size_t, \
                                             GemmMath, bool, ConvPath, float*);                                    \
  template void conv2d_backward_##DEV<TX, TY>(const float*, const TX*, const float*, float*, float*, float*,        \
                                              const Conv2dDims&, size_t, GemmMath, const TY*, bool, ConvPath, float*, bool);
AXN_CONV_INSTANTIATE(cpu, float, float)
AXN_CONV_INSTANTIATE(cpu, float, bf16_t)
AXN_CONV_INSTANTIATE(cpu, bf16_t, float)
AXN_CONV_INSTANTIATE(cpu, bf16_t, bf16_t)

#ifdef AXN_WITH_CUDA
template <class TX, class TY>
void conv2d_forward_cuda(const TX* x, const float* w, const float* b, TY* y, const Conv2dDims& d,
                         size_t workspaceBytes, GemmMath math, bool relu, ConvPath path, float* columns) {
  conv2d_check_dims("conv2d", d);
  conv2d_forward(CudaConv{math}, x, w, b, y, d, workspaceBytes, relu, path, columns);
}

template <class TX, class TY>
void conv2d_backward_cuda(const float* dy, const TX* x, const float* w, float* dx, float* dw, float* db,
                          const Conv2dDims& d, size_t workspaceBytes, GemmMath math, const TY* reluY,
                          bool reluInPlace, ConvPath path, float* columns, bool legacyBiasGrad) {
  conv2d_check_dims("conv2dBackward", d);
  conv2d_backward(CudaConv{math, legacyBiasGrad}, dy, x, w, dx, dw, db, d, workspaceBytes, reluY, reluInPlace, path, columns);
}
AXN_CONV_INSTANTIATE(cuda, float, float)
AXN_CONV_INSTANTIATE(cuda, float, bf16_t)
AXN_CONV_INSTANTIATE(cuda, bf16_t, float)
AXN_CONV_INSTANTIATE(cuda, bf16_t, bf16_t)
#endif
#undef AXN_CONV_INSTANTIATE

}  // namespace axn::ops
