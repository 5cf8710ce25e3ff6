// Dropout, CPU: one Philox block per four elements, exactly the CUDA kernel's mapping. See dropout.h.
#include "ops/dropout.h"

namespace axn::ops {

namespace {

constexpr int64_t kParallelMin = 1 << 13;  // blocks of four elements

// out[i] = in[i] · keep_i · scale. Forward and backward are the same map: the mask scales dy as it scaled x.
template <typename T>
void apply_mask(const T* in, T* out, int64_t n, double p, uint64_t seed, uint64_t offset) {
  const DropoutRule rule = dropout_rule(p);
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (blocks >= kParallelMin)
  for (int64_t b = 0; b < blocks; b++) {
    const philox::U32x4 r = philox::block(seed, offset + static_cast<uint64_t>(b));
    for (int lane = 0; lane < 4; lane++) {
      const int64_t i = 4 * b + lane;
      if (i < n) store_act(out + i, dropout_keep(philox::word(r, lane), rule.threshold) ? load_act(in[i]) * rule.scale : 0.0f);
    }
  }
}

}  // namespace

template <typename T>
void dropout_forward_cpu(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t offset) {
  apply_mask(x, y, n, p, seed, offset);
}
template void dropout_forward_cpu<float>(const float*, float*, int64_t, double, uint64_t, uint64_t);
template void dropout_forward_cpu<bf16_t>(const bf16_t*, bf16_t*, int64_t, double, uint64_t, uint64_t);

void dropout_backward_cpu(const float* dy, float* dx, int64_t n, double p, uint64_t seed, uint64_t offset) {
  apply_mask(dy, dx, n, p, seed, offset);
}

void dropout_mask_cpu(uint8_t* mask, int64_t n, double p, uint64_t seed, uint64_t offset) {
  const DropoutRule rule = dropout_rule(p);
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (blocks >= kParallelMin)
  for (int64_t b = 0; b < blocks; b++) {
    const philox::U32x4 r = philox::block(seed, offset + static_cast<uint64_t>(b));
    for (int lane = 0; lane < 4; lane++) {
      const int64_t i = 4 * b + lane;
      if (i < n) mask[i] = dropout_keep(philox::word(r, lane), rule.threshold) ? 1 : 0;
    }
  }
}

}  // namespace axn::ops
