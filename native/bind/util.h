// Helpers for op bindings (native/bind/*.cc): unwrap arguments, check devices, dispatch CPU or CUDA.
// TypeScript (lib/ops/*.ts) validates shapes and options first; these are the cheap last guards.
#pragma once
#include <napi.h>

#include <algorithm>
#include <initializer_list>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include "../common.h"
#include "../cpu_stream.h"
#include "../storage.h"
#include "../ops/gemm.h"
#ifdef AXN_WITH_CUDA
#include "../cuda/context.h"
#endif

namespace axn::bind {

// Which storages the op being bound reads only (ptr<const T>) and which it writes (ptr<T>, noteWrite).
// Only compared by address in onCuda (never dereferenced), so entries left by a binding that threw are
// harmless: a storage counts as read-only only when it was taken as const and never as written, and every
// binding takes each output it writes through ptr<T> or noteWrite.
struct ArgRoles {
  std::vector<const Storage*> readOnly, written;
};
inline ArgRoles& argRoles() {
  static thread_local ArgRoles r;
  return r;
}
inline void noteWrite(const Storage* s) { argRoles().written.push_back(s); }

// The data pointer of a Storage argument at info[i], checked to hold at least `minElems` elements of T.
// T const: the op only reads it (the JS thread may read it while the op is pending); else it writes it.
template <typename T>
T* ptr(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what, size_t minElems) {
  Storage* s = Storage::From(info[i], op, what);
  if (std::is_const_v<T>) argRoles().readOnly.push_back(s);
  else argRoles().written.push_back(s);
  if (s->bytes() < minElems * sizeof(T))
    fail(op, std::string(what) + " holds " + std::to_string(s->bytes()) + " bytes, needs " +
                 std::to_string(minElems * sizeof(T)),
         __FILE__, __LINE__);
  return static_cast<T*>(s->data(op));
}

// Storage object at info[i] (for device checks).
inline Storage* storage(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  return Storage::From(info[i], op, what);
}

inline int i32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) fail(op, std::string("expected a number for ") + what, __FILE__, __LINE__);
  return info[i].As<Napi::Number>().Int32Value();
}

template <class T>
struct TypeTag {
  using type = T;
};
// f(TypeTag<TX>{}, TypeTag<TY>{}) for two activation dtypes, each float (false) or bf16_t (true, uint16_t
// bits): the bindings of ops whose input and output may each be bfloat16.
template <class F>
void withActivationTypes(bool bx, bool by, F&& f) {
  using B = ops::bf16_t;
  if (bx) {
    if (by) f(TypeTag<B>{}, TypeTag<B>{});
    else f(TypeTag<B>{}, TypeTag<float>{});
  } else {
    if (by) f(TypeTag<float>{}, TypeTag<B>{});
    else f(TypeTag<float>{}, TypeTag<float>{});
  }
}

// An optional argument left out: null, undefined or missing.
inline bool absent(const Napi::CallbackInfo& info, size_t i) {
  return i >= info.Length() || info[i].IsNull() || info[i].IsUndefined();
}

// An activation dtype argument, the tensor's dtype as TypeScript names it: "float32" (false) or "bfloat16" (true).
inline bool bf16Dtype(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what);
// The same where the argument may be absent (float32).
inline bool bf16DtypeOrFloat(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  return !absent(info, i) && bf16Dtype(info, i, op, what);
}
// withActivationTypes for the two optional dtype arguments at i and j.
template <class F>
void withActivationArgs(const Napi::CallbackInfo& info, const char* op, size_t i, const char* whatI, size_t j,
                        const char* whatJ, F&& f) {
  withActivationTypes(bf16DtypeOrFloat(info, i, op, whatI), bf16DtypeOrFloat(info, j, op, whatJ), std::forward<F>(f));
}

inline bool bf16Dtype(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  if (i < info.Length() && info[i].IsString()) {
    const std::string s = info[i].As<Napi::String>().Utf8Value();
    if (s == "float32") return false;
    if (s == "bfloat16") return true;
  }
  fail(op, std::string("expected \"float32\" or \"bfloat16\" for ") + what, __FILE__, __LINE__);
}

inline long long i64(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) fail(op, std::string("expected a number for ") + what, __FILE__, __LINE__);
  return info[i].As<Napi::Number>().Int64Value();
}

inline float f32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) fail(op, std::string("expected a number for ") + what, __FILE__, __LINE__);
  return info[i].As<Napi::Number>().FloatValue();
}

