// N-API bindings of the row-major GEMM (lib/ops/linear.ts's matmul validates first; tests call these
// directly with leading dimensions and strides):
//   ops.gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, math)
//   ops.gemm_strided_batched(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta,
//                            C, ldc, strideC, batch, math)
//   ops.gemm_builtin(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, isa, math?)   CPU only
//   ops.gemm_builtin_isas() -> the micro-kernel variants this CPU runs, e.g. ['generic', 'avx2', 'avx512']
#include <string>

#include "bind/util.h"
#include "ops/gemm.h"

namespace axn::bind {
namespace {

struct GemmArgs {
  bool transA, transB;
  int M, N, K;
  float alpha, beta;
  int lda, ldb, ldc;
};

// Elements a row-major rows×cols matrix with leading dimension ld spans.
size_t extent(int rows, int cols, int ld) {
  if (rows <= 0 || cols <= 0) return 0;
  return static_cast<size_t>(rows - 1) * static_cast<size_t>(ld) + static_cast<size_t>(cols);
}
size_t batchedExtent(size_t one, long long stride, int batch) {
  if (one == 0 || batch <= 0) return 0;
  return static_cast<size_t>(batch - 1) * static_cast<size_t>(stride) + one;
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const char* op = "gemm";
  const bool tA = flag(info, 0), tB = flag(info, 1);
  const int M = i32(info, 2, op, "M"), N = i32(info, 3, op, "N"), K = i32(info, 4, op, "K");
  const float alpha = f32(info, 5, op, "alpha");
  const int lda = i32(info, 7, op, "lda"), ldb = i32(info, 9, op, "ldb");
  const float beta = f32(info, 10, op, "beta");
  const int ldc = i32(info, 12, op, "ldc");
  const ops::GemmMath math = gemmMath(info, 13);
  ops::gemm_check_args(op, tA, tB, M, N, K, lda, ldb, ldc);
  const float* A = ptr<const float>(info, 6, op, "A", extent(tA ? K : M, tA ? M : K, lda));
  const float* B = ptr<const float>(info, 8, op, "B", extent(tB ? N : K, tB ? K : N, ldb));
  float* C = ptr<float>(info, 11, op, "C", extent(M, N, ldc));
  const bool cuda = onCuda(op, {storage(info, 6, op, "A"), storage(info, 8, op, "B"), storage(info, 11, op, "C")});
  AXN_DISPATCH(cuda, ops::gemm_cpu(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, math),
               ops::gemm_cuda(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, math));
  return info.Env().Undefined();
}

Napi::Value GemmStridedBatched(const Napi::CallbackInfo& info) {
  const char* op = "gemm_strided_batched";
  const bool tA = flag(info, 0), tB = flag(info, 1);
  const int M = i32(info, 2, op, "M"), N = i32(info, 3, op, "N"), K = i32(info, 4, op, "K");
  const float alpha = f32(info, 5, op, "alpha");
  const int lda = i32(info, 7, op, "lda");
  const long long sA = i64(info, 8, op, "strideA");
  const int ldb = i32(info, 10, op, "ldb");
  const long long sB = i64(info, 11, op, "strideB");
  const float beta = f32(info, 12, op, "beta");
  const int ldc = i32(info, 14, op, "ldc");
  const long long sC = i64(info, 15, op, "strideC");
  const int batch = i32(info, 16, op, "batch");
  const ops::GemmMath math = gemmMath(info, 17);
  ops::gemm_check_args(op, tA, tB, M, N, K, lda, ldb, ldc);
  AXN_CHECK(sA >= 0 && sB >= 0 && sC >= 0 && batch >= 0, op, "strides and batch must be ≥ 0");
  const size_t eC = extent(M, N, ldc);
  AXN_CHECK(batch <= 1 || static_cast<size_t>(sC) >= eC, op,
            "strideC " + std::to_string(sC) + " makes the batch's outputs overlap (each spans " + std::to_string(eC) +
                " elements)");
  const float* A = ptr<const float>(info, 6, op, "A", batchedExtent(extent(tA ? K : M, tA ? M : K, lda), sA, batch));
  const float* B = ptr<const float>(info, 9, op, "B", batchedExtent(extent(tB ? N : K, tB ? K : N, ldb), sB, batch));
  float* C = ptr<float>(info, 13, op, "C", batchedExtent(eC, sC, batch));
  const bool cuda = onCuda(op, {storage(info, 6, op, "A"), storage(info, 9, op, "B"), storage(info, 13, op, "C")});
  AXN_DISPATCH(cuda,
               ops::gemm_strided_batched_cpu(tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch,
                                             math),
               ops::gemm_strided_batched_cuda(tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch,
                                              math));
  return info.Env().Undefined();
}

ops::GemmIsa parseIsa(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || info[i].IsUndefined()) return ops::GemmIsa::Auto;
  const std::string s = info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : std::string("?");
  for (ops::GemmIsa isa : {ops::GemmIsa::Auto, ops::GemmIsa::Generic, ops::GemmIsa::Avx2, ops::GemmIsa::Avx512})
    if (s == ops::gemm_isa_name(isa)) return isa;
  fail(op, "isa must be 'auto', 'generic', 'avx2' or 'avx512', got '" + s + "'", __FILE__, __LINE__);
}

Napi::Value GemmBuiltin(const Napi::CallbackInfo& info) {
  const char* op = "gemm_builtin";
  const bool tA = flag(info, 0), tB = flag(info, 1);
  const int M = i32(info, 2, op, "M"), N = i32(info, 3, op, "N"), K = i32(info, 4, op, "K");
  const float alpha = f32(info, 5, op, "alpha");
  const int lda = i32(info, 7, op, "lda"), ldb = i32(info, 9, op, "ldb");
  const float beta = f32(info, 10, op, "beta");
  const int ldc = i32(info, 12, op, "ldc");
  const ops::GemmIsa isa = parseIsa(info, 13, op);
  const ops::GemmMath math = info.Length() > 14 && !info[14].IsUndefined() ? gemmMath(info, 14) : ops::GemmMath::Fp32;
  ops::gemm_check_args(op, tA, tB, M, N, K, lda, ldb, ldc);
  const float* A = ptr<const float>(info, 6, op, "A", extent(tA ? K : M, tA ? M : K, lda));
  const float* B = ptr<const float>(info, 8, op, "B", extent(tB ? N : K, tB ? K : N, ldb));
  float* C = ptr<float>(info, 11, op, "C", extent(M, N, ldc));
  if (onCuda(op, {storage(info, 6, op, "A"), storage(info, 8, op, "B"), storage(info, 11, op, "C")}))
    fail(op, "the built-in GEMM runs on the CPU; got CUDA tensors", __FILE__, __LINE__);
  AXN_CPU_ENQUEUE(ops::gemm_builtin_cpu(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, math, isa));
  return info.Env().Undefined();
}

Napi::Value GemmBuiltinIsas(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env());
  uint32_t n = 0;
  for (ops::GemmIsa isa : {ops::GemmIsa::Generic, ops::GemmIsa::Avx2, ops::GemmIsa::Avx512})
    if (ops::gemm_builtin_isa_supported(isa)) out.Set(n++, ops::gemm_isa_name(isa));
  return out;
}

void RegisterGemm(Napi::Env env, Napi::Object& ops) {
  ops.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  ops.Set("gemm_strided_batched", Napi::Function::New(env, GemmStridedBatched, "gemm_strided_batched"));
  ops.Set("gemm_builtin", Napi::Function::New(env, GemmBuiltin, "gemm_builtin"));
  ops.Set("gemm_builtin_isas", Napi::Function::New(env, GemmBuiltinIsas, "gemm_builtin_isas"));
}

}  // namespace

AXN_REGISTER_OPS(RegisterGemm);

}  // namespace axn::bind
