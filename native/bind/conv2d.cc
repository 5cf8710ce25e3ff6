// N-API bindings of conv2d (lib/ops/conv.ts validates first and allocates the outputs):
//   ops.conv2d_forward(x, w, b | null, y, N, C, H, W, K, kh, kw, sh, sw, ph, pw, groups, workspaceBytes, math,
//                      relu)
//   ops.conv2d_backward(dy, x, w, dx | null, dw, db | null, N, C, H, W, K, kh, kw, sh, sw, ph, pw, groups,
//                       workspaceBytes, math, reluY | null, reluInPlace)
//   (both followed by: path (0 columns, 1 legacy), columns | null, then the activations' dtypes,
//    "float32" (the default when absent) or "bfloat16": the forward's x and y, the backward's x and reluY;
//    the backward then by biasGradPath: 0 (absent) the two-stage reduction, 1 the legacy one (conv2d.h))
//   ops.conv2d_columns_floats(N, C, H, W, K, kh, kw, sh, sw, ph, pw, groups, workspaceBytes, cuda, math) -> number
// workspaceBytes caps the im2col column buffer (0: 1 GiB on CUDA, 256 MiB on the CPU). relu fuses a ReLU
// into the forward; reluY is that fused forward's output, for the backward through both; reluInPlace
// writes the gradient at the convolution's output over dy (then held as written, not read-only; the
// legacy path only). columns: conv2d_columns_floats floats that the forward fills with the whole batch's
// columns and the backward reads, then overwrites (conv2d.h, "Kept columns").
#include <string>

#include "bind/util.h"
#include "ops/conv2d.h"

namespace axn::bind {
namespace {

ops::Conv2dDims dims(const Napi::CallbackInfo& info, size_t i, const char* op) {
  ops::Conv2dDims d;
  d.N = i32(info, i + 0, op, "N");
  d.C = i32(info, i + 1, op, "C");
  d.H = i32(info, i + 2, op, "H");
  d.W = i32(info, i + 3, op, "W");
  d.K = i32(info, i + 4, op, "K");
  d.kh = i32(info, i + 5, op, "kh");
  d.kw = i32(info, i + 6, op, "kw");
  d.sh = i32(info, i + 7, op, "sh");
  d.sw = i32(info, i + 8, op, "sw");
  d.ph = i32(info, i + 9, op, "ph");
  d.pw = i32(info, i + 10, op, "pw");
  d.groups = i32(info, i + 11, op, "groups");
  ops::conv2d_check_dims(op, d);
  return d;
}

size_t workspace(const Napi::CallbackInfo& info, size_t i, const char* op) {
  const long long ws = i64(info, i, op, "workspaceBytes");
  AXN_CHECK(ws >= 0, op, "workspaceBytes must be ≥ 0, got " + std::to_string(ws));
  return static_cast<size_t>(ws);
}

ops::ConvPath pathArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (absent(info, i)) return ops::ConvPath::Columns;
  const int p = i32(info, i, op, "path");
  AXN_CHECK(p == 0 || p == 1, op, "path must be 0 (columns) or 1 (legacy), got " + std::to_string(p));
  return static_cast<ops::ConvPath>(p);
}

// The kept columns at argument i (null when absent): conv2d_columns_floats floats on the call's device.
float* columnsArg(const Napi::CallbackInfo& info, size_t i, const char* op, const ops::Conv2dDims& d, size_t ws,
                  bool cuda, ops::GemmMath math) {
  if (absent(info, i)) return nullptr;
  const int64_t nc = ops::conv2d_columns_floats(d, ws, cuda, math);
  AXN_CHECK(nc > 0, op, "columns were given, but this convolution keeps none (a 1×1 convolution, or columns over the workspace cap)");
  return ptr<float>(info, i, op, "columns", static_cast<size_t>(nc));
}

struct Sizes {
  size_t x, w, y;
  explicit Sizes(const ops::Conv2dDims& d)
      : x(static_cast<size_t>(d.N) * d.C * d.H * d.W),
        w(static_cast<size_t>(d.K) * (d.C / d.groups) * d.kh * d.kw),
        y(static_cast<size_t>(d.N) * d.K * d.Ho() * d.Wo()) {}
};

template <class TX, class TY>
void conv2dForward(const Napi::CallbackInfo& info, const char* op, const ops::Conv2dDims& d) {
  const size_t ws = workspace(info, 16, op);
  const ops::GemmMath math = gemmMath(info, 17);
  const bool relu = flag(info, 18);
  const Sizes n(d);
  const TX* x = ptr<const TX>(info, 0, op, "x", n.x);
  const float* w = ptr<const float>(info, 1, op, "w", n.w);
  const float* b = absent(info, 2) ? nullptr : ptr<const float>(info, 2, op, "b", d.K);
  TY* y = ptr<TY>(info, 3, op, "y", n.y);
  const ops::ConvPath path = pathArg(info, 19, op);
  const bool hasCols = !absent(info, 20);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "w"),
                                b ? storage(info, 2, op, "b") : nullptr, storage(info, 3, op, "y"),
                                hasCols ? storage(info, 20, op, "columns") : nullptr});
  float* cols = columnsArg(info, 20, op, d, ws, cuda, math);
  AXN_DISPATCH(cuda, ops::conv2d_forward_cpu(x, w, b, y, d, ws, math, relu, path, cols),
               ops::conv2d_forward_cuda(x, w, b, y, d, ws, math, relu, path, cols));
}

