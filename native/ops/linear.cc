// linear: the drivers for both devices (GEMMs + bias kernels) and the CPU bias pieces.
#include "linear.h"

#include <algorithm>
#include <string>
#include <type_traits>

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

int64_t linear_kept_floats(int in, int out, bool cuda, GemmMath math) {
  if (!linear_bf16_storage(cuda, math) || in < 1 || out < 1) return 0;
  return (static_cast<int64_t>(out) * in + 1) / 2;
}

#ifdef AXN_WITH_CUDA
namespace {
size_t bf16Bytes(int64_t rows, int64_t cols) { return static_cast<size_t>(rows * cols) * sizeof(bf16_t); }

// bf16 storage (linear_bf16_storage): the same steps as forward(), on operands rounded by our kernels.
// xBf16: x already in bf16 (bf16 activations), the GEMM operand as it is; else x is rounded into scratch.
void forward_bf16(const float* x, const float* w, const float* b, float* y, int N, int in, int out, bool relu,
                  bf16_t* wKeep, const bf16_t* xBf16 = nullptr) {
  check("linear", N, in, out);
  if (N == 0) return;
  Scratch xBuf(true, xBf16 ? 0 : bf16Bytes(N, in)), wBuf(true, wKeep ? 0 : bf16Bytes(out, in));
  const bf16_t* xb = xBf16;
  if (!xb) {
    to_bf16_cuda("linear.inputBf16", x, xBuf.as<bf16_t>(), static_cast<int64_t>(N) * in);
    xb = xBuf.as<bf16_t>();
  }
  bf16_t* wb = wKeep ? wKeep : wBuf.as<bf16_t>();
  to_bf16_cuda("linear.weightsBf16", w, wb, static_cast<int64_t>(out) * in);
  const bool biasFirst = b && !relu;  // as CudaLinear: with a ReLU, the bias comes in its epilogue
  if (biasFirst) fill_rows_cuda(y, b, N, out);
  gemm_bf16_cuda(false, true, N, out, in, 1.0f, xb, in, wb, in, biasFirst ? 1.0f : 0.0f, y, false, out);
  if (relu) bias_relu_rows_cuda(y, b, N, out);
}

void backward_bf16(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int N, int in,
                   int out, const float* reluY, const bf16_t* wKept, const bf16_t* xBf16 = nullptr) {
  check("linearBackward", N, in, out);
  if (N == 0) {  // no rows: dw = 0, db = 0 (as the float32 path's K = 0 GEMM and empty sums)
    cuda::memsetZero(dw, static_cast<size_t>(out) * in * sizeof(float));
    if (db) cuda::memsetZero(db, static_cast<size_t>(out) * sizeof(float));
    return;
  }
  // dz (through the fused ReLU when reluY) rounded to bf16 in the bias gradient's pass; db from its floats.
  Scratch zBuf(true, bf16Bytes(N, out)), xBuf(true, xBf16 ? 0 : bf16Bytes(N, in));
  Scratch wBuf(true, dx && !wKept ? bf16Bytes(out, in) : 0);
  bf16_t* dz = zBuf.as<bf16_t>();
  grad_columns_bf16_cuda(dy, reluY, dz, db, N, out);
  if (dx) {
    const bf16_t* wb = wKept;
    if (!wb) {
      to_bf16_cuda("linearBackward.weightsBf16", w, wBuf.as<bf16_t>(), static_cast<int64_t>(out) * in);
      wb = wBuf.as<bf16_t>();
    }
    gemm_bf16_cuda(false, false, N, in, out, 1.0f, dz, out, wb, in, 0.0f, dx, false, in);  // dx = dz · w
  }
  const bf16_t* xb = xBf16;
  if (!xb) {
    to_bf16_cuda("linearBackward.inputBf16", x, xBuf.as<bf16_t>(), static_cast<int64_t>(N) * in);
    xb = xBuf.as<bf16_t>();
  }
  gemm_bf16_cuda(true, false, out, in, N, 1.0f, dz, out, xb, in, 0.0f, dw, false, in);  // dw = dzᵀ · x
}
}  // namespace

