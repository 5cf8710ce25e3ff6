// Storage: the N-API object that owns one buffer of host or device memory (one owner per buffer).
// JS `Tensor` (lib/tensor.ts) holds one Storage plus shape and dtype.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

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
  // CPU stream ordering (native/cpu_stream.h): the last task that uses this storage's bytes (reads or
  // writes them), and the last that writes them. The JS thread may read once lastWrite has run, and write
  // or free once lastTask has.
  void usedBy(uint64_t seq) { lastTask_ = seq; }
  void writtenBy(uint64_t seq) { lastWrite_ = seq; }
  uint64_t lastTask() const { return lastTask_; }
  uint64_t lastWrite() const { return lastWrite_; }

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
  void freeBytes();  // host::free now, or after the pending tasks that use them

  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  int device_ = kCpu;
  bool freed_ = false;
  uint64_t lastTask_ = 0;   // 0: no task ever used it
  uint64_t lastWrite_ = 0;  // 0: no task ever wrote it
};

// Host-side byte counters for memoryStats().
struct HostStats {
  size_t liveBytes = 0;
  size_t liveBuffers = 0;
};
HostStats hostStats();


}  // namespace axn
