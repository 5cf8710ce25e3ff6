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

// No __restrict__: out may alias in.
__global__ void dropout_kernel(const float* in, float* out, int64_t n, DropoutRule rule, uint64_t seed,
                               uint64_t offset, bool vec) {
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
        out[i + lane] = keep_or_zero(in[i + lane], philox::word(r, lane), rule);
    }
  }
}

void launch(const char* op, const float* in, float* out, int64_t n, double p, uint64_t seed, uint64_t offset) {
  if (n <= 0) return;
  const int64_t blocks = (n + 3) / 4;
  const bool vec = ew::aligned16(in) && ew::aligned16(out);
  AXN_LAUNCH(op, dropout_kernel, ew::gridFor(blocks), ew::kThreads, 0, in, out, n, dropout_rule(p), seed, offset, vec);
}

}  // namespace

void dropout_forward_cuda(const float* x, float* y, int64_t n, double p, uint64_t seed, uint64_t offset) {
  launch("dropout", x, y, n, p, seed, offset);
}

void dropout_backward_cuda(const float* dy, float* dx, int64_t n, double p, uint64_t seed, uint64_t offset) {
  launch("dropoutBackward", dy, dx, n, p, seed, offset);
}

}  // namespace axn::ops
