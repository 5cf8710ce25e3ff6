// The CUDA context of the addon: one device (0), the compute stream, a copy stream for uploads, one
// cuBLAS handle, and a caching device allocator. Included by host C++ (.cc) and CUDA (.cu) files alike;
// only compiled when AXN_WITH_CUDA is set.
//
// Two streams, one allocator. The allocator stays single-stream: the compute stream (stream()) owns
// every block, and a freed block is handed out again at once, because any later use of it on the
// compute stream is ordered after every earlier use (PyTorch's caching allocator, one stream). A block
// that another stream (copyStream()) writes or reads is bracketed, so that its use stays inside the
// compute stream's order:
//   streamWait(copyStream(), stream());   // 1. the side stream waits for the compute stream: the block
//                                         //    may be a recycled one, still read or written by compute
//                                         //    work enqueued before it was freed and handed out again;
//   cudaMemcpyAsync(block, pinned, n, cudaMemcpyHostToDevice, copyStream());
//   streamWait(stream(), copyStream());   // 2. the compute stream waits for the side stream: the block's
//                                         //    readers, its free and its reuse (all in compute-stream
//                                         //    order) come after the side stream's use.
// Wait 1 goes in after the block is allocated (on the emulated device with AddressSanitizer, deviceAlloc
// unpoisons the block in compute-stream order, and the upload must come after); wait 2 before anything on
// the compute stream touches the block, and the block is freed (deviceFree) only after it. Neither wait
// blocks the host; the pinned source is the uploader's to keep until the copy is done (an event of its
// own). That is the rule the data loader follows; the emulated device checks it (test/streams.test.ts):
// without either wait the stale or overwritten data shows under some stream interleavings.
//
// The communication stream of data-parallel training (native/dist/nccl.cc) follows the same rule: the
// fusion buffer is allocated and filled on the compute stream, the comm stream waits for the compute
// stream (wait 1) before NCCL reduces the buffer in place, the compute stream waits for the comm stream
// (wait 2) before it scales and copies the result back into the tensors, and the buffer is freed after
// that, in compute-stream order. The tensors themselves are only touched by NCCL between the two waits,
// so a tensor disposed right after allReduce() is reused only after the reduction (its free is in
// compute-stream order, after wait 2).
//
// The device: 0, or the one selectDevice() chose before the context was created (a data-parallel rank
// takes localRank % deviceCount, native/dist/).
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
  size_t streamWaits = 0;    // cross-stream waits enqueued (streamWait): none on one stream
};

// Number of CUDA devices; 0 (and *reason set) when there is no driver or device.
int deviceCount(std::string* reason);
DeviceInfo deviceInfo(int device);

// The device the context is created on (default 0). Must be called before the context exists (before the
// first stream(), allocation, ...); afterwards it throws unless `device` is the one already in use.
void selectDevice(int device);
// The device the context uses (or will use).
int currentDevice();
// Whether the context (stream, cuBLAS handle) has been created.
bool contextCreated();

// The stream and cuBLAS handle (created on first use).
cudaStream_t stream();
cublasHandle_t cublas();
// A second non-blocking stream for host-to-device uploads (created on first use, like stream()).
cudaStream_t copyStream();
// A third non-blocking stream for data-parallel communication (NCCL, native/dist/nccl.cc), created on
// first use; synchronize() waits for it too.
cudaStream_t commStream();
// Orders everything enqueued later on `waiter` after everything enqueued so far on `signaller`
// (an event from a pool, recorded on `signaller`, waited on by `waiter`; the host does not wait).
void streamWait(cudaStream_t waiter, cudaStream_t signaller);
// Tests only (setDropStreamWaits exists on the emulated device alone): make streamWait a no-op, to prove
// that a test catches a missing wait: the waits into the compute stream (the rule's wait 2), into another
// stream (wait 1), or both.
enum DropWaits { kDropNone = 0, kDropIntoSide = 1, kDropIntoCompute = 2, kDropAll = 3 };
#ifdef AXN_CUDA_EMU
void setDropStreamWaits(int which);
#endif
// Tests only: defects planted in the real kernels, to prove that the tests catch them (set with
// emulator.setPlanted on the emulated device; in every other build AXN_PLANTED is the constant false,
// so the kernels compile as if it were not there).
enum Planted { kPlantNone = 0, kPlantLrnShortWindow = 1, kPlantBiasGradDropLastChunk = 2, kPlantReluWritesNothing = 3, kPlantConvUnpaddedK = 4 };
#ifdef AXN_CUDA_EMU
void setPlanted(int which);
int planted();
#define AXN_PLANTED(which) (::axn::cuda::planted() == ::axn::cuda::which)
#else
#define AXN_PLANTED(which) false
#endif
// GEMM precision for later cuBLAS calls: strict fp32 or TF32 tensor cores.
void setTf32(bool on);

// Caching allocator. Sizes are rounded up to 512 bytes; a request is served by the smallest cached block
// that holds it and is at most twice its size (bounded waste: a smaller batch reuses a larger batch's
// blocks), else by cudaMalloc. On out-of-memory the cache is emptied and the allocation retried once;
// then axn::OutOfMemory.
void* deviceAlloc(size_t bytes);
void deviceFree(void* ptr);
AllocatorStats allocatorStats();
// peakInUseBytes = inUseBytes from now on (torch.cuda.reset_peak_memory_stats).
void resetPeakMemory();
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

// Waits for the compute stream, and for the copy and communication streams where they were created.
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
