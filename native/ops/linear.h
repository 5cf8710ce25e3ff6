// Fully connected layer, PyTorch layout, on the row-major GEMM of gemm.h:
//   x: (N, in)   w: (out, in)   b: (out) or null   y: (N, out) = x · wᵀ + b
// Backward: dx = dy · w (N, in), dw = dyᵀ · x (out, in), db = Σ_n dy[n, :] (out).
// The drivers (linear.cc) are shared by both devices; linear.cu holds the bias kernels.
#pragma once
#include "gemm.h"

namespace axn::ops {

// x: (N, in), w: (out, in), b: (out) or null -> y: (N, out)
void linear_forward_cpu(const float* x, const float* w, const float* b, float* y, int N, int in, int out, bool tf32);
// dy: (N, out), x: (N, in), w: (out, in) -> dx: (N, in) or null (skipped), dw: (out, in), db: (out) or null
// (skipped); all overwritten (an empty batch gives dw = 0, db = 0).
void linear_backward_cpu(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int N,
                         int in, int out, bool tf32);

// y: (N, out) = b in every row
void fill_rows_cpu(float* y, const float* b, int N, int out);
// db: (out) = Σ_n dy[n, :], dy: (N, out)
void column_sums_cpu(const float* dy, float* db, int N, int out);

#ifdef AXN_WITH_CUDA
void linear_forward_cuda(const float* x, const float* w, const float* b, float* y, int N, int in, int out, bool tf32);
void linear_backward_cuda(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int N,
                          int in, int out, bool tf32);
void fill_rows_cuda(float* y, const float* b, int N, int out);
void column_sums_cuda(const float* dy, float* db, int N, int out);
#endif

}  // namespace axn::ops
