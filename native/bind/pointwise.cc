// N-API bindings of the pointwise ops: ReLU, dropout (+ Philox), softmax cross-entropy, SGD, top-k
// counts, element-wise utilities. TypeScript (lib/ops/{activation,dropout,loss,optim,elementwise}.ts)
// validates shapes and options and allocates the outputs; these are the last cheap guards.
#include <napi.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bind/util.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/labels.h"
#include "ops/philox.h"
#include "ops/relu.h"
#include "ops/sgd.h"
#include "ops/softmax_xent.h"
#include "ops/topk.h"

namespace axn::bind {
namespace {

int64_t count(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what = "n") {
  const long long n = i64(info, i, op, what);
  AXN_CHECK(n >= 0, op, std::string(what) + " must be ≥ 0, got " + std::to_string(n));
  return n;
}

int dim(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  const int v = i32(info, i, op, what);
  AXN_CHECK(v >= 1, op, std::string(what) + " must be ≥ 1, got " + std::to_string(v));
  return v;
}

double f64(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) fail(op, std::string("expected a number for ") + what, __FILE__, __LINE__);
  return info[i].As<Napi::Number>().DoubleValue();
}

// A number that must be an integer in [0, 2^32) (a word of a 64-bit seed).
uint32_t u32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  const double v = f64(info, i, op, what);
  AXN_CHECK(v >= 0 && v < 4294967296.0 && v == static_cast<double>(static_cast<uint32_t>(v)), op,
            std::string(what) + " must be an integer in [0, 2^32)");
  return static_cast<uint32_t>(v);
}

// A non-negative safe integer (≤ 2^53 − 1), exact as a double.
uint64_t u53(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  const double v = f64(info, i, op, what);
  AXN_CHECK(v >= 0 && v <= 9007199254740991.0 && v == static_cast<double>(static_cast<uint64_t>(v)), op,
            std::string(what) + " must be a non-negative safe integer");
  return static_cast<uint64_t>(v);
}

double probability(const Napi::CallbackInfo& info, size_t i, const char* op) {
  const double p = f64(info, i, op, "p");
  AXN_CHECK(p >= 0.0 && p <= 1.0, op, "p must be in [0, 1], got " + std::to_string(p));
  return p;
}

// ---- ReLU ---------------------------------------------------------------------------------------------

// relu_forward(x, y, n, dtype): x and y of dtype ("float32" or "bfloat16")
template <typename T>
void reluForward(const Napi::CallbackInfo& info, const char* op, int64_t n) {
  const T* x = ptr<const T>(info, 0, op, "x", n);
  T* y = ptr<T>(info, 1, op, "y", n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "y")});
  AXN_DISPATCH(cuda, ops::relu_forward_cpu(x, y, n), ops::relu_forward_cuda(x, y, n));
}
Napi::Value ReluForward(const Napi::CallbackInfo& info) {
  const char* op = "relu";
  const int64_t n = count(info, 2, op);
  if (bf16Dtype(info, 3, op, "dtype")) reluForward<ops::bf16_t>(info, op, n);
  else reluForward<float>(info, op, n);
  return info.Env().Undefined();
}

// relu_backward(dy, y, dx, n, yDtype): dy and dx float32, y of yDtype
template <typename T>
void reluBackward(const Napi::CallbackInfo& info, const char* op, int64_t n) {
  const float* dy = ptr<const float>(info, 0, op, "dy", n);
  const T* y = ptr<const T>(info, 1, op, "y", n);
  float* dx = ptr<float>(info, 2, op, "dx", n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "dy"), storage(info, 1, op, "y"), storage(info, 2, op, "dx")});
  AXN_DISPATCH(cuda, ops::relu_backward_cpu(dy, y, dx, n), ops::relu_backward_cuda(dy, y, dx, n));
}
Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  const char* op = "reluBackward";
  const int64_t n = count(info, 3, op);
  if (bf16Dtype(info, 4, op, "y's dtype")) reluBackward<ops::bf16_t>(info, op, n);
  else reluBackward<float>(info, op, n);
  return info.Env().Undefined();
}

