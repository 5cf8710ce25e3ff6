#include "storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "cpu_stream.h"
#include "host_alloc.h"
#ifdef AXN_WITH_CUDA
#include "cuda/context.h"
#endif

namespace axn {

namespace {
std::atomic<size_t> gHostBytes{0};
std::atomic<size_t> gHostBuffers{0};
std::atomic<bool> gPoison{false};
Napi::FunctionReference* gCtor = nullptr;

// The bytes and data pointer of a TypedArray / DataView / Buffer argument.
void viewOf(const Napi::Value& v, const char* op, void** data, size_t* len) {
  if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    *data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    *len = ta.ByteLength();
  } else if (v.IsDataView()) {
    auto dv = v.As<Napi::DataView>();
    *data = static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    *len = dv.ByteLength();
  } else {
    throw Error(std::string(op) + ": expected a TypedArray, got another value");
  }
}

[[noreturn, maybe_unused]] void noCuda(const char* op) {
  throw Error(std::string(op) + ": this addon was built without the CUDA backend");
}
}  // namespace

HostStats hostStats() { return {gHostBytes.load(), gHostBuffers.load()}; }
void setPoison(bool on) { gPoison = on; }
bool poisonEnabled() { return gPoison.load(); }

Napi::Function Storage::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Storage",
                                 {
                                     InstanceMethod<&Storage::Write>("write"),
                                     InstanceMethod<&Storage::ReadSync>("readSync"),
                                     InstanceMethod<&Storage::Read>("read"),
                                     InstanceMethod<&Storage::CopyFrom>("copyFrom"),
                                     InstanceMethod<&Storage::Zero>("zero"),
                                     InstanceMethod<&Storage::Free>("free"),
                                     InstanceAccessor<&Storage::GetBytes>("bytes"),
                                     InstanceAccessor<&Storage::GetDevice>("device"),
                                     InstanceAccessor<&Storage::GetFreed>("freed"),
                                 });
  gCtor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

// new Storage(device: number, bytes: number)
Storage::Storage(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Storage>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "Storage: expected (device: number, bytes: number)");
  int device = info[0].As<Napi::Number>().Int32Value();
  double b = info[1].As<Napi::Number>().DoubleValue();
  if (!(b >= 0) || b > 9007199254740991.0 || b != static_cast<double>(static_cast<uint64_t>(b)))
    throw Napi::RangeError::New(env, "Storage: bytes must be a non-negative integer, got " + std::to_string(b));
  size_t bytes = static_cast<size_t>(b);
  device_ = device;
  bytes_ = bytes;
  if (device == kCpu) {
    ptr_ = host::alloc(bytes);
    gHostBytes += bytes;
    gHostBuffers++;
    if (gPoison && bytes) std::memset(ptr_, 0xFF, bytes);  // every float a NaN
  } else if (device == 0) {
#ifdef AXN_WITH_CUDA
    ptr_ = cuda::deviceAlloc(bytes);
    if (gPoison) cuda::memsetBytes(ptr_, 0xFF, bytes);
#else
    noCuda("Storage");
#endif
  } else {
    throw Napi::RangeError::New(env, "Storage: unknown device " + std::to_string(device) + " (expected -1 or 0)");
  }
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(bytes));
}

Storage::~Storage() {
  // Finalizer path (GC): no env access needed for freeing.
  if (!freed_ && ptr_) {
    if (device_ == kCpu) {
      freeBytes();
    } else {
#ifdef AXN_WITH_CUDA
      try {
        cuda::deviceFree(ptr_);
      } catch (...) {
      }
#endif
    }
  }
  ptr_ = nullptr;
}

