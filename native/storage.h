// Storage: the N-API object that owns one buffer of host or device memory (one owner per buffer).
// JS `Tensor` (lib/tensor.ts) holds one Storage plus shape and dtype.
#pragma once
#include <napi.h>

#include <cstddef>

namespace axn {

constexpr int kCpu = -1;  // device id of host memory; 0.. are CUDA devices

class Storage : public Napi::ObjectWrap<Storage> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Storage(const Napi::CallbackInfo& info);
  ~Storage() override;

  // For op bindings: the raw pointer (throws if freed) and where it lives.
  void* data(const char* op) const;
  int device() const { return device_; }
  size_t bytes() const { return bytes_; }

  // Unwrap a JS value that must be a live Storage; `what` names it in the error.
  static Storage* From(const Napi::Value& v, const char* op, const char* what);

 private:
  Napi::Value Write(const Napi::CallbackInfo& info);     // (view, byteOffset?) host -> storage
  Napi::Value ReadSync(const Napi::CallbackInfo& info);  // (view) storage -> host, blocking
  Napi::Value Read(const Napi::CallbackInfo& info);      // (view) -> Promise<void>
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);  // (src Storage, bytes?) any device -> this
  Napi::Value Zero(const Napi::CallbackInfo& info);
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value GetBytes(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetFreed(const Napi::CallbackInfo& info);
  void release(Napi::Env env);

  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  int device_ = kCpu;
  bool freed_ = false;
};

// Host-side byte counters for memoryStats().
struct HostStats {
  size_t liveBytes = 0;
  size_t liveBuffers = 0;
};
HostStats hostStats();


}  // namespace axn
