// The emulated CUDA device, host side: the subset of the CUDA runtime API this project calls, with the
// real API's names, signatures, error codes and synchronisation rules. Compiled only into the test build
// `AXN_CUDA=EMU` (build-emu/), never into what a user installs. It is a correctness tool, not a backend:
// kernels run on the CPU, one CUDA thread at a time (native/cuda/emu/exec.cc), far slower than any GPU.
//
// What it models (native/cuda/emu/runtime.cc):
//  - device memory from the host heap (posix_memalign) under AddressSanitizer, so ASan sees a kernel that
//    reads or writes past an allocation; without ASan each allocation is mapped on pages of its own (mmap),
//    which the traffic counter needs (below); every allocation is registered, so a pointer that lies in none (a host
//    pointer handed to a kernel or a copy) is refused with a CUDA error;
//  - one device that executes one operation at a time on its own worker thread, asynchronously to the
//    host: work starts only when the host waits for it (a stream, event or device synchronisation, a copy
//    to pageable memory, cudaFree) or when the queue is long, and a wait runs only work enqueued up to
//    what it waits for. So a read of a result without the synchronisation it needs sees stale data,
//    every time;
//  - streams: each keeps its order, and only events (cudaEventRecord + cudaStreamWaitEvent, which
//    captures the record at the call) and the legacy default stream (handle 0: its operations wait for
//    the blocking streams' earlier work and theirs for its; not so streams created cudaStreamNonBlocking)
//    order the work of different streams. Where several streams could run next, the order setting below
//    chooses: forward runs the oldest (one FIFO, as before there were streams), reverse the newest,
//    shuffle draws seeded priorities per stream. So a missing cross-stream wait reads stale data under
//    some orders and seeds, reproducibly;
//  - sticky errors: a fault inside a kernel (illegal address, a barrier or shuffle misuse) is returned by
//    every later call, as on a real device; launch-configuration errors are not sticky;
//  - AXN_EMU_TRACE=1 prints every kernel launch (name, grid, block, threads) to stderr;
//  - AXN_EMU_SKIP_KERNELS=1 checks, counts and records every launch and GEMM but runs none (copies still
//    run; fresh device memory is zero): the plan of a run too large to execute (bench/traffic.mjs at
//    batch 128). Every result is meaningless;
//  - the properties of an H200-like device (compute capability 9.0, 132 SMs, 48 KiB of shared memory per
//    block by default, 227 KiB opt-in), with as much memory as AXN_EMU_MEMORY_MIB allows (default 8 GiB).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "types.h"

extern "C" {

typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorIllegalInstruction = 715,
  cudaErrorLaunchFailure = 719,
} cudaError_t;

typedef enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
} cudaMemcpyKind;

typedef enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
} cudaFuncAttribute;

struct CUstream_st;
struct CUevent_st;
typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02

// The fields of cudaDeviceProp that code compiled against the emulator may read.
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major;
  int minor;
  int multiProcessorCount;
  int maxThreadsPerMultiProcessor;
  int l2CacheSize;
  int memoryBusWidth;
};

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes);

cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char* cudaGetErrorName(cudaError_t err);
const char* cudaGetErrorString(cudaError_t err);

cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
cudaError_t cudaFreeHost(void* ptr);

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, enum cudaMemcpyKind kind, cudaStream_t stream);
// Device to device only on the emulated device.
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              enum cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemset(void* dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream);

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags);

cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

// For kernels that use more than 48 KiB of dynamic shared memory (as on sm_70+: opt in per kernel).
cudaError_t axnEmuFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value);

}  // extern "C"

#ifdef __cplusplus
template <class... P>
inline cudaError_t cudaFuncSetAttribute(void (*func)(P...), enum cudaFuncAttribute attr, int value) {
  return axnEmuFuncSetAttribute(reinterpret_cast<const void*>(func), attr, value);
}
#endif

