// CUDA GEMM: cuBLAS on the addon's stream and handle, row-major through the operand swap.
// Row-major C (M×N) is column-major Cᵀ (N×M) with the same leading dimension, so
//   C = op(A)·op(B)  ⇔  Cᵀ = op(B)ᵀ·op(A)ᵀ,
// which is cublasSgemm(opB, opA, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc) (Caffe's caffe_gpu_gemm).
#include <algorithm>
#include <string>

#include "../cuda/context.h"
#include "../cuda/launch.h"
#include "gemm.h"

namespace axn::ops {

namespace {

// C = beta · C on an M×N row-major block (beta == 0 writes zeros): the K == 0 / alpha == 0 case.
__global__ void scale_rows_kernel(float* __restrict__ C, int M, int N, int ldc, float beta) {
  for (int i = blockIdx.y; i < M; i += gridDim.y) {
    float* c = C + static_cast<int64_t>(i) * ldc;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < N; j += gridDim.x * blockDim.x)
      c[j] = beta == 0.0f ? 0.0f : beta * c[j];
  }
}

void scale_c_cuda(int M, int N, float beta, float* C, int ldc, int batch, int64_t strideC) {
  if (beta == 1.0f) return;
  const int threads = 256;
  dim3 grid(std::min((N + threads - 1) / threads, 1024), std::min(M, 65535));
  for (int b = 0; b < batch; b++) {
    AXN_LAUNCH("gemm", scale_rows_kernel, grid, threads, 0, C + b * strideC, M, N, ldc, beta);
  }
}

inline cublasOperation_t op(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

}  // namespace

void gemm_cuda(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
               int ldb, float beta, float* C, int ldc, GemmMath math) {
  gemm_check_args("gemm", transA, transB, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) {
    scale_c_cuda(M, N, beta, C, ldc, 1, 0);
    return;
  }
  cuda::countCublasCall();
  if (math == GemmMath::Bf16) {  // float32 operands, bf16 tensor cores, float32 accumulation and output
    AXN_CUBLAS_CHECK(cublasGemmEx(cuda::cublas(), op(transB), op(transA), N, M, K, &alpha, B, CUDA_R_32F, ldb, A,
                                  CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F_FAST_16BF,
                                  CUBLAS_GEMM_DEFAULT),
                     "gemm");
    return;
  }
  cuda::setTf32(math == GemmMath::Tf32);
  AXN_CUBLAS_CHECK(cublasSgemm(cuda::cublas(), op(transB), op(transA), N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc),
                   "gemm");
}

void gemm_strided_batched_cuda(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                               int64_t strideA, const float* B, int ldb, int64_t strideB, float beta, float* C,
                               int ldc, int64_t strideC, int batch, GemmMath math) {
  gemm_check_args("gemm", transA, transB, M, N, K, lda, ldb, ldc);
  AXN_CHECK(batch >= 0, "gemm", "negative batch count " + std::to_string(batch));
  if (M == 0 || N == 0 || batch == 0) return;
  if (K == 0 || alpha == 0.0f) {
    scale_c_cuda(M, N, beta, C, ldc, batch, strideC);
    return;
  }
  if (math != GemmMath::Bf16) cuda::setTf32(math == GemmMath::Tf32);
  // Keep each call's batch within the grid's y/z limit, whatever cuBLAS maps the batch to.
  constexpr int kMaxBatch = 65535;
  for (int b0 = 0; b0 < batch; b0 += kMaxBatch) {
    const int nb = std::min(kMaxBatch, batch - b0);
    cuda::countCublasCall();
    if (math == GemmMath::Bf16) {
      AXN_CUBLAS_CHECK(cublasGemmStridedBatchedEx(cuda::cublas(), op(transB), op(transA), N, M, K, &alpha,
                                                  B + b0 * strideB, CUDA_R_32F, ldb, static_cast<long long>(strideB),
                                                  A + b0 * strideA, CUDA_R_32F, lda, static_cast<long long>(strideA),
                                                  &beta, C + b0 * strideC, CUDA_R_32F, ldc,
                                                  static_cast<long long>(strideC), nb, CUBLAS_COMPUTE_32F_FAST_16BF,
                                                  CUBLAS_GEMM_DEFAULT),
                       "gemm");
      continue;
    }
    AXN_CUBLAS_CHECK(cublasSgemmStridedBatched(cuda::cublas(), op(transB), op(transA), N, M, K, &alpha,
                                               B + b0 * strideB, ldb, static_cast<long long>(strideB),
                                               A + b0 * strideA, lda, static_cast<long long>(strideA), &beta,
                                               C + b0 * strideC, ldc, static_cast<long long>(strideC), nb),
                     "gemm");
  }
}

void gemm_bf16_cuda(bool transA, bool transB, int M, int N, int K, float alpha, const bf16_t* A, int lda,
                    const bf16_t* B, int ldb, float beta, void* C, bool cBf16, int ldc) {
  gemm_check_args("gemm", transA, transB, M, N, K, lda, ldb, ldc);
  // The driver never asks for K == 0 or alpha == 0 here (an empty batch returns before its GEMMs).
  AXN_CHECK(K > 0 && alpha != 0.0f, "gemm", "a bf16-storage GEMM needs K > 0 and alpha != 0");
  if (M == 0 || N == 0) return;
  cuda::countCublasCall();
  AXN_CUBLAS_CHECK(cublasGemmEx(cuda::cublas(), op(transB), op(transA), N, M, K, &alpha, B, CUDA_R_16BF, ldb, A,
                                CUDA_R_16BF, lda, &beta, C, cBf16 ? CUDA_R_16BF : CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT),
                   "gemm");
}

}  // namespace axn::ops
