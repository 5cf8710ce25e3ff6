// The emulated device's kernel launch (AXN_CUDA=EMU): what `kernel<<<grid, block, shmem, stream>>>(args)`
// becomes when the host compiler builds the .cu sources. Reached only through axn::cuda::launch
// (native/cuda/launch.h), the one seam between the two builds.
//
// The arguments are converted to the kernel's parameter types and copied once, as CUDA copies them into
// the kernel's parameter space; every parameter that is a pointer, and every pointer a by-value functor
// lists with `device_pointers(visit)`, is checked at the launch against the live device allocations.
#pragma once
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime.h"

namespace axn::emu {

struct PointerArg {
  int index;  // which kernel parameter
  const void* ptr;
};

// Passed to a functor's `template <class V> void device_pointers(V& visit) const { visit(p); ... }`.
struct PointerVisitor {
  std::vector<PointerArg>* out;
  int index;
  void operator()(const void* p) const { out->push_back(PointerArg{index, p}); }
};

struct KernelLaunch {
  const char* name = "";
  const char* op = "";  // the operation that launched it (AXN_LAUNCH's first argument): traffic records
  const void* func = nullptr;
  dim3 grid, block;
  size_t dynShared = 0;
  std::function<void()> body;  // runs the kernel for the current thread (threadIdx, blockIdx set)
  std::vector<PointerArg> pointers;
};

// Checks the configuration and the pointers, then enqueues. Sets the calling thread's last error as
// cudaLaunchKernel does (read back by cudaGetLastError) and returns it.
cudaError_t submitKernel(KernelLaunch&& launch, cudaStream_t stream);

template <class T, class = void>
struct HasDevicePointers : std::false_type {};
template <class T>
struct HasDevicePointers<T, std::void_t<decltype(std::declval<const T&>().device_pointers(
                                std::declval<PointerVisitor&>()))>> : std::true_type {};

template <class T>
void collectPointers(const T& v, int index, std::vector<PointerArg>& out) {
  if constexpr (std::is_pointer<T>::value) {
    out.push_back(PointerArg{index, static_cast<const void*>(v)});
  } else if constexpr (HasDevicePointers<T>::value) {
    PointerVisitor visit{&out, index};
    v.device_pointers(visit);
  }
}

template <class... P, class... A>
void launch(const char* op, const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shmem,
            cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  using Params = std::tuple<std::decay_t<P>...>;
  auto params = std::make_shared<Params>(std::forward<A>(args)...);
  KernelLaunch l;
  l.name = name;
  l.op = op ? op : "";
  l.func = reinterpret_cast<const void*>(kernel);
  l.grid = grid;
  l.block = block;
  l.dynShared = shmem;
  std::apply(
      [&l](const auto&... p) {
        int i = 0;
        (collectPointers(p, i++, l.pointers), ...);
      },
      *params);
  l.body = [kernel, params] { std::apply(kernel, *params); };
  submitKernel(std::move(l), stream);
}

}  // namespace axn::emu
