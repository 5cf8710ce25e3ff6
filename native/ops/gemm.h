// GEMM, row-major (Caffe's caffe_cpu_gemm / caffe_gpu_gemm):
//   C = alpha · op(A) · op(B) + beta · C
// with op(A) of shape (M, K) and op(B) of shape (K, N), C of shape (M, N), all row-major with leading
// dimensions lda/ldb/ldc (the distance between rows). When transA, A is stored (K, M) (so lda ≥ M), else
// (M, K) (lda ≥ K); likewise B is stored (N, K) when transB, else (K, N).
// beta == 0 overwrites C without reading it (NaN or garbage in C does not propagate), as in BLAS.
// K == 0 gives C = beta · C. `math` picks the arithmetic (GemmMath below).
#pragma once
#include <cstdint>
#include <cstring>

#include "../hd.h"

namespace axn::ops {

// The arithmetic of a GEMM. Every mode accumulates in float32; they differ in what is multiplied.
//   Fp32  strict float32 (cuBLAS CUBLAS_DEFAULT_MATH).
//   Tf32  CUDA: A and B cut to TF32 (10 explicit mantissa bits) on tensor cores
//         (CUBLAS_TF32_TENSOR_OP_MATH). The CPU has no TF32 and computes in fp32.
//   Bf16  A and B rounded to bfloat16 (7 explicit mantissa bits), products exact in float32, sums in float32:
//         CUDA cublasGemmEx with CUBLAS_COMPUTE_32F_FAST_16BF (bf16 tensor cores, twice TF32's peak on paper;
//         the columns-path convolutions and linear layers round in their own kernels and call gemm_bf16_cuda); the
//         CPU rounds every operand element to nearest even as it packs it (round_bf16), so that the CPU is the
//         oracle of the GPU's mode, not a different arithmetic. cuBLAS does not document its rounding of the
//         conversion; the emulated device truncates (the larger error), so a tolerance that holds there holds
//         for either.
// The values are the JS side's (lib/ops/util.ts gemmMath).
enum class GemmMath : int { Fp32 = 0, Tf32 = 1, Bf16 = 2 };

// bfloat16 values in memory: the upper 16 bits of the float32 (bf16 storage, the CUDA columns path).
using bf16_t = uint16_t;

// v rounded to the nearest bfloat16 (ties to even), returned as the float32 of that value. Infinities stay;
// a NaN stays a NaN (quiet); a finite value past bf16's largest rounds to infinity, as a conversion does.
AXN_HD_INLINE float round_bf16(float v) {
  uint32_t b;
  memcpy(&b, &v, 4);
  if ((b & 0x7F800000u) == 0x7F800000u) {
    if (b & 0x007FFFFFu) b |= 0x00400000u;  // NaN: keep it one after the low bits go
  } else {
    b += 0x7FFFu + ((b >> 16) & 1u);
  }
  b &= 0xFFFF0000u;
  memcpy(&v, &b, 4);
  return v;
}

// v rounded to nearest even, as stored bf16 bits; and a stored bf16 as the float32 it is exactly.
AXN_HD_INLINE bf16_t to_bf16(float v) {
  const float r = round_bf16(v);
  uint32_t b;
  memcpy(&b, &r, 4);
  return static_cast<bf16_t>(b >> 16);
}
AXN_HD_INLINE float from_bf16(bf16_t h) {
  const uint32_t b = static_cast<uint32_t>(h) << 16;
  float v;
  memcpy(&v, &b, 4);
  return v;
}

// Activations held as float32 or bfloat16 (Tensor dtype "bfloat16"). An op on bf16 activations computes in
// float32 on the widened values and rounds its output once, to nearest even, as it stores it: so its CPU
// oracle is the float32 op on widened inputs followed by a cast, bit for bit.
AXN_HD_INLINE float load_act(float v) { return v; }
AXN_HD_INLINE float load_act(bf16_t v) { return from_bf16(v); }
AXN_HD_INLINE void store_act(float* p, float v) { *p = v; }
AXN_HD_INLINE void store_act(bf16_t* p, float v) { *p = to_bf16(v); }

// A: (M, K) or (K, M) if transA; B: (K, N) or (N, K) if transB; C: (M, N)
// cblas_sgemm when built with OpenBLAS (AXN_WITH_OPENBLAS), else gemm_builtin_cpu (always for Bf16: OpenBLAS's
// sgemm cannot round its operands).
void gemm_cpu(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc, GemmMath math);

// The built-in GEMM (always compiled, so tests can check it whatever the build uses): cache-blocked with
// packed panels, a register-tiled micro-kernel the compiler vectorises, OpenMP over (row block, column
// block) tiles. On x86-64 the micro-kernel comes in copies for AVX-512, AVX2+FMA and the baseline ISA;
// `isa` Auto picks the best the CPU has (tests force each one the CPU supports).
enum class GemmIsa { Auto = 0, Generic = 1, Avx2 = 2, Avx512 = 3 };
const char* gemm_isa_name(GemmIsa isa);
bool gemm_builtin_isa_supported(GemmIsa isa);
void gemm_builtin_cpu(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, float beta, float* C, int ldc, GemmMath math,
                      GemmIsa isa = GemmIsa::Auto);

// `batch` independent GEMMs: C + i·strideC = alpha · op(A + i·strideA) · op(B + i·strideB) + beta · (…)
// for i in [0, batch). A stride of 0 shares one operand across the batch (conv weights).
void gemm_strided_batched_cpu(bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                              int lda, int64_t strideA, const float* B, int ldb, int64_t strideB, float beta,
                              float* C, int ldc, int64_t strideC, int batch, GemmMath math);

// Throws axn::Error naming `op` when a leading dimension is too small for the shapes (BLAS's rules:
// lda ≥ max(1, transA ? M : K), ldb ≥ max(1, transB ? K : N), ldc ≥ max(1, N)) or a size is negative.
void gemm_check_args(const char* op, bool transA, bool transB, int M, int N, int K, int lda, int ldb, int ldc);

#ifdef AXN_WITH_CUDA
// cuBLAS on axn::cuda::stream(), row-major through the operand swap (Cᵀ = op(B)ᵀ · op(A)ᵀ);
// strict fp32 (CUBLAS_DEFAULT_MATH), TF32 tensor cores (CUBLAS_TF32_TENSOR_OP_MATH) or, for Bf16,
// cublasGemmEx / cublasGemmStridedBatchedEx on float32 operands with CUBLAS_COMPUTE_32F_FAST_16BF.
void gemm_cuda(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc, GemmMath math);
// cublasSgemmStridedBatched, same conventions.
void gemm_strided_batched_cuda(bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                               int lda, int64_t strideA, const float* B, int ldb, int64_t strideB, float beta,
                               float* C, int ldc, int64_t strideC, int batch, GemmMath math);
// A GEMM on bf16 operands in memory (A and B bf16, C float32 or bf16 as cBf16 says), float32 products and
// sums: cublasGemmEx with CUDA_R_16BF inputs and CUBLAS_COMPUTE_32F (the columns path's bf16 storage).
void gemm_bf16_cuda(bool transA, bool transB, int M, int N, int K, float alpha, const bf16_t* A, int lda,
                    const bf16_t* B, int ldb, float beta, void* C, bool cBf16, int ldc);
#endif

}  // namespace axn::ops
