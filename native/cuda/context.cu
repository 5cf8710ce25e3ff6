// CUDA context: stream, cuBLAS handle, caching allocator, error helpers. See context.h.
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "context.h"

namespace axn::cuda {

namespace {

// Under the emulated device with AddressSanitizer, a block is addressable only up to the bytes asked
// for, and a cached block not at all (native/cuda/emu/runtime.h); nothing on a real device.
#if defined(AXN_CUDA_EMU)
void markBlock(cudaStream_t s, void* p, bool live, size_t usable, size_t total) {
  ::axn::emu::markBlock(s, p, live, usable, total);
}
#else
void markBlock(cudaStream_t, void*, bool, size_t, size_t) {}
#endif

std::string fileLine(const char* file, int line) {
  return std::string(file) + ":" + std::to_string(line);
}

struct Context {
  std::mutex mu;  // guards the allocator maps and pools (reads finish on worker threads)
  bool initialised = false;
  int device = 0;  // selectDevice()
  cudaStream_t stream = nullptr;
  cudaStream_t copyStream = nullptr;  // created on first use (copyStream()), under the mutex
  cudaStream_t commStream = nullptr;  // likewise (commStream())
  cublasHandle_t cublas = nullptr;
  bool tf32 = false;
  std::unordered_map<void*, size_t> live;         // ptr -> rounded size
  std::multimap<size_t, void*> freeBlocks;        // rounded size -> cached block
  std::multimap<size_t, void*> freePinned;        // power-of-two size -> pinned staging block
  std::unordered_map<void*, size_t> pinnedSize;   // every pinned staging block -> its size
  std::vector<cudaEvent_t> freeEvents;  // idle events (reads and streamWait), cudaEventDisableTiming
  AllocatorStats stats;
  int dropStreamWaits = 0;  // tests only (setDropStreamWaits, emulated device): a DropWaits mask
};

Context& ctx() {
  static Context* c = new Context();  // never destroyed: CUDA may already be torn down at process exit
  return *c;
}

// The CUDA runtime's current device is per host thread: a thread other than the one that created the
// context (the data loader's, a libuv worker's) would allocate on device 0. Every entry point that makes
// device work binds the calling thread to the context's device once (a data-parallel rank uses device
// localRank % deviceCount, selectDevice).
thread_local int tBoundDevice = -1;
void bindThread(int device) {
  if (tBoundDevice == device) return;
  AXN_CUDA_CHECK(cudaSetDevice(device), "cuda.bindThread");
  tBoundDevice = device;
}

void ensureInit() {
  Context& c = ctx();
  if (c.initialised) {
    bindThread(c.device);
    return;
  }
  std::string reason;
  if (deviceCount(&reason) == 0) throw Error("cuda: no CUDA device is available: " + reason);
  if (c.device >= deviceCount(nullptr))
    throw Error("cuda: device " + std::to_string(c.device) + " was selected but only " + std::to_string(deviceCount(nullptr)) +
                " CUDA device(s) exist");
  bindThread(c.device);
  AXN_CUDA_CHECK(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking), "cuda.init");
  AXN_CUBLAS_CHECK(cublasCreate(&c.cublas), "cuda.init");
  AXN_CUBLAS_CHECK(cublasSetStream(c.cublas, c.stream), "cuda.init");
  AXN_CUBLAS_CHECK(cublasSetMathMode(c.cublas, CUBLAS_DEFAULT_MATH), "cuda.init");
  c.initialised = true;
}

constexpr size_t kRound = 512;
size_t roundUp(size_t bytes) { return bytes == 0 ? kRound : (bytes + kRound - 1) / kRound * kRound; }

std::string mib(size_t b) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  return buf;
}

// Free every cached block back to the driver (device blocks and idle pinned staging blocks). Caller
// holds the mutex.
void emptyCacheLocked(Context& c) {
  if (c.freeBlocks.empty() && c.freePinned.empty()) return;
  cudaStreamSynchronize(c.stream);
  c.stats.hostSyncs++;
  for (auto& kv : c.freeBlocks) {
    cudaFree(kv.second);
    c.stats.cudaFreeCalls++;
  }
  c.stats.cachedBytes = 0;
  c.freeBlocks.clear();
  for (auto& kv : c.freePinned) {
    cudaFreeHost(kv.second);
    c.pinnedSize.erase(kv.second);
    c.stats.pinnedFrees++;
  }
  c.stats.pinnedCachedBytes = 0;
  c.freePinned.clear();
}

