// 2-D convolution (cross-correlation, as PyTorch and Caffe), NCHW, grouped, as im2col + GEMM.
//
//   x: (N, C, H, W)   w: (K, C/G, kh, kw)   b: (K) or null   y: (N, K, Ho, Wo)
//   Ho = (H + 2·ph − kh) / sh + 1,  Wo = (W + 2·pw − kw) / sw + 1,  P = Ho·Wo
//
// Forward, per chunk of n images (as many as fit in the workspace cap, at least one):
//   col[n][C·kh·kw][P] = im2col(x)                                   (layout "image-major")
//   for each group g: y[i, g] (Kg×P) = w_g (Kg×CgRS) · col[i, g] (CgRS×P) for every image i of the chunk,
//   one strided-batched GEMM with a weight stride of 0, writing NCHW directly; with a bias, y is first
//   filled with b and the GEMM accumulates (beta = 1), which saves a pass over y.
//   A 1×1 convolution with stride 1 and no padding uses x itself as col.
// Backward:
//   db[k] = Σ_{n,p} dy[n, k, p]                                     (a reduction, independent of chunks)
//   dx:  dcol[i, g] (CgRS×P) = w_gᵀ · dy[i, g] (strided-batched), then dx = col2im(dcol) (a gather per
//        input pixel: every dx element is written once, no atomics)
//   dw:  col'[C·kh·kw][n][P] = im2col(x) in "row-major over the batch" layout, dyᵀ[K][n][P] = dy permuted,
//        then per group one GEMM dw_g (Kg×CgRS) (+)= dyᵀ_g (Kg × n·P) · col'_gᵀ (n·P × CgRS): the whole
//        chunk is one GEMM with a long reduction dimension; chunks after the first accumulate (beta = 1).
// The workspace holds col (forward) or col' + dyᵀ (backward; dcol reuses col''s memory).
// Fused ReLU (relu = true; a Conv2d followed by a ReLU in a Sequential): y = max(conv(x) + b, 0). On CUDA
// the GEMMs write y (beta = 0) and one kernel adds the bias and applies the ReLU, in the launch that filled
// in the bias before the GEMMs (with a bias: one launch fewer). The emulated cuBLAS, like cuBLAS's
// epilogue, computes alpha·acc + beta·C with one rounding, so there the values are the unfused path's bit
// for bit; a GPU's cuBLAS may choose another kernel for beta = 0 than for beta = 1, so there they agree to
// GEMM rounding (and the ReLU mask may differ where a pre-activation is within rounding of 0). On the CPU
// the bias fill, GEMM and an in-place ReLU pass run as unfused, in one task: the same bits.
// Its backward takes the fused forward's output (reluY): dy is the gradient at the ReLU's output, and
// one pass writes dz = dy where y > 0 (else 0) while summing db from it — the ReLU's backward and the bias
// gradient in one kernel — then the GEMMs run on dz. dz goes into scratch memory, or over dy itself when
// the caller gives dy up (reluInPlace: Sequential does, for the gradients it owns), which keeps the peak
// memory of the unfused path (there dy is freed before the convolution's backward).
// The driver (chunking, GEMM calls, workspace) is shared by both devices and lives in conv2d.cc, where
// it can use axn::Scratch; conv2d.cu holds only the kernels and their launchers.
//
// Two paths (ConvPath), the same function, the same chunking rule (the workspace cap):
//  Columns (the default; issue 19 item 1). Columns are laid out "batch-row-major" over the whole chunk:
//   col'[r][i·P + p] with a row stride ld = pad4(n·P) (a multiple of 4 floats: 16 bytes), and the rows of
//   each group padded to CgRSp = pad4(CgRS) with zero rows (conv1's 363 → 364); the weights then go to the
//   GEMMs as a (K × CgRSp) copy with zero columns (no copy when CgRS is already a multiple of 4). Every
//   GEMM's leading dimensions and operand pointers are then multiples of 16 bytes (cuBLAS's aligned TF32
//   kernels), and each layer is one GEMM per group over the whole chunk:
//     forward   Y'_g (Kg × n·P, ld) = w_g (Kg × CgRSp) · col'_g (CgRSp × n·P); then one epilogue kernel
//               reads Y' in its (K, n, P) layout and writes y in NCHW with the bias and the ReLU (the
//               permute folded into the bias+ReLU pass: the same bytes as the in-place bias+ReLU).
//     backward  one pass over dy writes dz = relu_bwd(dy, y) (or dy) in the (K, N, P) layout (row stride
//               ldZ = pad4(N·P)) while summing db (the same sums, in the same order, as bias_grad);
//               dw_g (Kg × CgRSp) (+)= dz_g (Kg × n·P) · col'_gᵀ: the chunk's columns read as they are;
//               dcol'_g (CgRSp × n·P) = w_gᵀ · dz_g, written over col' (after the dw GEMM has read it);
//               dx = col2im(dcol') reading the batch-row-major layout.
//   Kept columns: when the whole batch's columns and the forward's Y' fit the workspace cap
//   (conv2d_columns_floats > 0), a training forward may write its columns into a buffer the caller keeps
//   (lib/nn/conv2d.ts does), and the backward reads them instead of computing im2col again; the backward
//   overwrites them (dcol'), so they serve one backward. Otherwise the backward recomputes them per chunk
//   (chunks of a multiple of 4 images where possible, so every chunk's dz pointer stays 16-byte aligned).
//   Peak memory: the forward's workspace is columns + Y' (Y' replaces nothing: the output y is separate);
//   the backward's is dz (replacing the legacy dyᵀ) + the columns (kept, or one chunk's) — dcol' reuses them.
//   reluInPlace has no effect on this path: dz has another layout than dy, so it always goes to scratch.
//  Legacy (the path before issue 19; kept for the GPU check's A/B): image-major columns, a strided-batched
//   GEMM per image writing NCHW, im2col again and a permute of dz in the backward, unaligned leading
//   dimensions — as described above. A 1×1 convolution with stride 1 and no padding (x is its own column
//   matrix) always takes this path.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include "../common.h"
#include "gemm.h"

