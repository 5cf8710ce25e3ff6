// Fully connected layer, PyTorch layout, on the row-major GEMM of gemm.h:
//   x: (N, in)   w: (out, in)   b: (out) or null   y: (N, out) = x · wᵀ + b
// Backward: dx = dy · w (N, in), dw = dyᵀ · x (out, in), db = Σ_n dy[n, :] (out).
// The drivers (linear.cc) are shared by both devices; linear.cu holds the bias kernels.
#pragma once
#include "gemm.h"

namespace axn::ops {

// x: (N, in), w: (out, in), b: (out) or null -> y: (N, out). relu: y = max(x · wᵀ + b, 0), fused (a Linear
// followed by a ReLU in a Sequential; conv2d.h says how each device fuses it).
void linear_forward_cpu(const float* x, const float* w, const float* b, float* y, int N, int in, int out, GemmMath math,
                        bool relu);
// dy: (N, out), x: (N, in), w: (out, in) -> dx: (N, in) or null (skipped), dw: (out, in), db: (out) or null
// (skipped); all overwritten (an empty batch gives dw = 0, db = 0). reluY: (N, out), the fused forward's
// output, or null: with it, dy is the gradient at the ReLU's output, and dz = dy where y > 0 is formed in
// the bias gradient's pass (into scratch memory, or over dy with reluInPlace) before the GEMMs run on it.
void linear_backward_cpu(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int N,
                         int in, int out, GemmMath math, const float* reluY, bool reluInPlace);

// y: (N, out) = b in every row
void fill_rows_cpu(float* y, const float* b, int N, int out);
// db: (out) = Σ_n dy[n, :], dy: (N, out)
void column_sums_cpu(const float* dy, float* db, int N, int out);
// dz = relu_bwd(dy, y), db = Σ_n dz[n, :] (column_sums of dz, in the same order); dz may alias dy
void relu_column_sums_cpu(const float* dy, const float* y, float* dz, float* db, int N, int out);

#ifdef AXN_WITH_CUDA
void linear_forward_cuda(const float* x, const float* w, const float* b, float* y, int N, int in, int out, GemmMath math,
                         bool relu);
void linear_backward_cuda(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int N,
                          int in, int out, GemmMath math, const float* reluY, bool reluInPlace);
void fill_rows_cuda(float* y, const float* b, int N, int out);
void column_sums_cuda(const float* dy, float* db, int N, int out);
// y: (N, out) = max(y + b, 0) in place (b null: max(y, 0))
void bias_relu_rows_cuda(float* y, const float* b, int N, int out);
void relu_column_sums_cuda(const float* dy, const float* y, float* dz, float* db, int N, int out);
#endif

}  // namespace axn::ops
