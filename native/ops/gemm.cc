// CPU GEMM: OpenBLAS's cblas_sgemm when the build found it, else the built-in blocked GEMM below.
//
// The built-in GEMM follows the Goto/BLIS structure:
//   for each KC-deep slice of K:                       (B slice and A block stay in cache)
//     for each NC-wide block of columns:
//       pack B[pc:pc+kc, jc:jc+nc] into NR-wide panels (shared by all threads)
//       in parallel, for each (MC rows × NB columns) tile:
//         pack A[ic:ic+mc, pc:pc+kc] into MR-tall panels (per thread)
//         for each NR panel of the tile, for each MR panel: MR×NR micro-kernel over kc
// Packing zero-pads the edges, so the micro-kernel always computes a full MR×NR tile in registers and
// only the store is clipped. The micro-kernel is plain C++ with constant trip counts that GCC/Clang
// vectorise (GCC/Clang vector extensions). On x86-64 the copy for the best ISA the CPU has is picked at run
// time: an 8×32 tile with AVX-512, 6×16 with AVX2+FMA, else the baseline 4×8 (SSE2).
#include "gemm.h"
#include "../host_alloc.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "../common.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef AXN_WITH_OPENBLAS
#include <cblas.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define AXN_ALWAYS_INLINE inline __attribute__((always_inline))
#define AXN_RESTRICT __restrict__
#else
#define AXN_ALWAYS_INLINE inline
#define AXN_RESTRICT
#endif
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define AXN_GEMM_X86_DISPATCH 1
#endif

