// Dropout (inverted, as PyTorch's F.dropout at training) with a seeded counter-based RNG: no mask is
// stored; backward recomputes it from (seed, offset).
//
// Element i of a call draws the 32-bit word r = Philox4x32-10(counter = offset + ⌊i / 4⌋, key = seed)[i % 4]
// (philox.h; counter words x, y = low, high 32 bits; z = w = 0; key = low, high 32 bits of seed) and the
// uniform u = (r >> 8) · 2⁻²⁴ ∈ [0, 1), exact in float. It is kept when u < 1 − p:
//   y[i] = keep ? x[i] · scale : 0,   scale = float(1 / (1 − p))   (p = 1: every element dropped, y = 0).
// p = 0 keeps everything (y = x · 1 = x). One counter serves four elements, so a call on n elements uses
// counters [offset, offset + ⌈n / 4⌉); the next independent call should start at offset + ⌈n / 4⌉.
// The CPU and CUDA versions of a build draw bit-identical masks and outputs.
#pragma once
#include <cmath>
#include <cstdint>

#include "ops/gemm.h"  // bf16_t, load_act, store_act
#include "ops/philox.h"

namespace axn::ops {

struct DropoutRule {
  uint32_t threshold;  // keep iff (r >> 8) < threshold, i.e. u < 1 − p; in [0, 2^24]
  float scale;         // multiplier of kept elements
};

// p in [0, 1] (checked by the caller): threshold = ⌈(1 − p) · 2²⁴⌉, so that for the integer k = r >> 8,
// k < threshold ⇔ k · 2⁻²⁴ < 1 − p exactly.
inline DropoutRule dropout_rule(double p) {
  const double q = 1.0 - p;
  if (!(q > 0.0)) return {0u, 0.0f};
  if (q >= 1.0) return {1u << 24, 1.0f};
  return {static_cast<uint32_t>(std::ceil(q * 16777216.0)), static_cast<float>(1.0 / q)};
}

// Whether word r keeps its element.
AXN_HD_INLINE bool dropout_keep(uint32_t r, uint32_t threshold) { return (r >> 8) < threshold; }

// x: (n) -> y: (n); y may alias x. p in [0, 1]. T: float, or bf16_t for bfloat16 activations (x and y; the
// kept x · scale is computed in float32 and rounded once as it is stored). The backward stays float32.
template <typename T>
void dropout_forward_cpu(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t offset);
// dy: (n) -> dx: (n) = dy · keep · scale with the forward's mask (same n, p, seed, offset); dx may alias dy.
void dropout_backward_cpu(const float* dy, float* dx, int64_t n, double p, uint64_t seed, uint64_t offset);
// mask: (n) bytes, 1 where the element is kept (host only, for tests and inspection).
void dropout_mask_cpu(uint8_t* mask, int64_t n, double p, uint64_t seed, uint64_t offset);

#ifdef AXN_WITH_CUDA
template <typename T>
void dropout_forward_cuda(const T* x, T* y, int64_t n, double p, uint64_t seed, uint64_t offset);
void dropout_backward_cuda(const float* dy, float* dx, int64_t n, double p, uint64_t seed, uint64_t offset);
#endif

}  // namespace axn::ops
