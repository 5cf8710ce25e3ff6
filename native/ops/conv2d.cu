// conv2d on CUDA: im2col / col2im / permute / bias kernels, and the shared driver of conv2d.h on cuBLAS.
//
// im2col: one thread per (channel, output pixel) of an image writes that pixel's kh·kw column entries;
// along a warp the pixels are consecutive, so each of the kh·kw stores is one contiguous (coalesced)
// segment of a column row, and the few integer divisions are paid once per kh·kw stores. Reads of x go
// through the read-only cache (each x element is reused ~kh·kw/(sh·sw) times).
// col2im: a gather, one thread per input pixel, summing the column entries that im2col copied from it
// (Caffe's col2im_gpu_kernel): every dx element is written exactly once, coalesced, with no atomics.
#include <algorithm>
#include <climits>

#include "../cuda/context.h"
#include "../cuda/launch.h"
#include "../scratch.h"
#include "conv2d.h"
#include "relu.h"

namespace axn::ops {

namespace {

using cuda::gridFor;
using cuda::kThreads;

// Column entries (and dz, and the padded weights) are float32, or bf16 on the columns path in bf16
// (GemmMath::Bf16): stored rounded to nearest even, read back exactly.
__device__ __forceinline__ void store_to(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_to(bf16_t* p, float v) { *p = to_bf16(v); }
__device__ __forceinline__ float load_from(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load_from(const bf16_t* p) { return from_bf16(__ldg(p)); }

// x: (n, C, H, W) -> col entry (i, r = (c·kh + ki)·kw + kj, p) at col[i·strideImage + r·strideRow + p].
// Channel c's rows start at (c / Cg)·groupRows + (c mod Cg)·kh·kw (groupRows = Cg·kh·kw: unpadded).
template <class TX, class T>
__global__ void im2col_kernel(const TX* __restrict__ x, T* __restrict__ col, int n, int C, int H, int W,
                              int kh, int kw, int sh, int sw, int ph, int pw, int Ho, int Wo, int64_t strideImage,
                              int64_t strideRow, int Cg, int64_t groupRows) {
  const int P = Ho * Wo;
  const int CP = C * P;  // ≤ INT_MAX (conv2d_check_dims)
  const int64_t imgIn = static_cast<int64_t>(C) * H * W;
  for (int i = blockIdx.y; i < n; i += gridDim.y) {
    const TX* xi = x + i * imgIn;
    T* coli = col + i * strideImage;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < CP; t += gridDim.x * blockDim.x) {
      const int c = t / P;
      const int p = t - c * P;
      const int oh = p / Wo;
      const int ow = p - oh * Wo;
      const TX* xc = xi + static_cast<int64_t>(c) * H * W;
      T* dst = coli + ((c / Cg) * groupRows + static_cast<int64_t>(c % Cg) * kh * kw) * strideRow + p;
      const int ih0 = oh * sh - ph, iw0 = ow * sw - pw;
      for (int ki = 0; ki < kh; ki++) {
        const int ih = ih0 + ki;
        const bool rowIn = static_cast<unsigned>(ih) < static_cast<unsigned>(H);
        for (int kj = 0; kj < kw; kj++) {
          const int iw = iw0 + kj;
          float v = 0.0f;
          if (rowIn && static_cast<unsigned>(iw) < static_cast<unsigned>(W)) v = load_from(xc + ih * W + iw);
          store_to(dst, v);
          dst += strideRow;
        }
      }
    }
  }
}

// col (entry (i, r, p) at col[i·strideImage + r·strideRow + p], rows as im2col_kernel's) -> x: (n, C, H, W),
// overwritten.
template <class T>
__global__ void col2im_kernel(const T* __restrict__ col, float* __restrict__ x, int n, int C, int H, int W,
                              int kh, int kw, int sh, int sw, int ph, int pw, int Ho, int Wo, int64_t strideImage,
                              int64_t strideRow, int Cg, int64_t groupRows) {
  const int HW = H * W;
  const int CHW = C * HW;  // ≤ INT_MAX (conv2d_check_dims)
  for (int i = blockIdx.y; i < n; i += gridDim.y) {
    const T* coli = col + i * strideImage;
    float* xi = x + static_cast<int64_t>(i) * CHW;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < CHW; t += gridDim.x * blockDim.x) {
      const int c = t / HW;
      const int rem = t - c * HW;
      const int ih = rem / W;
      const int iw = rem - ih * W;
      const int hp = ih + ph, wp = iw + pw;  // position in the padded input
      // Output rows/cols whose window covers (hp, wp): 0 ≤ hp − oh·sh < kh, 0 ≤ wp − ow·sw < kw.
      const int ohStart = hp < kh ? 0 : (hp - kh) / sh + 1;
      const int ohEnd = min(hp / sh + 1, Ho);
      const int owStart = wp < kw ? 0 : (wp - kw) / sw + 1;
      const int owEnd = min(wp / sw + 1, Wo);
      const T* colc = coli + ((c / Cg) * groupRows + static_cast<int64_t>(c % Cg) * kh * kw) * strideRow;
      float sum = 0.0f;
      for (int oh = ohStart; oh < ohEnd; oh++) {
        const int ki = hp - oh * sh;
        for (int ow = owStart; ow < owEnd; ow++) {
          const int kj = wp - ow * sw;
          sum += load_from(colc + static_cast<int64_t>(ki * kw + kj) * strideRow + oh * Wo + ow);
        }
      }
      xi[t] = sum;
    }
  }
}

// Block shape for kernels that walk `rows` rows of P contiguous floats: threads along P (a warp multiple,
// up to 256), the rest of the 256 threads on further rows.
struct RowLaunch {
  dim3 grid, block;
  RowLaunch(int64_t rows, int64_t P) {
    const int bx = P >= kThreads ? kThreads : static_cast<int>((P + 31) / 32 * 32);
    const int by = kThreads / bx;
    block = dim3(bx, by);
    grid = dim3(static_cast<unsigned>(std::min<int64_t>((P + bx - 1) / bx, 64)),
                static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((rows + by - 1) / by, 65535))));
  }
};

