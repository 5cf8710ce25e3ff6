// Local response normalisation across channels (AlexNet §3.3), PyTorch / Caffe convention:
//   scale_c = k + alpha/size · Σ_{c' ∈ win(c)} a_{c'}²,   b_c = a_c · scale_c^(−beta)
// with win(c) = [c − floor(size/2), c + floor((size−1)/2)] ∩ [0, C) (PyTorch pads size//2 channels before
// and (size−1)//2 after and always divides by size). Backward (Caffe's formula):
//   da_c = dy_c · scale_c^(−beta) − (2·alpha·beta/size) · a_c · Σ_{c' : c ∈ win(c')} dy_{c'} · b_{c'} / scale_{c'}
// where {c' : c ∈ win(c')} = [c − floor((size−1)/2), c + floor(size/2)] ∩ [0, C) (the mirror of win for an
// even size). Layout (N, C, S) with S the product of the spatial sizes (H·W for NCHW).
//
// The backward recomputes scale and b from x instead of reading stored ones: the forward stores nothing
// but y (one activation-sized buffer per LRN layer fewer), and the backward reads x and dy only.
//
// The arithmetic, the same on both devices (the CPU is built with -ffp-contract=off; the CUDA kernels
// use __fmul_rn/__fadd_rn, so nvcc contracts nothing):
//   sum   = ((0 + a_lo²) + a_{lo+1}²) + … + a_hi²       float, ascending channels of win(c)
//   scale = k + (alpha/size)·sum                         alpha/size rounded to float once
//   p     = scale^(−beta): beta = 0.75 → rsqrt(scale)·rsqrt(sqrt(scale)); else pow(scale, −beta)
//   b     = a·p
//   t_c   = (dy_c · b_c) / scale_c
//   da_c  = dy_c·p_c − (coef·a_c)·T_c,  T_c = ((0 + t_lo) + …) + t_hi over the mirror window, ascending;
//           coef = 2·alpha·beta/size rounded to float once
// On the emulated device rsqrtf is 1/sqrtf, as on the CPU, so the two agree bit for bit. On a GPU rsqrtf
// (≤ 2 ulp) and powf (≤ 4 ulp) differ from the CPU's correctly rounded operations by a few ulps; the
// tests bound the difference from that (test/ops/lrn.test.ts). lrn.cu refuses to compile under
// --use_fast_math, which would change powf, sqrtf and the flushing of subnormals.
//
// T: float, or bf16_t for bfloat16 activations: x (and the forward's y) of T, read widened; the same float
// arithmetic; y rounded once to nearest even as it is stored. dy and dx stay float32.
#pragma once
#include <cstdint>

#include "gemm.h"  // bf16_t, load_act, store_act

namespace axn::ops {

// x: (N, C, S)  ->  y: (N, C, S)
template <typename T>
void lrn_forward_cpu(const T* x, T* y, int N, int C, int64_t S, int size, float alpha, float beta, float k);
// dy, x: (N, C, S)  ->  dx: (N, C, S)
template <typename T>
void lrn_backward_cpu(const float* dy, const T* x, float* dx, int N, int C, int64_t S, int size, float alpha,
                      float beta, float k);

// The legacy path (setLrnPath('legacy'), kept for the A/B of issue 19's lever 2; float32 only): the kernels
// before it. The forward stores scale beside y; the backward reads dy, x, y and scale. One thread per (n, s)
// column walks the C channels with a running window sum in double (add the channel entering the window,
// subtract the one leaving it), p = powf(scale, −beta) for every beta. Per column:
//   sum = Σ_{c ≤ min(after, C−1)} (double)x_c², ascending; then for c = 0 … C−1:
//     scale_c = k + (alpha/size)·(float)sum;  y_c = x_c·powf(scale_c, −beta);
//     sum += (double)x_{c+1+after}² (if < C);  sum −= (double)x_{c−before}² (if ≥ 0)
//   backward: sum = Σ_{c ≤ min(before, C−1)} (double)(dy·y/scale)_c, ascending; then for c = 0 … C−1:
//     dx_c = dy_c·powf(scale_c, −beta) − coef·x_c·(float)sum;
//     sum += (double)(dy·y/scale)_{c+1+before} (if < C);  sum −= (double)(dy·y/scale)_{c−after} (if ≥ 0)
// The CPU oracle does the same per column (vectorised across the columns of one image), so the emulated
// device gives its bits; on a GPU, nvcc may contract the float expressions and powf differs by a few ulps.
// x: (N, C, S)  ->  y, scale: (N, C, S)
void lrn_forward_legacy_cpu(const float* x, float* y, float* scale, int N, int C, int64_t S, int size, float alpha,
                            float beta, float k);
// dy, x, y, scale: (N, C, S)  ->  dx: (N, C, S)
void lrn_backward_legacy_cpu(const float* dy, const float* x, const float* y, const float* scale, float* dx, int N,
                             int C, int64_t S, int size, float alpha, float beta, float k);

#ifdef AXN_WITH_CUDA
// One thread per element (no serial walk over C): it sums its own window of at most `size` channels,
// whose loads, shared with the threads of the neighbouring channels, come mostly from L2.
template <typename T>
void lrn_forward_cuda(const T* x, T* y, int N, int C, int64_t S, int size, float alpha, float beta, float k);
template <typename T>
void lrn_backward_cuda(const float* dy, const T* x, float* dx, int N, int C, int64_t S, int size, float alpha,
                       float beta, float k);
void lrn_forward_legacy_cuda(const float* x, float* y, float* scale, int N, int C, int64_t S, int size, float alpha,
                             float beta, float k);
void lrn_backward_legacy_cuda(const float* dy, const float* x, const float* y, const float* scale, float* dx, int N,
                              int C, int64_t S, int size, float alpha, float beta, float k);
#endif

}  // namespace axn::ops