namespace axn::ops {

void gemm_check_args(const char* op, bool transA, bool transB, int M, int N, int K, int lda, int ldb, int ldc) {
  if (M < 0 || N < 0 || K < 0)
    fail(op, "negative GEMM size M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K),
         __FILE__, __LINE__);
  const int needA = std::max(1, transA ? M : K), needB = std::max(1, transB ? K : N), needC = std::max(1, N);
  if (lda < needA) fail(op, "lda " + std::to_string(lda) + " < " + std::to_string(needA), __FILE__, __LINE__);
  if (ldb < needB) fail(op, "ldb " + std::to_string(ldb) + " < " + std::to_string(needB), __FILE__, __LINE__);
  if (ldc < needC) fail(op, "ldc " + std::to_string(ldc) + " < " + std::to_string(needC), __FILE__, __LINE__);
}

namespace {

// C = beta · C over an M×N block (beta == 0 writes zeros without reading C).
void scale_c(int M, int N, float beta, float* C, int ldc) {
  if (M == 0 || N == 0 || beta == 1.0f) return;
#pragma omp parallel for if (static_cast<int64_t>(M) * N > (1 << 16))
  for (int i = 0; i < M; i++) {
    float* c = C + static_cast<int64_t>(i) * ldc;
    if (beta == 0.0f)
      std::fill(c, c + N, 0.0f);
    else
      for (int j = 0; j < N; j++) c[j] *= beta;
  }
}

// Packing buffers come from host::alloc (cached by size: the same sizes recur every call).
struct HostDeleter {
  size_t bytes;
  void operator()(float* p) const { host::free(p, bytes); }
};
using Buffer = std::unique_ptr<float, HostDeleter>;

Buffer alignedFloats(size_t n) {
  size_t bytes = n * sizeof(float);
  return Buffer(static_cast<float*>(host::alloc(bytes)), HostDeleter{bytes});
}

constexpr int KC = 256;   // depth of a packed slice: an MR×KC A panel + KC×NR B panel fit in L1
constexpr int NC = 4096;  // columns of B packed at once (KC×NC×4 = 4 MiB, shared, in L2/L3)
constexpr int NB = 256;   // columns per parallel task

// Pack rows [i0, i0+mc) × depth [p0, p0+kc) of op(A) into MR-tall panels: Ap[panel][k][MR], zero-padded.
template <int MR>
AXN_ALWAYS_INLINE void pack_a(bool transA, const float* A, int lda, int i0, int mc, int p0, int kc, float* Ap) {
  for (int ip = 0; ip < mc; ip += MR) {
    const int rows = std::min(MR, mc - ip);
    float* dst = Ap + static_cast<int64_t>(ip) * kc;
    if (transA) {  // op(A)(i, k) = A[k][i]: MR consecutive floats per k
      for (int k = 0; k < kc; k++) {
        const float* src = A + static_cast<int64_t>(p0 + k) * lda + i0 + ip;
        int r = 0;
        for (; r < rows; r++) dst[k * MR + r] = src[r];
        for (; r < MR; r++) dst[k * MR + r] = 0.0f;
      }
    } else {  // op(A)(i, k) = A[i][k]
      for (int r = 0; r < rows; r++) {
        const float* src = A + static_cast<int64_t>(i0 + ip + r) * lda + p0;
        for (int k = 0; k < kc; k++) dst[k * MR + r] = src[k];
      }
      for (int r = rows; r < MR; r++)
        for (int k = 0; k < kc; k++) dst[k * MR + r] = 0.0f;
    }
  }
}

// Pack the NR-wide panel `jp` of depth [p0, p0+kc) × columns [j0, j0+nc) of op(B): Bp[panel][k][NR].
template <int NR>
AXN_ALWAYS_INLINE void pack_b_panel(bool transB, const float* B, int ldb, int p0, int kc, int j0, int nc, int jp,
                                    float* Bp) {
  const int jj = jp * NR;
  const int cols = std::min(NR, nc - jj);
  float* dst = Bp + static_cast<int64_t>(jp) * kc * NR;
  if (!transB) {  // op(B)(k, j) = B[k][j]: NR consecutive floats per k
    for (int k = 0; k < kc; k++) {
      const float* src = B + static_cast<int64_t>(p0 + k) * ldb + j0 + jj;
      int c = 0;
      for (; c < cols; c++) dst[k * NR + c] = src[c];
      for (; c < NR; c++) dst[k * NR + c] = 0.0f;
    }
  } else {  // op(B)(k, j) = B[j][k]: read `cols` rows of B side by side, write dst in order
    const float* src[NR];
    for (int c = 0; c < cols; c++) src[c] = B + static_cast<int64_t>(j0 + jj + c) * ldb + p0;
    for (int k = 0; k < kc; k++) {
      int c = 0;
      for (; c < cols; c++) dst[k * NR + c] = src[c][k];
      for (; c < NR; c++) dst[k * NR + c] = 0.0f;
    }
  }
}

// GCC/Clang vector extensions: portable SIMD that compiles to SSE/AVX/NEON as the target allows.
typedef float v4sf __attribute__((vector_size(16)));
typedef float v8sf __attribute__((vector_size(32)));
typedef float v16sf __attribute__((vector_size(64)));

// acc = Σ_k a[k][0..MR) ⊗ b[k][0..NR); then C[0..mr, 0..nr) = alpha·acc + beta·C (beta == 0: no read).
// The MR × NR/lanes accumulators live in vector registers.
template <int MR, int NR, typename V>
AXN_ALWAYS_INLINE void micro_kernel(int kc, const float* AXN_RESTRICT a, const float* AXN_RESTRICT b,
                                    float* AXN_RESTRICT c, int ldc, float alpha, float beta, int mr, int nr) {
  constexpr int VL = sizeof(V) / sizeof(float);
  constexpr int NV = NR / VL;
  static_assert(NR % VL == 0, "NR must be a multiple of the vector width");
  V acc[MR][NV];
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < NV; v++) acc[i][v] = V{} ;
  for (int k = 0; k < kc; k++) {
    const float* ak = a + k * MR;
    V bv[NV];
    for (int v = 0; v < NV; v++) std::memcpy(&bv[v], b + k * NR + v * VL, sizeof(V));
    for (int i = 0; i < MR; i++) {
      const float ai = ak[i];
      for (int v = 0; v < NV; v++) acc[i][v] += ai * bv[v];
    }
  }
  if (mr == MR && nr == NR) {
    for (int i = 0; i < MR; i++) {
      float* ci = c + static_cast<int64_t>(i) * ldc;
      for (int v = 0; v < NV; v++) {
        V out = alpha * acc[i][v];
        if (beta != 0.0f) {
          V old;
          std::memcpy(&old, ci + v * VL, sizeof(V));
          out += beta * old;
        }
        std::memcpy(ci + v * VL, &out, sizeof(V));
      }
    }
  } else {
    float tile[MR][NR];
    std::memcpy(tile, acc, sizeof(tile));
    for (int i = 0; i < mr; i++) {
      float* ci = c + static_cast<int64_t>(i) * ldc;
      if (beta == 0.0f)
        for (int j = 0; j < nr; j++) ci[j] = alpha * tile[i][j];
      else
        for (int j = 0; j < nr; j++) ci[j] = alpha * tile[i][j] + beta * ci[j];
    }
  }
}

// GemmMath::Bf16: a packed panel's operands rounded to bfloat16 in place (packing is O(MK + KN), the
// product O(MNK): the pass costs nothing measurable). The zero padding stays zero.
void round_panel_bf16(float* p, int64_t n) {
  for (int64_t i = 0; i < n; i++) p[i] = round_bf16(p[i]);
}

// One parallel task: rows [ic, ic+mc) × packed columns [j0, j1) of the current NC block.
struct TileArgs {
  bool transA;
  const float* A;
  int lda;
  int ic, mc, pc, kc;
  int j0, j1;           // column range within the NC block (multiples of NR except the end)
  const float* Bp;      // packed B block
  float* Ap;            // this thread's packing buffer for A
  float* C;             // C at (0, jc)
  int ldc;
  float alpha, beta;
  bool bf16;            // round the packed A panel to bfloat16 (B's panels are rounded as they are packed)
};

template <int MR, int NR, typename V>
AXN_ALWAYS_INLINE void run_tile(const TileArgs& t) {
  pack_a<MR>(t.transA, t.A, t.lda, t.ic, t.mc, t.pc, t.kc, t.Ap);
  if (t.bf16) round_panel_bf16(t.Ap, static_cast<int64_t>((t.mc + MR - 1) / MR) * MR * t.kc);
  for (int jr = t.j0; jr < t.j1; jr += NR) {
    const float* bpanel = t.Bp + static_cast<int64_t>(jr / NR) * t.kc * NR;
    const int nr = std::min(NR, t.j1 - jr);
    for (int ir = 0; ir < t.mc; ir += MR) {
      float* c = t.C + static_cast<int64_t>(t.ic + ir) * t.ldc + jr;
      micro_kernel<MR, NR, V>(t.kc, t.Ap + static_cast<int64_t>(ir) * t.kc, bpanel, c, t.ldc, t.alpha, t.beta,
                              std::min(MR, t.mc - ir), nr);
    }
  }
}

using TileFn = void (*)(const TileArgs&);

// The blocked GEMM driver (threads, B packing) for one MR×NR tile shape; alpha != 0, K, M, N > 0.
template <int MR, int NR>
void gemm_blocked(TileFn tile, bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                  const float* B, int ldb, float beta, float* C, int ldc, bool bf16) {
  constexpr int MC = MR * 16;
  static_assert(NB % NR == 0 && NC % NB == 0, "gemm block sizes");
  int threads = 1;
#ifdef _OPENMP
  // Small products are not worth waking threads for.
  const double flops = 2.0 * M * N * K;
  threads = flops < 4e6 || omp_in_parallel() ? 1 : omp_get_max_threads();
#endif
  const int ncMax = std::min(NC, (N + NR - 1) / NR * NR);
  Buffer bp = alignedFloats(static_cast<size_t>(KC) * ncMax);
  Buffer ap = alignedFloats(static_cast<size_t>(threads) * MC * KC);
  float* Bp = bp.get();
  float* ApAll = ap.get();

#pragma omp parallel num_threads(threads)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    float* Ap = ApAll + static_cast<size_t>(tid) * MC * KC;
    for (int pc = 0; pc < K; pc += KC) {
      const int kc = std::min(KC, K - pc);
      const float betaEff = pc == 0 ? beta : 1.0f;
      for (int jc = 0; jc < N; jc += NC) {
        const int nc = std::min(NC, N - jc);
        const int panels = (nc + NR - 1) / NR;
#pragma omp for schedule(static)
        for (int jp = 0; jp < panels; jp++) {
          pack_b_panel<NR>(transB, B, ldb, pc, kc, jc, nc, jp, Bp);
          if (bf16) round_panel_bf16(Bp + static_cast<int64_t>(jp) * kc * NR, static_cast<int64_t>(kc) * NR);
        }
        // (implicit barrier: Bp complete)
        const int mBlocks = (M + MC - 1) / MC;
        const int nBlocks = (nc + NB - 1) / NB;
#pragma omp for collapse(2) schedule(dynamic)
        for (int ib = 0; ib < mBlocks; ib++) {
          for (int jb = 0; jb < nBlocks; jb++) {
            TileArgs t;
            t.transA = transA;
            t.A = A;
            t.lda = lda;
            t.ic = ib * MC;
            t.mc = std::min(MC, M - t.ic);
            t.pc = pc;
            t.kc = kc;
            t.j0 = jb * NB;
            t.j1 = std::min(nc, (jb + 1) * NB);
            t.Bp = Bp;
            t.Ap = Ap;
            t.C = C + jc;
            t.ldc = ldc;
            t.alpha = alpha;
            t.beta = betaEff;
            t.bf16 = bf16;
            tile(t);
          }
        }
        // (implicit barrier: every tile done before Bp is repacked)
      }
    }
  }
}