// src: (n, K, P) -> dst: (K, n, P)
__global__ void permute_nkp_kernel(const float* __restrict__ src, float* __restrict__ dst, int n, int K, int64_t P) {
  const int64_t rows = static_cast<int64_t>(n) * K;
  for (int64_t r = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; r < rows;
       r += static_cast<int64_t>(gridDim.y) * blockDim.y) {
    const int i = static_cast<int>(r / K);
    const int k = static_cast<int>(r - static_cast<int64_t>(i) * K);
    const float* s = src + r * P;
    float* d = dst + (static_cast<int64_t>(k) * n + i) * P;
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < P;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x)
      d[p] = __ldg(s + p);
  }
}

// dst (rows × ldDst) = src (rows × cols) with zero columns after; or dst (rows × cols) = src's first cols
// (row stride ldSrc). One thread per destination element.
template <class T>
__global__ void pad_rows_kernel(const float* __restrict__ src, T* __restrict__ dst, int64_t rows, int64_t cols,
                                int64_t ldDst) {
  const int64_t n = rows * ldDst;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = t / ldDst, c = t - r * ldDst;
    store_to(dst + t, c < cols ? __ldg(src + r * cols + c) : 0.0f);
  }
}

__global__ void unpad_rows_kernel(const float* __restrict__ src, int64_t ldSrc, float* __restrict__ dst, int64_t rows,
                                  int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = t / cols, c = t - r * cols;
    dst[t] = __ldg(src + r * ldSrc + c);
  }
}

// The columns path's epilogue: y[i, k, p] = act(src[k·ld + i·P + p] (+ b[k])), one row (i, k) of P pixels
// per thread row: the reads (a row of Y') and the writes (a row of y) are both contiguous along the warp.
template <bool Relu, class TY>
__global__ void conv_epilogue_kernel(const float* __restrict__ src, int64_t ld, const float* __restrict__ b,
                                     TY* __restrict__ y, int n, int K, int64_t P) {
  const int64_t rows = static_cast<int64_t>(n) * K;
  for (int64_t r = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; r < rows;
       r += static_cast<int64_t>(gridDim.y) * blockDim.y) {
    const int i = static_cast<int>(r / K);
    const int k = static_cast<int>(r - static_cast<int64_t>(i) * K);
    const float v = b ? __ldg(b + k) : 0.0f;
    const float* s = src + k * ld + static_cast<int64_t>(i) * P;
    TY* row = y + r * P;
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < P;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const float a = __ldg(s + p);
      const float z = b ? a + v : a;
      store_to(row + p, Relu ? relu_fwd(z) : z);
    }
  }
}

