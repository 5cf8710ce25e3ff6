#include "runtime.h"

#include <string>

#include "common.h"
#include "cpu_stream.h"
#include "host_alloc.h"
#include "storage.h"
#ifdef AXN_WITH_CUDA
#include "cuda/context.h"
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef AXN_BUILD_SYSTEM
#define AXN_BUILD_SYSTEM "unknown"
#endif
#ifndef AXN_CUDA_REASON
#define AXN_CUDA_REASON "built without CUDA"
#endif
#ifndef AXN_CUDA_ARCHS
#define AXN_CUDA_ARCHS ""
#endif
#ifndef AXN_CUBLAS_KIND
#define AXN_CUBLAS_KIND "cuBLAS"
#endif

namespace axn {

Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("buildSystem", AXN_BUILD_SYSTEM);
#ifdef AXN_WITH_CUDA
  o.Set("cudaBuilt", true);
  std::string reason;
  int n = cuda::deviceCount(&reason);
  o.Set("cuda", n > 0);
  std::string why = n > 0 ? std::string("") : "CUDA backend built, but no usable device: " + reason;
  o.Set("cublas", AXN_CUBLAS_KIND);
  if (std::string(AXN_CUBLAS_KIND) == "stub")
    why += std::string(why.empty() ? "" : "; ") + "linked against the stub cuBLAS (AXN_CUBLAS_STUB=ON): GEMMs cannot run";
  o.Set("cudaReason", why);
#ifdef AXN_CUDA_EMU
  o.Set("emulated", true);
#ifdef AXN_SANITIZE_FLAGS
  o.Set("sanitize", AXN_SANITIZE_FLAGS);
#endif
  o.Set("emulator", std::string("emulated CUDA device: the .cu kernels run on the CPU, one thread at a time, in ") +
                        emu::orderName(emu::order()) + " order (seed " + std::to_string(emu::seed()) +
                        "); a correctness tool for tests, not a GPU");
#else
  o.Set("emulated", false);
#endif
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);
  o.Set("cudaRuntime", rt);
  o.Set("cudaDriver", drv);
  o.Set("cudaArchs", AXN_CUDA_ARCHS);
#else
  o.Set("cudaBuilt", false);
  o.Set("emulated", false);
  o.Set("cuda", false);
  o.Set("cudaReason", AXN_CUDA_REASON);
#endif
#ifdef AXN_WITH_OPENBLAS
  o.Set("blas", "openblas");
#else
  o.Set("blas", "builtin");
#endif
#ifdef _OPENMP
  o.Set("threads", omp_get_max_threads());
#else
  o.Set("threads", 1);
#endif
  return o;
}

Napi::Value CudaDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array arr = Napi::Array::New(env);
#ifdef AXN_WITH_CUDA
  int n = cuda::deviceCount(nullptr);
  for (int i = 0; i < n; i++) {
    cuda::DeviceInfo d = cuda::deviceInfo(i);
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", i);
    o.Set("name", d.name);
    o.Set("totalBytes", static_cast<double>(d.totalBytes));
    o.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
    o.Set("smCount", d.smCount);
    arr.Set(static_cast<uint32_t>(i), o);
  }
#endif
  return arr;
}

Napi::Value NativeMemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  HostStats h = hostStats();
  o.Set("hostBytes", static_cast<double>(h.liveBytes));
  o.Set("hostBuffers", static_cast<double>(h.liveBuffers));
  host::Stats hs = host::stats();
  o.Set("hostCachedBytes", static_cast<double>(hs.cachedBytes));
  o.Set("hostMappedBytes", static_cast<double>(hs.mappedBytes));
  o.Set("hostSmallCachedBytes", static_cast<double>(hs.smallCachedBytes));
  cpu::Stats q = cpu::stats();
  Napi::Object cq = Napi::Object::New(env);
  cq.Set("pendingTasks", static_cast<double>(q.pending));
  cq.Set("tasksRun", static_cast<double>(q.completed));
  cq.Set("skippedAfterError", static_cast<double>(q.skipped));
  cq.Set("deferredFreeBytes", static_cast<double>(q.deferredFreeBytes));
  cq.Set("stagedWrites", static_cast<double>(q.stagedWrites));
  cq.Set("waits", static_cast<double>(q.waits));
  o.Set("cpuStream", cq);
#ifdef AXN_WITH_CUDA
  cuda::AllocatorStats s = cuda::allocatorStats();
  Napi::Object c = Napi::Object::New(env);
  c.Set("inUseBytes", static_cast<double>(s.inUseBytes));
  c.Set("cachedBytes", static_cast<double>(s.cachedBytes));
  c.Set("peakInUseBytes", static_cast<double>(s.peakInUseBytes));
  c.Set("allocCalls", static_cast<double>(s.allocCalls));
  c.Set("cacheHits", static_cast<double>(s.cacheHits));
  c.Set("cudaMallocCalls", static_cast<double>(s.cudaMallocCalls));
  c.Set("oomRetries", static_cast<double>(s.oomRetries));
  c.Set("cudaFreeCalls", static_cast<double>(s.cudaFreeCalls));
  c.Set("kernelLaunches", static_cast<double>(s.kernelLaunches));
  c.Set("cublasCalls", static_cast<double>(s.cublasCalls));
  c.Set("pinnedAllocs", static_cast<double>(s.pinnedAllocs));
  c.Set("pinnedFrees", static_cast<double>(s.pinnedFrees));
  c.Set("pinnedCachedBytes", static_cast<double>(s.pinnedCachedBytes));
  c.Set("hostSyncs", static_cast<double>(s.hostSyncs));
  c.Set("streamWaits", static_cast<double>(s.streamWaits));
  o.Set("cuda", c);
#endif
  return o;
}

Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  cpu::drain();
  cpu::reportError();
#ifdef AXN_WITH_CUDA
  cuda::synchronize();
#endif
  return info.Env().Undefined();
}

Napi::Value SetPoison(const Napi::CallbackInfo& info) {
  setPoison(info.Length() > 0 && info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
#ifdef AXN_WITH_CUDA
  cuda::resetPeakMemory();
#endif
  return info.Env().Undefined();
}

Napi::Value CudaEmptyCache(const Napi::CallbackInfo& info) {
  cpu::drain();  // frees still queued return their blocks first
  host::emptyCache();
#ifdef AXN_WITH_CUDA
  cuda::emptyCache();
#endif
  return info.Env().Undefined();
}

}  // namespace axn