void linear_forward_cuda(const float* x, const float* w, const float* b, float* y, int N, int in, int out,
                         GemmMath math, bool relu, bf16_t* wKeep) {
  if (linear_bf16_storage(true, math)) return forward_bf16(x, w, b, y, N, in, out, relu, wKeep);
  AXN_CHECK(!wKeep, "linear", "a kept weight copy was given, but only bf16 storage keeps one");
  forward(CudaLinear{math}, x, w, b, y, N, in, out, relu);
}
void linear_backward_cuda(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int N,
                          int in, int out, GemmMath math, const float* reluY, bool reluInPlace, const bf16_t* wKept) {
  if (linear_bf16_storage(true, math)) return backward_bf16(dy, x, w, dx, dw, db, N, in, out, reluY, wKept);
  AXN_CHECK(!wKept, "linearBackward", "a kept weight copy was given, but only bf16 storage keeps one");
  backward(CudaLinear{math}, dy, x, w, dx, dw, db, N, in, out, reluY, reluInPlace);
}
#endif

// ---- bf16 activations: adapters around the float32 entry points (linear.h) ----
namespace {
template <class T>
constexpr bool kBf16 = std::is_same_v<T, bf16_t>;
// The bytes of a float32 copy of n values of T: none for float.
template <class T>
size_t widenBytes(int64_t n) {
  return kBf16<T> ? static_cast<size_t>(n) * sizeof(float) : 0;
}

template <bool kCudaDev>
struct ActIo {
  // A float32 view of a: itself, or its widened copy in buf (widenBytes of it).
  static const float* widen(const float* a, float*, int64_t, const char*) { return a; }
  static const float* widen(const bf16_t* a, float* buf, int64_t n, const char* op) {
#ifdef AXN_WITH_CUDA
    if constexpr (kCudaDev) {
      from_bf16_cuda(op, a, buf, n);
      return buf;
    }
#endif
    (void)op;
    from_bf16_cpu(a, buf, n);
    return buf;
  }
  // Where the float32 result goes: y itself, or buf, which round() then stores into a bf16 y.
  static float* target(float* y, float*) { return y; }
  static float* target(bf16_t*, float* buf) { return buf; }
  static void round(const float*, float*, int64_t, const char*) {}
  static void round(const float* src, bf16_t* y, int64_t n, const char* op) {
#ifdef AXN_WITH_CUDA
    if constexpr (kCudaDev) {
      to_bf16_cuda(op, src, y, n);
      return;
    }
#endif
    (void)op;
    to_bf16_cpu(src, y, n);
  }
};
}  // namespace

template <class TX, class TY>
void linear_forward_act_cpu(const TX* x, const float* w, const float* b, TY* y, int N, int in, int out, GemmMath math,
                            bool relu) {
  using Io = ActIo<false>;
  const int64_t nx = static_cast<int64_t>(N) * in, ny = static_cast<int64_t>(N) * out;
  Scratch xs(false, widenBytes<TX>(nx)), ys(false, widenBytes<TY>(ny));
  const float* xf = Io::widen(x, xs.as<float>(), nx, "linear.inputWiden");
  float* yf = Io::target(y, ys.as<float>());
  linear_forward_cpu(xf, w, b, yf, N, in, out, math, relu);
  Io::round(yf, y, ny, "linear.outputBf16");
}

template <class TX, class TY>
void linear_backward_act_cpu(const float* dy, const TX* x, const float* w, float* dx, float* dw, float* db, int N,
                             int in, int out, GemmMath math, const TY* reluY, bool reluInPlace) {
  using Io = ActIo<false>;
  const int64_t nx = static_cast<int64_t>(N) * in, ny = static_cast<int64_t>(N) * out;
  Scratch xs(false, widenBytes<TX>(nx)), ys(false, reluY ? widenBytes<TY>(ny) : 0);
  const float* xf = Io::widen(x, xs.as<float>(), nx, "linearBackward.inputWiden");
  const float* yf = reluY ? Io::widen(reluY, ys.as<float>(), ny, "linearBackward.reluWiden") : nullptr;
  linear_backward_cpu(dy, xf, w, dx, dw, db, N, in, out, math, yf, reluInPlace);
}