// y: (N, K, P) = b[k]
__global__ void fill_bias_kernel(float* __restrict__ y, const float* __restrict__ b, int N, int K, int64_t P) {
  const int64_t rows = static_cast<int64_t>(N) * K;
  for (int64_t r = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; r < rows;
       r += static_cast<int64_t>(gridDim.y) * blockDim.y) {
    const float v = __ldg(b + r % K);
    float* row = y + r * P;
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < P;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x)
      row[p] = v;
  }
}

// y: (N, K, P) = max(y + b[k], 0), in place (b null: max(y, 0)) — the fused conv → ReLU epilogue.
__global__ void bias_relu_kernel(float* __restrict__ y, const float* __restrict__ b, int N, int K, int64_t P) {
  const int64_t rows = static_cast<int64_t>(N) * K;
  for (int64_t r = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; r < rows;
       r += static_cast<int64_t>(gridDim.y) * blockDim.y) {
    const float v = b ? __ldg(b + r % K) : 0.0f;
    float* row = y + r * P;
    for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < P;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x)
      row[p] = relu_fwd(b ? row[p] + v : row[p]);
  }
}

// The bias gradient's two stages (conv2d.h: the order of the sums, which the CPU oracle repeats).
// Stage 1, one block of B = kBiasGradLanes threads per (channel k, chunk j) pair (a grid-stride loop over
// the K·J pairs): thread t sums, in double, the chunk's elements e ≡ t (mod B) of channel k in ascending
// e = (i − i0)·P + p — along a warp consecutive pixels, so the loads are coalesced — then the block's B
// sums meet in a pairwise tree (strides 128, 64, 32 through shared memory, then 16 … 1 by warp shuffles:
// the same additions, in the same order, as the CPU's tree), and partial[k·J + j] = the root.
// Plain: g = dy. Relu (the fused ReLU's backward): g = relu_bwd(dy, y), also written to dz — the same sum
// in the same order, so db is bit for bit the unfused path's. dz may alias dy (each element is read, then
// written, by one thread; no read-only-cache load of dy then).
// dz: null (not written), NCHW (dzLd = 0), or dz[k·dzLd + i·P + p] (the columns path's (K, N, P) layout;
// Plain then writes g = dy there: the permute in the same pass).
template <bool Relu, class TZ, class TY>
__global__ void __launch_bounds__(kBiasGradLanes) bias_grad_partial_kernel(const float* dy, const TY* __restrict__ y,
                                                                            TZ* dz, int64_t dzLd,
                                                                            double* __restrict__ partial,
                                                                            int N, int K, int64_t P, int T, int J) {
  constexpr int B = kBiasGradLanes;
  static_assert(B % 64 == 0 && (B & (B - 1)) == 0, "the tree's shared-memory steps end at stride 32");
  __shared__ double sums[B];
  const int t = threadIdx.x;
  // The step from element e to e + B: qB whole images and rB pixels.
  const int64_t qB = B / P, rB = B % P;
  const int64_t pairs = static_cast<int64_t>(K) * J;
  for (int64_t b = blockIdx.x; b < pairs; b += gridDim.x) {
    const int k = static_cast<int>(b / J), j = static_cast<int>(b - b / J * J);
    const int i0 = j * T;
    const int64_t len = static_cast<int64_t>(min(T, N - i0)) * P;  // the chunk's elements of channel k
    int64_t i = i0 + t / P, p = t % P;                              // element e = t
    double s = 0.0;
    for (int64_t e = t; e < len; e += B) {
      const int64_t off = (i * K + k) * P + p;
      float g;
      if constexpr (Relu) {
        g = relu_bwd(dy[off], load_from(y + off));
      } else {
        g = dzLd ? __ldg(dy + off) : dy[off];
      }
      if (dz) store_to(dz + (dzLd ? k * dzLd + i * P + p : off), g);
      s += g;
      i += qB;
      p += rB;
      if (p >= P) {
        p -= P;
        i++;
      }
    }
    sums[t] = s;
    __syncthreads();
    for (int stride = B / 2; stride >= 32; stride >>= 1) {
      if (t < stride) sums[t] += sums[t + stride];
      __syncthreads();
    }
    if (t < 32) {
      s = sums[t];
      for (int stride = 16; stride > 0; stride >>= 1) s += __shfl_down_sync(0xffffffffu, s, stride);
      if (t == 0) partial[b] = s;
    }
    __syncthreads();  // sums is reused by the block's next pair
  }
}