// ---- dropout ------------------------------------------------------------------------------------------

struct DropoutArgs {
  int64_t n;
  double p;
  uint64_t seed, offset;
};

// (…, n, p, seedLo, seedHi, offset) starting at info[i]
DropoutArgs dropoutArgs(const Napi::CallbackInfo& info, size_t i, const char* op) {
  DropoutArgs a;
  a.n = count(info, i, op);
  a.p = probability(info, i + 1, op);
  const uint64_t lo = u32(info, i + 2, op, "seed (low word)");
  const uint64_t hi = u32(info, i + 3, op, "seed (high word)");
  a.seed = lo | (hi << 32);
  a.offset = u53(info, i + 4, op, "offset");
  return a;
}

// dropout_forward(x, y, n, p, seedLo, seedHi, offset, dtype): x and y of dtype ("float32" or "bfloat16")
template <typename T>
void dropoutForward(const Napi::CallbackInfo& info, const char* op, const DropoutArgs& a) {
  const T* x = ptr<const T>(info, 0, op, "x", a.n);
  T* y = ptr<T>(info, 1, op, "y", a.n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "y")});
  AXN_DISPATCH(cuda, ops::dropout_forward_cpu(x, y, a.n, a.p, a.seed, a.offset),
               ops::dropout_forward_cuda(x, y, a.n, a.p, a.seed, a.offset));
}
Napi::Value DropoutForward(const Napi::CallbackInfo& info) {
  const char* op = "dropout";
  const DropoutArgs a = dropoutArgs(info, 2, op);
  if (bf16Dtype(info, 7, op, "dtype")) dropoutForward<ops::bf16_t>(info, op, a);
  else dropoutForward<float>(info, op, a);
  return info.Env().Undefined();
}

// dropout_backward(dy, dx, n, p, seedLo, seedHi, offset)
Napi::Value DropoutBackward(const Napi::CallbackInfo& info) {
  const char* op = "dropoutBackward";
  const DropoutArgs a = dropoutArgs(info, 2, op);
  const float* dy = ptr<const float>(info, 0, op, "dy", a.n);
  float* dx = ptr<float>(info, 1, op, "dx", a.n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "dy"), storage(info, 1, op, "dx")});
  AXN_DISPATCH(cuda, ops::dropout_backward_cpu(dy, dx, a.n, a.p, a.seed, a.offset),
               ops::dropout_backward_cuda(dy, dx, a.n, a.p, a.seed, a.offset));
  return info.Env().Undefined();
}

// dropout_mask(mask: Uint8Array, n, p, seedLo, seedHi, offset)   host only
Napi::Value DropoutMask(const Napi::CallbackInfo& info) {
  const char* op = "dropoutMask";
  const DropoutArgs a = dropoutArgs(info, 1, op);
  AXN_CHECK(info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array, op,
            "mask must be a Uint8Array");
  Napi::Uint8Array mask = info[0].As<Napi::Uint8Array>();
  AXN_CHECK(static_cast<int64_t>(mask.ElementLength()) >= a.n, op,
            "mask holds " + std::to_string(mask.ElementLength()) + " bytes, needs " + std::to_string(a.n));
  ops::dropout_mask_cpu(mask.Data(), a.n, a.p, a.seed, a.offset);
  return info.Env().Undefined();
}

// philox4x32_10(counter: Uint32Array(4), key: Uint32Array(2)) -> Uint32Array(4)   host, for known-answer tests
Napi::Value Philox(const Napi::CallbackInfo& info) {
  const char* op = "philox4x32_10";
  auto words = [&](size_t i, size_t len, const char* what) {
    AXN_CHECK(i < info.Length() && info[i].IsTypedArray() &&
                  info[i].As<Napi::TypedArray>().TypedArrayType() == napi_uint32_array &&
                  info[i].As<Napi::Uint32Array>().ElementLength() == len,
              op, std::string(what) + " must be a Uint32Array of " + std::to_string(len) + " words");
    return info[i].As<Napi::Uint32Array>();
  };
  Napi::Uint32Array c = words(0, 4, "counter"), k = words(1, 2, "key");
  const philox::U32x4 r = philox::philox4x32_10(philox::U32x4{c[0], c[1], c[2], c[3]}, k[0], k[1]);
  Napi::Uint32Array out = Napi::Uint32Array::New(info.Env(), 4);
  out[0] = r.x;
  out[1] = r.y;
  out[2] = r.z;
  out[3] = r.w;
  return out;
}

