// CUDA context: stream, cuBLAS handle, caching allocator, error helpers. See context.h.
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
  std::mutex mu;  // guards the allocator maps (reads finish on worker threads; allocation is main-thread)
  bool initialised = false;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  bool tf32 = false;
  std::unordered_map<void*, size_t> live;         // ptr -> rounded size
  std::multimap<size_t, void*> freeBlocks;        // rounded size -> cached block
  AllocatorStats stats;
};

Context& ctx() {
  static Context* c = new Context();  // never destroyed: CUDA may already be torn down at process exit
  return *c;
}

void ensureInit() {
  Context& c = ctx();
  if (c.initialised) return;
  std::string reason;
  if (deviceCount(&reason) == 0) throw Error("cuda: no CUDA device is available: " + reason);
  AXN_CUDA_CHECK(cudaSetDevice(0), "cuda.init");
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

// Free every cached block back to the driver. Caller holds the mutex.
void emptyCacheLocked(Context& c) {
  if (c.freeBlocks.empty()) return;
  cudaStreamSynchronize(c.stream);
  for (auto& kv : c.freeBlocks) cudaFree(kv.second);
  c.stats.cachedBytes = 0;
  c.freeBlocks.clear();
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

cudaStream_t stream() {
  ensureInit();
  return ctx().stream;
}

cublasHandle_t cublas() {
  ensureInit();
  return ctx().cublas;
}

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
  // Exact-size reuse: AlexNet's training step asks for the same sizes every iteration.
  auto it = c.freeBlocks.find(sz);
  if (it != c.freeBlocks.end()) {
    void* p = it->second;
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
    std::string msg = "cuda: out of memory: could not allocate " + mib(sz) + " on device 0 (" +
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
  AXN_CUDA_CHECK(cudaStreamSynchronize(stream()), "cuda.copyDeviceToHost");
}

PendingRead beginRead(const void* src, size_t bytes) {
  PendingRead r;
  r.bytes = bytes;
  if (bytes == 0) return r;
  AXN_CUDA_CHECK(cudaMallocHost(&r.pinned, bytes), "cuda.read");
  try {
    AXN_CUDA_CHECK(cudaMemcpyAsync(r.pinned, src, bytes, cudaMemcpyDeviceToHost, stream()), "cuda.read");
    AXN_CUDA_CHECK(cudaEventCreateWithFlags(&r.event, cudaEventDisableTiming), "cuda.read");
    AXN_CUDA_CHECK(cudaEventRecord(r.event, stream()), "cuda.read");
  } catch (...) {
    releaseRead(r);
    throw;
  }
  return r;
}

void finishRead(PendingRead& r, void* dst) {
  if (r.bytes == 0) return;
  AXN_CUDA_CHECK(cudaEventSynchronize(r.event), "cuda.read");
  std::memcpy(dst, r.pinned, r.bytes);
}

void releaseRead(PendingRead& r) {
  if (r.event) cudaEventDestroy(r.event);
  if (r.pinned) cudaFreeHost(r.pinned);
  r.event = nullptr;
  r.pinned = nullptr;
}

void synchronize() {
  if (!ctx().initialised) return;
  AXN_CUDA_CHECK(cudaStreamSynchronize(ctx().stream), "cuda.synchronize");
}

}  // namespace axn::cuda