// Stage 2: db[k] = (float) Σ_j partial[k·J + j], one thread per channel, in chunk order from 0.0.
// Planted defect (tests only): the last chunk is left out.
__global__ void bias_grad_final_kernel(const double* __restrict__ partial, float* __restrict__ db, int K, int J) {
  const int used = AXN_PLANTED(kPlantBiasGradDropLastChunk) ? J - 1 : J;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < K;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double* pk = partial + k * J;
    double s = 0.0;
    for (int j = 0; j < used; j++) s += pk[j];
    db[k] = static_cast<float>(s);
  }
}

// The legacy bias gradient (conv2d.h, kBiasGradLegacyThreads: setBiasGradientPath('legacy'), kept for the A/B of
// issue 19's lever 3): the kernel before the two stages. One block of kBiasGradLegacyThreads per channel
// (a grid-stride loop over K), thread t summing, in double, pixels p ≡ t (mod the block) of every image in
// turn; then warp shuffles (16 … 1), each warp's sum to shared memory, and warp 0 the same tree over
// them. The same Relu / dz handling as the two-stage kernel (dz in NCHW or the (K, N, P) layout).
template <bool Relu, class TZ, class TY>
__global__ void __launch_bounds__(kBiasGradLegacyThreads) bias_grad_legacy_kernel(const float* dy, const TY* __restrict__ y,
                                                                                  TZ* dz, int64_t dzLd,
                                                                                  float* __restrict__ db, int N, int K,
                                                                                  int64_t P) {
  __shared__ double warpSums[kBiasGradLegacyThreads / 32];
  for (int k = blockIdx.x; k < K; k += gridDim.x) {
    double s = 0.0;
    for (int i = 0; i < N; i++) {
      const int64_t off = (static_cast<int64_t>(i) * K + k) * P;
      const int64_t zoff = dzLd ? k * dzLd + static_cast<int64_t>(i) * P : off;
      for (int64_t p = threadIdx.x; p < P; p += blockDim.x) {
        float g;
        if constexpr (Relu) {
          g = relu_bwd(dy[off + p], load_from(y + off + p));
        } else {
          g = dzLd || !dz ? __ldg(dy + off + p) : dy[off + p];
        }
        if (dz) store_to(dz + zoff + p, g);
        s += g;
      }
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warpSums[warp] = s;
    __syncthreads();
    if (warp == 0) {
      s = lane < static_cast<int>(blockDim.x >> 5) ? warpSums[lane] : 0.0;
      for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
      if (lane == 0 && db) db[k] = static_cast<float>(s);
    }
    __syncthreads();  // warpSums is reused by the next channel
  }
}

// Both stages; the K·J partials in scratch from the caching allocator (stream-ordered: freed when this
// returns, after the launches that use it were enqueued).
template <bool Relu, class TZ = float, class TY = float>
void bias_grad_launch(const char* op, const float* dy, const TY* y, TZ* dz, int64_t dzLd, float* db, int N, int K,
                      int64_t P, bool legacy) {
  if (K <= 0) return;
  if (legacy) {
    AXN_LAUNCH(op, (bias_grad_legacy_kernel<Relu, TZ, TY>), std::min(K, 65535), kBiasGradLegacyThreads, 0, dy, y, dz, dzLd, db, N, K, P);
    return;
  }
  if (N <= 0 || P <= 0) {
    if (db) cuda::memsetZero(db, static_cast<size_t>(K) * sizeof(float));
    return;
  }
  const int T = bias_grad_chunk_images(N, P), J = bias_grad_chunks(N, T);
  const int64_t pairs = static_cast<int64_t>(K) * J;
  Scratch partial(true, sizeof(double) * static_cast<size_t>(pairs));
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(pairs, INT_MAX));
  AXN_LAUNCH(op, (bias_grad_partial_kernel<Relu, TZ, TY>), blocks, kBiasGradLanes, 0, dy, y, dz, dzLd, partial.as<double>(), N, K, P, T, J);
  if (db)
    AXN_LAUNCH(op, bias_grad_final_kernel, gridFor(K), kThreads, 0, static_cast<const double*>(partial.as<double>()), db, K, J);
}

}  // namespace