// Host bytes go back to the allocator in CPU-stream order: now when no pending task uses them, else as a
// task after the last one that does (so the allocator never hands them out while a kernel still runs on
// them). The live-byte counters drop now: the JS side no longer holds them.
void Storage::freeBytes() {
  gHostBytes -= bytes_;
  gHostBuffers--;
  if (cpu::done(lastTask_)) {
    host::free(ptr_, bytes_);
  } else {
    try {
      cpu::freeAfterPending(ptr_, bytes_);
    } catch (...) {
      // enqueue failed (out of memory for the task): wait, then free here
      cpu::waitFor(lastTask_);
      host::free(ptr_, bytes_);
    }
  }
}

void Storage::release(Napi::Env env) {
  if (freed_) return;
  if (device_ == kCpu) {
    freeBytes();
  } else {
#ifdef AXN_WITH_CUDA
    cuda::deviceFree(ptr_);
#endif
  }
  ptr_ = nullptr;
  freed_ = true;
  Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(bytes_));
}

void* Storage::data(const char* op) const {
  if (freed_) throw Error(std::string(op) + ": storage was already freed (tensor disposed)");
  return ptr_;
}

Storage* Storage::From(const Napi::Value& v, const char* op, const char* what) {
  if (!v.IsObject() || !gCtor || !v.As<Napi::Object>().InstanceOf(gCtor->Value()))
    throw Error(std::string(op) + ": " + what + " must be a native Storage");
  Storage* s = Storage::Unwrap(v.As<Napi::Object>());
  if (s->freed_) throw Error(std::string(op) + ": " + what + " was already freed (tensor disposed)");
  return s;
}

Napi::Value Storage::Write(const Napi::CallbackInfo& info) {
  void* src;
  size_t len;
  viewOf(info[0], "Storage.write", &src, &len);
  int64_t offArg = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int64Value() : 0;
  AXN_CHECK(offArg >= 0, "Storage.write", "negative offset " + std::to_string(offArg));
  size_t off = static_cast<size_t>(offArg);
  AXN_CHECK(off <= bytes_ && len <= bytes_ - off, "Storage.write",
            "writing " + std::to_string(len) + " bytes at offset " + std::to_string(off) + " into " +
                std::to_string(bytes_) + " bytes");
  uint8_t* dst = static_cast<uint8_t*>(data("Storage.write")) + off;
  if (device_ == kCpu) {
    if (!len) return info.Env().Undefined();  // an empty view or storage may have a null pointer
    if (cpu::done(lastTask_)) {
      std::memcpy(dst, src, len);  // nothing pending uses these bytes
    } else {
      // A pending task still uses the storage: copy the caller's bytes now (they may change once this
      // returns) and write them in stream order.
      auto staged = std::make_shared<std::vector<uint8_t>>(static_cast<uint8_t*>(src), static_cast<uint8_t*>(src) + len);
      cpu::countStagedWrite();
      lastTask_ = lastWrite_ = cpu::enqueue("Storage.write", cpu::TaskKind::Memory,
                                            [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); });
    }
  } else {
#ifdef AXN_WITH_CUDA
    cuda::copyHostToDevice(dst, src, len);
#else
    noCuda("Storage.write");
#endif
  }
  return info.Env().Undefined();
}

Napi::Value Storage::ReadSync(const Napi::CallbackInfo& info) {
  void* dst;
  size_t len;
  viewOf(info[0], "Storage.readSync", &dst, &len);
  AXN_CHECK(len <= bytes_, "Storage.readSync",
            "reading " + std::to_string(len) + " bytes from " + std::to_string(bytes_) + " bytes");
  const void* src = data("Storage.readSync");
  if (device_ == kCpu) {
    cpu::waitFor(lastWrite_);  // blocks the JS thread until the tasks that write it have run
    cpu::reportError();
    if (len) std::memcpy(dst, src, len);
  } else {
#ifdef AXN_WITH_CUDA
    cuda::copyDeviceToHost(dst, src, len);
#else
    noCuda("Storage.readSync");
#endif
  }
  return info.Env().Undefined();
}

