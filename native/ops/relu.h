// ReLU, float32 or bfloat16 activations, any shape (flat n elements). PyTorch semantics: y = max(x, 0) with NaN propagated
// (torch.relu(nan) is nan); dx = dy where y > 0, else 0 (threshold_backward: y ≤ 0 → 0, so a NaN y lets
// dy through, as PyTorch).
#pragma once
#include <cstdint>

#include "gemm.h"  // bf16_t, load_act, store_act

namespace axn::ops {

// T: float, or bf16_t for bfloat16 activations (x and y; max(x, 0) of a bf16 value is exact). Gradients
// stay float32: dy and dx are float, y (read for its sign) is T.
// x: (n) -> y: (n). y may alias x (in place).
template <typename T>
void relu_forward_cpu(const T* x, T* y, int64_t n);
// dy: (n), y: (n) (the forward's output) -> dx: (n). dx may alias dy (in place).
template <typename T>
void relu_backward_cpu(const float* dy, const T* y, float* dx, int64_t n);

#ifdef AXN_WITH_CUDA
template <typename T>
void relu_forward_cuda(const T* x, T* y, int64_t n);
template <typename T>
void relu_backward_cuda(const float* dy, const T* y, float* dx, int64_t n);
#endif

// The per-element rules, shared by both devices.
#if defined(__CUDACC__)
#define AXN_RELU_HD __host__ __device__ __forceinline__
#else
#define AXN_RELU_HD inline
#endif
AXN_RELU_HD float relu_fwd(float x) { return x < 0.f ? 0.f : x; }
AXN_RELU_HD float relu_bwd(float dy, float y) { return y <= 0.f ? 0.f : dy; }
#undef AXN_RELU_HD

}  // namespace axn::ops