// A cached block that holds `sz` bytes and wastes at most as much again: the smallest such.
std::multimap<size_t, void*>::iterator bestFit(Context& c, size_t sz) {
  auto it = c.freeBlocks.lower_bound(sz);
  if (it != c.freeBlocks.end() && it->first <= 2 * sz) return it;
  return c.freeBlocks.end();
}

size_t pinnedClass(size_t bytes) {
  size_t s = 4096;
  while (s < bytes) s <<= 1;
  return s;
}

}  // namespace

void throwCuda(cudaError_t err, const char* op, const char* call, const char* file, int line) {
  std::string msg = std::string(op) + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err) +
                    " [" + call + "] (" + fileLine(file, line) + ")";
  if (err == cudaErrorMemoryAllocation) throw OutOfMemory(msg);
  throw Error(msg);
}

void throwCublas(cublasStatus_t st, const char* op, const char* call, const char* file, int line) {
  throw Error(std::string(op) + ": cuBLAS error " + std::to_string(static_cast<int>(st)) + " (" +
              cublasGetStatusString(st) + ") [" + call + "] (" + fileLine(file, line) + ")");
}

int deviceCount(std::string* reason) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear
    if (reason) *reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    return 0;
  }
  if (n == 0 && reason) *reason = "the driver reports no CUDA device";
  return n;
}

DeviceInfo deviceInfo(int device) {
  cudaDeviceProp p;
  AXN_CUDA_CHECK(cudaGetDeviceProperties(&p, device), "cuda.deviceInfo");
  DeviceInfo d;
  d.name = p.name;
  d.totalBytes = p.totalGlobalMem;
  d.major = p.major;
  d.minor = p.minor;
  d.smCount = p.multiProcessorCount;
  return d;
}

void selectDevice(int device) {
  Context& c = ctx();
  if (device < 0) throw Error("cuda.selectDevice: device must be >= 0, got " + std::to_string(device));
  if (c.initialised) {
    if (device == c.device) return;
    throw Error("cuda.selectDevice: the CUDA context already exists on device " + std::to_string(c.device) +
                "; device " + std::to_string(device) + " must be chosen before the first CUDA tensor or op "
                "(call initDistributed() first)");
  }
  c.device = device;
}

int currentDevice() { return ctx().device; }
bool contextCreated() { return ctx().initialised; }

cudaStream_t stream() {
  ensureInit();
  return ctx().stream;
}

cublasHandle_t cublas() {
  ensureInit();
  return ctx().cublas;
}

cudaStream_t copyStream() {
  ensureInit();
  Context& c = ctx();
  std::lock_guard<std::mutex> lock(c.mu);
  // Non-blocking, like the compute stream: nothing on the legacy default stream may order it implicitly.
  if (!c.copyStream) AXN_CUDA_CHECK(cudaStreamCreateWithFlags(&c.copyStream, cudaStreamNonBlocking), "cuda.copyStream");
  return c.copyStream;
}

cudaStream_t commStream() {
  ensureInit();
  Context& c = ctx();
  std::lock_guard<std::mutex> lock(c.mu);
  if (!c.commStream) AXN_CUDA_CHECK(cudaStreamCreateWithFlags(&c.commStream, cudaStreamNonBlocking), "cuda.commStream");
  return c.commStream;
}

void streamWait(cudaStream_t waiter, cudaStream_t signaller) {
  if (waiter == signaller) return;  // one stream is in order already
  ensureInit();
  Context& c = ctx();
  cudaEvent_t ev = nullptr;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.dropStreamWaits & (waiter == c.stream ? kDropIntoCompute : kDropIntoSide)) return;
    c.stats.streamWaits++;
    if (!c.freeEvents.empty()) {
      ev = c.freeEvents.back();
      c.freeEvents.pop_back();
    }
  }
  try {
    if (!ev) AXN_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cuda.streamWait");
    AXN_CUDA_CHECK(cudaEventRecord(ev, signaller), "cuda.streamWait");
    AXN_CUDA_CHECK(cudaStreamWaitEvent(waiter, ev, 0), "cuda.streamWait");
  } catch (...) {
    if (ev) {
      std::lock_guard<std::mutex> lock(c.mu);
      c.freeEvents.push_back(ev);
    }
    throw;
  }
  // cudaStreamWaitEvent captured this record: recording the event again (the next streamWait or read
  // that takes it from the pool) does not change what `waiter` waits for. So it is free at once.
  std::lock_guard<std::mutex> lock(c.mu);
  c.freeEvents.push_back(ev);
}