template <class TX, class T>
void im2col_launch(const TX* x, T* col, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                   int64_t groupRows) {
  if (n <= 0) return;
  const int Cg = d.C / d.groups;
  const int64_t gr = groupRows ? groupRows : static_cast<int64_t>(Cg) * d.kh * d.kw;
  const int64_t CP = static_cast<int64_t>(d.C) * d.Ho() * d.Wo();
  dim3 grid(gridFor(CP), std::min(n, 65535));
  AXN_LAUNCH("conv2d.im2col", (im2col_kernel<TX, T>), grid, kThreads, 0, x, col, n, d.C, d.H, d.W, d.kh, d.kw, d.sh, d.sw, d.ph, d.pw, d.Ho(), d.Wo(), strideImage, strideRow, Cg, gr);
}

template <class T>
void col2im_launch(const T* col, float* x, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow,
                   int64_t groupRows) {
  if (n <= 0) return;
  const int Cg = d.C / d.groups;
  const int64_t gr = groupRows ? groupRows : static_cast<int64_t>(Cg) * d.kh * d.kw;
  const int64_t CHW = static_cast<int64_t>(d.C) * d.H * d.W;
  dim3 grid(gridFor(CHW), std::min(n, 65535));
  AXN_LAUNCH("conv2dBackward.col2im", col2im_kernel<T>, grid, kThreads, 0, col, x, n, d.C, d.H, d.W, d.kh, d.kw, d.sh, d.sw, d.ph, d.pw, d.Ho(), d.Wo(), strideImage, strideRow, Cg, gr);
}

void pad_rows_cuda(const float* src, float* dst, int64_t rows, int64_t cols, int64_t ldDst) {
  if (rows <= 0 || ldDst <= 0) return;
  AXN_LAUNCH("conv2d.padK", pad_rows_kernel<float>, gridFor(rows * ldDst), kThreads, 0, src, dst, rows, cols, ldDst);
}

void pad_rows_cuda(const float* src, bf16_t* dst, int64_t rows, int64_t cols, int64_t ldDst) {
  if (rows <= 0 || ldDst <= 0) return;
  AXN_LAUNCH("conv2d.weightsBf16", pad_rows_kernel<bf16_t>, gridFor(rows * ldDst), kThreads, 0, src, dst, rows, cols, ldDst);
}

void unpad_rows_cuda(const float* src, int64_t ldSrc, float* dst, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  AXN_LAUNCH("conv2dBackward.unpadK", unpad_rows_kernel, gridFor(rows * cols), kThreads, 0, src, ldSrc, dst, rows, cols);
}

template <class TY>
void epilogue_launch(const float* src, int64_t ld, const float* b, TY* y, int n, int K, int64_t P, bool relu) {
  if (n <= 0 || K <= 0 || P <= 0) return;
  RowLaunch l(static_cast<int64_t>(n) * K, P);
  if (relu) AXN_LAUNCH("conv2d.epilogue", (conv_epilogue_kernel<true, TY>), l.grid, l.block, 0, src, ld, b, y, n, K, P);
  else AXN_LAUNCH("conv2d.epilogue", (conv_epilogue_kernel<false, TY>), l.grid, l.block, 0, src, ld, b, y, n, K, P);
}

void conv_epilogue_cuda(const float* src, int64_t ld, const float* b, float* y, int n, int K, int64_t P, bool relu) {
  epilogue_launch(src, ld, b, y, n, K, P, relu);
}
void conv_epilogue_cuda(const float* src, int64_t ld, const float* b, bf16_t* y, int n, int K, int64_t P, bool relu) {
  epilogue_launch(src, ld, b, y, n, K, P, relu);
}

void conv_grad_knp_cuda(const float* dy, const float* y, float* dz, int64_t ldZ, float* db, int N, int K, int64_t P, bool legacy) {
  if (y) bias_grad_launch<true>("conv2dBackward.reluBiasGrad", dy, y, dz, ldZ, db, N, K, P, legacy);
  else bias_grad_launch<false>("conv2dBackward.biasGrad", dy, static_cast<const float*>(nullptr), dz, ldZ, db, N, K, P, legacy);
}

void conv_grad_knp_cuda(const float* dy, const float* y, bf16_t* dz, int64_t ldZ, float* db, int N, int K, int64_t P, bool legacy) {
  if (y) bias_grad_launch<true, bf16_t>("conv2dBackward.reluBiasGrad", dy, y, dz, ldZ, db, N, K, P, legacy);
  else bias_grad_launch<false, bf16_t>("conv2dBackward.biasGrad", dy, static_cast<const float*>(nullptr), dz, ldZ, db, N, K, P, legacy);
}

