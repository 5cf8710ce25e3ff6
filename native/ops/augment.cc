// Batch augmentation, the plain CPU version (the oracle of augment.cu). See augment.h.
#include "ops/augment.h"

#include <cstddef>

namespace axn::ops {

void augment_batch_cpu(const uint8_t* u8, const int32_t* p, const float* coef, float* y, int S, int Hs, int Ws,
                       int C, int N, int Ho, int Wo) {
  (void)S;
  const size_t plane = (size_t)Ho * Wo;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const AugmentParams q{p[4 * n], p[4 * n + 1], p[4 * n + 2], p[4 * n + 3]};
    const uint8_t* slot = u8 + (size_t)q.slot * Hs * Ws * C;
    if (C == 3) {
      // RGB: one pass over each row's pixels (contiguous bytes), three output planes
      const float* k = coef + (size_t)n * 6;
      const float a0 = k[0], b0 = k[1], a1 = k[2], b1 = k[3], a2 = k[4], b2 = k[5];
      float* out = y + (size_t)n * 3 * plane;
      for (int r = 0; r < Ho; r++) {
        // __restrict: uint8 data may alias anything as far as C++ knows; here it does not alias the output
        const uint8_t* __restrict row = slot + ((size_t)(q.top + r) * Ws + q.left) * 3;
        float* __restrict o0 = out + (size_t)r * Wo;
        float* __restrict o1 = o0 + plane;
        float* __restrict o2 = o1 + plane;
        if (q.flip)
          for (int x = 0; x < Wo; x++) {
            const uint8_t* px = row + (size_t)(Wo - 1 - x) * 3;
            o0[x] = augment_value(px[0], a0, b0);
            o1[x] = augment_value(px[1], a1, b1);
            o2[x] = augment_value(px[2], a2, b2);
          }
        else
          for (int x = 0; x < Wo; x++) {
            const uint8_t* px = row + (size_t)x * 3;
            o0[x] = augment_value(px[0], a0, b0);
            o1[x] = augment_value(px[1], a1, b1);
            o2[x] = augment_value(px[2], a2, b2);
          }
      }
      continue;
    }
    for (int c = 0; c < C; c++) {
      const float a = coef[((size_t)n * C + c) * 2], b = coef[((size_t)n * C + c) * 2 + 1];
      float* out = y + ((size_t)n * C + c) * plane;
      for (int r = 0; r < Ho; r++) {
        const uint8_t* __restrict row = slot + ((size_t)(q.top + r) * Ws + q.left) * C + c;
        float* __restrict o = out + (size_t)r * Wo;
        if (q.flip)
          for (int x = 0; x < Wo; x++) o[x] = augment_value(row[(size_t)(Wo - 1 - x) * C], a, b);
        else
          for (int x = 0; x < Wo; x++) o[x] = augment_value(row[(size_t)x * C], a, b);
      }
    }
  }
}

}  // namespace axn::ops
