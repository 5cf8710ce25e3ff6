// N-API bindings of local response normalisation (lib/ops/lrn.ts validates first). S = product of the
// spatial sizes (H·W).
//   ops.lrn_forward(x, y, N, C, S, size, alpha, beta, k, dtype)          x, y: dtype ("float32" or "bfloat16")
//   ops.lrn_backward(dy, x, dx, N, C, S, size, alpha, beta, k, xDtype)   (scale and y are recomputed from x)
// The legacy path (lrn.h; float32 only), kept for the A/B of issue 19's lever 2:
//   ops.lrn_forward_legacy(x, y, scale, N, C, S, size, alpha, beta, k)
//   ops.lrn_backward_legacy(dy, x, y, scale, dx, N, C, S, size, alpha, beta, k)
#include "bind/util.h"
#include "ops/lrn.h"

namespace axn::bind {
namespace {

// x and y of T (float, or bf16_t for bfloat16 activations).
template <typename T>
void lrnForward(const Napi::CallbackInfo& info, const char* op, int N, int C, int64_t S, int size, float alpha,
                float beta, float k) {
  const size_t n = (size_t)N * (size_t)C * (size_t)S;
  const T* x = ptr<const T>(info, 0, op, "x", n);
  T* y = ptr<T>(info, 1, op, "y", n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "y")});
  AXN_DISPATCH(cuda, ops::lrn_forward_cpu(x, y, N, C, S, size, alpha, beta, k),
               ops::lrn_forward_cuda(x, y, N, C, S, size, alpha, beta, k));
}

Napi::Value LrnForward(const Napi::CallbackInfo& info) {
  const char* op = "lrn_forward";
  const int N = i32(info, 2, op, "N"), C = i32(info, 3, op, "C");
  const long long S = i64(info, 4, op, "S");
  const int size = i32(info, 5, op, "size");
  const float alpha = f32(info, 6, op, "alpha"), beta = f32(info, 7, op, "beta"), k = f32(info, 8, op, "k");
  AXN_CHECK(N >= 0 && C >= 0 && S >= 0 && size > 0, op, "bad sizes");
  if (bf16Dtype(info, 9, op, "dtype")) lrnForward<ops::bf16_t>(info, op, N, C, S, size, alpha, beta, k);
  else lrnForward<float>(info, op, N, C, S, size, alpha, beta, k);
  return info.Env().Undefined();
}

// dy and dx float32, x of T.
template <typename T>
void lrnBackward(const Napi::CallbackInfo& info, const char* op, int N, int C, int64_t S, int size, float alpha,
                 float beta, float k) {
  const size_t n = (size_t)N * (size_t)C * (size_t)S;
  const float* dy = ptr<const float>(info, 0, op, "dy", n);
  const T* x = ptr<const T>(info, 1, op, "x", n);
  float* dx = ptr<float>(info, 2, op, "dx", n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "dy"), storage(info, 1, op, "x"), storage(info, 2, op, "dx")});
  AXN_DISPATCH(cuda, ops::lrn_backward_cpu(dy, x, dx, N, C, S, size, alpha, beta, k),
               ops::lrn_backward_cuda(dy, x, dx, N, C, S, size, alpha, beta, k));
}

Napi::Value LrnBackward(const Napi::CallbackInfo& info) {
  const char* op = "lrn_backward";
  const int N = i32(info, 3, op, "N"), C = i32(info, 4, op, "C");
  const long long S = i64(info, 5, op, "S");
  const int size = i32(info, 6, op, "size");
  const float alpha = f32(info, 7, op, "alpha"), beta = f32(info, 8, op, "beta"), k = f32(info, 9, op, "k");
  AXN_CHECK(N >= 0 && C >= 0 && S >= 0 && size > 0, op, "bad sizes");
  if (bf16Dtype(info, 10, op, "x's dtype")) lrnBackward<ops::bf16_t>(info, op, N, C, S, size, alpha, beta, k);
  else lrnBackward<float>(info, op, N, C, S, size, alpha, beta, k);
  return info.Env().Undefined();
}

// The legacy path's arguments after its `tensors` float32 tensors of N·C·S floats: N, C, S, size, alpha, beta, k.
struct LegacyArgs {
  int N, C, size;
  int64_t S;
  float alpha, beta, k;
  size_t n;
  LegacyArgs(const Napi::CallbackInfo& info, size_t i, const char* op)
      : N(i32(info, i, op, "N")), C(i32(info, i + 1, op, "C")), size(i32(info, i + 3, op, "size")),
        S(i64(info, i + 2, op, "S")), alpha(f32(info, i + 4, op, "alpha")), beta(f32(info, i + 5, op, "beta")),
        k(f32(info, i + 6, op, "k")) {
    AXN_CHECK(N >= 0 && C >= 0 && S >= 0 && size > 0, op, "bad sizes");
    n = (size_t)N * (size_t)C * (size_t)S;
  }
};

Napi::Value LrnForwardLegacy(const Napi::CallbackInfo& info) {
  const char* op = "lrn_forward_legacy";
  const LegacyArgs a(info, 3, op);
  const float* x = ptr<const float>(info, 0, op, "x", a.n);
  float* y = ptr<float>(info, 1, op, "y", a.n);
  float* scale = ptr<float>(info, 2, op, "scale", a.n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "y"), storage(info, 2, op, "scale")});
  AXN_DISPATCH(cuda, ops::lrn_forward_legacy_cpu(x, y, scale, a.N, a.C, a.S, a.size, a.alpha, a.beta, a.k),
               ops::lrn_forward_legacy_cuda(x, y, scale, a.N, a.C, a.S, a.size, a.alpha, a.beta, a.k));
  return info.Env().Undefined();
}

Napi::Value LrnBackwardLegacy(const Napi::CallbackInfo& info) {
  const char* op = "lrn_backward_legacy";
  const LegacyArgs a(info, 5, op);
  const float* dy = ptr<const float>(info, 0, op, "dy", a.n);
  const float* x = ptr<const float>(info, 1, op, "x", a.n);
  const float* y = ptr<const float>(info, 2, op, "y", a.n);
  const float* scale = ptr<const float>(info, 3, op, "scale", a.n);
  float* dx = ptr<float>(info, 4, op, "dx", a.n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "dy"), storage(info, 1, op, "x"), storage(info, 2, op, "y"),
                                storage(info, 3, op, "scale"), storage(info, 4, op, "dx")});
  AXN_DISPATCH(cuda, ops::lrn_backward_legacy_cpu(dy, x, y, scale, dx, a.N, a.C, a.S, a.size, a.alpha, a.beta, a.k),
               ops::lrn_backward_legacy_cuda(dy, x, y, scale, dx, a.N, a.C, a.S, a.size, a.alpha, a.beta, a.k));
  return info.Env().Undefined();
}

void RegisterLrn(Napi::Env env, Napi::Object& ops) {
  ops.Set("lrn_forward", Napi::Function::New(env, LrnForward, "lrn_forward"));
  ops.Set("lrn_backward", Napi::Function::New(env, LrnBackward, "lrn_backward"));
  ops.Set("lrn_forward_legacy", Napi::Function::New(env, LrnForwardLegacy, "lrn_forward_legacy"));
  ops.Set("lrn_backward_legacy", Napi::Function::New(env, LrnBackwardLegacy, "lrn_backward_legacy"));
}

}  // namespace

AXN_REGISTER_OPS(RegisterLrn);

}  // namespace axn::bind