// ---- softmax cross-entropy ----------------------------------------------------------------------------

// CPU labels whose writers have all run are checked here, on the calling thread, so a label outside
// [0, C) throws at the call (as the TypeScript check does); the kernel checks again on the worker (it must
// never index out of bounds), which reports at the next synchronisation when the labels were still being
// written when the op was called. CUDA kernels flag bad labels in their outputs instead.
void checkLabelsNow(const char* op, const Napi::CallbackInfo& info, size_t i, const int32_t* labels, int N, int C) {
  const Storage* s = storage(info, i, op, "labels");
  if (s->device() == kCpu && cpu::done(s->lastWrite())) ops::check_labels(op, labels, N, C);
}

// softmax_xent_forward(logits, labels, loss, probs, N, C)
Napi::Value SoftmaxXentForward(const Napi::CallbackInfo& info) {
  const char* op = "softmaxCrossEntropy";
  const int N = dim(info, 4, op, "N"), C = dim(info, 5, op, "C");
  const size_t nc = static_cast<size_t>(N) * C;
  const float* logits = ptr<const float>(info, 0, op, "logits", nc);
  const int32_t* labels = ptr<const int32_t>(info, 1, op, "labels", N);
  checkLabelsNow(op, info, 1, labels, N, C);
  float* loss = ptr<float>(info, 2, op, "loss", 1);
  float* probs = ptr<float>(info, 3, op, "probs", nc);
  const bool cuda = onCuda(op, {storage(info, 0, op, "logits"), storage(info, 1, op, "labels"),
                                storage(info, 2, op, "loss"), storage(info, 3, op, "probs")});
  AXN_DISPATCH(cuda, ops::softmax_xent_forward_cpu(logits, labels, loss, probs, N, C),
               ops::softmax_xent_forward_cuda(logits, labels, loss, probs, N, C));
  return info.Env().Undefined();
}

// softmax_xent_backward(probs, labels, dlogits, N, C, scale)
Napi::Value SoftmaxXentBackward(const Napi::CallbackInfo& info) {
  const char* op = "softmaxCrossEntropyBackward";
  const int N = dim(info, 3, op, "N"), C = dim(info, 4, op, "C");
  const float scale = f32(info, 5, op, "scale");
  const size_t nc = static_cast<size_t>(N) * C;
  const float* probs = ptr<const float>(info, 0, op, "probs", nc);
  const int32_t* labels = ptr<const int32_t>(info, 1, op, "labels", N);
  checkLabelsNow(op, info, 1, labels, N, C);
  float* dlogits = ptr<float>(info, 2, op, "dlogits", nc);
  const bool cuda = onCuda(op, {storage(info, 0, op, "probs"), storage(info, 1, op, "labels"),
                                storage(info, 2, op, "dlogits")});
  AXN_DISPATCH(cuda, ops::softmax_xent_backward_cpu(probs, labels, dlogits, N, C, scale),
               ops::softmax_xent_backward_cuda(probs, labels, dlogits, N, C, scale));
  return info.Env().Undefined();
}

// ---- SGD ------------------------------------------------------------------------------------------------