namespace axn::ops {

struct Conv2dDims {
  int N, C, H, W;      // input
  int K, kh, kw;       // output channels, kernel size
  int sh, sw, ph, pw;  // stride, padding
  int groups;
  int Ho() const { return (H + 2 * ph - kh) / sh + 1; }
  int Wo() const { return (W + 2 * pw - kw) / sw + 1; }
};

// Default caps on the column workspace (bytes); a call may pass its own (0 = default).
constexpr size_t kConvWorkspaceCuda = size_t(1) << 30;  // 1 GiB
constexpr size_t kConvWorkspaceCpu = size_t(256) << 20;  // 256 MiB

// The bias gradient's reduction (see bias_grad_cpu): B accumulators (CUDA: threads per stage-1 block),
// and the chunk of images one (channel, chunk) pair sums: T = max(1, ⌈8192 / P⌉) images, so that a pair
// sums between 8,192 and 8,192 + P elements (T·P < 16,384 when T > 1), or one image when P ≥ 8,192.
constexpr int kBiasGradLanes = 256;
constexpr int64_t kBiasGradChunkElements = 8192;
inline int bias_grad_chunk_images(int N, int64_t P) {
  const int64_t t = P >= kBiasGradChunkElements ? 1 : (kBiasGradChunkElements + P - 1) / std::max<int64_t>(P, 1);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(t, std::max(N, 1))));
}
// J: the number of chunks (0 for an empty batch).
inline int bias_grad_chunks(int N, int T) { return N <= 0 ? 0 : (N + T - 1) / T; }
// The legacy bias gradient (`legacy` below; setBiasGradientPath('legacy'), kept for the A/B of issue 19's
// lever 3): one reduction per channel, B' = kBiasGradLegacyThreads accumulators (CUDA: one block per
// channel), pixel p of every image to acc[p mod B'], each summed in ascending (image, p) from 0.0; then
// per group of 32 (a warp) the tree for (s = 16; s > 0; s /= 2) acc[t] += acc[t + s] for t < s, and the
// same tree over the 32 groups' roots; db[k] = (float) the root. The CPU repeats it (same bits).
constexpr int kBiasGradLegacyThreads = 1024;

// Throws axn::Error when the dimensions are inconsistent (TypeScript validates first).
void conv2d_check_dims(const char* op, const Conv2dDims& d);

