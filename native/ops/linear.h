// Fully connected layer, PyTorch layout, on the row-major GEMM of gemm.h:
//   x: (N, in)   w: (out, in)   b: (out) or null   y: (N, out) = x · wᵀ + b
// Backward: dx = dy · w (N, in), dw = dyᵀ · x (out, in), db = Σ_n dy[n, :] (out).
// The drivers (linear.cc) are shared by both devices; linear.cu holds the bias kernels.
#pragma once
#include "elementwise.h"  // to_bf16_cuda: the bf16 operand copies
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

// bf16 storage (CUDA in GemmMath::Bf16): the GEMMs run on bf16 operands (gemm_bf16_cuda, CUDA_R_16BF with
// CUBLAS_COMPUTE_32F) that our kernels round to nearest even — x, the weights' copy, and dz in the bias
// gradient's pass — so the CPU's bf16 GEMM, which rounds the same operands the same way as it packs them,
// is their oracle up to float32 summation order. (cuBLAS's own conversion under FAST_16BF is not documented.)
inline bool linear_bf16_storage(bool cuda, GemmMath math) { return cuda && math == GemmMath::Bf16; }
// The floats that a training forward keeps for its backward: the weights' bf16 copy (out·in values, two
// to a float), which the backward's dx GEMM reads instead of rounding the weights again; 0 when it keeps
// none (the CPU, or not bf16 storage).
int64_t linear_kept_floats(int in, int out, bool cuda, GemmMath math);

// bfloat16 activations: x, y and the backward's reluY each float or bf16_t (TX, TY). A bf16 y is the float32
// result rounded once to nearest even (from a float32 scratch). On the float32 GEMM paths a bf16 x (and
// reluY) is widened into scratch first, which is exact; CUDA's bf16 storage reads a bf16 x as its GEMM
// operand as it is (the bits linear.inputBf16 would have written). Gradients stay float32.
template <class TX, class TY>
void linear_forward_act_cpu(const TX* x, const float* w, const float* b, TY* y, int N, int in, int out, GemmMath math,
                            bool relu);
template <class TX, class TY>
void linear_backward_act_cpu(const float* dy, const TX* x, const float* w, float* dx, float* dw, float* db, int N,
                             int in, int out, GemmMath math, const TY* reluY, bool reluInPlace);

#ifdef AXN_WITH_CUDA
template <class TX, class TY>
void linear_forward_act_cuda(const TX* x, const float* w, const float* b, TY* y, int N, int in, int out, GemmMath math,
                             bool relu, bf16_t* wKeep = nullptr);
template <class TX, class TY>
void linear_backward_act_cuda(const float* dy, const TX* x, const float* w, float* dx, float* dw, float* db, int N,
                              int in, int out, GemmMath math, const TY* reluY, bool reluInPlace,
                              const bf16_t* wKept = nullptr);
// wKeep (bf16 storage only, else null): linear_kept_floats floats that receive the weights' bf16 copy.
void linear_forward_cuda(const float* x, const float* w, const float* b, float* y, int N, int in, int out, GemmMath math,
                         bool relu, bf16_t* wKeep = nullptr);
// wKept: the forward's wKeep (then w's values are not read again), or null.
void linear_backward_cuda(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int N,
                          int in, int out, GemmMath math, const float* reluY, bool reluInPlace,
                          const bf16_t* wKept = nullptr);
void fill_rows_cuda(float* y, const float* b, int N, int out);
void column_sums_cuda(const float* dy, float* db, int N, int out);
// dz = relu_bwd(dy, y) (y null: dz = dy) stored in bf16, rounded to nearest even; db (null: skipped) =
// Σ_n of the float32 values, in column_sums' order — the same bits as the float32 pass.
void grad_columns_bf16_cuda(const float* dy, const float* y, bf16_t* dz, float* db, int N, int out);
// y: (N, out) = max(y + b, 0) in place (b null: max(y, 0))
void bias_relu_rows_cuda(float* y, const float* b, int N, int out);
void relu_column_sums_cuda(const float* dy, const float* y, float* dz, float* db, int N, int out);
#endif

}  // namespace axn::ops
