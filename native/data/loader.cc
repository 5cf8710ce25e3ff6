// The data loader's native half: see loader.h.
#include "data/loader.h"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bind/util.h"
#include "common.h"
#include "cpu_stream.h"
#include "data/crc32c.h"
#include "data/gpu_decode.h"
#include "data/jpeg.h"
#include "data/store.h"
#include "host_alloc.h"
#include "storage.h"
#ifdef AXN_WITH_CUDA
#include "cuda/context.h"
#endif

namespace axn::data {
namespace {

using Clock = std::chrono::steady_clock;

// A fixed pool of threads running tasks in FIFO order (so the images of an earlier batch are decoded
// before those of a later one); each thread keeps its own scratch row buffer.
class Pool {
 public:
  using Task = std::function<void(std::vector<uint8_t>& scratch)>;
  explicit Pool(int n) {
    for (int i = 0; i < n; i++) threads_.emplace_back([this] { run(); });
  }
  ~Pool() { stop(); }
  void push(Task t) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      q_.push_back(std::move(t));
    }
    cv_.notify_one();
  }
  // Runs what is queued (or, with `drop`, only what is running), then joins the threads.
  void stop(bool drop = false) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (drop) q_.clear();
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int size() const { return static_cast<int>(threads_.size()); }

 private:
  void run() {
    std::vector<uint8_t> scratch;
    for (;;) {
      Task t;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return stopping_ || !q_.empty(); });
        if (q_.empty()) return;
        t = std::move(q_.front());
        q_.pop_front();
      }
      t(scratch);
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> q_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

struct Staging {
  uint8_t* p = nullptr;
  size_t bytes = 0;
  bool pinned = false;
  bool decoding = false;  // a batch is being decoded into it (JS thread only)
  uint64_t cpuSeq = 0;  // CPU: the stream task that last copied out of it
  bool copied = false;  // CUDA: `event` marks its last copy
#ifdef AXN_WITH_CUDA
  cudaEvent_t event = nullptr;
#endif
};

struct LoaderStats {
  std::atomic<uint64_t> images{0}, batches{0}, decodeNs{0}, cpuNs{0}, waitNs{0}, bytesIn{0}, failed{0};
};

// This thread's CPU time: what decoding costs a core, whatever else the machine runs meanwhile.
uint64_t threadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// One batch in flight: its promise, the images left, the first error.
struct Batch {
  Napi::Promise::Deferred deferred;
  std::atomic<int> left{0};
  std::mutex mu;
  std::string error;
  std::once_flag ready;  // the staging buffer's previous copy is done
  int slot;                   // the staging buffer, or −1 (decoding into `keep`)
  Napi::ObjectReference keep;  // the destination Storage of a direct decode
  Napi::ObjectReference owner;  // the Loader: not collected while one of its batches is pending
  bool gpu = false;            // decoded on the GPU (copy stream): the compute stream waits for it
  Batch(Napi::Env env, int s) : deferred(Napi::Promise::Deferred::New(env)), slot(s) {}
};

class Loader : public Napi::ObjectWrap<Loader> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Loader",
                       {InstanceMethod<&Loader::Info>("info"), InstanceMethod<&Loader::Names>("names"),
                        InstanceMethod<&Loader::SetStaging>("setStaging"), InstanceMethod<&Loader::Decode>("decode"),
                        InstanceMethod<&Loader::Upload>("upload"), InstanceMethod<&Loader::Stats>("stats"),
                        InstanceMethod<&Loader::RecordBytes>("recordBytes"), InstanceMethod<&Loader::DecodeRecord>("decodeRecord"),
                        InstanceMethod<&Loader::DecodeAll>("decodeAll"), InstanceMethod<&Loader::DecodeGpu>("decodeGpu"),
                        InstanceMethod<&Loader::Close>("close")});
  }

  // new Loader(path: string, threads: number, cuda: boolean)
  explicit Loader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Loader>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsBoolean())
      throw Napi::TypeError::New(env, "Loader: expected (path: string, threads: number, cuda: boolean)");
    const int threads = info[1].As<Napi::Number>().Int32Value();
    if (threads < 1 || threads > 1024) throw Napi::RangeError::New(env, "Loader: threads must be 1 to 1024");
    cuda_ = info[2].As<Napi::Boolean>().Value();
    gpu_ = info.Length() > 3 && info[3].ToBoolean().Value();
