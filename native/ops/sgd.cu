// SGD update on CUDA: one grid-stride map over the flat buffer, float4 when param, grad and buf are all
// 16-byte aligned. Explicitly rounded arithmetic (__fmul_rn/__fadd_rn: no FMA contraction) in the CPU's
// order, so both devices produce the same bits. See sgd.h.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/context.h"
#include "ops/elementwise.h"
#include "ops/sgd.h"

namespace axn::ops {
namespace {

template <bool kWd, bool kMomentum>
struct SgdF {
  float* param;
  const float* grad;
  float* buf;
  float lr, momentum, oneMinusDamp, wd;
  bool nesterov, first;

  template <class V>
  void device_pointers(V& visit) const {
    visit(param);
    visit(grad);
    visit(buf);
  }

  // Returns the new parameter; updates b (the momentum buffer value) in place.
  __device__ __forceinline__ float step(float p, float g, float& b) const {
    if (kWd) g = __fadd_rn(g, __fmul_rn(wd, p));
    if (kMomentum) {
      b = first ? g : __fadd_rn(__fmul_rn(momentum, b), __fmul_rn(oneMinusDamp, g));
      g = nesterov ? __fadd_rn(g, __fmul_rn(momentum, b)) : b;
    }
    return __fadd_rn(p, __fmul_rn(-lr, g));
  }
  __device__ void scalar(int64_t i) const {
    float b = kMomentum && !first ? buf[i] : 0.0f;
    param[i] = step(param[i], grad[i], b);
    if (kMomentum) buf[i] = b;
  }
  __device__ void vec4(int64_t j) const {
    float4 p = ew::ld4(param, j);
    const float4 g = ew::ld4(grad, j);
    float4 b = kMomentum && !first ? ew::ld4(buf, j) : make_float4(0.f, 0.f, 0.f, 0.f);
    p.x = step(p.x, g.x, b.x);
    p.y = step(p.y, g.y, b.y);
    p.z = step(p.z, g.z, b.z);
    p.w = step(p.w, g.w, b.w);
    ew::st4(param, j, p);
    if (kMomentum) ew::st4(buf, j, b);
  }
};

template <bool kWd, bool kMomentum>
void launch(float* param, const float* grad, float* buf, int64_t n, const SgdOptions& o) {
  const SgdF<kWd, kMomentum> f{param, grad, buf, o.lr, o.momentum, o.oneMinusDampening, o.weightDecay,
                               o.nesterov, o.firstStep};
  const bool vec = ew::aligned16(param) && ew::aligned16(grad) && (!kMomentum || ew::aligned16(buf));
  ew::launch_map("sgdUpdate", f, n, vec);
}

// Many tensors, one launch: every thread walks each tensor's elements in turn (grid-stride), so the
// loads of a warp stay consecutive within a tensor. Per element exactly SgdF::step's arithmetic.
struct SgdList {
  SgdTensor t[kSgdMaxTensors];
  int count;
  template <class V>
  void device_pointers(V& visit) const {
    for (int i = 0; i < count; i++) {
      visit(t[i].param);
      visit(t[i].grad);
      visit(t[i].buf);
    }
  }
};

// Skips (every thread alike) when the guard is not finite or the halt flag is set, and sets the flag for
// the launches after it (each block reads the guard itself, so it does not matter which block writes).
__global__ void sgd_multi_kernel(SgdList l, float lr, float momentum, float oneMinusDamp, bool nesterov,
                                 const float* guard, float* halt) {
  if ((guard && !isfinite(*guard)) || (halt && *halt != 0.f)) {
    if (halt && blockIdx.x == 0 && threadIdx.x == 0) *halt = 1.f;
    return;
  }
  const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const bool mom = momentum != 0.f;
  for (int k = 0; k < l.count; k++) {
    float* __restrict__ param = l.t[k].param;
    const float* __restrict__ grad = l.t[k].grad;
    float* __restrict__ buf = l.t[k].buf;
    const float wd = l.t[k].weightDecay;
    const bool first = l.t[k].firstStep;
    for (int64_t i = tid; i < l.t[k].n; i += stride) {
      const float p = param[i];
      float g = grad[i];
      if (wd != 0.f) g = __fadd_rn(g, __fmul_rn(wd, p));
      if (mom) {
        const float b = first ? g : __fadd_rn(__fmul_rn(momentum, buf[i]), __fmul_rn(oneMinusDamp, g));
        buf[i] = b;
        g = nesterov ? __fadd_rn(g, __fmul_rn(momentum, b)) : b;
      }
      param[i] = __fadd_rn(p, __fmul_rn(-lr, g));
    }
  }
}

}  // namespace

void sgd_update_multi_cuda(const SgdTensor* t, int count, const SgdOptions& o, const float* guard, float* halt) {
  for (int c0 = 0; c0 < count; c0 += kSgdMaxTensors) {
    SgdList l{};
    l.count = std::min(kSgdMaxTensors, count - c0);
    int64_t longest = 0;
    for (int i = 0; i < l.count; i++) {
      l.t[i] = t[c0 + i];
      if (o.momentum == 0.f) l.t[i].buf = nullptr;
      longest = std::max(longest, l.t[i].n);
    }
    if (longest == 0) continue;
    AXN_LAUNCH("sgdUpdate", sgd_multi_kernel, ew::gridFor(longest), ew::kThreads, 0, l, o.lr, o.momentum,
               o.oneMinusDampening, o.nesterov, guard, halt);
  }
}

void sgd_update_cuda(float* param, const float* grad, float* buf, int64_t n, const SgdOptions& o) {
  const bool wd = o.weightDecay != 0.f, mom = o.momentum != 0.f;
  if (wd && mom) launch<true, true>(param, grad, buf, n, o);
  else if (wd) launch<true, false>(param, grad, buf, n, o);
  else if (mom) launch<false, true>(param, grad, buf, n, o);
  else launch<false, false>(param, grad, buf, n, o);
}

}  // namespace axn::ops