// ---- emulator-only controls and counters (no CUDA equivalent; used by tests and backendInfo) ----------
namespace axn::emu {

enum class Order { Forward, Reverse, Shuffle };

// The order in which the threads of a block run between two barriers (and the blocks of a grid):
// forward, reverse, or shuffled by `seed`. Applies to kernels launched after the call. Initially from
// AXN_EMU_ORDER (forward|reverse|shuffle, default shuffle) and AXN_EMU_SEED (default 1).
// The same setting interleaves the streams (runtime.cc, Device::pick): forward runs the oldest of the
// streams' runnable operations, reverse the newest, shuffle the one of the stream with the highest
// priority drawn by a generator that each call restarts from `seed` (so the same program after the
// same call makes the same choices; under AXN_EMU_EAGER=1 they also depend on timing).
void setOrder(Order order, uint64_t seed);
Order order();
uint64_t seed();
const char* orderName(Order o);

struct Counters {
  uint64_t kernelLaunches = 0;     // launches accepted
  uint64_t threadsRun = 0;         // CUDA threads executed
  uint64_t cublasCalls = 0;        // GEMM calls accepted
  // GEMM calls that rule out cuBLAS's 16-byte-aligned kernels: a leading dimension or batch stride that is
  // not a multiple of 4 floats, or an operand pointer that is not 16-byte aligned (issue 19 item 1).
  uint64_t cublasMisaligned = 0;
  uint64_t deviceMallocs = 0;      // cudaMalloc calls that succeeded
  uint64_t deviceFrees = 0;
  uint64_t pinnedMallocs = 0;      // cudaMallocHost
  uint64_t pinnedFrees = 0;
  uint64_t hostSyncs = 0;          // explicit and implicit waits of the host for the device
  uint64_t copies = 0;             // memcpy / memset operations
  uint64_t eventWaits = 0;         // cudaStreamWaitEvent calls accepted
  uint64_t streamChoices = 0;      // times several streams could run next and the order setting chose
  size_t deviceBytes = 0;          // live device allocations
  size_t pinnedBytes = 0;
};
Counters counters();
// The arguments of the last misaligned GEMM call (empty if none yet), e.g. "m 96 n 6050 k 363 lda 363 …".
std::string lastMisalignedGemm();

// The emulator's view of a block of the project's caching allocator (native/cuda/context.cu): `live`
// with its first `usable` bytes in use, or held in the cache (freed). From then on a kernel argument or
// copy that reaches past the bytes in use, or into a cached block, is refused as one outside any live
// allocation; and, with AddressSanitizer, in stream order, the rest of the block's `total` bytes is
// poisoned, so a kernel that writes past its tensor into the allocator's rounding is reported.
void markBlock(cudaStream_t stream, void* p, bool live, size_t usable, size_t total);

// ---- traffic per launch (opt-in; the plain emulated build on x86-64 Linux only) -------------------------
// While counting is on, every kernel launch and cuBLAS call enqueued runs with every device allocation
// protected PROT_NONE (device memory is page-exclusive: one mmap per cudaMalloc in this build); a SIGSEGV
// handler records the first read and the first write of each 4 KiB page and lifts the protection page by
// page (native/cuda/emu/traffic.cc). A record holds the unique pages the operation read and wrote: the
// DRAM traffic of an ideal cache within that one operation, a floor, to page granularity. cuBLAS records
// also carry their arguments and the operand bytes those arguments imply; copies and memsets the bytes
// their arguments name.
struct TrafficRecord {
  enum Kind { Kernel, Cublas, Copy, Memset } kind = Kernel;
  std::string name;              // kernel name, cuBLAS entry point, or the copy's direction
  std::string op;                // kernels: the operation that launched it (AXN_LAUNCH's first argument)
  unsigned grid[3] = {0, 0, 0}, block[3] = {0, 0, 0};
  uint64_t readPages = 0, writePages = 0;  // measured (kernels and cuBLAS); pages of kPageBytes
  bool pagesValid = true;  // false: the counter ran out of mappings (cuBLAS only: its bytes come from arguments)
  // cuBLAS only: the call and what its arguments make it read and write (column-major, cuBLAS's rules)
  bool ta = false, tb = false;
  int m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0, batch = 0;
  long long strideA = 0, strideB = 0, strideC = 0;
  float alpha = 0, beta = 0;
  bool tf32 = false, bf16 = false;  // the inputs' cut (cuBLAS calls)
  double argReadBytes = 0, argWriteBytes = 0, flops = 0;  // copies and memsets: argReadBytes/argWriteBytes
  bool overlap = false;  // an operand's batch stride overlaps its matrices: argReadBytes is its extent
};
constexpr size_t kTrafficPageBytes = 4096;
// Whether counting can run in this build, and if not why (AddressSanitizer owns SIGSEGV and the heap
// device memory comes from; the page-fault error code is read on x86-64 Linux only).
bool trafficSupported(std::string* why);
// Start (true) or stop counting, for operations enqueued from now on. False (with *why) when unsupported.
bool setTrafficCounting(bool on, std::string* why);
bool trafficCounting();
// The records of the counted operations that have completed, in the order the device ran them; cleared.
std::vector<TrafficRecord> takeTrafficRecords();

// What the sticky error, if any, was about (which kernel, block, thread, pointer); empty when none.
// cudaGetErrorString appends the same detail to the CUDA message of every emulator error.
const char* lastDetail();

}  // namespace axn::emu
