// linear: the drivers for both devices (GEMMs + bias kernels) and the CPU bias pieces.
#include "linear.h"

#include <algorithm>
#include <string>

#include "../common.h"
#include "../scratch.h"
#include "relu.h"

namespace axn::ops {

void fill_rows_cpu(float* y, const float* b, int N, int out) {
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * out > (1 << 16))
  for (int n = 0; n < N; n++) std::copy(b, b + out, y + static_cast<int64_t>(n) * out);
}

namespace {
// db[j] = Σ_n g[n, j] in double, in a fixed order. Plain: g = dy. Relu: g = relu_bwd(dy, y), also written
// to dz (which may alias dy) — the same sum as the plain loop over dz.
template <bool Relu>
void column_sums_loop(const float* dy, const float* y, float* dz, float* db, int N, int out) {
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * out > (1 << 16))
  for (int j = 0; j < out; j++) {
    double s = 0.0;
    for (int n = 0; n < N; n++) {
      const int64_t i = static_cast<int64_t>(n) * out + j;
      float g = dy[i];
      if constexpr (Relu) {
        g = relu_bwd(g, y[i]);
        dz[i] = g;
      }
      s += g;
    }
    db[j] = static_cast<float>(s);
  }
}
}  // namespace

void column_sums_cpu(const float* dy, float* db, int N, int out) { column_sums_loop<false>(dy, nullptr, nullptr, db, N, out); }

void relu_column_sums_cpu(const float* dy, const float* y, float* dz, float* db, int N, int out) {
  column_sums_loop<true>(dy, y, dz, db, N, out);
}

namespace {

void check(const char* op, int N, int in, int out) {
  AXN_CHECK(N >= 0 && in >= 1 && out >= 1, op,
            "expected N ≥ 0, in ≥ 1, out ≥ 1, got N=" + std::to_string(N) + " in=" + std::to_string(in) +
                " out=" + std::to_string(out));
}

struct CpuLinear {
  static constexpr bool kCuda = false;
  static constexpr bool kBiasReluEpilogue = false;  // bias fill, GEMM, ReLU pass: the unfused values
  GemmMath math;
  void gemm(bool tA, bool tB, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float beta,
            float* C, int ldc) const {
    gemm_cpu(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, math);
  }
  void fill_rows(float* y, const float* b, int N, int out) const { fill_rows_cpu(y, b, N, out); }
  void column_sums(const float* dy, float* db, int N, int out) const { column_sums_cpu(dy, db, N, out); }
  void bias_relu(float*, const float*, int, int) const {}  // unused (kBiasReluEpilogue)
  void relu(float* y, int64_t n) const { relu_forward_cpu(y, y, n); }
  void relu_column_sums(const float* dy, const float* y, float* dz, float* db, int N, int out) const {
    relu_column_sums_cpu(dy, y, dz, db, N, out);
  }
  void relu_backward(const float* dy, const float* y, float* dz, int64_t n) const { relu_backward_cpu(dy, y, dz, n); }
};

#ifdef AXN_WITH_CUDA
struct CudaLinear {
  static constexpr bool kCuda = true;
  static constexpr bool kBiasReluEpilogue = true;  // GEMM (beta = 0), then bias + ReLU in one launch
  GemmMath math;
  void gemm(bool tA, bool tB, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float beta,
            float* C, int ldc) const {
    gemm_cuda(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, math);
  }
  void fill_rows(float* y, const float* b, int N, int out) const { fill_rows_cuda(y, b, N, out); }
  void column_sums(const float* dy, float* db, int N, int out) const { column_sums_cuda(dy, db, N, out); }
  void bias_relu(float* y, const float* b, int N, int out) const { bias_relu_rows_cuda(y, b, N, out); }
  void relu(float* y, int64_t n) const { relu_forward_cuda(y, y, n); }
  void relu_column_sums(const float* dy, const float* y, float* dz, float* db, int N, int out) const {
    relu_column_sums_cuda(dy, y, dz, db, N, out);
  }
  void relu_backward(const float* dy, const float* y, float* dz, int64_t n) const { relu_backward_cuda(dy, y, dz, n); }
};
#endif

template <class Dev>
void forward(const Dev& dev, const float* x, const float* w, const float* b, float* y, int N, int in, int out,
             bool relu) {
  check("linear", N, in, out);
  if (N == 0) return;
  // With a bias, y starts as b in every row and the GEMM accumulates onto it (one pass over y) — unless
  // a fused epilogue adds it with the ReLU after the GEMM.
  const bool epilogue = relu && Dev::kBiasReluEpilogue;
  const bool biasFirst = b && !epilogue;
  if (biasFirst) dev.fill_rows(y, b, N, out);
  dev.gemm(false, true, N, out, in, x, in, w, in, biasFirst ? 1.0f : 0.0f, y, out);  // y (+)= x · wᵀ
  if (epilogue) dev.bias_relu(y, b, N, out);
  else if (relu) dev.relu(y, static_cast<int64_t>(N) * out);
}

template <class Dev>
void backward(const Dev& dev, const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int N,
              int in, int out, const float* reluY, bool reluInPlace) {
  check("linearBackward", N, in, out);
  // Fused ReLU: dz = dy where y > 0, formed in the bias gradient's pass; the GEMMs then run on dz.
  const bool scratchDz = reluY && N > 0 && !reluInPlace;
  Scratch dzBuf(Dev::kCuda, scratchDz ? static_cast<size_t>(N) * out * sizeof(float) : 0);
  if (reluY && N > 0) {
    float* dz = scratchDz ? dzBuf.as<float>() : const_cast<float*>(dy);  // in place: the binding holds dy as written
    if (db) dev.relu_column_sums(dy, reluY, dz, db, N, out);
    else dev.relu_backward(dy, reluY, dz, static_cast<int64_t>(N) * out);
    dy = dz;
  } else if (db) {
    dev.column_sums(dy, db, N, out);  // db = Σ_n dy (N = 0: zeros)
  }
  if (dx && N > 0) dev.gemm(false, false, N, in, out, dy, out, w, in, 0.0f, dx, in);  // dx = dy · w
  dev.gemm(true, false, out, in, N, dy, out, x, in, 0.0f, dw, in);  // dw = dyᵀ · x (N = 0: zeros)
}

}  // namespace

void linear_forward_cpu(const float* x, const float* w, const float* b, float* y, int N, int in, int out, GemmMath math,
                        bool relu) {
  forward(CpuLinear{math}, x, w, b, y, N, in, out, relu);
}
void linear_backward_cpu(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int N,
                         int in, int out, GemmMath math, const float* reluY, bool reluInPlace) {
  backward(CpuLinear{math}, dy, x, w, dx, dw, db, N, in, out, reluY, reluInPlace);
}

#ifdef AXN_WITH_CUDA
void linear_forward_cuda(const float* x, const float* w, const float* b, float* y, int N, int in, int out,
                         GemmMath math, bool relu) {
  forward(CudaLinear{math}, x, w, b, y, N, in, out, relu);
}
void linear_backward_cuda(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int N,
                          int in, int out, GemmMath math, const float* reluY, bool reluInPlace) {
  backward(CudaLinear{math}, dy, x, w, dx, dw, db, N, in, out, reluY, reluInPlace);
}
#endif

}  // namespace axn::ops