void tile_generic(const TileArgs& t) { run_tile<4, 8, v4sf>(t); }

#ifdef AXN_GEMM_X86_DISPATCH
__attribute__((target("avx2,fma"))) void tile_avx2(const TileArgs& t) { run_tile<6, 16, v8sf>(t); }
__attribute__((target("avx512f"))) void tile_avx512(const TileArgs& t) { run_tile<8, 32, v16sf>(t); }
#endif

GemmIsa bestIsa() {
  static const GemmIsa best = [] {
#ifdef AXN_GEMM_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return GemmIsa::Avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GemmIsa::Avx2;
#endif
    return GemmIsa::Generic;
  }();
  return best;
}

}  // namespace

const char* gemm_isa_name(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::Auto: return "auto";
    case GemmIsa::Generic: return "generic";
    case GemmIsa::Avx2: return "avx2";
    case GemmIsa::Avx512: return "avx512";
  }
  return "?";
}

bool gemm_builtin_isa_supported(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::Auto:
    case GemmIsa::Generic: return true;
    case GemmIsa::Avx2: return bestIsa() == GemmIsa::Avx2 || bestIsa() == GemmIsa::Avx512;
    case GemmIsa::Avx512: return bestIsa() == GemmIsa::Avx512;
  }
  return false;
}

