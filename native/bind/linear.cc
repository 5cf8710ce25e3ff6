// N-API bindings of linear (lib/ops/linear.ts validates first and allocates the outputs):
//   ops.linear_forward(x, w, b | null, y, N, in, out, math, relu, kept | null)
//   ops.linear_backward(dy, x, w, dx | null, dw, db | null, N, in, out, math, reluY | null, reluInPlace, kept | null)
//   (both followed by the activations' dtypes, "float32" (the default when absent) or "bfloat16": the
//    forward's x and y, the backward's x and reluY)
//   ops.linear_kept_floats(in, out, cuda, math) -> number
// relu fuses a ReLU into the forward; reluY is that fused forward's output, for the backward through both;
// reluInPlace writes the gradient at the layer's output over dy (then held as written, not read-only).
// kept: linear_kept_floats floats (CUDA bf16 storage only) that the forward fills with the weights' bf16
// copy and the backward reads (linear.h).
#include <string>

#include "bind/util.h"
#include "ops/linear.h"

namespace axn::bind {
namespace {

void sizes(const char* op, int N, int in, int out) {
  AXN_CHECK(N >= 0 && in >= 1 && out >= 1, op,
            "expected N ≥ 0, in ≥ 1, out ≥ 1, got N=" + std::to_string(N) + " in=" + std::to_string(in) +
                " out=" + std::to_string(out));
}

// The kept weight copy at argument i (null when absent): linear_kept_floats floats on the call's device.
ops::bf16_t* keptArg(const Napi::CallbackInfo& info, size_t i, const char* op, int in, int out, bool cuda, ops::GemmMath math) {
  if (absent(info, i)) return nullptr;
  const int64_t n = ops::linear_kept_floats(in, out, cuda, math);
  AXN_CHECK(n > 0, op, "a kept weight copy was given, but only CUDA in bf16 keeps one");
  return reinterpret_cast<ops::bf16_t*>(ptr<float>(info, i, op, "kept", static_cast<size_t>(n)));
}

template <class TX, class TY>
void linearForward(const Napi::CallbackInfo& info, const char* op, int N, int in, int out) {
  const ops::GemmMath math = gemmMath(info, 7);
  const bool relu = flag(info, 8);
  const TX* x = ptr<const TX>(info, 0, op, "x", static_cast<size_t>(N) * in);
  const float* w = ptr<const float>(info, 1, op, "w", static_cast<size_t>(out) * in);
  const float* b = absent(info, 2) ? nullptr : ptr<const float>(info, 2, op, "b", out);
  TY* y = ptr<TY>(info, 3, op, "y", static_cast<size_t>(N) * out);
  const bool hasKept = !absent(info, 9);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "w"),
                                b ? storage(info, 2, op, "b") : nullptr, storage(info, 3, op, "y"),
                                hasKept ? storage(info, 9, op, "kept") : nullptr});
  ops::bf16_t* kept = keptArg(info, 9, op, in, out, cuda, math);
  (void)kept;
  AXN_DISPATCH(cuda, ops::linear_forward_act_cpu(x, w, b, y, N, in, out, math, relu),
               ops::linear_forward_act_cuda(x, w, b, y, N, in, out, math, relu, kept));
}

Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  const char* op = "linear_forward";
  const int N = i32(info, 4, op, "N"), in = i32(info, 5, op, "in"), out = i32(info, 6, op, "out");
  sizes(op, N, in, out);
  withActivationArgs(info, op, 10, "x's dtype", 11, "y's dtype", [&](auto tx, auto ty) {
    linearForward<typename decltype(tx)::type, typename decltype(ty)::type>(info, op, N, in, out);
  });
  return info.Env().Undefined();
}

template <class TX, class TY>
void linearBackward(const Napi::CallbackInfo& info, const char* op, int N, int in, int out) {
  const ops::GemmMath math = gemmMath(info, 9);
  const bool inPlace = !absent(info, 10) && flag(info, 11);
  const float* dy = inPlace ? ptr<float>(info, 0, op, "dy", static_cast<size_t>(N) * out)
                            : ptr<const float>(info, 0, op, "dy", static_cast<size_t>(N) * out);
  const TX* x = ptr<const TX>(info, 1, op, "x", static_cast<size_t>(N) * in);
  const float* w = ptr<const float>(info, 2, op, "w", static_cast<size_t>(out) * in);
  float* dx = absent(info, 3) ? nullptr : ptr<float>(info, 3, op, "dx", static_cast<size_t>(N) * in);
  float* dw = ptr<float>(info, 4, op, "dw", static_cast<size_t>(out) * in);
  float* db = absent(info, 5) ? nullptr : ptr<float>(info, 5, op, "db", out);
  const TY* reluY =
      absent(info, 10) ? nullptr : ptr<const TY>(info, 10, op, "reluY", static_cast<size_t>(N) * out);
  const bool hasKept = !absent(info, 12);
  const bool cuda =
      onCuda(op, {storage(info, 0, op, "dy"), storage(info, 1, op, "x"), storage(info, 2, op, "w"),
                  dx ? storage(info, 3, op, "dx") : nullptr, storage(info, 4, op, "dw"),
                  db ? storage(info, 5, op, "db") : nullptr, reluY ? storage(info, 10, op, "reluY") : nullptr,
                  hasKept ? storage(info, 12, op, "kept") : nullptr});
  const ops::bf16_t* kept = keptArg(info, 12, op, in, out, cuda, math);
  (void)kept;
  AXN_DISPATCH(cuda, ops::linear_backward_act_cpu(dy, x, w, dx, dw, db, N, in, out, math, reluY, inPlace),
               ops::linear_backward_act_cuda(dy, x, w, dx, dw, db, N, in, out, math, reluY, inPlace, kept));
}

Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  const char* op = "linear_backward";
  const int N = i32(info, 6, op, "N"), in = i32(info, 7, op, "in"), out = i32(info, 8, op, "out");
  sizes(op, N, in, out);
  withActivationArgs(info, op, 13, "x's dtype", 14, "reluY's dtype", [&](auto tx, auto ty) {
    linearBackward<typename decltype(tx)::type, typename decltype(ty)::type>(info, op, N, in, out);
  });
  return info.Env().Undefined();
}

Napi::Value LinearKeptFloats(const Napi::CallbackInfo& info) {
  const char* op = "linear_kept_floats";
  const int in = i32(info, 0, op, "in"), out = i32(info, 1, op, "out");
  const bool cuda = flag(info, 2);
  const ops::GemmMath math = gemmMath(info, 3);
  return Napi::Number::New(info.Env(), static_cast<double>(ops::linear_kept_floats(in, out, cuda, math)));
}

void RegisterLinear(Napi::Env env, Napi::Object& ops) {
  ops.Set("linear_kept_floats", Napi::Function::New(env, LinearKeptFloats, "linear_kept_floats"));
  ops.Set("linear_forward", Napi::Function::New(env, LinearForward, "linear_forward"));
  ops.Set("linear_backward", Napi::Function::New(env, LinearBackward, "linear_backward"));
}

}  // namespace

AXN_REGISTER_OPS(RegisterLinear);

}  // namespace axn::bind