#ifdef AXN_CUDA_EMU
namespace {
std::atomic<int> plantedDefect{kPlantNone};
}
void setPlanted(int which) { plantedDefect.store(which); }
int planted() { return plantedDefect.load(std::memory_order_relaxed); }

void setDropStreamWaits(int which) {
  Context& c = ctx();
  std::lock_guard<std::mutex> lock(c.mu);
  c.dropStreamWaits = which;
}
#endif

void setTf32(bool on) {
  ensureInit();
  Context& c = ctx();
  if (c.tf32 == on) return;
  AXN_CUBLAS_CHECK(cublasSetMathMode(c.cublas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                   "cuda.setPrecision");
  c.tf32 = on;
}

void* deviceAlloc(size_t bytes) {
  ensureInit();
  Context& c = ctx();
  std::lock_guard<std::mutex> lock(c.mu);
  size_t sz = roundUp(bytes);
  c.stats.allocCalls++;
  // AlexNet's training step asks for the same sizes every iteration (exact fits); a smaller batch (the
  // last of an epoch, evaluation) fits in the blocks of the larger one.
  auto it = bestFit(c, sz);
  if (it != c.freeBlocks.end()) {
    void* p = it->second;
    sz = it->first;
    c.freeBlocks.erase(it);
    c.stats.cachedBytes -= sz;
    c.stats.cacheHits++;
    c.live[p] = sz;
    c.stats.inUseBytes += sz;
    if (c.stats.inUseBytes > c.stats.peakInUseBytes) c.stats.peakInUseBytes = c.stats.inUseBytes;
    markBlock(c.stream, p, true, bytes, sz);
    return p;
  }
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, sz);
  c.stats.cudaMallocCalls++;
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    c.stats.oomRetries++;
    emptyCacheLocked(c);
    err = cudaMalloc(&p, sz);
    c.stats.cudaMallocCalls++;
  }
  if (err != cudaSuccess && err != cudaErrorMemoryAllocation) {
    // Not an out-of-memory: e.g. a sticky error left by an earlier kernel. Say what it is.
    throwCuda(err, "cuda.alloc", "cudaMalloc", __FILE__, __LINE__);
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    size_t freeB = 0, totalB = 0;
    cudaMemGetInfo(&freeB, &totalB);
    std::string msg = "cuda: out of memory: could not allocate " + mib(sz) + " on device " + std::to_string(c.device) + " (" +
                      cudaGetErrorName(err) + "; in use by alexnet-cuda " + mib(c.stats.inUseBytes) +
                      ", cache emptied and retried; device free " + mib(freeB) + " of " + mib(totalB) + ")";
    throw OutOfMemory(msg);
  }
  c.live[p] = sz;
  c.stats.inUseBytes += sz;
  if (c.stats.inUseBytes > c.stats.peakInUseBytes) c.stats.peakInUseBytes = c.stats.inUseBytes;
  markBlock(c.stream, p, true, bytes, sz);
  return p;
}

void deviceFree(void* ptr) {
  if (!ptr) return;
  Context& c = ctx();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.live.find(ptr);
  if (it == c.live.end()) throw Error("cuda.free: pointer was not allocated by alexnet-cuda");
  size_t sz = it->second;
  c.live.erase(it);
  c.stats.inUseBytes -= sz;
  c.freeBlocks.emplace(sz, ptr);
  c.stats.cachedBytes += sz;
  markBlock(c.stream, ptr, false, 0, sz);
}

AllocatorStats allocatorStats() {
  Context& c = ctx();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

void resetPeakMemory() {
  Context& c = ctx();
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.peakInUseBytes = c.stats.inUseBytes;
}

void emptyCache() {
  Context& c = ctx();
  if (!c.initialised) return;
  std::lock_guard<std::mutex> lock(c.mu);
  emptyCacheLocked(c);
}

void copyHostToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  // From pageable memory cudaMemcpyAsync stages the data before returning, so `src` may be reused.
  AXN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()), "cuda.copyHostToDevice");
}

void copyDeviceToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  AXN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()),
                 "cuda.copyDeviceToDevice");
}

void memsetZero(void* dst, size_t bytes) {
  if (bytes == 0) return;
  AXN_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream()), "cuda.memset");
}

void memsetBytes(void* dst, int value, size_t bytes) {
  if (bytes == 0) return;
  AXN_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, stream()), "cuda.memset");
}

void copyDeviceToHost(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  AXN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()), "cuda.copyDeviceToHost");
  {
    std::lock_guard<std::mutex> lock(ctx().mu);
    ctx().stats.hostSyncs++;
  }
  AXN_CUDA_CHECK(cudaStreamSynchronize(stream()), "cuda.copyDeviceToHost");
}

void countLaunch() {
  Context& c = ctx();
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.kernelLaunches++;
}

void countCublasCall() {
  Context& c = ctx();
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.cublasCalls++;
}

PendingRead beginRead(const void* src, size_t bytes) {
  PendingRead r;
  r.bytes = bytes;
  if (bytes == 0) return r;
  ensureInit();
  Context& c = ctx();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.freePinned.lower_bound(bytes);  // classes are powers of two: the first holds it
    if (it != c.freePinned.end()) {
      r.pinned = it->second;
      c.stats.pinnedCachedBytes -= it->first;
      c.freePinned.erase(it);
    }
    if (!c.freeEvents.empty()) {
      r.event = c.freeEvents.back();
      c.freeEvents.pop_back();
    }
  }
  try {
    if (!r.pinned) {
      const size_t sz = pinnedClass(bytes);
      AXN_CUDA_CHECK(cudaMallocHost(&r.pinned, sz), "cuda.read");
      std::lock_guard<std::mutex> lock(c.mu);
      c.pinnedSize[r.pinned] = sz;
      c.stats.pinnedAllocs++;
    }
    if (!r.event) AXN_CUDA_CHECK(cudaEventCreateWithFlags(&r.event, cudaEventDisableTiming), "cuda.read");
    AXN_CUDA_CHECK(cudaMemcpyAsync(r.pinned, src, bytes, cudaMemcpyDeviceToHost, stream()), "cuda.read");
    AXN_CUDA_CHECK(cudaEventRecord(r.event, stream()), "cuda.read");
  } catch (...) {
    releaseRead(r);
    throw;
  }
  return r;
}

void finishRead(PendingRead& r, void* dst) {
  if (r.bytes == 0) return;
  {
    std::lock_guard<std::mutex> lock(ctx().mu);
    ctx().stats.hostSyncs++;
  }
  AXN_CUDA_CHECK(cudaEventSynchronize(r.event), "cuda.read");
  std::memcpy(dst, r.pinned, r.bytes);
}

// Back to the pools. The copy into the block has completed (finishRead waited for it) or never will
// matter: a later read that takes the block enqueues its own copy behind this one on the same stream.
void releaseRead(PendingRead& r) {
  Context& c = ctx();
  std::lock_guard<std::mutex> lock(c.mu);
  if (r.event) c.freeEvents.push_back(r.event);
  if (r.pinned) {
    const size_t sz = c.pinnedSize.at(r.pinned);
    c.freePinned.emplace(sz, r.pinned);
    c.stats.pinnedCachedBytes += sz;
  }
  r.event = nullptr;
  r.pinned = nullptr;
}

void synchronize() {
  if (!ctx().initialised) return;
  cudaStream_t copy = nullptr, comm = nullptr;
  {
    std::lock_guard<std::mutex> lock(ctx().mu);
    ctx().stats.hostSyncs++;
    copy = ctx().copyStream;
    comm = ctx().commStream;
  }
  AXN_CUDA_CHECK(cudaStreamSynchronize(ctx().stream), "cuda.synchronize");
  if (comm) AXN_CUDA_CHECK(cudaStreamSynchronize(comm), "cuda.synchronize");
  // Uploads not yet consumed (a prefetched batch) are waited for too: after synchronize() nothing the
  // addon enqueued is still running.
  if (copy) AXN_CUDA_CHECK(cudaStreamSynchronize(copy), "cuda.synchronize");
}

}  // namespace axn::cuda
