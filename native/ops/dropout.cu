// Dropout on CUDA: one thread per Philox block (four consecutive elements, one float4 when aligned and
// whole), grid-stride over ⌈n / 4⌉ blocks. Same mapping and arithmetic as dropout.cc, so the masks and
// outputs are bit-identical to the CPU's. See dropout.h.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/context.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"

namespace axn::ops {
namespace {

__device__ __forceinline__ float keep_or_zero(float v, uint32_t r, const DropoutRule& rule) {
  return dropout_keep(r, rule.threshold) ? __fmul_rn(v, rule.scale) : 0.0f;
}

// No __restrict__: out may alias in. T: float or bf16_t (four elements: 16 or 8 bytes).
template <typename T>
__global__ void dropout_kernel(const T* in, T* out, int64_t n, DropoutRule rule, uint64_t seed, uint64_t offset,
                               bool vec) {
  const int64_t blocks = (n + 3) >> 2;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < blocks; b += stride) {
    const philox::U32x4 r = philox::block(seed, offset + (uint64_t)b);
    const int64_t i = b << 2;
    if (vec && i + 4 <= n) {
      const float4 v = ew::ld4(in, b);
      ew::st4(out, b, make_float4(keep_or_zero(v.x, r.x, rule), keep_or_zero(v.y, r.y, rule),
                                  keep_or_zero(v.z, r.z, rule), keep_or_zero(v.w, r.w, rule)));
    } else {
      for (int lane = 0; lane < 4 && i + lane < n; lane++)
        store_act(out + i + lane, keep_or_zero(load_act(in[i + lane]), philox::word(r, lane), rule));
    }
  }
}

template <typename T>
void launch(const char* op, const T* in, T* out, int64_t n, double p, uint64_t seed, uint64_t offset) {
  if (n <= 0) return;
  const int64_t blocks = (n + 3) / 4;
  const bool vec = ew::aligned16(in) && ew::aligned16(out);
  AXN_LAUNCH(op, dropout_kernel<T>, ew::gridFor(blocks), ew::kThreads, 0, in, out, n, dropout_rule(p), seed, offset, vec);
}

}  // namespace

template <typename T>
void dropout_forward_cuda(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t offset) {
  launch("dropout", x, y, n, p, seed, offset);
}
template void dropout_forward_cuda<float>(const float*, float*, int64_t, double, uint64_t, uint64_t);
template void dropout_forward_cuda<bf16_t>(const bf16_t*, bf16_t*, int64_t, double, uint64_t, uint64_t);

void dropout_backward_cuda(const float* dy, float* dx, int64_t n, double p, uint64_t seed, uint64_t offset) {
  launch("dropoutBackward", dy, dx, n, p, seed, offset);
}

}  // namespace axn::ops
