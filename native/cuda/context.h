// The CUDA context of the addon: one device (0), one stream, one cuBLAS handle, and a caching device
// allocator. Everything runs on that one stream, so a freed block can be handed out again at once:
// any later use of it is ordered after every earlier use (PyTorch's caching allocator, one stream).
// Included by host C++ (.cc) and CUDA (.cu) files alike; only compiled when AXN_WITH_CUDA is set.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "../common.h"
#include "cublas_compat.h"

namespace axn::cuda {

// Throw an axn::Error "op: <cuda message> [call] (file:line)" when a CUDA runtime call fails.
[[noreturn]] void throwCuda(cudaError_t err, const char* op, const char* call, const char* file, int line);
[[noreturn]] void throwCublas(cublasStatus_t st, const char* op, const char* call, const char* file, int line);

struct DeviceInfo {
  std::string name;
  size_t totalBytes = 0;
  int major = 0, minor = 0, smCount = 0;
};

struct AllocatorStats {
  size_t inUseBytes = 0;     // handed out and not yet freed
  size_t cachedBytes = 0;    // freed, kept for reuse
  size_t peakInUseBytes = 0;
  size_t allocCalls = 0;     // deviceAlloc calls
  size_t cacheHits = 0;      // served from the cache
  size_t cudaMallocCalls = 0;
  size_t cudaFreeCalls = 0;
  size_t oomRetries = 0;     // times the cache was emptied after an out-of-memory
  // What the host asked of the device (cumulative; cheap: a counter each):
  size_t kernelLaunches = 0;
  size_t cublasCalls = 0;
  size_t pinnedAllocs = 0;   // cudaMallocHost (the staging pool growing)
  size_t pinnedFrees = 0;    // cudaFreeHost (emptyCache)
  size_t pinnedCachedBytes = 0;
  size_t hostSyncs = 0;      // host waits: stream and event synchronisations, blocking copies
};

// Number of CUDA devices; 0 (and *reason set) when there is no driver or device.
int deviceCount(std::string* reason);
DeviceInfo deviceInfo(int device);

// The stream and cuBLAS handle (created on first use).
cudaStream_t stream();
cublasHandle_t cublas();
// GEMM precision for later cuBLAS calls: strict fp32 or TF32 tensor cores.
void setTf32(bool on);

// Caching allocator. Sizes are rounded up to 512 bytes; a request is served by the smallest cached block
// that holds it and is at most twice its size (bounded waste: a smaller batch reuses a larger batch's
// blocks), else by cudaMalloc. On out-of-memory the cache is emptied and the allocation retried once;
// then axn::OutOfMemory.
void* deviceAlloc(size_t bytes);
void deviceFree(void* ptr);
AllocatorStats allocatorStats();
void emptyCache();

// Copies on the stream. H2D from pageable memory returns when the source may be reused.
void copyHostToDevice(void* dst, const void* src, size_t bytes);
void copyDeviceToDevice(void* dst, const void* src, size_t bytes);
void memsetZero(void* dst, size_t bytes);
void memsetBytes(void* dst, int value, size_t bytes);
// Synchronous D2H (waits for the stream).
void copyDeviceToHost(void* dst, const void* src, size_t bytes);

// Counted by the kernel launcher and the GEMM wrappers (native/cuda/launch.h, native/ops/gemm.cu).
void countLaunch();
void countCublasCall();

// Asynchronous D2H: enqueue a copy into pinned staging memory and record an event. `finish` (any thread)
// waits for the event and copies into `dst`; `release` returns the staging buffer and the event to
// their pools (pinned blocks by power-of-two size; freed by emptyCache), so steady-state reads allocate
// nothing.
struct PendingRead {
  void* pinned = nullptr;
  cudaEvent_t event = nullptr;
  size_t bytes = 0;
};
PendingRead beginRead(const void* src, size_t bytes);
void finishRead(PendingRead& r, void* dst);
void releaseRead(PendingRead& r);

void synchronize();

}  // namespace axn::cuda

#define AXN_CUDA_CHECK(call, op)                                                    \
  do {                                                                              \
    cudaError_t axn_err_ = (call);                                                  \
    if (axn_err_ != cudaSuccess) ::axn::cuda::throwCuda(axn_err_, (op), #call, __FILE__, __LINE__); \
  } while (0)

#define AXN_CUBLAS_CHECK(call, op)                                                  \
  do {                                                                              \
    cublasStatus_t axn_st_ = (call);                                                \
    if (axn_st_ != CUBLAS_STATUS_SUCCESS) ::axn::cuda::throwCublas(axn_st_, (op), #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: catches launch-configuration errors at once.
#define AXN_CUDA_LAUNCH_CHECK(op) AXN_CUDA_CHECK(cudaGetLastError(), (op))
