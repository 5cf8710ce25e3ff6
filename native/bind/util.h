// Helpers for op bindings (native/bind/*.cc): unwrap arguments, check devices, dispatch CPU or CUDA.
// TypeScript (lib/ops/*.ts) validates shapes and options first; these are the cheap last guards.
#pragma once
#include <napi.h>

#include <initializer_list>
#include <string>

#include "../common.h"
#include "../storage.h"
#ifdef AXN_WITH_CUDA
#include "../cuda/context.h"
#endif

namespace axn::bind {

// The data pointer of a Storage argument at info[i], checked to hold at least `minBytes`.
template <typename T>
T* ptr(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what, size_t minElems) {
  Storage* s = Storage::From(info[i], op, what);
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

inline long long i64(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) fail(op, std::string("expected a number for ") + what, __FILE__, __LINE__);
  return info[i].As<Napi::Number>().Int64Value();
}

inline float f32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) fail(op, std::string("expected a number for ") + what, __FILE__, __LINE__);
  return info[i].As<Napi::Number>().FloatValue();
}

inline bool flag(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && info[i].ToBoolean().Value();
}

// True when every storage lives on the CUDA device, false when every one is on the CPU; mixed throws.
inline bool onCuda(const char* op, std::initializer_list<Storage*> all) {
  int dev = -2;
  for (Storage* s : all) {
    if (!s) continue;
    if (dev == -2) dev = s->device();
    else if (s->device() != dev)
      fail(op, "all tensors must be on the same device (found cpu and cuda)", __FILE__, __LINE__);
  }
  if (dev == kCpu || dev == -2) return false;
#ifndef AXN_WITH_CUDA
  fail(op, "this addon was built without the CUDA backend", __FILE__, __LINE__);
#endif
  return true;
}

}  // namespace axn::bind

// Run the CUDA expression when `cuda` is true (compiled only with the CUDA backend), else the CPU one.
// A missing CUDA version is an error, never a silent CPU fallback.
#ifdef AXN_WITH_CUDA
#define AXN_DISPATCH(cuda, cpu_call, cuda_call) \
  do {                                          \
    if (cuda) {                                 \
      cuda_call;                                \
    } else {                                    \
      cpu_call;                                 \
    }                                           \
  } while (0)
#else
#define AXN_DISPATCH(cuda, cpu_call, cuda_call) \
  do {                                          \
    (void)(cuda);                               \
    cpu_call;                                   \
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
