// The emulated device's cuBLAS: the entry points native/cuda/cublas_compat.h declares, with cuBLAS's
// column-major semantics, transposes, leading dimensions, strides, argument checks and status codes,
// run in order on the handle's stream like any other device work.
//
// Arithmetic: each output element is one dot product accumulated in float32 with fused multiply-adds,
// in k order (as a tensor-core or FMA pipeline accumulates, without cuBLAS's blocking or split-K), then
// C = alpha·acc + beta·C (C is not read when beta == 0, as cuBLAS promises). Under
// CUBLAS_TF32_TENSOR_OP_MATH the inputs are first cut to TF32 (10 explicit mantissa bits) by truncation,
// the larger of the two errors hardware may make (truncation or rounding), so that a TF32 tolerance that
// holds here holds on the GPU. Operand ranges are checked against the live device allocations before
// the call returns: an out-of-range operand is CUBLAS_STATUS_EXECUTION_FAILED and a sticky
// cudaErrorIllegalAddress, as the faulting kernel of a real cuBLAS would leave.
// cublasGemmEx / cublasGemmStridedBatchedEx take float32 operands (CUDA_R_32F for A, B and C) with compute
// type CUBLAS_COMPUTE_32F (the handle's math mode), _PEDANTIC (strict fp32), _FAST_TF32 (TF32 cut) or
// _FAST_16BF: the inputs cut to bfloat16 (7 explicit mantissa bits), again by truncation, the larger error
// (cuBLAS does not document the conversion's rounding; the CPU oracle rounds to nearest even); or bf16
// operands in memory (CUDA_R_16BF A and B, C CUDA_R_32F or CUDA_R_16BF) with CUBLAS_COMPUTE_32F: widened
// exactly, a bf16 C cut back by truncation. Other data types answer CUBLAS_STATUS_NOT_SUPPORTED.
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../cublas_compat.h"
#include "internal.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t mode = CUBLAS_DEFAULT_MATH;
  void* workspace = nullptr;
  size_t workspaceBytes = 0;
};

namespace axn::emu {
namespace {

std::mutex gMu;
std::set<cublasHandle_t> gHandles;

bool live(cublasHandle_t h) {
  std::lock_guard<std::mutex> lk(gMu);
  return h && gHandles.count(h);
}

// v with the mantissa bits outside `keep` cleared (truncation); a NaN stays the NaN it is. The NaN test is
// made on the bits: with std::isnan(v) before the mask, g++ 12.2 at -O2 dropped the mask altogether in the
// bf16 branch of cut() below (the inputs reached the products uncut; test/ops/bf16.test.ts caught it).
float keepBits(float v, uint32_t keep) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x007FFFFFu)) return v;
  b &= keep;
  std::memcpy(&v, &b, 4);
  return v;
}
// TF32: sign, exponent and the top 10 mantissa bits.
float tf32(float v) { return keepBits(v, 0xFFFFE000u); }
// bfloat16: sign, exponent and the top 7 mantissa bits.
float bf16(float v) { return keepBits(v, 0xFFFF0000u); }

// What the inputs are cut to before the float32 products.
enum Cut { kNone = 0, kTf32 = 1, kBf16 = 2 };
float cut(float v, int c) {
  if (c == kTf32) return tf32(v);
  if (c == kBf16) return bf16(v);
  return v;
}

// acc[i] = fma(a[i], b, acc[i]) for i < m: the same exactly rounded result with or without FMA hardware.
__attribute__((target("fma"), no_sanitize_address)) void fmaColumnHw(float* acc, const float* a, float b, int m) {
  for (int i = 0; i < m; i++) acc[i] = __builtin_fmaf(a[i], b, acc[i]);
}
__attribute__((no_sanitize_address)) void fmaColumnSw(float* acc, const float* a, float b, int m) {
  for (int i = 0; i < m; i++) acc[i] = std::fma(a[i], b, acc[i]);
}
const bool kHaveFma = __builtin_cpu_supports("fma");

