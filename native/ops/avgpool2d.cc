// Adaptive average pooling on the CPU: the plain oracle for avgpool2d.cu.
#include <cstring>

#include "ops/avgpool2d.h"

namespace axn::ops {

void adaptive_avgpool2d_forward_cpu(const float* x, float* y, int N, int C, int H, int W, int Ho, int Wo) {
  const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    const float* xp = x + p * H * W;
    float* yp = y + p * Ho * Wo;
    for (int oh = 0; oh < Ho; oh++) {
      const int h0 = adaptive_start(oh, Ho, H), h1 = adaptive_end(oh, Ho, H);
      for (int ow = 0; ow < Wo; ow++) {
        const int w0 = adaptive_start(ow, Wo, W), w1 = adaptive_end(ow, Wo, W);
        float sum = 0.f;
        for (int ih = h0; ih < h1; ih++)
          for (int iw = w0; iw < w1; iw++) sum += xp[ih * W + iw];
        yp[oh * Wo + ow] = sum / (float)((h1 - h0) * (w1 - w0));
      }
    }
  }
}

void adaptive_avgpool2d_backward_cpu(const float* dy, float* dx, int N, int C, int H, int W, int Ho, int Wo) {
  const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    float* dxp = dx + p * H * W;
    const float* dyp = dy + p * Ho * Wo;
    std::memset(dxp, 0, sizeof(float) * (size_t)H * W);
    for (int oh = 0; oh < Ho; oh++) {
      const int h0 = adaptive_start(oh, Ho, H), h1 = adaptive_end(oh, Ho, H);
      for (int ow = 0; ow < Wo; ow++) {
        const int w0 = adaptive_start(ow, Wo, W), w1 = adaptive_end(ow, Wo, W);
        const float g = dyp[oh * Wo + ow] / (float)((h1 - h0) * (w1 - w0));
        for (int ih = h0; ih < h1; ih++)
          for (int iw = w0; iw < w1; iw++) dxp[ih * W + iw] += g;
      }
    }
  }
}

}  // namespace axn::ops