// sgd_update(param, grad, buf | null, n, lr, momentum, dampening, weightDecay, nesterov, firstStep)
Napi::Value SgdUpdate(const Napi::CallbackInfo& info) {
  const char* op = "sgdUpdate";
  const int64_t n = count(info, 3, op);
  ops::SgdOptions o;
  o.lr = static_cast<float>(f64(info, 4, op, "lr"));
  o.momentum = static_cast<float>(f64(info, 5, op, "momentum"));
  o.oneMinusDampening = static_cast<float>(1.0 - f64(info, 6, op, "dampening"));
  o.weightDecay = static_cast<float>(f64(info, 7, op, "weightDecay"));
  o.nesterov = flag(info, 8);
  o.firstStep = flag(info, 9);
  float* param = ptr<float>(info, 0, op, "param", n);
  const float* grad = ptr<const float>(info, 1, op, "grad", n);
  const bool hasBuf = info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined();
  AXN_CHECK(hasBuf || o.momentum == 0.f, op, "a momentum buffer is required when momentum ≠ 0");
  float* buf = hasBuf ? ptr<float>(info, 2, op, "momentumBuffer", n) : nullptr;
  if (o.momentum == 0.f) buf = nullptr;  // unused without momentum
  const bool cuda = onCuda(op, {storage(info, 0, op, "param"), storage(info, 1, op, "grad"),
                                hasBuf ? storage(info, 2, op, "momentumBuffer") : nullptr});
  AXN_DISPATCH(cuda, ops::sgd_update_cpu(param, grad, buf, n, o), ops::sgd_update_cuda(param, grad, buf, n, o));
  return info.Env().Undefined();
}

// sgd_update_multi(params: Storage[], grads: Storage[], bufs: (Storage|null)[], sizes: number[],
//                  weightDecays: number[], firstSteps: boolean[], lr, momentum, dampening, nesterov,
//                  guard|null, halt|null)
Napi::Value SgdUpdateMulti(const Napi::CallbackInfo& info) {
  const char* op = "sgdUpdate";
  auto arr = [&](size_t i, const char* what) {
    if (i >= info.Length() || !info[i].IsArray()) fail(op, std::string("expected an array of ") + what, __FILE__, __LINE__);
    return info[i].As<Napi::Array>();
  };
  Napi::Array params = arr(0, "params"), grads = arr(1, "grads"), bufs = arr(2, "momentum buffers"),
              sizes = arr(3, "sizes"), decays = arr(4, "weight decays"), firsts = arr(5, "first-step flags");
  const uint32_t count = params.Length();
  AXN_CHECK(grads.Length() == count && bufs.Length() == count && sizes.Length() == count &&
                decays.Length() == count && firsts.Length() == count,
            op, "the parameter arrays differ in length");
  ops::SgdOptions o;
  o.lr = static_cast<float>(f64(info, 6, op, "lr"));
  o.momentum = static_cast<float>(f64(info, 7, op, "momentum"));
  o.oneMinusDampening = static_cast<float>(1.0 - f64(info, 8, op, "dampening"));
  o.nesterov = flag(info, 9);
  std::vector<ops::SgdTensor> t(count);
  std::vector<Storage*> all;
  for (uint32_t i = 0; i < count; i++) {
    const double n = sizes.Get(i).ToNumber().DoubleValue();
    AXN_CHECK(n >= 0 && n == static_cast<double>(static_cast<int64_t>(n)), op, "a size must be an integer ≥ 0");
    const size_t bytes = static_cast<size_t>(n) * sizeof(float);
    Storage* p = Storage::From(params.Get(i), op, "param");
    Storage* g = Storage::From(grads.Get(i), op, "grad");
    AXN_CHECK(p->bytes() >= bytes && g->bytes() >= bytes, op, "a param or grad is smaller than its size");
    Storage* b = nullptr;
    const Napi::Value bv = bufs.Get(i);
    if (!bv.IsNull() && !bv.IsUndefined()) {
      b = Storage::From(bv, op, "momentumBuffer");
      AXN_CHECK(b->bytes() >= bytes, op, "a momentum buffer is smaller than its size");
    }
    AXN_CHECK(b || o.momentum == 0.f, op, "a momentum buffer is required when momentum ≠ 0");
    t[i] = ops::SgdTensor{static_cast<float*>(p->data(op)), static_cast<const float*>(g->data(op)),
                          b && o.momentum != 0.f ? static_cast<float*>(b->data(op)) : nullptr,
                          static_cast<int64_t>(n), static_cast<float>(decays.Get(i).ToNumber().DoubleValue()),
                          firsts.Get(i).ToBoolean().Value()};
    noteWrite(p);
    if (b) noteWrite(b);
    all.push_back(p);
    all.push_back(g);
    if (b) all.push_back(b);
  }
  const bool hasGuard = info.Length() > 10 && !info[10].IsNull() && !info[10].IsUndefined();
  const float* guard = hasGuard ? ptr<const float>(info, 10, op, "guard", 1) : nullptr;
  if (hasGuard) all.push_back(storage(info, 10, op, "guard"));
  const bool hasHalt = info.Length() > 11 && !info[11].IsNull() && !info[11].IsUndefined();
  float* halt = hasHalt ? ptr<float>(info, 11, op, "halt", 1) : nullptr;
  if (hasHalt) all.push_back(storage(info, 11, op, "halt"));
  const bool cuda = onCuda(op, all);
  AXN_DISPATCH(cuda, ops::sgd_update_multi_cpu(t.data(), static_cast<int>(count), o, guard, halt),
               ops::sgd_update_multi_cuda(t.data(), static_cast<int>(count), o, guard, halt));
  return info.Env().Undefined();
}