struct Gemm {
  bool ta, tb;
  int cut;  // Cut
  int m, n, k, lda, ldb, ldc;
  float alpha, beta;
  const float *A, *B;
  float* C;
  long long sA, sB, sC;
  int batch;
};

// One column-major GEMM: C (m×n) = alpha·op(A) (m×k) · op(B) (k×n) + beta·C. Operands already checked.
__attribute__((no_sanitize_address)) void gemmOne(const Gemm& g, const float* A, const float* B, float* C) {
  const int m = g.m, n = g.n, k = g.k;
  if (k == 0 || g.alpha == 0.0f) {
    for (int j = 0; j < n; j++)
      for (int i = 0; i < m; i++) {
        float& c = C[i + (int64_t)j * g.ldc];
        c = g.beta == 0.0f ? 0.0f : g.beta * c;
      }
    return;
  }
  // op(A) packed column-major m×k (contiguous columns), cut to TF32 or bf16 when asked.
  std::vector<float> ap((size_t)m * k);
  for (int l = 0; l < k; l++)
    for (int i = 0; i < m; i++) {
      const float v = g.ta ? A[l + (int64_t)i * g.lda] : A[i + (int64_t)l * g.lda];
      ap[i + (size_t)l * m] = cut(v, g.cut);
    }
#pragma omp parallel
  {
    std::vector<float> acc(m);
#pragma omp for schedule(static)
    for (int j = 0; j < n; j++) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int l = 0; l < k; l++) {
        float bv = g.tb ? B[j + (int64_t)l * g.ldb] : B[l + (int64_t)j * g.ldb];
        bv = cut(bv, g.cut);
        if (kHaveFma) fmaColumnHw(acc.data(), ap.data() + (size_t)l * m, bv, m);
        else fmaColumnSw(acc.data(), ap.data() + (size_t)l * m, bv, m);
      }
      float* c = C + (int64_t)j * g.ldc;
      for (int i = 0; i < m; i++) c[i] = g.beta == 0.0f ? g.alpha * acc[i] : std::fma(g.alpha, acc[i], g.beta * c[i]);
    }
  }
}

// The element offsets [lo, hi] a column-major rows×cols operand with leading dimension ld and batch
// stride touches over `batch` matrices.
void extent(int rows, int cols, int ld, long long stride, int batch, long long* lo, long long* hi) {
  const long long last = (long long)(cols - 1) * ld + (rows - 1);
  const long long span = (long long)(batch - 1) * stride;
  *lo = std::min(0LL, span);
  *hi = last + std::max(0LL, span);
}

// The bytes of a rows×cols operand (leading dimension ld) over `batch` matrices `stride` elements apart:
// each element once (the ld padding between columns is not read). A stride of 0 is one matrix read
// `batch` times (the weights of a strided-batched convolution); matrices that overlap (0 < |stride| <
// their extent) count their whole extent, an upper bound, and set *overlap.
double operandBytes(int rows, int cols, int ld, long long stride, int batch, bool* overlap, int elem = 4) {
  const double one = (double)rows * cols * elem;
  if (batch <= 1 || stride == 0) return one;
  const long long span = (long long)(cols - 1) * ld + rows;
  if (std::llabs(stride) >= span) return one * batch;
  *overlap = true;
  long long lo, hi;
  extent(rows, cols, ld, stride, batch, &lo, &hi);
  return (double)(hi - lo + 1) * elem;
}

cublasStatus_t checkOperand(const char* fn, const char* name, const void* p, int rows, int cols, int ld,
                            long long stride, int batch, int elem = 4) {
  long long lo, hi;
  extent(rows, cols, ld, stride, batch, &lo, &hi);
  std::string why;
  const char* first = static_cast<const char*>(p) + lo * elem;
  const size_t bytes = (size_t)(hi - lo + 1) * elem;
  if (p && inDeviceMemory(first, bytes, false, &why)) return CUBLAS_STATUS_SUCCESS;
  fault(cudaErrorIllegalAddress, std::string(fn) + ": operand " + name + " (" + hexPtr(p) + ", " + std::to_string(rows) +
                                     "×" + std::to_string(cols) + ", ld " + std::to_string(ld) +
                                     (batch > 1 ? ", " + std::to_string(batch) + " matrices" : "") + "): " +
                                     (p ? why : "null pointer"));
  return CUBLAS_STATUS_EXECUTION_FAILED;
}