enum class ConvPath { Columns = 0, Legacy = 1 };
// x is its own column matrix (1×1, stride 1, no padding): the legacy path, with no columns.
inline bool conv2d_identity(const Conv2dDims& d) {
  return d.kh == 1 && d.kw == 1 && d.sh == 1 && d.sw == 1 && d.ph == 0 && d.pw == 0;
}
// bf16 storage on the columns path: CUDA in GemmMath::Bf16 keeps its columns, dz and the weights' GEMM
// copy in bfloat16 (rounded to nearest even as they are written), the GEMMs reading them as they are
// (cublasGemmEx, CUDA_R_16BF) and writing dcol' in bf16 too: half the bytes of the step's largest buffers.
// Rows and leading dimensions are then padded to multiples of 8 elements (16 bytes), not 4. The CPU keeps
// float32 columns: its GEMM rounds the operands as it packs them, and it rounds dcol' to bf16 before
// col2im, so it computes what the GPU computes.
inline bool conv_bf16_storage(bool cuda, GemmMath math) { return cuda && math == GemmMath::Bf16; }
// The elements per 16 bytes of the columns path's buffers: 4 float32, 8 bf16.
inline int64_t conv_quantum(bool bf16) { return bf16 ? 8 : 4; }
inline int64_t conv_padq(int64_t v, int64_t q) { return (v + q - 1) / q * q; }
// The float32-sized slots of the whole batch's columns on the columns path (rows G·CgRSp, row stride
// padq(N·P); bf16 storage: half as many), or 0 when they cannot be kept: an identity convolution, an
// empty batch, or columns + Y' over the cap (workspaceBytes; 0 = the device's default).
int64_t conv2d_columns_floats(const Conv2dDims& d, size_t workspaceBytes, bool cuda, GemmMath math = GemmMath::Fp32);

// x: (N, C, H, W), w: (K, C/G, kh, kw), b: (K) or null -> y: (N, K, Ho, Wo); relu: y = max(y, 0) fused.
// columns: null, or a buffer of conv2d_columns_floats(d, workspaceBytes, false) floats that receives the
// whole batch's columns for the backward (path Columns only).
// TX, TY: x's and y's element types, float or bf16_t (bfloat16 activations; each independently: a first
// layer takes float32 pixels and may give bf16). bf16 activations take the columns path only (the legacy
// path and a 1×1 convolution refuse them with an error): im2col widens x's values (and, with bf16 column
// storage, stores them as they are: already bf16); the epilogue computes in float32 and rounds y once.
template <class TX, class TY>
void conv2d_forward_cpu(const TX* x, const float* w, const float* b, TY* y, const Conv2dDims& d,
                        size_t workspaceBytes, GemmMath math, bool relu, ConvPath path = ConvPath::Columns,
                        float* columns = nullptr);
// dy: (N, K, Ho, Wo), x: (N, C, H, W), w: (K, C/G, kh, kw) -> dx: (N, C, H, W) or null (skipped),
// dw: (K, C/G, kh, kw), db: (K) or null (skipped). dx, dw and db are overwritten. reluY: (N, K, Ho, Wo),
// the fused (relu = true) forward's output, or null: with it, dy is the gradient at the ReLU's output;
// reluInPlace: dy is overwritten with the gradient at the convolution's output (dy must be writable).
// columns: null, or the forward's kept columns (read, then overwritten).
// TX: x's element type, TY: reluY's (the forward's TY); bf16 ones take the columns path only. dy, dx, dw
// and db are float32.
template <class TX, class TY>
void conv2d_backward_cpu(const float* dy, const TX* x, const float* w, float* dx, float* dw, float* db,
                         const Conv2dDims& d, size_t workspaceBytes, GemmMath math, const TY* reluY,
                         bool reluInPlace, ConvPath path = ConvPath::Columns, float* columns = nullptr,
                         bool legacyBiasGrad = false);

