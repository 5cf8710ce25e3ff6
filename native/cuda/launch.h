// Kernel launches, for the .cu files: the launch geometry shared by the kernels, and the one seam between
// the two ways the .cu sources are built.
//  - nvcc (the CUDA backend): AXN_LAUNCH is `kernel<<<grid, block, shmem, stream>>>(args...)`.
//  - the host compiler (AXN_CUDA=EMU, the emulated device for tests; native/cuda/emu/): AXN_LAUNCH hands
//    the kernel and its arguments to the emulator, which checks the configuration and the pointers as the
//    hardware would and runs every thread on the CPU.
// Either way the launch is checked at once (AXN_CUDA_LAUNCH_CHECK): a bad configuration throws there.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "context.h"
#if defined(AXN_CUDA_EMU)
#include "emu/launch.h"
#endif

namespace axn::cuda {

constexpr int kThreads = 256;

// Blocks for `work` items in a grid-stride loop: one item per thread up to `cap` blocks (the loop covers
// the rest); at least 1.
inline unsigned gridFor(int64_t work, int64_t cap = int64_t(1) << 20) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((work + kThreads - 1) / kThreads, cap)));
}

// Launch `kernel` on the addon's stream; `op` names the failure, `name` the kernel (emulator messages).
template <class... P, class... A>
inline void launch(const char* op, const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shmem,
                   A&&... args) {
  countLaunch();
#if defined(AXN_CUDA_EMU)
  emu::launch(op, name, kernel, grid, block, shmem, stream(), std::forward<A>(args)...);
#else
  (void)name;
  kernel<<<grid, block, shmem, stream()>>>(std::forward<A>(args)...);
#endif
  AXN_CUDA_LAUNCH_CHECK(op);
}

// The dynamic shared memory of the running block (the launch's `shmem` bytes).
template <class T>
__device__ __forceinline__ T* dynamicShared() {
#if defined(AXN_CUDA_EMU)
  return static_cast<T*>(::axn::emu::dynamicShared());
#else
  extern __shared__ __align__(16) unsigned char axn_dynamic_smem[];
  return reinterpret_cast<T*>(axn_dynamic_smem);
#endif
}

// A by-value functor that carries device pointers into a kernel lists them, so the emulator can check
// them at the launch as it checks pointer arguments:
//   template <class V> void device_pointers(V& visit) const { visit(x); visit(y); }
struct PointerListProbe {
  void operator()(const void*) const {}
};
template <class T, class = void>
struct ListsDevicePointers : std::false_type {};
template <class T>
struct ListsDevicePointers<
    T, std::void_t<decltype(std::declval<const T&>().device_pointers(std::declval<PointerListProbe&>()))>>
    : std::true_type {};

}  // namespace axn::cuda

// AXN_LAUNCH("op", kernel, grid, block, sharedBytes, args...): a kernel template with several template
// arguments goes in parentheses.
#define AXN_LAUNCH(op, kernel, grid, block, shmem, ...) \
  ::axn::cuda::launch((op), #kernel, (kernel), dim3(grid), dim3(block), (shmem), __VA_ARGS__)