// ---- top-k counts -------------------------------------------------------------------------------------

// topk_correct(logits, labels, counts, N, C, ks: Int32Array)
Napi::Value TopkCorrect(const Napi::CallbackInfo& info) {
  const char* op = "topkCorrect";
  const int N = dim(info, 3, op, "N"), C = dim(info, 4, op, "C");
  AXN_CHECK(info.Length() > 5 && info[5].IsTypedArray() &&
                info[5].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array,
            op, "ks must be an Int32Array");
  Napi::Int32Array ks = info[5].As<Napi::Int32Array>();
  const int nk = static_cast<int>(ks.ElementLength());
  AXN_CHECK(nk >= 1 && nk <= ops::kTopkMaxKs, op, "expected 1 to 16 values of k, got " + std::to_string(nk));
  for (int i = 0; i < nk; i++) AXN_CHECK(ks[i] >= 1, op, "every k must be ≥ 1");
  const size_t nc = static_cast<size_t>(N) * C;
  const float* logits = ptr<const float>(info, 0, op, "logits", nc);
  const int32_t* labels = ptr<const int32_t>(info, 1, op, "labels", N);
  checkLabelsNow(op, info, 1, labels, N, C);
  int32_t* counts = ptr<int32_t>(info, 2, op, "counts", nk);
  const bool cuda = onCuda(op, {storage(info, 0, op, "logits"), storage(info, 1, op, "labels"),
                                storage(info, 2, op, "counts")});
  std::array<int32_t, ops::kTopkMaxKs> kv{};  // a copy: the CPU kernel runs later, the JS array may change
  for (int i = 0; i < nk; i++) kv[i] = ks[i];
  AXN_DISPATCH(cuda, ops::topk_correct_cpu(logits, labels, counts, kv.data(), nk, N, C),
               ops::topk_correct_cuda(logits, labels, counts, kv.data(), nk, N, C));
  return info.Env().Undefined();
}

// ---- element-wise -------------------------------------------------------------------------------------

// axpy(y, x, n, alpha): y += alpha · x
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  const char* op = "axpy_";
  const int64_t n = count(info, 2, op);
  const float alpha = f32(info, 3, op, "alpha");
  float* y = ptr<float>(info, 0, op, "y", n);
  const float* x = ptr<const float>(info, 1, op, "x", n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "y"), storage(info, 1, op, "x")});
  AXN_DISPATCH(cuda, ops::axpy_cpu(y, x, n, alpha), ops::axpy_cuda(y, x, n, alpha));
  return info.Env().Undefined();
}

