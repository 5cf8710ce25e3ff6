// The emulated device, device side: what a .cu file sees when the host C++ compiler builds it for the
// emulator (AXN_CUDA=EMU) instead of nvcc. The kernels are the project's own CUDA sources, unchanged;
// this header gives their CUDA vocabulary a CPU meaning with CUDA's semantics:
//  - execution space qualifiers (__global__, __device__, ...) are plain functions;
//  - threadIdx / blockIdx / blockDim / gridDim are set by the block scheduler (exec.cc) before it
//    switches to a thread; warpSize is 32, lanes are consecutive linear thread indices;
//  - __shared__ variables live in one linker section that the scheduler fills with 0xFF (NaN) before
//    every block, so a read of shared memory that no thread of the block wrote shows as NaN;
//  - __syncthreads and the warp intrinsics (__shfl_*_sync, __any/__all/__ballot_sync, __syncwarp) are
//    rendezvous points of the scheduler, checked as the hardware requires: a barrier that not every
//    thread reaches, or a shuffle whose mask leaves out a lane that executes it or names one that does
//    not, is a kernel fault (a sticky error at the next synchronisation), never a hang;
//  - atomics are plain read-modify-writes: the threads of the emulator never run at the same time, and a
//    thread is only ever suspended at a barrier, never inside an atomic;
//  - math: the rounded intrinsics (__fmul_rn, __fadd_rn, ...) are single IEEE operations (the build uses
//    -ffp-contract=off, so nothing is fused that the source did not fuse); the fast approximations
//    (__expf, __logf, rsqrtf, ...) are computed exactly, which a GPU does not do: their results differ
//    from the hardware's in the last bits.
#pragma once
#include <math.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "runtime.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ __attribute__((section("axn_emu_shared"))) static

namespace axn::emu {

// The current thread's built-in variables; written only by the scheduler, on the device thread.
extern uint3 g_threadIdx;
extern uint3 g_blockIdx;
extern dim3 g_blockDim;
extern dim3 g_gridDim;

enum WarpKind : int { kShflIdx, kShflUp, kShflDown, kShflXor, kVoteAny, kVoteAll, kVoteBallot, kSyncWarp };
enum BarrierKind : int { kBarSync, kBarCount, kBarAnd, kBarOr };

// Suspend the calling CUDA thread at a block barrier / warp rendezvous until the scheduler releases it.
int barrier(int kind, int pred, const char* file, int line);
uint64_t warpOp(int kind, unsigned mask, uint64_t value, int bytes, int b, int width, const char* file, int line);
unsigned activeMask();
void* dynamicShared();

template <class T>
inline uint64_t toBits(T v) {
  static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 4 || sizeof(T) == 8),
                "warp shuffles move 4- or 8-byte values");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T fromBits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

}  // namespace axn::emu

#define threadIdx (static_cast<const uint3&>(::axn::emu::g_threadIdx))
#define blockIdx (static_cast<const uint3&>(::axn::emu::g_blockIdx))
#define blockDim (static_cast<const dim3&>(::axn::emu::g_blockDim))
#define gridDim (static_cast<const dim3&>(::axn::emu::g_gridDim))
constexpr int warpSize = 32;

// ---- barriers and warp intrinsics (the call site is recorded for the error messages) ------------------
inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::axn::emu::barrier(::axn::emu::kBarSync, 0, file, line);
}
inline int __syncthreads_count(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::axn::emu::barrier(::axn::emu::kBarCount, pred, file, line);
}
inline int __syncthreads_and(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::axn::emu::barrier(::axn::emu::kBarAnd, pred, file, line);
}
inline int __syncthreads_or(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::axn::emu::barrier(::axn::emu::kBarOr, pred, file, line);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::axn::emu::warpOp(::axn::emu::kSyncWarp, mask, 0, 4, 0, 32, file, line);
}

#define AXN_EMU_SHFL(fn, kind)                                                                          \
  template <class T>                                                                                    \
  inline T fn(unsigned mask, T var, int b, int width = 32, const char* file = __builtin_FILE(),          \
              int line = __builtin_LINE()) {                                                            \
    return ::axn::emu::fromBits<T>(                                                                     \
        ::axn::emu::warpOp(kind, mask, ::axn::emu::toBits(var), sizeof(T), b, width, file, line));      \
  }
