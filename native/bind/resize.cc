// N-API bindings of the bilinear resize (lib/ops/resize.ts validates shapes and options first; these are the
// cheap last guards). Outputs are allocated by TypeScript and passed in.
//   ops.resize_bilinear_forward(x, y, N, C, H, W, Ho, Wo, alignCorners)
//   ops.resize_bilinear_backward(dy, dx, N, C, H, W, Ho, Wo, alignCorners)
#include <string>

#include "bind/util.h"
#include "ops/resize.h"

namespace axn::bind {
namespace {

size_t count(int a, int b, int c, int d) { return (size_t)a * (size_t)b * (size_t)c * (size_t)d; }

struct Sizes {
  int N, C, H, W, Ho, Wo;
  bool alignCorners;
};

Sizes sizes(const Napi::CallbackInfo& info, const char* op) {
  Sizes s{i32(info, 2, op, "N"), i32(info, 3, op, "C"), i32(info, 4, op, "H"), i32(info, 5, op, "W"),
          i32(info, 6, op, "Ho"), i32(info, 7, op, "Wo"), false};
  AXN_CHECK(s.N >= 0 && s.C >= 0 && s.H > 0 && s.W > 0 && s.Ho > 0 && s.Wo > 0, op, "bad sizes");
  AXN_CHECK(info.Length() > 8 && info[8].IsBoolean(), op, "expected a boolean for alignCorners");
  s.alignCorners = info[8].As<Napi::Boolean>().Value();
  return s;
}

Napi::Value ResizeBilinearForward(const Napi::CallbackInfo& info) {
  const char* op = "resize_bilinear_forward";
  const Sizes s = sizes(info, op);
  const float* x = ptr<const float>(info, 0, op, "x", count(s.N, s.C, s.H, s.W));
  float* y = ptr<float>(info, 1, op, "y", count(s.N, s.C, s.Ho, s.Wo));
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "y")});
  AXN_DISPATCH(cuda, ops::resize_bilinear_forward_cpu(x, y, s.N, s.C, s.H, s.W, s.Ho, s.Wo, s.alignCorners),
               ops::resize_bilinear_forward_cuda(x, y, s.N, s.C, s.H, s.W, s.Ho, s.Wo, s.alignCorners));
  return info.Env().Undefined();
}

Napi::Value ResizeBilinearBackward(const Napi::CallbackInfo& info) {
  const char* op = "resize_bilinear_backward";
  const Sizes s = sizes(info, op);
  const float* dy = ptr<const float>(info, 0, op, "dy", count(s.N, s.C, s.Ho, s.Wo));
  float* dx = ptr<float>(info, 1, op, "dx", count(s.N, s.C, s.H, s.W));
  const bool cuda = onCuda(op, {storage(info, 0, op, "dy"), storage(info, 1, op, "dx")});
  AXN_DISPATCH(cuda, ops::resize_bilinear_backward_cpu(dy, dx, s.N, s.C, s.H, s.W, s.Ho, s.Wo, s.alignCorners),
               ops::resize_bilinear_backward_cuda(dy, dx, s.N, s.C, s.H, s.W, s.Ho, s.Wo, s.alignCorners));
  return info.Env().Undefined();
}

void RegisterResize(Napi::Env env, Napi::Object& ops) {
  ops.Set("resize_bilinear_forward", Napi::Function::New(env, ResizeBilinearForward, "resize_bilinear_forward"));
  ops.Set("resize_bilinear_backward", Napi::Function::New(env, ResizeBilinearBackward, "resize_bilinear_backward"));
}

}  // namespace

AXN_REGISTER_OPS(RegisterResize);

}  // namespace axn::bind