// scale(x, n, alpha): x *= alpha
Napi::Value Scale(const Napi::CallbackInfo& info) {
  const char* op = "scale_";
  const int64_t n = count(info, 1, op);
  const float alpha = f32(info, 2, op, "alpha");
  float* x = ptr<float>(info, 0, op, "x", n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x")});
  AXN_DISPATCH(cuda, ops::scale_cpu(x, n, alpha), ops::scale_cuda(x, n, alpha));
  return info.Env().Undefined();
}

// fill(x, n, value)
Napi::Value Fill(const Napi::CallbackInfo& info) {
  const char* op = "fill_";
  const int64_t n = count(info, 1, op);
  const float value = f32(info, 2, op, "value");
  float* x = ptr<float>(info, 0, op, "x", n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x")});
  AXN_DISPATCH(cuda, ops::fill_cpu(x, n, value), ops::fill_cuda(x, n, value));
  return info.Env().Undefined();
}

// add(x, y, z, n): z = x + y
Napi::Value Add(const Napi::CallbackInfo& info) {
  const char* op = "add";
  const int64_t n = count(info, 3, op);
  const float* x = ptr<const float>(info, 0, op, "x", n);
  const float* y = ptr<const float>(info, 1, op, "y", n);
  float* z = ptr<float>(info, 2, op, "z", n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "y"), storage(info, 2, op, "z")});
  AXN_DISPATCH(cuda, ops::add_cpu(x, y, z, n), ops::add_cuda(x, y, z, n));
  return info.Env().Undefined();
}

// sum_squares(x, out, n): out[0] = Σ x²
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  const char* op = "sumSquares";
  const int64_t n = count(info, 2, op);
  const float* x = ptr<const float>(info, 0, op, "x", n);
  float* out = ptr<float>(info, 1, op, "out", 1);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "out")});
  AXN_DISPATCH(cuda, ops::sum_squares_cpu(x, out, n), ops::sum_squares_cuda(x, out, n));
  return info.Env().Undefined();
}

// cast_to_bf16(src, dst, n): dst (bf16) = src (float32) rounded to nearest even
Napi::Value CastToBf16(const Napi::CallbackInfo& info) {
  const char* op = "cast";
  const int64_t n = count(info, 2, op);
  const float* src = ptr<const float>(info, 0, op, "x", n);
  ops::bf16_t* dst = ptr<ops::bf16_t>(info, 1, op, "y", n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "y")});
  AXN_DISPATCH(cuda, ops::to_bf16_cpu(src, dst, n), ops::to_bf16_cuda("cast.toBf16", src, dst, n));
  return info.Env().Undefined();
}

// cast_from_bf16(src, dst, n): dst (float32) = src (bf16), exact
Napi::Value CastFromBf16(const Napi::CallbackInfo& info) {
  const char* op = "cast";
  const int64_t n = count(info, 2, op);
  const ops::bf16_t* src = ptr<const ops::bf16_t>(info, 0, op, "x", n);
  float* dst = ptr<float>(info, 1, op, "y", n);
  const bool cuda = onCuda(op, {storage(info, 0, op, "x"), storage(info, 1, op, "y")});
  AXN_DISPATCH(cuda, ops::from_bf16_cpu(src, dst, n), ops::from_bf16_cuda("cast.fromBf16", src, dst, n));
  return info.Env().Undefined();
}

void RegisterPointwise(Napi::Env env, Napi::Object& ops) {
  auto add = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    ops.Set(name, Napi::Function::New(env, fn, name));
  };
  add("relu_forward", ReluForward);
  add("relu_backward", ReluBackward);
  add("dropout_forward", DropoutForward);
  add("dropout_backward", DropoutBackward);
  add("dropout_mask", DropoutMask);
  add("philox4x32_10", Philox);
  add("softmax_xent_forward", SoftmaxXentForward);
  add("softmax_xent_backward", SoftmaxXentBackward);
  add("sgd_update", SgdUpdate);
  add("sgd_update_multi", SgdUpdateMulti);
  add("topk_correct", TopkCorrect);
  add("axpy", Axpy);
  add("scale", Scale);
  add("fill", Fill);
  add("add", Add);
  add("sum_squares", SumSquares);
  add("cast_to_bf16", CastToBf16);
  add("cast_from_bf16", CastFromBf16);
}

}  // namespace

AXN_REGISTER_OPS(RegisterPointwise);

}  // namespace axn::bind
