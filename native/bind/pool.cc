// N-API bindings of the pooling ops (lib/ops/pool.ts validates shapes and options first; these are the
// cheap last guards). Outputs are allocated by TypeScript and passed in.
//   ops.maxpool2d_forward(x, y, indices, N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, dtype)
//       dtype: x's and y's, "float32" or "bfloat16"
//   ops.maxpool2d_backward(dy, indices, dx, N, C, H, W, Ho, Wo[, kh, kw, sh, sw, ph, pw])
//       with the window geometry, CUDA gathers (deterministic); without it, CUDA scatters with atomics.
//   ops.adaptive_avgpool2d_forward(x, y, N, C, H, W, Ho, Wo)
//   ops.adaptive_avgpool2d_backward(dy, dx, N, C, H, W, Ho, Wo)
#include <string>

#include "bind/util.h"
#include "ops/avgpool2d.h"
#include "ops/maxpool2d.h"

namespace axn::bind {
namespace {

size_t count(int a, int b, int c, int d) { return (size_t)a * (size_t)b * (size_t)c * (size_t)d; }

// x and y of T (float, or bf16_t for bfloat16 activations).
template <typename T>
void maxpoolForward(const Napi::CallbackInfo& info, const char* op, int N, int C, int H, int W, int kh, int kw, int sh,
                    int sw, int ph, int pw, int Ho, int Wo) {
  const size_t in = count(N, C, H, W), out = count(N, C, Ho, Wo);
  const T* x = ptr<const T>(info, 0, op, "x", in);
  T* y = ptr<T>(info, 1, op, "y", out);
  int32_t* idx = ptr<int32_t>(info, 2, op, "indices", out);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "y"), storage(info, 2, op, "indices")});
  AXN_DISPATCH(cuda, ops::maxpool2d_forward_cpu(x, y, idx, N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo),
               ops::maxpool2d_forward_cuda(x, y, idx, N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo));
}

Napi::Value MaxPool2dForward(const Napi::CallbackInfo& info) {
  const char* op = "maxpool2d_forward";
  const int N = i32(info, 3, op, "N"), C = i32(info, 4, op, "C"), H = i32(info, 5, op, "H"), W = i32(info, 6, op, "W");
  const int kh = i32(info, 7, op, "kh"), kw = i32(info, 8, op, "kw"), sh = i32(info, 9, op, "sh"),
            sw = i32(info, 10, op, "sw"), ph = i32(info, 11, op, "ph"), pw = i32(info, 12, op, "pw");
  const int Ho = i32(info, 13, op, "Ho"), Wo = i32(info, 14, op, "Wo");
  AXN_CHECK(N >= 0 && C >= 0 && H > 0 && W > 0 && Ho > 0 && Wo > 0, op, "bad sizes");
  AXN_CHECK(kh > 0 && kw > 0 && sh > 0 && sw > 0, op, "kernel and stride must be positive");
  AXN_CHECK(ph >= 0 && pw >= 0 && 2 * ph <= kh && 2 * pw <= kw, op, "padding must be at most half the kernel");
  // Every window must hold an input element (guaranteed by lib/ops/pool.ts's output-size rule).
  AXN_CHECK((Ho - 1) * sh - ph < H && (Wo - 1) * sw - pw < W, op, "output size too large for the input");
  if (bf16Dtype(info, 15, op, "dtype")) maxpoolForward<ops::bf16_t>(info, op, N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo);
  else maxpoolForward<float>(info, op, N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo);
  return info.Env().Undefined();
}