// The pieces, per device. Column layout: element (image i, row r = (c·kh + ki)·kw + kj, pixel p) sits
// at col[i·strideImage + r·strideRow + p]. Image-major: strideImage = C·kh·kw·P, strideRow = P;
// batch-row-major: strideImage = P, strideRow = n·P.
// groupRows: the rows of one group in col; 0 = unpadded (Cg·kh·kw). Channel c's rows start at
// (c / Cg)·groupRows + (c mod Cg)·kh·kw; the padding rows are not written.
// x: (n, C, H, W) -> col (x float32, or bf16 activations widened)
void im2col_cpu(const float* x, float* col, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                int64_t groupRows = 0);
void im2col_cpu(const bf16_t* x, float* col, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                int64_t groupRows = 0);
// col -> x: (n, C, H, W), overwritten: x[i, c, h, w] = Σ of the col entries that im2col copied from it,
// for each (in ascending ki, then kj order).
void col2im_cpu(const float* col, float* x, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                int64_t groupRows = 0);
// dst (rows × ldDst) = src (rows × cols, dense), the columns cols..ldDst−1 of each row zero (pad, or with
// ldDst = cols a dense copy); copy_rows_from: dst (rows × cols, dense) = the first cols of src's rows
// (row stride ldSrc).
void pad_rows_cpu(const float* src, float* dst, int64_t rows, int64_t cols, int64_t ldDst);
void unpad_rows_cpu(const float* src, int64_t ldSrc, float* dst, int64_t rows, int64_t cols);
// The columns path's epilogue: y[i, k, p] = act(src[k·ld + i·P + p] (+ b[k])) for n images; act = ReLU
// when relu, else the identity; without b nothing is added (−0 stays −0).
void conv_epilogue_cpu(const float* src, int64_t ld, const float* b, float* y, int n, int K, int64_t P, bool relu);
// The same, y in bf16: computed in float32, rounded once to nearest even.
void conv_epilogue_cpu(const float* src, int64_t ld, const float* b, bf16_t* y, int n, int K, int64_t P, bool relu);
// The columns path's first backward pass: dz[k·ldZ + i·P + p] = g (g = relu_bwd(dy, y) with y, else dy),
// and db (null: skipped) = Σ g in bias_grad's order (the same bits as bias_grad of g).
void conv_grad_knp_cpu(const float* dy, const float* y, float* dz, int64_t ldZ, float* db, int N, int K, int64_t P,
                       bool legacy = false);
// y in bf16 (bf16 activations: the mask of relu_bwd reads its sign).
void conv_grad_knp_cpu(const float* dy, const bf16_t* y, float* dz, int64_t ldZ, float* db, int N, int K, int64_t P,
                       bool legacy = false);
// src: (n, K, P) -> dst: (K, n, P)
void permute_nkp_cpu(const float* src, float* dst, int n, int K, int64_t P);
// y: (N, K, P) = b[k] everywhere
void fill_bias_cpu(float* y, const float* b, int N, int K, int64_t P);
// db[k] = Σ_{n, p} dy[n, k, p], in double, as a two-stage reduction in a fixed order — the same arithmetic
// on both devices, so the emulated device gives the CPU's bits (and a GPU, whose double additions round
// alike, should too):
//   the batch is cut into J = ⌈N / T⌉ chunks of T = bias_grad_chunk_images(N, P) images (the last one
//   may be shorter); T depends on (N, P) alone, never on the device.
//   Stage 1, per (channel k, chunk j): the chunk's elements of channel k, numbered e = (i − i0)·P + p
//   (i0 the chunk's first image: image by image, pixels in order), go to B = kBiasGradLanes accumulators,
//   element e to acc[e mod B], each summed in ascending e from 0.0 — on CUDA a block of B threads, thread
//   t owning acc[t]; then a pairwise tree: for (s = B/2; s > 0; s /= 2) acc[t] += acc[t + s] for t < s.
//   partial[k·J + j] = acc[0].
//   Stage 2: db[k] = (float) (((0.0 + partial[k·J]) + partial[k·J + 1]) + … + partial[k·J + J − 1]).
// Numbering the chunk's elements as one sequence (not per image) keeps all B lanes busy when P < B
// (AlexNet's conv3–5: P = 169). On CUDA, stage 1 is a grid of K·J blocks (at the paper's batch 128:
// 4,128 for conv1, 2,816 for conv2, 1,152 for conv3 — every SM busy), stage 2 a second small launch.
void bias_grad_cpu(const float* dy, float* db, int N, int K, int64_t P, bool legacy = false);
// dz = relu_bwd(dy, y) (dy where y > 0, else 0), db[k] = Σ_{n, p} dz[n, k, p] (the same sum, in the same
// order, as bias_grad of dz). dz may alias dy (each element is read, then written, once).
void relu_bias_grad_cpu(const float* dy, const float* y, float* dz, float* db, int N, int K, int64_t P,
                        bool legacy = false);
