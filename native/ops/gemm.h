// GEMM, row-major (Caffe's caffe_cpu_gemm / caffe_gpu_gemm):
//   C = alpha · op(A) · op(B) + beta · C
// with op(A) of shape (M, K) and op(B) of shape (K, N), C of shape (M, N), all row-major with leading
// dimensions lda/ldb/ldc (the distance between rows). When transA, A is stored (K, M) (so lda ≥ M), else
// (M, K) (lda ≥ K); likewise B is stored (N, K) when transB, else (K, N).
// beta == 0 overwrites C without reading it (NaN or garbage in C does not propagate), as in BLAS.
// K == 0 gives C = beta · C. `tf32` selects TF32 tensor cores on CUDA; the CPU ignores it.
#pragma once
#include <cstdint>

namespace axn::ops {

// A: (M, K) or (K, M) if transA; B: (K, N) or (N, K) if transB; C: (M, N)
// cblas_sgemm when built with OpenBLAS (AXN_WITH_OPENBLAS), else gemm_builtin_cpu.
void gemm_cpu(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc, bool tf32);

// The built-in GEMM (always compiled, so tests can check it whatever the build uses): cache-blocked with
// packed panels, a register-tiled micro-kernel the compiler vectorises, OpenMP over (row block, column
// block) tiles. On x86-64 the micro-kernel comes in copies for AVX-512, AVX2+FMA and the baseline ISA;
// `isa` Auto picks the best the CPU has (tests force each one the CPU supports).
enum class GemmIsa { Auto = 0, Generic = 1, Avx2 = 2, Avx512 = 3 };
const char* gemm_isa_name(GemmIsa isa);
bool gemm_builtin_isa_supported(GemmIsa isa);
void gemm_builtin_cpu(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, float beta, float* C, int ldc, bool tf32,
                      GemmIsa isa = GemmIsa::Auto);

// `batch` independent GEMMs: C + i·strideC = alpha · op(A + i·strideA) · op(B + i·strideB) + beta · (…)
// for i in [0, batch). A stride of 0 shares one operand across the batch (conv weights).
void gemm_strided_batched_cpu(bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                              int lda, int64_t strideA, const float* B, int ldb, int64_t strideB, float beta,
                              float* C, int ldc, int64_t strideC, int batch, bool tf32);

// Throws axn::Error naming `op` when a leading dimension is too small for the shapes (BLAS's rules:
// lda ≥ max(1, transA ? M : K), ldb ≥ max(1, transB ? K : N), ldc ≥ max(1, N)) or a size is negative.
void gemm_check_args(const char* op, bool transA, bool transB, int M, int N, int K, int lda, int ldb, int ldc);

#ifdef AXN_WITH_CUDA
// cuBLAS on axn::cuda::stream(), row-major through the operand swap (Cᵀ = op(B)ᵀ · op(A)ᵀ);
// strict fp32 (CUBLAS_DEFAULT_MATH) or TF32 tensor cores (CUBLAS_TF32_TENSOR_OP_MATH).
void gemm_cuda(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc, bool tf32);
// cublasSgemmStridedBatched, same conventions.
void gemm_strided_batched_cuda(bool transA, bool transB, int M, int N, int K, float alpha, const float* A,
                               int lda, int64_t strideA, const float* B, int ldb, int64_t strideB, float beta,
                               float* C, int ldc, int64_t strideC, int batch, bool tf32);
#endif

}  // namespace axn::ops