Napi::Value MaxPool2dBackward(const Napi::CallbackInfo& info) {
  const char* op = "maxpool2d_backward";
  const int N = i32(info, 3, op, "N"), C = i32(info, 4, op, "C"), H = i32(info, 5, op, "H"), W = i32(info, 6, op, "W");
  const int Ho = i32(info, 7, op, "Ho"), Wo = i32(info, 8, op, "Wo");
  AXN_CHECK(N >= 0 && C >= 0 && H > 0 && W > 0 && Ho > 0 && Wo > 0, op, "bad sizes");
  const bool geometry = info.Length() > 9 && !info[9].IsUndefined();
  int kh = 0, kw = 0, sh = 0, sw = 0, ph = 0, pw = 0;
  if (geometry) {
    kh = i32(info, 9, op, "kh"), kw = i32(info, 10, op, "kw"), sh = i32(info, 11, op, "sh"),
    sw = i32(info, 12, op, "sw"), ph = i32(info, 13, op, "ph"), pw = i32(info, 14, op, "pw");
    AXN_CHECK(kh > 0 && kw > 0 && sh > 0 && sw > 0 && ph >= 0 && pw >= 0, op, "bad window geometry");
  }
  const size_t in = count(N, C, H, W), out = count(N, C, Ho, Wo);
  const float* dy = ptr<const float>(info, 0, op, "dy", out);
  const int32_t* idx = ptr<const int32_t>(info, 1, op, "indices", out);
  float* dx = ptr<float>(info, 2, op, "dx", in);
  const bool cuda = onCuda(op, {storage(info, 0, op, "dy"), storage(info, 1, op, "indices"), storage(info, 2, op, "dx")});
  (void)kh, (void)kw, (void)sh, (void)sw, (void)ph, (void)pw;  // only the CUDA gather needs the geometry
  AXN_DISPATCH(cuda, ops::maxpool2d_backward_cpu(dy, idx, dx, N, C, H, W, Ho, Wo), {
    if (geometry) ops::maxpool2d_backward_cuda(dy, idx, dx, N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo);
    else ops::maxpool2d_backward_scatter_cuda(dy, idx, dx, N, C, H, W, Ho, Wo);
  });
  return info.Env().Undefined();
}

Napi::Value AdaptiveAvgPool2dForward(const Napi::CallbackInfo& info) {
  const char* op = "adaptive_avgpool2d_forward";
  const int N = i32(info, 2, op, "N"), C = i32(info, 3, op, "C"), H = i32(info, 4, op, "H"), W = i32(info, 5, op, "W");
  const int Ho = i32(info, 6, op, "Ho"), Wo = i32(info, 7, op, "Wo");
  AXN_CHECK(N >= 0 && C >= 0 && H > 0 && W > 0 && Ho > 0 && Wo > 0, op, "bad sizes");
  const float* x = ptr<const float>(info, 0, op, "x", count(N, C, H, W));
  float* y = ptr<float>(info, 1, op, "y", count(N, C, Ho, Wo));
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "y")});
  AXN_DISPATCH(cuda, ops::adaptive_avgpool2d_forward_cpu(x, y, N, C, H, W, Ho, Wo),
               ops::adaptive_avgpool2d_forward_cuda(x, y, N, C, H, W, Ho, Wo));
  return info.Env().Undefined();
}

Napi::Value AdaptiveAvgPool2dBackward(const Napi::CallbackInfo& info) {
  const char* op = "adaptive_avgpool2d_backward";
  const int N = i32(info, 2, op, "N"), C = i32(info, 3, op, "C"), H = i32(info, 4, op, "H"), W = i32(info, 5, op, "W");
  const int Ho = i32(info, 6, op, "Ho"), Wo = i32(info, 7, op, "Wo");
  AXN_CHECK(N >= 0 && C >= 0 && H > 0 && W > 0 && Ho > 0 && Wo > 0, op, "bad sizes");
  const float* dy = ptr<const float>(info, 0, op, "dy", count(N, C, Ho, Wo));
  float* dx = ptr<float>(info, 1, op, "dx", count(N, C, H, W));
  const bool cuda = onCuda(op, {storage(info, 0, op, "dy"), storage(info, 1, op, "dx")});
  AXN_DISPATCH(cuda, ops::adaptive_avgpool2d_backward_cpu(dy, dx, N, C, H, W, Ho, Wo),
               ops::adaptive_avgpool2d_backward_cuda(dy, dx, N, C, H, W, Ho, Wo));
  return info.Env().Undefined();
}

void RegisterPool(Napi::Env env, Napi::Object& ops) {
  ops.Set("maxpool2d_forward", Napi::Function::New(env, MaxPool2dForward, "maxpool2d_forward"));
  ops.Set("maxpool2d_backward", Napi::Function::New(env, MaxPool2dBackward, "maxpool2d_backward"));
  ops.Set("adaptive_avgpool2d_forward", Napi::Function::New(env, AdaptiveAvgPool2dForward, "adaptive_avgpool2d_forward"));
  ops.Set("adaptive_avgpool2d_backward",
          Napi::Function::New(env, AdaptiveAvgPool2dBackward, "adaptive_avgpool2d_backward"));
}

}  // namespace

AXN_REGISTER_OPS(RegisterPool);

}  // namespace axn::bind