#ifdef AXN_WITH_CUDA
namespace {
// Waits for an enqueued D2H copy on a worker thread; never touches JS in Execute.
class ReadWorker : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, cuda::PendingRead r, Napi::Value view, void* dst)
      : Napi::AsyncWorker(env, "alexnet-cuda.read"), deferred_(Napi::Promise::Deferred::New(env)), read_(r),
        dst_(dst) {
    view_ = Napi::Persistent(view.As<Napi::Object>());
  }
  ~ReadWorker() override { cuda::releaseRead(read_); }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      cuda::finishRead(read_, dst_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  cuda::PendingRead read_;
  Napi::ObjectReference view_;  // keeps the destination alive while the worker writes into it
  void* dst_;
};
}  // namespace
#endif

namespace {
// An asynchronous read of a CPU storage: a memcpy task on the CPU stream, its promise settled on the JS
// thread through a thread-safe function (which also keeps the event loop alive while it is pending).
struct CpuRead {
  napi_deferred deferred = nullptr;
  napi_ref view = nullptr;  // keeps the destination alive while the worker writes into it
  napi_threadsafe_function tsfn = nullptr;
  std::string error;
};

void settleCpuRead(napi_env env, napi_value /*fn*/, void* /*context*/, void* data) {
  auto* r = static_cast<CpuRead*>(data);
  if (env) {  // null while the environment is torn down: nothing to settle
    napi_value undef;
    napi_get_undefined(env, &undef);
    if (r->error.empty()) {
      napi_resolve_deferred(env, r->deferred, undef);
    } else {
      napi_value msg, err;
      const std::string m = "an earlier CPU op failed (reported at the next synchronisation): " + r->error;
      napi_create_string_utf8(env, m.c_str(), m.size(), &msg);
      napi_create_error(env, nullptr, msg, &err);
      napi_reject_deferred(env, r->deferred, err);
    }
    napi_delete_reference(env, r->view);
  }
  delete r;
}

constexpr size_t kDirectBytes = size_t(1) << 20;  // reads/fills this small of an idle storage run inline
}  // namespace

Napi::Value Storage::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  void* dst;
  size_t len;
  viewOf(info[0], "Storage.read", &dst, &len);
  AXN_CHECK(len <= bytes_, "Storage.read",
            "reading " + std::to_string(len) + " bytes from " + std::to_string(bytes_) + " bytes");
  const void* src = data("Storage.read");
  if (device_ == kCpu) {
    if (cpu::done(lastWrite_) && len <= kDirectBytes) {
      // Ready and small: copy now (memcpy with a null pointer is undefined even for 0 bytes).
      auto d = Napi::Promise::Deferred::New(env);
      const std::string e = cpu::takeError();
      if (!e.empty()) {
        d.Reject(Napi::Error::New(env, "an earlier CPU op failed (reported at the next synchronisation): " + e).Value());
        return d.Promise();
      }
      if (len) std::memcpy(dst, src, len);
      d.Resolve(env.Undefined());
      return d.Promise();
    }
    auto* r = new CpuRead();
    napi_value promise, name;
    napi_status st = napi_create_promise(env, &r->deferred, &promise);
    if (st == napi_ok) st = napi_create_reference(env, info[0], 1, &r->view);
    if (st == napi_ok) st = napi_create_string_utf8(env, "alexnet-cuda.cpuRead", NAPI_AUTO_LENGTH, &name);
    if (st == napi_ok)
      st = napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr, settleCpuRead,
                                           &r->tsfn);
    if (st != napi_ok) {
      if (r->view) napi_delete_reference(env, r->view);
      delete r;  // (a created promise is left pending and collected)
      throw Error("Storage.read: could not set up the asynchronous read");
    }
    lastTask_ = cpu::enqueue("Storage.read", cpu::TaskKind::Memory, [r, dst, src, len] {
      r->error = cpu::takeError();
      if (r->error.empty() && len) std::memcpy(dst, src, len);
      napi_threadsafe_function f = r->tsfn;
      if (napi_call_threadsafe_function(f, r, napi_tsfn_blocking) != napi_ok) delete r;  // env closing
      napi_release_threadsafe_function(f, napi_tsfn_release);
    });
    return Napi::Value(env, promise);
  }