void gemm_builtin_cpu(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, float beta, float* C, int ldc, GemmMath math, GemmIsa isa) {
  const bool bf16 = math == GemmMath::Bf16;
  gemm_check_args("gemm", transA, transB, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) {  // BLAS: A and B are not referenced
    scale_c(M, N, beta, C, ldc);
    return;
  }
  if (isa == GemmIsa::Auto) isa = bestIsa();
  AXN_CHECK(gemm_builtin_isa_supported(isa), "gemm", "this CPU (or build) has no " + std::string(gemm_isa_name(isa)) + " kernel");
#ifdef AXN_GEMM_X86_DISPATCH
  if (isa == GemmIsa::Avx512) {
    gemm_blocked<8, 32>(tile_avx512, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bf16);
    return;
  }
  if (isa == GemmIsa::Avx2) {
    gemm_blocked<6, 16>(tile_avx2, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bf16);
    return;
  }
#endif
  gemm_blocked<4, 8>(tile_generic, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bf16);
}

void gemm_cpu(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
              int ldb, float beta, float* C, int ldc, GemmMath math) {
#ifdef AXN_WITH_OPENBLAS
  if (math == GemmMath::Bf16) {  // OpenBLAS's sgemm cannot round its operands: the built-in GEMM does
    gemm_builtin_cpu(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, math, GemmIsa::Auto);
    return;
  }
  gemm_check_args("gemm", transA, transB, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) {  // handled here so that beta == 0 surely writes zeros over NaN
    scale_c(M, N, beta, C, ldc);
    return;
  }
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              A, lda, B, ldb, beta, C, ldc);
#else
  gemm_builtin_cpu(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, math, GemmIsa::Auto);
#endif
}

void gemm_strided_batched_cpu(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                              int64_t strideA, const float* B, int ldb, int64_t strideB, float beta, float* C,
                              int ldc, int64_t strideC, int batch, GemmMath math) {
  AXN_CHECK(batch >= 0, "gemm", "negative batch count " + std::to_string(batch));
#if !defined(AXN_WITH_OPENBLAS) && defined(_OPENMP)
  // Products too small to be threaded inside (see gemm_blocked) run side by side instead, one per
  // thread. (Not with OpenBLAS: its own thread pool must not be entered from several threads at once.)
  if (batch > 1 && 2.0 * M * N * K < 4e6 && !omp_in_parallel()) {
    gemm_check_args("gemm", transA, transB, M, N, K, lda, ldb, ldc);
    std::exception_ptr error;
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < batch; i++) {
      try {
        gemm_builtin_cpu(transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta,
                         C + i * strideC, ldc, math);
      } catch (...) {
#pragma omp critical(axn_gemm_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#endif
  // Each GEMM is threaded inside; the batch runs in order.
  for (int i = 0; i < batch; i++)
    gemm_cpu(transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta, C + i * strideC, ldc,
             math);
}

}  // namespace axn::ops
