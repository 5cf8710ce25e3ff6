// Batch augmentation on CUDA. See augment.h. One thread per output pixel: blockIdx.y = output image,
// blockIdx.x · blockDim.x + threadIdx.x = pixel index within the Ho×Wo plane.
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/context.h"
#include "cuda/launch.h"
#include "ops/augment.h"

namespace axn::ops {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxC = 4;

__global__ void augment_kernel(const uint8_t* __restrict__ u8, const int32_t* __restrict__ p,
                               const float* __restrict__ coef, float* __restrict__ y, int N, int Hs, int Ws,
                               int C, int Ho, int Wo) {
  const int64_t plane = (int64_t)Ho * Wo;
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= plane) return;
  const int r = (int)(i / Wo), x = (int)(i % Wo);
  for (int n = blockIdx.y; n < N; n += gridDim.y) {  // grid y is capped at 65,535 images
    const int slot = p[4 * n], top = p[4 * n + 1], left = p[4 * n + 2], flip = p[4 * n + 3];
    const int sx = flip ? left + Wo - 1 - x : left + x;
    const uint8_t* px = u8 + (((int64_t)slot * Hs + top + r) * Ws + sx) * C;
    for (int c = 0; c < C; c++) {
      const float a = coef[((int64_t)n * C + c) * 2], b = coef[((int64_t)n * C + c) * 2 + 1];
      y[((int64_t)n * C + c) * plane + i] = augment_value(px[c], a, b);
    }
  }
}

}  // namespace

void augment_batch_cuda(const uint8_t* u8, const int32_t* p, const float* coef, float* y, int S, int Hs, int Ws,
                        int C, int N, int Ho, int Wo) {
  (void)S;
  AXN_CHECK(C >= 1 && C <= kMaxC, "augment_batch", "channels must be 1 to 4");
  if (N == 0 || Ho == 0 || Wo == 0) return;
  const int64_t plane = (int64_t)Ho * Wo;
  const dim3 grid((unsigned)((plane + kThreads - 1) / kThreads), (unsigned)(N < 65535 ? N : 65535));
  AXN_LAUNCH("augment_batch", augment_kernel, grid, dim3(kThreads), 0, u8, p, coef, y, N, Hs, Ws, C, Ho, Wo);
}

}  // namespace axn::ops