Napi::Value Conv2dForward(const Napi::CallbackInfo& info) {
  const char* op = "conv2d_forward";
  const ops::Conv2dDims d = dims(info, 4, op);
  withActivationArgs(info, op, 21, "x's dtype", 22, "y's dtype", [&](auto tx, auto ty) {
    conv2dForward<typename decltype(tx)::type, typename decltype(ty)::type>(info, op, d);
  });
  return info.Env().Undefined();
}

template <class TX, class TY>
void conv2dBackward(const Napi::CallbackInfo& info, const char* op, const ops::Conv2dDims& d) {
  const size_t ws = workspace(info, 18, op);
  const ops::GemmMath math = gemmMath(info, 19);
  const Sizes n(d);
  const bool inPlace = !absent(info, 20) && flag(info, 21);
  const float* dy = inPlace ? ptr<float>(info, 0, op, "dy", n.y) : ptr<const float>(info, 0, op, "dy", n.y);
  const TX* x = ptr<const TX>(info, 1, op, "x", n.x);
  const float* w = ptr<const float>(info, 2, op, "w", n.w);
  float* dx = absent(info, 3) ? nullptr : ptr<float>(info, 3, op, "dx", n.x);
  float* dw = ptr<float>(info, 4, op, "dw", n.w);
  float* db = absent(info, 5) ? nullptr : ptr<float>(info, 5, op, "db", d.K);
  const TY* reluY = absent(info, 20) ? nullptr : ptr<const TY>(info, 20, op, "reluY", n.y);
  const ops::ConvPath path = pathArg(info, 22, op);
  const bool hasCols = !absent(info, 23);
  const bool cuda =
      onCuda(op, {storage(info, 0, op, "dy"), storage(info, 1, op, "x"), storage(info, 2, op, "w"),
                  dx ? storage(info, 3, op, "dx") : nullptr, storage(info, 4, op, "dw"),
                  db ? storage(info, 5, op, "db") : nullptr, reluY ? storage(info, 20, op, "reluY") : nullptr,
                  hasCols ? storage(info, 23, op, "columns") : nullptr});
  float* cols = columnsArg(info, 23, op, d, ws, cuda, math);
  int biasPath = 0;
  if (!absent(info, 26)) {
    biasPath = i32(info, 26, op, "biasGradPath");
    AXN_CHECK(biasPath == 0 || biasPath == 1, op, "biasGradPath must be 0 (two-stage) or 1 (legacy), got " + std::to_string(biasPath));
  }
  AXN_DISPATCH(cuda, ops::conv2d_backward_cpu(dy, x, w, dx, dw, db, d, ws, math, reluY, inPlace, path, cols, biasPath == 1),
               ops::conv2d_backward_cuda(dy, x, w, dx, dw, db, d, ws, math, reluY, inPlace, path, cols, biasPath == 1));
}

Napi::Value Conv2dBackward(const Napi::CallbackInfo& info) {
  const char* op = "conv2d_backward";
  const ops::Conv2dDims d = dims(info, 6, op);
  withActivationArgs(info, op, 24, "x's dtype", 25, "reluY's dtype", [&](auto tx, auto ty) {
    conv2dBackward<typename decltype(tx)::type, typename decltype(ty)::type>(info, op, d);
  });
  return info.Env().Undefined();
}

Napi::Value Conv2dColumnsFloats(const Napi::CallbackInfo& info) {
  const char* op = "conv2d_columns_floats";
  const ops::Conv2dDims d = dims(info, 0, op);
  const size_t ws = workspace(info, 12, op);
  const bool cuda = flag(info, 13);
  const ops::GemmMath math = gemmMath(info, 14);
  return Napi::Number::New(info.Env(), static_cast<double>(ops::conv2d_columns_floats(d, ws, cuda, math)));
}

void RegisterConv2d(Napi::Env env, Napi::Object& ops) {
  ops.Set("conv2d_columns_floats", Napi::Function::New(env, Conv2dColumnsFloats, "conv2d_columns_floats"));
  ops.Set("conv2d_forward", Napi::Function::New(env, Conv2dForward, "conv2d_forward"));
  ops.Set("conv2d_backward", Napi::Function::New(env, Conv2dBackward, "conv2d_backward"));
}

}  // namespace

AXN_REGISTER_OPS(RegisterConv2d);

}  // namespace axn::bind