#ifdef AXN_WITH_CUDA
  cuda::PendingRead r = cuda::beginRead(src, len);
  auto* w = new ReadWorker(env, r, info[0], dst);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
#else
  noCuda("Storage.read");
#endif
}

// copyFrom(src: Storage, bytes?: number, dstOffset?: number, srcOffset?: number)
Napi::Value Storage::CopyFrom(const Napi::CallbackInfo& info) {
  Storage* src = From(info[0], "Storage.copyFrom", "source");
  auto arg = [&](size_t i, int64_t dflt) {
    int64_t v = info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Int64Value() : dflt;
    AXN_CHECK(v >= 0, "Storage.copyFrom", "negative size or offset " + std::to_string(v));
    return static_cast<size_t>(v);
  };
  size_t n = arg(1, static_cast<int64_t>(src->bytes_)), dOff = arg(2, 0), sOff = arg(3, 0);
  AXN_CHECK(sOff <= src->bytes_ && n <= src->bytes_ - sOff && dOff <= bytes_ && n <= bytes_ - dOff, "Storage.copyFrom",
            "copy of " + std::to_string(n) + " bytes out of range (source " + std::to_string(src->bytes_) +
                " bytes, destination " + std::to_string(bytes_) + " bytes)");
  uint8_t* d = static_cast<uint8_t*>(data("Storage.copyFrom")) + dOff;
  const uint8_t* s = static_cast<const uint8_t*>(src->data("Storage.copyFrom")) + sOff;
  if (!n) return info.Env().Undefined();
  if (device_ == kCpu && src->device_ == kCpu) {
    if (cpu::done(lastTask_) && cpu::done(src->lastWrite_) && n <= kDirectBytes) {
      std::memmove(d, s, n);
    } else {
      const uint64_t seq = cpu::enqueue("Storage.copyFrom", cpu::TaskKind::Memory, [d, s, n] { std::memmove(d, s, n); });
      lastTask_ = lastWrite_ = seq;
      src->lastTask_ = seq;
    }
    return info.Env().Undefined();
  }
  // Across devices the copy runs on the JS thread after the CPU side's pending tasks (a synchronisation).
  Storage* hostSide = device_ == kCpu ? this : src;
  cpu::waitFor(hostSide == this ? lastTask_ : src->lastWrite_);  // written here / read there
  cpu::reportError();
#ifdef AXN_WITH_CUDA
  if (device_ == kCpu) {
    cuda::copyDeviceToHost(d, s, n);
  } else if (src->device_ == kCpu) {
    cuda::copyHostToDevice(d, s, n);
  } else {
    cuda::copyDeviceToDevice(d, s, n);
  }
#else
  noCuda("Storage.copyFrom");
#endif
  return info.Env().Undefined();
}

Napi::Value Storage::Zero(const Napi::CallbackInfo& info) {
  void* p = data("Storage.zero");
  if (device_ == kCpu) {
    if (!bytes_) return info.Env().Undefined();
    if (cpu::done(lastTask_) && bytes_ <= kDirectBytes) {
      std::memset(p, 0, bytes_);
    } else {
      const size_t n = bytes_;
      lastTask_ = lastWrite_ = cpu::enqueue("Storage.zero", cpu::TaskKind::Memory, [p, n] { std::memset(p, 0, n); });
    }
  } else {
#ifdef AXN_WITH_CUDA
    cuda::memsetZero(p, bytes_);
#else
    noCuda("Storage.zero");
#endif
  }
  return info.Env().Undefined();
}

Napi::Value Storage::Free(const Napi::CallbackInfo& info) {
  release(info.Env());
  return info.Env().Undefined();
}

Napi::Value Storage::GetBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(bytes_));
}
Napi::Value Storage::GetDevice(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_); }
Napi::Value Storage::GetFreed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), freed_); }

}  // namespace axn
