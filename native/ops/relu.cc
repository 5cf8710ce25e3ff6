// ReLU, CPU. See relu.h.
#include "ops/relu.h"

namespace axn::ops {

namespace {
constexpr int64_t kParallelMin = 1 << 15;
}

template <typename T>
void relu_forward_cpu(const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) store_act(y + i, relu_fwd(load_act(x[i])));
}

template <typename T>
void relu_backward_cpu(const float* dy, const T* y, float* dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) dx[i] = relu_bwd(dy[i], load_act(y[i]));
}

template void relu_forward_cpu<float>(const float*, float*, int64_t);
template void relu_forward_cpu<bf16_t>(const bf16_t*, bf16_t*, int64_t);
template void relu_backward_cpu<float>(const float*, const float*, float*, int64_t);
template void relu_backward_cpu<bf16_t>(const float*, const bf16_t*, float*, int64_t);

}  // namespace axn::ops
