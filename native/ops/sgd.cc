// SGD update, CPU. See sgd.h.
#include "ops/sgd.h"

#include <cmath>

namespace axn::ops {

namespace {

constexpr int64_t kParallelMin = 1 << 15;

// Separate statements with float temporaries: each operation rounds once, in PyTorch's order.
template <bool kWd, bool kMomentum>
void update(float* param, const float* grad, float* buf, int64_t n, const SgdOptions& o, float oneMinusDamp) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    float g = grad[i];
    if (kWd) {
      const float wp = o.weightDecay * param[i];
      g = g + wp;
    }
    if (kMomentum) {
      float b;
      if (o.firstStep) {
        b = g;
      } else {
        const float mb = o.momentum * buf[i];
        const float dg = oneMinusDamp * g;
        b = mb + dg;
      }
      buf[i] = b;
      if (o.nesterov) {
        const float mbn = o.momentum * b;
        g = g + mbn;
      } else {
        g = b;
      }
    }
    const float step = -o.lr * g;
    param[i] = param[i] + step;
  }
}

}  // namespace

void sgd_update_multi_cpu(const SgdTensor* t, int count, const SgdOptions& o, const float* guard, float* halt) {
  if ((guard && !std::isfinite(*guard)) || (halt && *halt != 0.f)) {
    if (halt) *halt = 1.f;
    return;
  }
  for (int i = 0; i < count; i++) {
    SgdOptions oi = o;
    oi.weightDecay = t[i].weightDecay;
    oi.firstStep = t[i].firstStep;
    sgd_update_cpu(t[i].param, t[i].grad, t[i].buf, t[i].n, oi);
  }
}

void sgd_update_cpu(float* param, const float* grad, float* buf, int64_t n, const SgdOptions& o) {
  const float oneMinusDamp = o.oneMinusDampening;
  const bool wd = o.weightDecay != 0.f, mom = o.momentum != 0.f;
  if (wd && mom) update<true, true>(param, grad, buf, n, o, oneMinusDamp);
  else if (wd) update<true, false>(param, grad, buf, n, o, oneMinusDamp);
  else if (mom) update<false, true>(param, grad, buf, n, o, oneMinusDamp);
  else update<false, false>(param, grad, buf, n, o, oneMinusDamp);
}

}  // namespace axn::ops