// p[i] = round_bf16(p[i]) (the bf16 oracle's rounding of what the GPU stores in bf16)
void round_bf16_cpu(float* p, int64_t n);
void zero_cpu(float* p, int64_t n);

#ifdef AXN_WITH_CUDA
template <class TX, class TY>
void conv2d_forward_cuda(const TX* x, const float* w, const float* b, TY* y, const Conv2dDims& d,
                         size_t workspaceBytes, GemmMath math, bool relu, ConvPath path = ConvPath::Columns,
                         float* columns = nullptr);
template <class TX, class TY>
void conv2d_backward_cuda(const float* dy, const TX* x, const float* w, float* dx, float* dw, float* db,
                          const Conv2dDims& d, size_t workspaceBytes, GemmMath math, const TY* reluY,
                          bool reluInPlace, ConvPath path = ConvPath::Columns, float* columns = nullptr,
                         bool legacyBiasGrad = false);
void im2col_cuda(const float* x, float* col, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                 int64_t groupRows = 0);
void col2im_cuda(const float* col, float* x, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                 int64_t groupRows = 0);
// bf16 storage (conv_bf16_storage): the same, with bf16 column entries (im2col rounds x's values to nearest
// even; col2im sums the stored values in float32).
void im2col_cuda(const float* x, bf16_t* col, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                 int64_t groupRows = 0);
void col2im_cuda(const bf16_t* col, float* x, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                 int64_t groupRows = 0);
// bf16 activations: x's values read widened (into float32 columns), or copied as they are (bf16 columns).
void im2col_cuda(const bf16_t* x, float* col, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                 int64_t groupRows = 0);
void im2col_cuda(const bf16_t* x, bf16_t* col, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                 int64_t groupRows = 0);
void pad_rows_cuda(const float* src, float* dst, int64_t rows, int64_t cols, int64_t ldDst);
// The weights' bf16 GEMM copy, rows padded with zeros to ldDst (rounded to nearest even).
void pad_rows_cuda(const float* src, bf16_t* dst, int64_t rows, int64_t cols, int64_t ldDst);
void unpad_rows_cuda(const float* src, int64_t ldSrc, float* dst, int64_t rows, int64_t cols);
void conv_epilogue_cuda(const float* src, int64_t ld, const float* b, float* y, int n, int K, int64_t P, bool relu);
void conv_epilogue_cuda(const float* src, int64_t ld, const float* b, bf16_t* y, int n, int K, int64_t P, bool relu);
void conv_grad_knp_cuda(const float* dy, const float* y, float* dz, int64_t ldZ, float* db, int N, int K, int64_t P,
                       bool legacy = false);
// bf16 storage: dz rounded to nearest even as it is written; db from the float32 values, the same bits.
void conv_grad_knp_cuda(const float* dy, const float* y, bf16_t* dz, int64_t ldZ, float* db, int N, int K, int64_t P,
                       bool legacy = false);
// y in bf16 (bf16 activations), dz float32 or bf16.
void conv_grad_knp_cuda(const float* dy, const bf16_t* y, float* dz, int64_t ldZ, float* db, int N, int K, int64_t P,
                       bool legacy = false);
void conv_grad_knp_cuda(const float* dy, const bf16_t* y, bf16_t* dz, int64_t ldZ, float* db, int N, int K, int64_t P,
                       bool legacy = false);
void permute_nkp_cuda(const float* src, float* dst, int n, int K, int64_t P);
void fill_bias_cuda(float* y, const float* b, int N, int K, int64_t P);
void bias_grad_cuda(const float* dy, float* db, int N, int K, int64_t P, bool legacy = false);
// y: (N, K, P) = max(y + b[k], 0) (b null: max(y, 0)), in place
void bias_relu_cuda(float* y, const float* b, int N, int K, int64_t P);
void relu_bias_grad_cuda(const float* dy, const float* y, float* dz, float* db, int N, int K, int64_t P,
                         bool legacy = false);
void zero_cuda(float* p, int64_t n);
#endif

}  // namespace axn::ops