AXN_EMU_SHFL(__shfl_sync, ::axn::emu::kShflIdx)
AXN_EMU_SHFL(__shfl_up_sync, ::axn::emu::kShflUp)
AXN_EMU_SHFL(__shfl_down_sync, ::axn::emu::kShflDown)
AXN_EMU_SHFL(__shfl_xor_sync, ::axn::emu::kShflXor)
#undef AXN_EMU_SHFL

inline int __any_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return (int)::axn::emu::warpOp(::axn::emu::kVoteAny, mask, pred != 0, 4, 0, 32, file, line);
}
inline int __all_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return (int)::axn::emu::warpOp(::axn::emu::kVoteAll, mask, pred != 0, 4, 0, 32, file, line);
}
inline unsigned __ballot_sync(unsigned mask, int pred, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  return (unsigned)::axn::emu::warpOp(::axn::emu::kVoteBallot, mask, pred != 0, 4, 0, 32, file, line);
}
// The lanes of the calling warp that have not exited (the emulator has no divergence to report).
inline unsigned __activemask() { return ::axn::emu::activeMask(); }

// ---- memory -------------------------------------------------------------------------------------------
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

// Atomics: see the header comment. Each returns the old value, as CUDA's do.
#define AXN_EMU_ATOMIC(name, T, expr) \
  inline T name(T* p, T v) {          \
    const T old = *p;                 \
    *p = (expr);                      \
    return old;                       \
  }
AXN_EMU_ATOMIC(atomicAdd, int, old + v)
AXN_EMU_ATOMIC(atomicAdd, unsigned int, old + v)
AXN_EMU_ATOMIC(atomicAdd, unsigned long long, old + v)
AXN_EMU_ATOMIC(atomicAdd, float, old + v)
AXN_EMU_ATOMIC(atomicAdd, double, old + v)
AXN_EMU_ATOMIC(atomicSub, int, old - v)
AXN_EMU_ATOMIC(atomicSub, unsigned int, old - v)
AXN_EMU_ATOMIC(atomicExch, int, v)
AXN_EMU_ATOMIC(atomicExch, unsigned int, v)
AXN_EMU_ATOMIC(atomicExch, unsigned long long, v)
AXN_EMU_ATOMIC(atomicExch, float, v)
AXN_EMU_ATOMIC(atomicMin, int, v < old ? v : old)
AXN_EMU_ATOMIC(atomicMin, unsigned int, v < old ? v : old)
AXN_EMU_ATOMIC(atomicMax, int, v > old ? v : old)
AXN_EMU_ATOMIC(atomicMax, unsigned int, v > old ? v : old)
AXN_EMU_ATOMIC(atomicAnd, int, old & v)
AXN_EMU_ATOMIC(atomicAnd, unsigned int, old & v)
AXN_EMU_ATOMIC(atomicOr, int, old | v)
AXN_EMU_ATOMIC(atomicOr, unsigned int, old | v)
AXN_EMU_ATOMIC(atomicXor, int, old ^ v)
AXN_EMU_ATOMIC(atomicXor, unsigned int, old ^ v)
#undef AXN_EMU_ATOMIC
inline int atomicCAS(int* p, int compare, int v) {
  const int old = *p;
  if (old == compare) *p = v;
  return old;
}
inline unsigned int atomicCAS(unsigned int* p, unsigned int compare, unsigned int v) {
  const unsigned int old = *p;
  if (old == compare) *p = v;
  return old;
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare, unsigned long long v) {
  const unsigned long long old = *p;
  if (old == compare) *p = v;
  return old;
}

// ---- math -------------------------------------------------------------------------------------------
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __expf(float a) { return std::exp(a); }
inline float __logf(float a) { return std::log(a); }
inline float __powf(float a, float b) { return std::pow(a, b); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline double rsqrt(double a) { return 1.0 / std::sqrt(a); }
inline float __saturatef(float a) { return a != a ? 0.0f : a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a; }
inline float __int_as_float(int v) { return ::axn::emu::fromBits<float>((uint32_t)v); }
inline int __float_as_int(float v) { return (int)(uint32_t)::axn::emu::toBits(v); }
inline float __uint_as_float(unsigned v) { return ::axn::emu::fromBits<float>(v); }
inline unsigned __float_as_uint(float v) { return (unsigned)::axn::emu::toBits(v); }
inline int __float2int_rn(float a) { return (int)std::nearbyint(a); }
inline int __float2int_rz(float a) { return (int)a; }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz((unsigned)v); }

// CUDA's global min/max overloads (host and device).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
