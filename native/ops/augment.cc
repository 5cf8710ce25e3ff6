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
    for (int c = 0; c < C; c++) {
      const float a = coef[((size_t)n * C + c) * 2], b = coef[((size_t)n * C + c) * 2 + 1];
      float* out = y + ((size_t)n * C + c) * plane;
      for (int r = 0; r < Ho; r++) {
        const uint8_t* row = slot + ((size_t)(q.top + r) * Ws + q.left) * C + c;
        float* o = out + (size_t)r * Wo;
        if (q.flip)
          for (int x = 0; x < Wo; x++) o[x] = augment_value(row[(size_t)(Wo - 1 - x) * C], a, b);
        else
          for (int x = 0; x < Wo; x++) o[x] = augment_value(row[(size_t)x * C], a, b);
      }
    }
  }
}

}  // namespace axn::ops
