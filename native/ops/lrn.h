// Local response normalisation across channels (AlexNet §3.3), PyTorch / Caffe convention:
//   scale_c = k + alpha/size · Σ_{c' ∈ win(c)} a_{c'}²,   b_c = a_c · scale_c^(−beta)
// with win(c) = [c − floor(size/2), c + floor((size−1)/2)] ∩ [0, C) (PyTorch pads size//2 channels before
// and (size−1)//2 after and always divides by size). Backward (Caffe's formula):
//   da_c = dy_c · scale_c^(−beta) − (2·alpha·beta/size) · a_c · Σ_{c' : c ∈ win(c')} dy_{c'} · b_{c'} / scale_{c'}
// where {c' : c ∈ win(c')} = [c − floor((size−1)/2), c + floor(size/2)] ∩ [0, C) (the mirror of win for an
// even size). Layout (N, C, S) with S the product of the spatial sizes (H·W for NCHW).
#pragma once
#include <cstdint>

namespace axn::ops {

// x: (N, C, S)  ->  y: (N, C, S), scale: (N, C, S)
void lrn_forward_cpu(const float* x, float* y, float* scale, int N, int C, int64_t S, int size, float alpha,
                     float beta, float k);
// dy, x, y, scale: (N, C, S)  ->  dx: (N, C, S)
void lrn_backward_cpu(const float* dy, const float* x, const float* y, const float* scale, float* dx, int N, int C,
                      int64_t S, int size, float alpha, float beta, float k);

#ifdef AXN_WITH_CUDA
// One thread per (n, s) column walks the channels with a running window sum (kept in double, so adding
// and removing squares does not drift); consecutive threads on consecutive s, so every access coalesces.
void lrn_forward_cuda(const float* x, float* y, float* scale, int N, int C, int64_t S, int size, float alpha,
                      float beta, float k);
void lrn_backward_cuda(const float* dy, const float* x, const float* y, const float* scale, float* dx, int N, int C,
                       int64_t S, int size, float alpha, float beta, float k);
#endif

}  // namespace axn::ops