#ifndef AXN_WITH_CUDA
    if (cuda_) throw Napi::Error::New(env, "Loader: this addon was built without the CUDA backend");
#endif
    if (gpu_ && !cuda_) throw Napi::Error::New(env, "Loader: GPU decoding needs a CUDA loader");
    if (gpu_ && !gpuDecodeAvailable()) throw Napi::Error::New(env, "Loader: GPU decoding (nvJPEG) is not available: " + gpuDecodeReason());
    try {
      store_ = std::make_shared<Store>(info[0].As<Napi::String>().Utf8Value());
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "alexnet-loader", 0, 1);
    tsfn_.Unref(env);
    pool_ = std::make_unique<Pool>(gpu_ ? 1 : threads);  // GPU decoding: one thread drives nvJPEG
    // When the environment goes (process exit, a worker thread ending) with the loader still open, stop
    // the threads and release the thread-safe function before Node finalises it: this hook, added after
    // the function was made, runs before Node's own cleanup of it.
    env_ = env;
    napi_add_env_cleanup_hook(env, &Loader::onEnvCleanup, this);
  }

  ~Loader() override {
    if (!envGone_) napi_remove_env_cleanup_hook(env_, &Loader::onEnvCleanup, this);
    shutdown(false);
  }

 private:
  static void onEnvCleanup(void* self) {
    Loader* l = static_cast<Loader*>(self);
    l->envGone_ = true;
    l->shutdown(true);
  }

  // `teardown`: the environment is going; queued images are dropped (nobody waits for their batches).
  void shutdown(bool teardown) {
    if (closed_) return;
    closed_ = true;
    cancelled_ = true;  // images still queued settle their batches at once, with an error
    if (pool_) pool_->stop(teardown);  // else finishes the queued images: their batches settle
    freeStaging();
#ifdef AXN_WITH_NVJPEG
    gpuDecoder_.reset();
    if (arena_) cudaFree(arena_);  // synchronises: the copy stream's work that uses it is done after
    arena_ = nullptr;
#endif
    tsfn_.Release();
  }

  void freeStaging() {
    for (Staging& s : staging_) {
#ifdef AXN_WITH_CUDA
      if (s.pinned) {
        if (s.copied) cudaEventSynchronize(s.event);
        cudaEventDestroy(s.event);
        cudaFreeHost(s.p);
        continue;
      }
#endif
      if (s.cpuSeq) cpu::waitFor(s.cpuSeq);
      host::free(s.p, s.bytes);
    }
    staging_.clear();
  }

  void checkOpen(const char* op) {
    if (closed_) throw Error(std::string("Loader.") + op + ": the loader is closed");
  }

  // info() → { count, labels, widths, heights, channels, formats, meta, crc32c, jpeg, jpegReason, threads }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkOpen("info");
    const size_t n = store_->size();
    auto labels = Napi::Int32Array::New(env, n);
    auto widths = Napi::Int32Array::New(env, n);
    auto heights = Napi::Int32Array::New(env, n);
    auto channels = Napi::Uint8Array::New(env, n);
    auto formats = Napi::Uint8Array::New(env, n);
    for (size_t i = 0; i < n; i++) {
      const Record& r = store_->record(i);
      labels[i] = r.label;
      widths[i] = r.width;
      heights[i] = r.height;
      channels[i] = r.channels;
      formats[i] = static_cast<uint8_t>(r.format);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("count", Napi::Number::New(env, static_cast<double>(n)));
    o.Set("labels", labels);
    o.Set("widths", widths);
    o.Set("heights", heights);
    o.Set("channels", channels);
    o.Set("formats", formats);
    o.Set("fileBytes", Napi::Number::New(env, static_cast<double>(store_->fileBytes())));
    o.Set("meta", store_->meta());
    o.Set("crc32c", crc32cImpl());
    o.Set("jpeg", jpegAvailable());
    o.Set("jpegReason", jpegReason());
    o.Set("jpegVersion", jpegVersion());
    o.Set("threads", pool_->size());
    o.Set("gpuDecode", gpuDecodeAvailable());
    o.Set("gpuDecodeReason", gpuDecodeReason());
    return o;
  }

  size_t recordArg(const Napi::CallbackInfo& info, const char* op) {
    checkOpen(op);
    const double v = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(v >= 0) || v != static_cast<double>(static_cast<size_t>(v)) || static_cast<size_t>(v) >= store_->size())
      throw Napi::RangeError::New(info.Env(), std::string("Loader.") + op + ": expected a record index from 0 to " + std::to_string(store_->size() - 1));
    return static_cast<size_t>(v);
  }

  // recordBytes(i) → Buffer: a copy of record i's bytes (its checksum checked).
  Napi::Value RecordBytes(const Napi::CallbackInfo& info) {
    const size_t i = recordArg(info, "recordBytes");
    try {
      const uint8_t* p = store_->checkedBytes(i);
      return Napi::Buffer<uint8_t>::Copy(info.Env(), p, store_->record(i).bytes);
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }

  // decodeRecord(i) → Buffer: record i decoded whole, HWC uint8 (on the calling thread: one image, for
  // inspection and tests; batches go through decode()).
  Napi::Value DecodeRecord(const Napi::CallbackInfo& info) {
    const size_t i = recordArg(info, "decodeRecord");
    const Record& r = store_->record(i);
    std::vector<uint8_t> scratch;
    try {
      const uint8_t* p = store_->checkedBytes(i);
      auto out = Napi::Buffer<uint8_t>::New(info.Env(), static_cast<size_t>(r.width) * r.height * r.channels);
      if (r.format == Format::Jpeg)
        decodeJpegWindow(p, r.bytes, r.width, r.height, r.channels, 0, 0, r.height, r.width, out.Data(), static_cast<size_t>(r.width) * r.channels, scratch);
      else
        std::memcpy(out.Data(), p, out.Length());
      return out;
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), "packed data set " + store_->path() + ": record " + std::to_string(i) + ": " + e.what());
    }
  }

  // decodeAll(passes) → { images, seconds, cpuSeconds }: every record decoded whole, `passes` times, on the
  // calling thread into one reused buffer — the benchmark's ceiling (bench/data.mjs): libjpeg-turbo and the
  // checksums alone, no threads, no copies. Blocks the calling thread; not for use in a server.
  Napi::Value DecodeAll(const Napi::CallbackInfo& info) {
    checkOpen("decodeAll");
    const int passes = bind::i32(info, 0, "Loader.decodeAll", "passes");
    std::vector<uint8_t> out, scratch;
    const auto t0 = Clock::now();
    const uint64_t c0 = threadCpuNs();
    size_t images = 0;
    try {
      for (int p = 0; p < passes; p++)
        for (size_t i = 0; i < store_->size(); i++, images++) {
          const Record& r = store_->record(i);
          const size_t need = static_cast<size_t>(r.width) * r.height * r.channels;
          if (out.size() < need) out.resize(need);
          const uint8_t* src = store_->checkedBytes(i);
          if (r.format == Format::Jpeg)
            decodeJpegWindow(src, r.bytes, r.width, r.height, r.channels, 0, 0, r.height, r.width, out.data(), static_cast<size_t>(r.width) * r.channels, scratch);
          else
            std::memcpy(out.data(), src, need);
        }
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("images", static_cast<double>(images));
    o.Set("seconds", std::chrono::duration<double>(Clock::now() - t0).count());
    o.Set("cpuSeconds", static_cast<double>(threadCpuNs() - c0) * 1e-9);
    return o;
  }

  // decodeGpu(jobs: Int32Array [n × 3: record, top, left], H, W, C, dst: Storage) → Promise<void>: the
  // batch decoded on the GPU (nvJPEG, whole images into a device arena) and each H×W window copied into
  // dst, a uint8 CUDA tensor's Storage [n, H, W, C], all on the copy stream. The copy stream first waits
  // for the compute stream (dst is a caching-allocator block); when the promise settles the compute stream
  // waits for the copy stream (the two waits of native/cuda/context.h).
  Napi::Value DecodeGpu(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "Loader.decodeGpu";
    checkOpen("decodeGpu");
    if (!gpu_) throw Napi::Error::New(env, std::string(op) + ": this loader was not made for GPU decoding");
#ifndef AXN_WITH_NVJPEG
    throw Napi::Error::New(env, std::string(op) + ": " + gpuDecodeReason());
#else
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, std::string(op) + ": jobs must be an Int32Array");
    Napi::Int32Array jobs = info[0].As<Napi::Int32Array>();
    const int H = bind::i32(info, 1, op, "H"), W = bind::i32(info, 2, op, "W"), C = bind::i32(info, 3, op, "C");
    if (jobs.ElementLength() % 3 != 0 || H < 1 || W < 1 || (C != 1 && C != 3)) throw Napi::RangeError::New(env, std::string(op) + ": bad jobs, H, W or C");
    const size_t n = jobs.ElementLength() / 3;
    const size_t imageBytes = static_cast<size_t>(H) * W * C;
    uint8_t* dst = bind::ptr<uint8_t>(info, 4, op, "dst", n * imageBytes);
    bind::argRoles().written.clear();
    Storage* ds = Storage::From(info[4], op, "dst");
    if (ds->device() == kCpu) throw Napi::Error::New(env, std::string(op) + ": dst must be a CUDA tensor");
    auto plan = std::make_shared<std::vector<int32_t>>(jobs.Data(), jobs.Data() + 3 * n);
    for (size_t j = 0; j < n; j++) {
      const int32_t rec = (*plan)[3 * j], top = (*plan)[3 * j + 1], left = (*plan)[3 * j + 2];
      if (rec < 0 || static_cast<size_t>(rec) >= store_->size())
        throw Napi::RangeError::New(env, std::string(op) + ": job " + std::to_string(j) + " names record " + std::to_string(rec));
      const Record& r = store_->record(rec);
      if (r.format != Format::Jpeg) throw Napi::Error::New(env, std::string(op) + ": record " + std::to_string(rec) + " is not a JPEG");
      if (r.channels != C || top < 0 || left < 0 || H > r.height || W > r.width || top > r.height - H || left > r.width - W)
        throw Napi::RangeError::New(env, std::string(op) + ": the window of job " + std::to_string(j) + " is not inside record " + std::to_string(rec));
    }
    auto* batch = new Batch(env, -1);
    Napi::Promise promise = batch->deferred.Promise();
    if (n == 0) {
      batch->deferred.Resolve(env.Undefined());
      delete batch;
      return promise;
    }
    cuda::streamWait(cuda::copyStream(), cuda::stream());  // wait 1: dst may be a recycled block
    batch->keep = Napi::Persistent(info[4].As<Napi::Object>());
    batch->gpu = true;
    batch->left = 1;
    batch->owner = Napi::Persistent(Value());
    if (inFlight_++ == 0) tsfn_.Ref(env);
    std::shared_ptr<Store> store = store_;
    LoaderStats* stats = &stats_;
    pool_->push([this, batch, plan, store, stats, n, H, W, C, dst, imageBytes](std::vector<uint8_t>&) {
      const auto t0 = Clock::now();
      const uint64_t c0 = threadCpuNs();
      try {
        if (cancelled_.load()) throw Error("the loader was closed while the batch was being decoded");
        std::vector<const uint8_t*> data(n);
        std::vector<size_t> lengths(n), pitch(n), off(n);
        std::vector<uint8_t*> out(n);
        size_t total = 0;
        for (size_t j = 0; j < n; j++) {
          const int32_t rec = (*plan)[3 * j];
          const Record& r = store->record(rec);
          try {
            data[j] = store->checkedBytes(rec);
          } catch (const std::exception& e) {
            std::string what = e.what();
            const std::string prefix = "packed data set " + store->path() + ": ";
            throw Error(what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what);
          }
          try {
            // what the CPU path checks before decoding: the frame header says the index's size (nvJPEG
            // writes what the header says), a baseline 8-bit JPEG of 1 or 3 components, not truncated
            checkJpegRecord(data[j], r.bytes, r.width, r.height);
          } catch (const std::exception& e) {
            throw Error("record " + std::to_string(rec) + ": " + e.what());
          }
          lengths[j] = r.bytes;
          pitch[j] = static_cast<size_t>(r.width) * C;
          off[j] = total;
          total += (pitch[j] * r.height + 255) & ~size_t(255);
          stats->bytesIn += r.bytes;
        }
        if (total > arenaBytes_) {
          if (arena_) AXN_CUDA_CHECK(cudaFree(arena_), "Loader.decodeGpu");  // synchronises the device first
          arena_ = nullptr;
          arenaBytes_ = 0;
          AXN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&arena_), total), "Loader.decodeGpu");
          arenaBytes_ = total;
        }
        for (size_t j = 0; j < n; j++) out[j] = arena_ + off[j];
        if (!gpuDecoder_) gpuDecoder_ = std::make_unique<GpuDecoder>(C);
        cudaStream_t cs = cuda::copyStream();
        gpuDecoder_->decode(data.data(), lengths.data(), out.data(), pitch.data(), static_cast<int>(n), cs);
        for (size_t j = 0; j < n; j++) {
          const int32_t top = (*plan)[3 * j + 1], left = (*plan)[3 * j + 2];
          AXN_CUDA_CHECK(cudaMemcpy2DAsync(dst + j * imageBytes, static_cast<size_t>(W) * C, out[j] + top * pitch[j] + static_cast<size_t>(left) * C,
                                           pitch[j], static_cast<size_t>(W) * C, static_cast<size_t>(H), cudaMemcpyDeviceToDevice, cs),
                         "Loader.decodeGpu");
        }
        stats->images += n;
      } catch (const std::exception& e) {
        stats->failed++;
        batch->error = e.what();
      }
      stats->decodeNs += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
      stats->cpuNs += threadCpuNs() - c0;
      stats->batches++;
      tsfnSettle(batch);
    });
    return promise;
