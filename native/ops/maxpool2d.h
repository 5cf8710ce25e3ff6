// 2-D max pooling, NCHW float32 (the forward also bfloat16), PyTorch semantics (nn.MaxPool2d / F.max_pool2d with return_indices).
//
// Window of output (oh, ow): rows [oh*sh - ph, oh*sh - ph + kh) ∩ [0, H), columns likewise; the padding is
// implicit -inf, so it never wins. The caller (lib/ops/pool.ts) computes Ho, Wo with PyTorch's floor/ceil
// rule and checks ph ≤ kh/2, pw ≤ kw/2, which guarantees every window holds at least one input element.
// Ties keep the first element in raster order (strict >); a NaN in a window wins (the last NaN, as
// PyTorch's `val > max || isnan(val)`), so NaN propagates.
#pragma once
#include <cstdint>

#include "gemm.h"  // bf16_t

namespace axn::ops {

// x: (N, C, H, W)  ->  y: (N, C, Ho, Wo), argmax: (N, C, Ho, Wo) int32, the flat index ih*W + iw of the
// chosen element within its (n, c) input plane (as PyTorch's indices). T: float, or bf16_t for bfloat16
// activations (x and y both; a max of bf16 values is one of them, so y is exact either way).
template <typename T>
void maxpool2d_forward_cpu(const T* x, T* y, int32_t* argmax, int N, int C, int H, int W, int kh, int kw, int sh,
                           int sw, int ph, int pw, int Ho, int Wo);

// dy: (N, C, Ho, Wo), argmax: (N, C, Ho, Wo)  ->  dx: (N, C, H, W) (overwritten): dx[p] = Σ dy[o] over the
// outputs o with argmax[o] == p, summed in raster order of o. Needs no window geometry: a scatter per plane.
// Throws when an index lies outside [0, H*W).
void maxpool2d_backward_cpu(const float* dy, const int32_t* argmax, float* dx, int N, int C, int H, int W, int Ho,
                            int Wo);

#ifdef AXN_WITH_CUDA
template <typename T>
void maxpool2d_forward_cuda(const T* x, T* y, int32_t* argmax, int N, int C, int H, int W, int kh, int kw, int sh,
                            int sw, int ph, int pw, int Ho, int Wo);

// Deterministic gather, no atomics: one thread per input element loops over the (at most
// ceil(kh/sh)·ceil(kw/sw)) windows that can contain it, in raster order, and adds dy where the window's
// argmax points at it — the same sum in the same order as the CPU scatter, so the results are bit-equal.
// Needs the forward's window geometry; an index outside its window is ignored (indices come from forward).
void maxpool2d_backward_cuda(const float* dy, const int32_t* argmax, float* dx, int N, int C, int H, int W, int kh,
                             int kw, int sh, int sw, int ph, int pw, int Ho, int Wo);

// For indices whose window geometry is unknown (not made by maxpool2d_forward with known options): zero dx,
// then scatter with atomicAdd. Where three or more outputs pick the same input the summation order, and so
// the last bits, may vary between runs. Indices outside [0, H*W) are skipped.
void maxpool2d_backward_scatter_cuda(const float* dy, const int32_t* argmax, float* dx, int N, int C, int H, int W,
                                     int Ho, int Wo);
#endif

}  // namespace axn::ops