#ifdef AXN_WITH_CUDA
template <class TX, class TY>
void linear_forward_act_cuda(const TX* x, const float* w, const float* b, TY* y, int N, int in, int out, GemmMath math,
                             bool relu, bf16_t* wKeep) {
  using Io = ActIo<true>;
  const int64_t nx = static_cast<int64_t>(N) * in, ny = static_cast<int64_t>(N) * out;
  // CUDA's bf16 storage reads a bf16 x as its GEMM operand: no float32 copy of it.
  const bool direct = kBf16<TX> && linear_bf16_storage(true, math);
  Scratch xs(true, direct ? 0 : widenBytes<TX>(nx)), ys(true, widenBytes<TY>(ny));
  float* yf = Io::target(y, ys.as<float>());
  if constexpr (kBf16<TX>) {
    if (direct) {
      forward_bf16(nullptr, w, b, yf, N, in, out, relu, wKeep, x);
      Io::round(yf, y, ny, "linear.outputBf16");
      return;
    }
  }
  const float* xf = Io::widen(x, xs.as<float>(), nx, "linear.inputWiden");
  linear_forward_cuda(xf, w, b, yf, N, in, out, math, relu, wKeep);
  Io::round(yf, y, ny, "linear.outputBf16");
}

template <class TX, class TY>
void linear_backward_act_cuda(const float* dy, const TX* x, const float* w, float* dx, float* dw, float* db, int N,
                              int in, int out, GemmMath math, const TY* reluY, bool reluInPlace, const bf16_t* wKept) {
  using Io = ActIo<true>;
  const int64_t nx = static_cast<int64_t>(N) * in, ny = static_cast<int64_t>(N) * out;
  const bool direct = kBf16<TX> && linear_bf16_storage(true, math);
  Scratch xs(true, direct ? 0 : widenBytes<TX>(nx)), ys(true, reluY ? widenBytes<TY>(ny) : 0);
  const float* yf = reluY ? Io::widen(reluY, ys.as<float>(), ny, "linearBackward.reluWiden") : nullptr;
  if constexpr (kBf16<TX>) {
    if (direct) {
      backward_bf16(dy, nullptr, w, dx, dw, db, N, in, out, yf, wKept, x);
      return;
    }
  }
  const float* xf = Io::widen(x, xs.as<float>(), nx, "linearBackward.inputWiden");
  linear_backward_cuda(dy, xf, w, dx, dw, db, N, in, out, math, yf, reluInPlace, wKept);
}
#endif

#define AXN_LINEAR_INSTANTIATE(TX, TY)                                                                               \
  template void linear_forward_act_cpu<TX, TY>(const TX*, const float*, const float*, TY*, int, int, int, GemmMath,   \
                                               bool);                                                                \
  template void linear_backward_act_cpu<TX, TY>(const float*, const TX*, const float*, float*, float*, float*, int,   \
                                                int, int, GemmMath, const TY*, bool);                                \
  AXN_LINEAR_INSTANTIATE_CUDA(TX, TY)
#ifdef AXN_WITH_CUDA
#define AXN_LINEAR_INSTANTIATE_CUDA(TX, TY)                                                                          \
  template void linear_forward_act_cuda<TX, TY>(const TX*, const float*, const float*, TY*, int, int, int, GemmMath,  \
                                                bool, bf16_t*);                                                      \
  template void linear_backward_act_cuda<TX, TY>(const float*, const TX*, const float*, float*, float*, float*, int,  \
                                                 int, int, GemmMath, const TY*, bool, const bf16_t*);
#else
#define AXN_LINEAR_INSTANTIATE_CUDA(TX, TY)
#endif
AXN_LINEAR_INSTANTIATE(float, float)
AXN_LINEAR_INSTANTIATE(float, bf16_t)
AXN_LINEAR_INSTANTIATE(bf16_t, float)
AXN_LINEAR_INSTANTIATE(bf16_t, bf16_t)
#undef AXN_LINEAR_INSTANTIATE
#undef AXN_LINEAR_INSTANTIATE_CUDA

}  // namespace axn::ops