#endif
  }

  Napi::Value Names(const Napi::CallbackInfo& info) {
    checkOpen("names");
    return Napi::String::New(info.Env(), store_->names());
  }

  // setStaging(count, bytes): `count` staging buffers of `bytes` each (pinned on CUDA), replacing the old
  // ones after their copies. Call when no batch is being decoded.
  Napi::Value SetStaging(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkOpen("setStaging");
    const int count = bind::i32(info, 0, "Loader.setStaging", "count");
    const double b = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
    if (count < 1 || count > 64 || !(b >= 1) || b > double(uint64_t(1) << 40))
      throw Napi::RangeError::New(env, "Loader.setStaging: expected 1 to 64 buffers of at least 1 byte");
    if (inFlight_ > 0) throw Napi::Error::New(env, "Loader.setStaging: batches are still being decoded");
    freeStaging();
    const size_t bytes = static_cast<size_t>(b);
    for (int i = 0; i < count; i++) {
      Staging s;
      s.bytes = bytes;
#ifdef AXN_WITH_CUDA
      if (cuda_) {
        AXN_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&s.p), bytes), "Loader.setStaging");
        AXN_CUDA_CHECK(cudaEventCreateWithFlags(&s.event, cudaEventDisableTiming), "Loader.setStaging");
        s.pinned = true;
        staging_.push_back(s);
        continue;
      }
