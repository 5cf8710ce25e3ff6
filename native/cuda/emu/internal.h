// Shared by the emulator's runtime (runtime.cc), block scheduler (exec.cc) and cuBLAS (cublas.cc).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "launch.h"
#include "runtime.h"

namespace axn::emu {

// A fault found while the device executed an operation: the sticky error it becomes, and what happened.
struct ExecError {
  cudaError_t code = cudaSuccess;
  std::string detail;
};

// Work for the device thread; returns false (with *err filled) on a fault.
using DeviceWork = std::function<bool(ExecError& err)>;

// Enqueue work on a stream (in order with everything enqueued before it). Returns the sticky error, if
// any, else cudaSuccess; cudaErrorInvalidResourceHandle for a stream that does not exist.
cudaError_t enqueue(cudaStream_t stream, DeviceWork work);

// Is [p, p + bytes) inside one live device allocation (or a pinned host allocation, when allowPinned)?
// On failure *why says what the range hits instead.
bool inDeviceMemory(const void* p, size_t bytes, bool allowPinned, std::string* why);

// Record a device fault the host side found (a cuBLAS operand outside its allocation): sticky.
void fault(cudaError_t code, const std::string& detail);
cudaError_t stickyError();
bool available(std::string* reason);

// Device thread: run every block of a launch. False on a kernel fault (a barrier or shuffle misuse).
bool runKernel(const KernelLaunch& launch, Order order, uint64_t seed, uint64_t launchId, ExecError* err);

// AXN_EMU_SKIP_KERNELS=1: kernels and GEMMs are checked, counted and recorded but not run (a plan of the
// launches at a batch too large to execute; results are meaningless). runtime.h.
bool skipKernels();

void countCublasCall();
// A GEMM call whose leading dimensions, strides or pointers are not 16-byte multiples (Counters).
void countMisalignedGemm(const std::string& what);
void countThreads(uint64_t n);

// Traffic counting (traffic.cc; runtime.h says what it measures). On the device thread: run `op` with
// every device allocation protected and the page-fault handler recording, then append `rec` with the
// pages read and written. addTrafficRecord appends a record whose bytes come from arguments alone.
bool runCounted(TrafficRecord rec, const std::function<bool()>& op);
void addTrafficRecord(TrafficRecord rec);
// Every device allocation (not pinned), live or held by the caching allocator: (start, bytes).
void deviceAllocations(std::vector<std::pair<uintptr_t, size_t>>& out);

std::string hexPtr(const void* p);

}  // namespace axn::emu
