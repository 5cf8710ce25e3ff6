// ReLU, CPU. See relu.h.
#include "ops/relu.h"

namespace axn::ops {

namespace {
constexpr int64_t kParallelMin = 1 << 15;
}

void relu_forward_cpu(const float* x, float* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) y[i] = relu_fwd(x[i]);
}

void relu_backward_cpu(const float* dy, const float* y, float* dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) dx[i] = relu_bwd(dy[i], y[i]);
}

}  // namespace axn::ops