#endif
      s.p = static_cast<uint8_t*>(host::alloc(bytes));
      staging_.push_back(s);
    }
    return env.Undefined();
  }

  // decode(slot, jobs: Int32Array [n × 3: record, top, left], H, W, C, dst?) → Promise<void>: image j is the
  // H×W window at (top, left) of `record`, written as HWC uint8 at byte j·H·W·C of staging buffer `slot`
  // (CUDA), or, with `dst` (a uint8 CPU tensor's Storage, on a CPU loader; slot −1), straight into it: on the
  // CPU the batch needs no staging copy. dst may be reused batch after batch: the decode waits for the
  // CPU-stream tasks enqueued on it so far; it is kept alive until the promise settles, and the caller
  // enqueues nothing on it before that.
  Napi::Value Decode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "Loader.decode";
    checkOpen("decode");
    const int slot = bind::i32(info, 0, op, "slot");
    const bool direct = info.Length() > 5 && !info[5].IsUndefined();
    if (direct ? slot != -1 : (slot < 0 || slot >= static_cast<int>(staging_.size())))
      throw Napi::RangeError::New(env, std::string(op) + (direct ? ": with dst, slot must be -1" : ": no staging buffer " + std::to_string(slot)));
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, std::string(op) + ": jobs must be an Int32Array");
    Napi::Int32Array jobs = info[1].As<Napi::Int32Array>();
    const int H = bind::i32(info, 2, op, "H"), W = bind::i32(info, 3, op, "W"), C = bind::i32(info, 4, op, "C");
    if (jobs.ElementLength() % 3 != 0) throw Napi::RangeError::New(env, std::string(op) + ": jobs must hold (record, top, left) triples");
    const size_t n = jobs.ElementLength() / 3;
    if (H < 1 || W < 1 || (C != 1 && C != 3)) throw Napi::RangeError::New(env, std::string(op) + ": bad H, W or C");
    const size_t imageBytes = static_cast<size_t>(H) * W * C;
    uint8_t* base = nullptr;
    size_t capacity = 0;
    uint64_t dstWait = 0;
    Staging* sp = nullptr;
    Napi::Object dstObj;
    if (direct) {
      if (cuda_) throw Napi::Error::New(env, std::string(op) + ": a CUDA loader decodes into its pinned staging buffers, not into dst");
      Storage* ds = Storage::From(info[5], op, "dst");
      if (ds->device() != kCpu) throw Napi::Error::New(env, std::string(op) + ": dst must be a CPU tensor");
      // dst may be reused from batch to batch: the decode threads first wait for the CPU-stream task that
      // last used it (the augmentation reading the previous batch), as on a stream
      dstWait = ds->lastTask();
      base = static_cast<uint8_t*>(ds->data(op));
      capacity = ds->bytes();
      dstObj = info[5].As<Napi::Object>();
    } else {
      sp = &staging_[slot];
      if (sp->decoding) throw Napi::Error::New(env, std::string(op) + ": staging buffer " + std::to_string(slot) + " is being decoded into already");
      base = sp->p;
      capacity = sp->bytes;
    }
    if (n * imageBytes > capacity)
      throw Napi::RangeError::New(env, std::string(op) + ": " + std::to_string(n) + " images of " + std::to_string(imageBytes) +
                                           " bytes do not fit the " + std::to_string(capacity) + " bytes of the destination");
    // Copy and check every job on this thread: the workers never touch JS memory.
    auto plan = std::make_shared<std::vector<int32_t>>(jobs.Data(), jobs.Data() + 3 * n);
    for (size_t j = 0; j < n; j++) {
      const int32_t rec = (*plan)[3 * j], top = (*plan)[3 * j + 1], left = (*plan)[3 * j + 2];
      if (rec < 0 || static_cast<size_t>(rec) >= store_->size())
        throw Napi::RangeError::New(env, std::string(op) + ": job " + std::to_string(j) + " names record " + std::to_string(rec) +
                                             ", the store has " + std::to_string(store_->size()));
      const Record& r = store_->record(rec);
      if (r.channels != C)
        throw Napi::RangeError::New(env, std::string(op) + ": record " + std::to_string(rec) + " has " + std::to_string(r.channels) +
                                             " channels, the batch " + std::to_string(C));
      if (top < 0 || left < 0 || H > r.height || W > r.width || top > r.height - H || left > r.width - W)
        throw Napi::RangeError::New(env, std::string(op) + ": the " + std::to_string(W) + "×" + std::to_string(H) + " window at (" +
                                             std::to_string(left) + ", " + std::to_string(top) + ") is not inside record " +
                                             std::to_string(rec) + " (" + std::to_string(r.width) + "×" + std::to_string(r.height) + ")");
      if (r.format == Format::Jpeg && !jpegAvailable())
        throw Napi::Error::New(env, std::string(op) + ": record " + std::to_string(rec) + " is a JPEG and this addon cannot decode JPEG: " +
                                        jpegReason());
    }
    auto* batch = new Batch(env, slot);
    Napi::Promise promise = batch->deferred.Promise();
    if (n == 0) {
      batch->deferred.Resolve(env.Undefined());
      delete batch;
      return promise;
    }
    batch->left = static_cast<int>(n);
    batch->owner = Napi::Persistent(Value());
    if (direct) batch->keep = Napi::Persistent(dstObj);  // released on the JS thread when it settles
    else sp->decoding = true;
    if (inFlight_++ == 0) tsfn_.Ref(env);
    std::shared_ptr<Store> store = store_;
    const bool cuda = cuda_;
    LoaderStats* stats = &stats_;
    for (size_t j = 0; j < n; j++) {
      pool_->push([=](std::vector<uint8_t>& scratch) {
        if (sp) std::call_once(batch->ready, [&] { waitStaging(*sp, cuda, stats); });
        else if (dstWait) std::call_once(batch->ready, [&] { waitCpu(dstWait, stats); });
        const int32_t rec = (*plan)[3 * j], top = (*plan)[3 * j + 1], left = (*plan)[3 * j + 2];
        const auto t0 = Clock::now();
        const uint64_t c0 = threadCpuNs();
        try {
          if (cancelled_.load()) throw Error("the loader was closed while the batch was being decoded");
          const Record& r = store->record(rec);
          const uint8_t* src = store->checkedBytes(rec);
          uint8_t* dst = base + j * imageBytes;
          if (r.format == Format::Jpeg) {
            decodeJpegWindow(src, r.bytes, r.width, r.height, C, top, left, H, W, dst, static_cast<size_t>(W) * C, scratch);
          } else {
            for (int y = 0; y < H; y++)
              std::memcpy(dst + static_cast<size_t>(y) * W * C, src + (static_cast<size_t>(top + y) * r.width + left) * C,
                          static_cast<size_t>(W) * C);
          }
          stats->bytesIn += r.bytes;
          stats->images++;
        } catch (const std::exception& e) {
          stats->failed++;
          std::lock_guard<std::mutex> lk(batch->mu);
          if (batch->error.empty()) {
            std::string what = e.what();
            const std::string prefix = "packed data set " + store->path() + ": ";
            if (what.rfind(prefix, 0) == 0) what = what.substr(prefix.size());  // the JS side names the file
            batch->error = what.rfind("record ", 0) == 0 ? what : "record " + std::to_string(rec) + ": " + what;
          }
        }
        stats->decodeNs += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
        stats->cpuNs += threadCpuNs() - c0;
        if (--batch->left == 0) {
          stats->batches++;
          tsfnSettle(batch);
        }
      });
    }
    return promise;
  }

  static void waitCpu(uint64_t seq, LoaderStats* stats) {
    const auto t0 = Clock::now();
    cpu::waitFor(seq);
    stats->waitNs += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
  }

  static void waitStaging(Staging& s, bool cuda, LoaderStats* stats) {
    const auto t0 = Clock::now();
#ifdef AXN_WITH_CUDA
    if (cuda) {
      if (s.copied) cudaEventSynchronize(s.event);  // an error here shows at the next synchronisation
      stats->waitNs += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
      return;
    }
#endif
    (void)cuda;
    if (s.cpuSeq) cpu::waitFor(s.cpuSeq);
    stats->waitNs += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
  }

  void tsfnSettle(Batch* batch) {
    Loader* self = this;
    const napi_status s = tsfn_.NonBlockingCall(batch, [self](Napi::Env env, Napi::Function, Batch* b) {
      if (b->slot >= 0 && b->slot < static_cast<int>(self->staging_.size())) self->staging_[b->slot].decoding = false;
      b->keep.Reset();
      b->owner.Reset();
#ifdef AXN_WITH_CUDA
      // The rule's wait 2 (native/cuda/context.h): what the compute stream enqueues from here (the
      // augmentation, the block's free) comes after the GPU decode and the window copies.
      if (b->gpu) cuda::streamWait(cuda::stream(), cuda::copyStream());
#endif
      if (b->error.empty()) b->deferred.Resolve(env.Undefined());
      else b->deferred.Reject(Napi::Error::New(env, b->error).Value());
      delete b;
      if (--self->inFlight_ == 0 && !self->closed_) self->tsfn_.Unref(env);
    });
    if (s != napi_ok) {  // the environment is going away: nobody waits for it any more
      batch->keep.SuppressDestruct();
      batch->owner.SuppressDestruct();
      delete batch;
    }
  }

  // upload(slot, bytes, dst: Storage): copies the first `bytes` of staging buffer `slot` into dst (a uint8
  // tensor's storage on the loader's device), in stream order (see loader.h).
  Napi::Value Upload(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* op = "Loader.upload";
    checkOpen("upload");
    const int slot = bind::i32(info, 0, op, "slot");
    if (slot < 0 || slot >= static_cast<int>(staging_.size())) throw Napi::RangeError::New(env, std::string(op) + ": no staging buffer");
    const double b = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
    Staging& st = staging_[slot];
    if (st.decoding) throw Napi::Error::New(env, std::string(op) + ": staging buffer " + std::to_string(slot) + " is still being decoded into");
    if (!(b >= 0) || b > static_cast<double>(st.bytes)) throw Napi::RangeError::New(env, std::string(op) + ": bytes out of range");
    const size_t bytes = static_cast<size_t>(b);
    uint8_t* dst = bind::ptr<uint8_t>(info, 2, op, "dst", bytes);
    Storage* ds = bind::storage(info, 2, op, "dst");
    const bool onDevice = ds->device() != kCpu;
    if (onDevice != cuda_)
      throw Napi::Error::New(env, std::string(op) + ": the loader was made for " + (cuda_ ? "cuda" : "cpu") + ", dst is on " +
                                      (onDevice ? "cuda" : "cpu"));
    bind::argRoles().written.clear();
    if (bytes == 0) return env.Undefined();
#ifdef AXN_WITH_CUDA
    if (cuda_) {
      // dst is a caching-allocator block owned by the compute stream: the copy stream first waits for the
      // compute stream (the block may hold a recycled tensor that queued kernels still use), and the
      // compute stream then waits for the copy (the augmentation kernel, and the block's later free and
      // reuse in compute-stream order, come after it). See native/cuda/context.h.
      cudaStream_t cs = cuda::copyStream();
      cuda::streamWait(cs, cuda::stream());
      AXN_CUDA_CHECK(cudaMemcpyAsync(dst, st.p, bytes, cudaMemcpyHostToDevice, cs), op);
      AXN_CUDA_CHECK(cudaEventRecord(st.event, cs), op);  // the staging buffer is free again after it
      cuda::streamWait(cuda::stream(), cs);
      st.copied = true;
      return env.Undefined();
    }
#endif
    if (ds->lastTask() && !cpu::done(ds->lastTask())) cpu::waitFor(ds->lastTask());  // a fresh tensor: never
    const uint8_t* src = st.p;
    const uint64_t seq = cpu::enqueue(op, cpu::TaskKind::Memory, [dst, src, bytes] { std::memcpy(dst, src, bytes); });
    ds->usedBy(seq);
    ds->writtenBy(seq);
    st.cpuSeq = seq;
    return env.Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("images", static_cast<double>(stats_.images.load()));
    o.Set("batches", static_cast<double>(stats_.batches.load()));
    o.Set("failed", static_cast<double>(stats_.failed.load()));
    o.Set("bytesIn", static_cast<double>(stats_.bytesIn.load()));
    o.Set("decodeSeconds", static_cast<double>(stats_.decodeNs.load()) * 1e-9);
    o.Set("decodeCpuSeconds", static_cast<double>(stats_.cpuNs.load()) * 1e-9);
    o.Set("stagingWaitSeconds", static_cast<double>(stats_.waitNs.load()) * 1e-9);
    o.Set("inFlight", inFlight_);
    return o;
  }

  // close(): the batches still being decoded are rejected (the images queued are not decoded, the ones
  // being decoded finish), then the threads, the staging buffers and the mapping are freed. Idempotent.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    shutdown(false);
    return info.Env().Undefined();
  }

  std::shared_ptr<Store> store_;
  std::unique_ptr<Pool> pool_;
  std::vector<Staging> staging_;
  Napi::ThreadSafeFunction tsfn_;
  LoaderStats stats_;
  int inFlight_ = 0;  // JS thread only
  bool cuda_ = false;
  bool closed_ = false;
  bool envGone_ = false;
  bool gpu_ = false;
  std::atomic<bool> cancelled_{false};
  napi_env env_ = nullptr;
#ifdef AXN_WITH_NVJPEG
  std::unique_ptr<GpuDecoder> gpuDecoder_;  // used by the pool's one thread only
  uint8_t* arena_ = nullptr;                // device memory for whole decoded images (copy-stream order)
  size_t arenaBytes_ = 0;
#endif
};

// crc32c(view: TypedArray | Buffer, crc = 0) → number: for the pack writer (lib/data/pack.ts).
Napi::Value Crc32c(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "crc32c: expected a TypedArray or Buffer");
  auto ta = info[0].As<Napi::TypedArray>();
  const uint8_t* p = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  const uint32_t init = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  return Napi::Number::New(env, crc32c(p, ta.ByteLength(), init));
}

}  // namespace

Napi::Object DataExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("Loader", Loader::Init(env));
  o.Set("crc32c", Napi::Function::New(env, Crc32c, "crc32c"));
  o.Set("crc32cImpl", crc32cImpl());
  o.Set("jpeg", jpegAvailable());
  o.Set("jpegReason", jpegReason());
  o.Set("jpegVersion", jpegVersion());
  o.Set("gpuDecode", gpuDecodeAvailable());
  o.Set("gpuDecodeReason", gpuDecodeReason());
  return o;
}

}  // namespace axn::data