// The GEMM arithmetic argument: 0 fp32, 1 tf32, 2 bf16 (lib/ops/util.ts gemmMath). Anything else is an error,
// not a silent fp32: an old caller passing a boolean `true` would otherwise lose its TF32.
inline ops::GemmMath gemmMath(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber())
    fail("gemm", "expected the GEMM precision as a number (0 fp32, 1 tf32, 2 bf16)", __FILE__, __LINE__);
  const int v = info[i].As<Napi::Number>().Int32Value();
  if (v < 0 || v > 2 || info[i].As<Napi::Number>().DoubleValue() != v)
    fail("gemm", "expected the GEMM precision 0 (fp32), 1 (tf32) or 2 (bf16), got " + std::to_string(info[i].As<Napi::Number>().DoubleValue()), __FILE__, __LINE__);
  return static_cast<ops::GemmMath>(v);
}

inline bool flag(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && info[i].ToBoolean().Value();
}

// The storages of the op being bound, as onCuda saw them: the CPU dispatch marks each with its task so
// that the JS thread waits for (or queues behind) it before touching their bytes. Set by onCuda and used
// right after it, with no JS in between (no storage can be collected meanwhile).
struct OpStorage {
  Storage* s;
  bool writes;
};
inline std::vector<OpStorage>& opStorages() {
  static thread_local std::vector<OpStorage> v;
  return v;
}

// True when every storage lives on the CUDA device, false when every one is on the CPU; mixed throws.
// Every storage an op reads or writes must be passed here (the CPU stream's ordering relies on it).
template <typename List>
bool onCudaList(const char* op, const List& all) {
  int dev = -2;
  std::vector<OpStorage>& seen = opStorages();
  seen.clear();
  ArgRoles& roles = argRoles();
  auto has = [](const std::vector<const Storage*>& v, const Storage* s) { return std::find(v.begin(), v.end(), s) != v.end(); };
  for (Storage* s : all) {
    if (!s) continue;
    seen.push_back({s, has(roles.written, s) || !has(roles.readOnly, s)});
    if (dev == -2) dev = s->device();
    else if (s->device() != dev)
      fail(op, "all tensors must be on the same device (found cpu and cuda)", __FILE__, __LINE__);
  }
  roles.readOnly.clear();
  roles.written.clear();
  if (dev == kCpu || dev == -2) return false;
#ifndef AXN_WITH_CUDA
  fail(op, "this addon was built without the CUDA backend", __FILE__, __LINE__);
#endif
  return true;
}
inline bool onCuda(const char* op, std::initializer_list<Storage*> all) { return onCudaList(op, all); }
inline bool onCuda(const char* op, const std::vector<Storage*>& all) { return onCudaList(op, all); }

// Enqueues a CPU kernel on the CPU stream and marks the op's storages (see opStorages) with its task.
template <typename Fn>
void enqueueCpu(const char* op, Fn&& fn) {
  const uint64_t seq = cpu::enqueue(op, cpu::TaskKind::Compute, std::forward<Fn>(fn));
  for (const OpStorage& o : opStorages()) {
    o.s->usedBy(seq);
    if (o.writes) o.s->writtenBy(seq);
  }
  opStorages().clear();
}

}  // namespace axn::bind

// Run the CUDA expression when `cuda` is true (compiled only with the CUDA backend), else enqueue the CPU
// one on the CPU stream (native/cpu_stream.h). The CPU expression is captured by value: it may use only
// the binding's local values (pointers, sizes, options), never `info` or JS memory. A missing CUDA version
// is an error, never a silent CPU fallback. Uses the binding's `op` (its name).
#define AXN_CPU_ENQUEUE(cpu_call) ::axn::bind::enqueueCpu(op, [=]() mutable { cpu_call; })
#ifdef AXN_WITH_CUDA
#define AXN_DISPATCH(cuda, cpu_call, cuda_call) \
  do {                                          \
    if (cuda) {                                 \
      ::axn::bind::opStorages().clear();        \
      cuda_call;                                \
    } else {                                    \
      AXN_CPU_ENQUEUE(cpu_call);                \
    }                                           \
  } while (0)
#else
#define AXN_DISPATCH(cuda, cpu_call, cuda_call) \
  do {                                          \
    (void)(cuda);                               \
    AXN_CPU_ENQUEUE(cpu_call);                  \
  } while (0)
#endif

namespace axn::bind {
// Each native/bind/<op>.cc registers its functions with AXN_REGISTER_OPS(fn), where
// fn(Napi::Env, Napi::Object& ops) sets ops["<name>"]; ops_binding.cc calls them all at load.
using BindFn = void (*)(Napi::Env, Napi::Object&);
struct Registrar {
  explicit Registrar(BindFn f);
};
}  // namespace axn::bind
#define AXN_REGISTER_OPS(fn) static ::axn::bind::Registrar axn_registrar_##fn(fn)