void conv_grad_knp_cuda(const float* dy, const bf16_t* y, float* dz, int64_t ldZ, float* db, int N, int K, int64_t P, bool legacy) {
  if (y) bias_grad_launch<true, float, bf16_t>("conv2dBackward.reluBiasGrad", dy, y, dz, ldZ, db, N, K, P, legacy);
  else conv_grad_knp_cuda(dy, static_cast<const float*>(nullptr), dz, ldZ, db, N, K, P, legacy);
}

void conv_grad_knp_cuda(const float* dy, const bf16_t* y, bf16_t* dz, int64_t ldZ, float* db, int N, int K, int64_t P, bool legacy) {
  if (y) bias_grad_launch<true, bf16_t, bf16_t>("conv2dBackward.reluBiasGrad", dy, y, dz, ldZ, db, N, K, P, legacy);
  else conv_grad_knp_cuda(dy, static_cast<const float*>(nullptr), dz, ldZ, db, N, K, P, legacy);
}

void permute_nkp_cuda(const float* src, float* dst, int n, int K, int64_t P) {
  if (n <= 0 || K <= 0 || P <= 0) return;
  RowLaunch l(static_cast<int64_t>(n) * K, P);
  AXN_LAUNCH("conv2dBackward.permute", permute_nkp_kernel, l.grid, l.block, 0, src, dst, n, K, P);
}

void fill_bias_cuda(float* y, const float* b, int N, int K, int64_t P) {
  if (N <= 0 || K <= 0 || P <= 0) return;
  RowLaunch l(static_cast<int64_t>(N) * K, P);
  AXN_LAUNCH("conv2d.bias", fill_bias_kernel, l.grid, l.block, 0, y, b, N, K, P);
}

void bias_grad_cuda(const float* dy, float* db, int N, int K, int64_t P, bool legacy) {
  const float* none = nullptr;
  float* noneOut = nullptr;
  bias_grad_launch<false>("conv2dBackward.biasGrad", dy, none, noneOut, 0, db, N, K, P, legacy);
}

void bias_relu_cuda(float* y, const float* b, int N, int K, int64_t P) {
  if (N <= 0 || K <= 0 || P <= 0) return;
  RowLaunch l(static_cast<int64_t>(N) * K, P);
  AXN_LAUNCH("conv2d.biasRelu", bias_relu_kernel, l.grid, l.block, 0, y, b, N, K, P);
}

void relu_bias_grad_cuda(const float* dy, const float* y, float* dz, float* db, int N, int K, int64_t P, bool legacy) {
  bias_grad_launch<true>("conv2dBackward.reluBiasGrad", dy, y, dz, 0, db, N, K, P, legacy);
}

void im2col_cuda(const float* x, float* col, int n, const Conv2dDims& d, int64_t sI, int64_t sR, int64_t gr) {
  im2col_launch(x, col, n, d, sI, sR, gr);
}
void im2col_cuda(const float* x, bf16_t* col, int n, const Conv2dDims& d, int64_t sI, int64_t sR, int64_t gr) {
  im2col_launch(x, col, n, d, sI, sR, gr);
}
void im2col_cuda(const bf16_t* x, float* col, int n, const Conv2dDims& d, int64_t sI, int64_t sR, int64_t gr) {
  im2col_launch(x, col, n, d, sI, sR, gr);
}
void im2col_cuda(const bf16_t* x, bf16_t* col, int n, const Conv2dDims& d, int64_t sI, int64_t sR, int64_t gr) {
  im2col_launch(x, col, n, d, sI, sR, gr);
}
void col2im_cuda(const float* col, float* x, int n, const Conv2dDims& d, int64_t sI, int64_t sR, int64_t gr) {
  col2im_launch(col, x, n, d, sI, sR, gr);
}
void col2im_cuda(const bf16_t* col, float* x, int n, const Conv2dDims& d, int64_t sI, int64_t sR, int64_t gr) {
  col2im_launch(col, x, n, d, sI, sR, gr);
}

void zero_cuda(float* p, int64_t n) {
  if (n > 0) cuda::memsetZero(p, static_cast<size_t>(n) * sizeof(float));
}

}  // namespace axn::ops