// A float32 view of a bf16 operand's extent, made when the call runs: `base` is where element 0 lands.
struct Widened {
  std::vector<float> v;
  float* base = nullptr;
};
Widened widen(const void* p, int rows, int cols, int ld, long long stride, int batch) {
  long long lo, hi;
  extent(rows, cols, ld, stride, batch, &lo, &hi);
  Widened w;
  w.v.resize((size_t)(hi - lo + 1));
  const uint16_t* src = static_cast<const uint16_t*>(p) + lo;
  for (size_t i = 0; i < w.v.size(); i++) {
    const uint32_t b = (uint32_t)src[i] << 16;
    std::memcpy(&w.v[i], &b, 4);
  }
  w.base = w.v.data() - lo;
  return w;
}

// The GEMM of every entry point. abElem / cElem: 4 for float32 operands, 2 for bf16 ones (cublasGemmEx with
// CUDA_R_16BF: widened to float32 exactly, and a bf16 C written back cut by truncation, the larger error).
cublasStatus_t gemm(const char* fn, cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                    int k, const float* alpha, const void* Av, int lda, long long sA, const void* Bv, int ldb,
                    long long sB, const float* beta, void* Cv, int ldc, long long sC, int batch, int cutEx = -1,
                    int abElem = 4, int cElem = 4) {
  const float* A = static_cast<const float*>(Av);
  const float* B = static_cast<const float*>(Bv);
  float* C = static_cast<float*>(Cv);
  if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  const bool opsOk = (transa == CUBLAS_OP_N || transa == CUBLAS_OP_T || transa == CUBLAS_OP_C) &&
                     (transb == CUBLAS_OP_N || transb == CUBLAS_OP_T || transb == CUBLAS_OP_C);
  if (!opsOk || m < 0 || n < 0 || k < 0 || batch < 0 || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;  // real data: C is T
  const int aRows = ta ? k : m, aCols = ta ? m : k, bRows = tb ? n : k, bCols = tb ? k : n;
  if (lda < std::max(1, aRows) || ldb < std::max(1, bRows) || ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
  countCublasCall();
  {
    auto al = [](const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15) == 0; };
    const bool strided = batch > 1;
    const int qa = 16 / abElem, qc = 16 / cElem;  // elements per 16 bytes
    if (lda % qa || ldb % qa || ldc % qc || !al(A) || !al(B) || !al(C) ||
        (strided && (sA % qa || sB % qa || sC % qc)))
      countMisalignedGemm(std::string(fn) + ": m " + std::to_string(m) + " n " + std::to_string(n) + " k " +
                          std::to_string(k) + " lda " + std::to_string(lda) + " ldb " + std::to_string(ldb) + " ldc " +
                          std::to_string(ldc) + (strided ? " strides " + std::to_string(sA) + "/" + std::to_string(sB) +
                                                               "/" + std::to_string(sC)
                                                         : "") +
                          " A%16 " + std::to_string(reinterpret_cast<uintptr_t>(A) & 15) + " B%16 " +
                          std::to_string(reinterpret_cast<uintptr_t>(B) & 15) + " C%16 " +
                          std::to_string(reinterpret_cast<uintptr_t>(C) & 15));
  }
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  const float a = *alpha, b = *beta;  // CUBLAS_POINTER_MODE_HOST: read at the call
  if (b == 1.0f && (a == 0.0f || k == 0)) return CUBLAS_STATUS_SUCCESS;
  const bool readsAB = a != 0.0f && k > 0;
  if (readsAB) {
    if (checkOperand(fn, "A", A, aRows, aCols, lda, sA, batch, abElem) != CUBLAS_STATUS_SUCCESS ||
        checkOperand(fn, "B", B, bRows, bCols, ldb, sB, batch, abElem) != CUBLAS_STATUS_SUCCESS)
      return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  if (checkOperand(fn, "C", C, m, n, ldc, sC, batch, cElem) != CUBLAS_STATUS_SUCCESS) return CUBLAS_STATUS_EXECUTION_FAILED;
  const int c = cutEx >= 0 ? cutEx : h->mode == CUBLAS_TF32_TENSOR_OP_MATH ? kTf32 : kNone;
  Gemm g{ta, tb, c, m, n, k, lda, ldb, ldc, a, b, A, B, C, sA, sB, sC, batch};
  const bool skip = skipKernels();  // AXN_EMU_SKIP_KERNELS=1: recorded, not run
  auto run = [g, skip, abElem, cElem, aRows, aCols, bRows, bCols, readsAB, Av, Bv, Cv] {
    if (skip) return true;
    if (abElem == 4 && cElem == 4) {
      for (int i = 0; i < g.batch; i++) gemmOne(g, g.A + i * g.sA, g.B + i * g.sB, g.C + i * g.sC);
      return true;
    }
    // bf16 storage: float32 views of the operands, the float32 GEMM, C cut back to bf16.
    Widened wa, wb, wc;
    if (readsAB) {
      wa = widen(Av, aRows, aCols, g.lda, g.sA, g.batch);
      wb = widen(Bv, bRows, bCols, g.ldb, g.sB, g.batch);
    }
    float* c = g.C;
    if (cElem == 2) {
      wc = widen(Cv, g.m, g.n, g.ldc, g.sC, g.batch);
      c = wc.base;
    }
    for (int i = 0; i < g.batch; i++)
      gemmOne(g, readsAB ? wa.base + i * g.sA : nullptr, readsAB ? wb.base + i * g.sB : nullptr, c + i * g.sC);
    if (cElem == 2) {
      uint16_t* out = static_cast<uint16_t*>(Cv);
      for (int i = 0; i < g.batch; i++)
        for (int j = 0; j < g.n; j++)
          for (int r = 0; r < g.m; r++) {
            const long long e = i * g.sC + (long long)j * g.ldc + r;
            uint32_t b;
            std::memcpy(&b, &wc.base[e], 4);
            out[e] = (uint16_t)(b >> 16);
          }
    }
    return true;
  };
  cudaError_t e;
  if (trafficCounting()) {
    // What the arguments make the call read and write (each operand element once: an ideal cache within
    // the call), beside the pages the counter measures when it runs.
    TrafficRecord rec;
    rec.kind = TrafficRecord::Cublas;
    rec.name = fn;
    rec.ta = ta, rec.tb = tb, rec.m = m, rec.n = n, rec.k = k, rec.lda = lda, rec.ldb = ldb, rec.ldc = ldc;
    rec.batch = batch, rec.strideA = sA, rec.strideB = sB, rec.strideC = sC, rec.alpha = a, rec.beta = b;
    rec.tf32 = g.cut == kTf32;
    rec.bf16 = g.cut == kBf16 || abElem == 2;
    bool overlap = false;
    if (readsAB)
      rec.argReadBytes = operandBytes(aRows, aCols, lda, sA, batch, &overlap, abElem) + operandBytes(bRows, bCols, ldb, sB, batch, &overlap, abElem);
    const double cBytes = operandBytes(m, n, ldc, sC, batch, &overlap, cElem);
    if (b != 0.0f) rec.argReadBytes += cBytes;
    rec.argWriteBytes = cBytes;
    rec.overlap = overlap;
    rec.flops = readsAB ? 2.0 * m * n * (double)k * batch : 0.0;
    if (skip) {
      rec.pagesValid = false;
      e = enqueue(h->stream, [rec](ExecError&) {
        addTrafficRecord(rec);
        return true;
      });
    } else {
      e = enqueue(h->stream, [run, rec](ExecError&) { return runCounted(rec, run); });
    }
  } else {
    e = enqueue(h->stream, [run](ExecError&) { return run(); });
  }
  if (e == cudaErrorInvalidResourceHandle) return CUBLAS_STATUS_INVALID_VALUE;
  return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

// The cut a cublasGemmEx compute type asks for on float32 operands, or -1 when it is not supported here.
int exCut(cublasHandle_t h, cudaDataType a, cudaDataType b, cudaDataType c, cublasComputeType_t t) {
  if (a == CUDA_R_16BF && b == CUDA_R_16BF && (c == CUDA_R_32F || c == CUDA_R_16BF))
    return t == CUBLAS_COMPUTE_32F || t == CUBLAS_COMPUTE_32F_PEDANTIC ? kNone : -1;  // bf16 in memory: nothing to cut
  if (a != CUDA_R_32F || b != CUDA_R_32F || c != CUDA_R_32F) return -1;
  switch (t) {
    case CUBLAS_COMPUTE_32F: return h && h->mode == CUBLAS_TF32_TENSOR_OP_MATH ? kTf32 : kNone;
    case CUBLAS_COMPUTE_32F_PEDANTIC: return kNone;
    case CUBLAS_COMPUTE_32F_FAST_TF32: return kTf32;
    case CUBLAS_COMPUTE_32F_FAST_16BF: return kBf16;
    default: return -1;
  }
}

}  // namespace
}  // namespace axn::emu

using namespace axn::emu;

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  if (!available(nullptr) || stickyError() != cudaSuccess) return CUBLAS_STATUS_NOT_INITIALIZED;
  auto* h = new cublasContext();
  std::lock_guard<std::mutex> lk(gMu);
  gHandles.insert(h);
  *handle = h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
  std::lock_guard<std::mutex> lk(gMu);
  if (!h || !gHandles.erase(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
  if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_TENSOR_OP_MATH && mode != CUBLAS_PEDANTIC_MATH &&
      mode != CUBLAS_TF32_TENSOR_OP_MATH)
    return CUBLAS_STATUS_INVALID_VALUE;
  h->mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t h, void* workspace, size_t bytes) {
  if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (bytes > 0 && (!workspace || !inDeviceMemory(workspace, bytes, false, nullptr))) return CUBLAS_STATUS_INVALID_VALUE;
  h->workspace = workspace;
  h->workspaceBytes = bytes;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "the functionality requested requires some license";
  }
  return "unknown cuBLAS status";
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                              const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                              float* C, int ldc) {
  return gemm("cublasSgemm", h, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                                         int n, int k, const float* alpha, const float* A, int lda, long long strideA,
                                         const float* B, int ldb, long long strideB, const float* beta, float* C,
                                         int ldc, long long strideC, int batchCount) {
  return gemm("cublasSgemmStridedBatched", h, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta,
              C, ldc, strideC, batchCount);
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  const int c = exCut(h, Atype, Btype, Ctype, computeType);
  if (c < 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (algo != CUBLAS_GEMM_DEFAULT) return CUBLAS_STATUS_INVALID_VALUE;
  return gemm("cublasGemmEx", h, transa, transb, m, n, k, static_cast<const float*>(alpha), A, lda, 0, B, ldb, 0,
              static_cast<const float*>(beta), C, ldc, 0, 1, c, Atype == CUDA_R_16BF ? 2 : 4, Ctype == CUDA_R_16BF ? 2 : 4);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                                          int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda,
                                          long long strideA, const void* B, cudaDataType Btype, int ldb,
                                          long long strideB, const void* beta, void* C, cudaDataType Ctype, int ldc,
                                          long long strideC, int batchCount, cublasComputeType_t computeType,
                                          cublasGemmAlgo_t algo) {
  if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  const int c = exCut(h, Atype, Btype, Ctype, computeType);
  if (c < 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (algo != CUBLAS_GEMM_DEFAULT) return CUBLAS_STATUS_INVALID_VALUE;
  return gemm("cublasGemmStridedBatchedEx", h, transa, transb, m, n, k, static_cast<const float*>(alpha), A, lda,
              strideA, B, ldb, strideB, static_cast<const float*>(beta), C, ldc, strideC, batchCount, c,
              Atype == CUDA_R_16BF ? 2 : 4, Ctype == CUDA_R_16BF ? 2 : 4);
}

}  // extern "C"
