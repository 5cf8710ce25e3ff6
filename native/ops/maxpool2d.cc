// Max pooling on the CPU: the plain oracle for maxpool2d.cu.
#include "ops/maxpool2d.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "common.h"

namespace axn::ops {

template <typename T>
void maxpool2d_forward_cpu(const T* x, T* y, int32_t* argmax, int N, int C, int H, int W, int kh, int kw, int sh,
                           int sw, int ph, int pw, int Ho, int Wo) {
  const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    const T* xp = x + p * H * W;
    T* yp = y + p * Ho * Wo;
    int32_t* ap = argmax + p * Ho * Wo;
    for (int oh = 0; oh < Ho; oh++) {
      const int h0 = std::max(oh * sh - ph, 0);
      const int h1 = std::min(oh * sh - ph + kh, H);
      for (int ow = 0; ow < Wo; ow++) {
        const int w0 = std::max(ow * sw - pw, 0);
        const int w1 = std::min(ow * sw - pw + kw, W);
        float best = -std::numeric_limits<float>::infinity();
        int32_t at = h0 * W + w0;
        for (int ih = h0; ih < h1; ih++) {
          for (int iw = w0; iw < w1; iw++) {
            const float v = load_act(xp[ih * W + iw]);
            if (v > best || std::isnan(v)) {
              best = v;
              at = ih * W + iw;
            }
          }
        }
        store_act(yp + oh * Wo + ow, best);
        ap[oh * Wo + ow] = at;
      }
    }
  }
}
template void maxpool2d_forward_cpu<float>(const float*, float*, int32_t*, int, int, int, int, int, int, int, int, int,
                                           int, int, int);
template void maxpool2d_forward_cpu<bf16_t>(const bf16_t*, bf16_t*, int32_t*, int, int, int, int, int, int, int, int,
                                            int, int, int, int);

void maxpool2d_backward_cpu(const float* dy, const int32_t* argmax, float* dx, int N, int C, int H, int W, int Ho,
                            int Wo) {
  const int64_t planes = (int64_t)N * C;
  const int64_t plane = (int64_t)H * W;
  const int64_t oplane = (int64_t)Ho * Wo;
  int64_t bad = -1;  // flat position (in argmax) of an out-of-range index, if any
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    float* dxp = dx + p * plane;
    const float* dyp = dy + p * oplane;
    const int32_t* ap = argmax + p * oplane;
    std::memset(dxp, 0, sizeof(float) * plane);
    for (int64_t o = 0; o < oplane; o++) {
      const int32_t i = ap[o];
      if (i < 0 || i >= plane) {
#pragma omp critical(axn_maxpool2d_bad)
        bad = p * oplane + o;
        continue;
      }
      dxp[i] += dyp[o];
    }
  }
  if (bad >= 0)
    fail("maxpool2d_backward",
         "indices[" + std::to_string(bad) + "] = " + std::to_string(argmax[bad]) + " is outside the input plane [0, " +
             std::to_string(plane) + "); indices must come from maxPool2d",
         __FILE__, __LINE__);
}

}  // namespace axn::ops
