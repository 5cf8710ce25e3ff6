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
#include "conv2d.h"
#include "relu.h"

namespace axn::ops {

namespace {

using cuda::gridFor;
using cuda::kThreads;

// x: (n, C, H, W) -> col entry (i, r = (c·kh + ki)·kw + kj, p) at col[i·strideImage + r·strideRow + p].
__global__ void im2col_kernel(const float* __restrict__ x, float* __restrict__ col, int n, int C, int H, int W,
                              int kh, int kw, int sh, int sw, int ph, int pw, int Ho, int Wo, int64_t strideImage,
                              int64_t strideRow) {
  const int P = Ho * Wo;
  const int CP = C * P;  // ≤ INT_MAX (conv2d_check_dims)
  const int64_t imgIn = static_cast<int64_t>(C) * H * W;
  for (int i = blockIdx.y; i < n; i += gridDim.y) {
    const float* xi = x + i * imgIn;
    float* coli = col + i * strideImage;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < CP; t += gridDim.x * blockDim.x) {
      const int c = t / P;
      const int p = t - c * P;
      const int oh = p / Wo;
      const int ow = p - oh * Wo;
      const float* xc = xi + static_cast<int64_t>(c) * H * W;
      float* dst = coli + static_cast<int64_t>(c) * kh * kw * strideRow + p;
      const int ih0 = oh * sh - ph, iw0 = ow * sw - pw;
      for (int ki = 0; ki < kh; ki++) {
        const int ih = ih0 + ki;
        const bool rowIn = static_cast<unsigned>(ih) < static_cast<unsigned>(H);
        for (int kj = 0; kj < kw; kj++) {
          const int iw = iw0 + kj;
          float v = 0.0f;
          if (rowIn && static_cast<unsigned>(iw) < static_cast<unsigned>(W)) v = __ldg(xc + ih * W + iw);
          *dst = v;
          dst += strideRow;
        }
      }
    }
  }
}

// col (image-major: strideImage = C·kh·kw·P, strideRow = P) -> x: (n, C, H, W), overwritten.
__global__ void col2im_kernel(const float* __restrict__ col, float* __restrict__ x, int n, int C, int H, int W,
                              int kh, int kw, int sh, int sw, int ph, int pw, int Ho, int Wo) {
  const int HW = H * W;
  const int CHW = C * HW;  // ≤ INT_MAX (conv2d_check_dims)
  const int64_t P = static_cast<int64_t>(Ho) * Wo;
  const int64_t strideImage = static_cast<int64_t>(C) * kh * kw * P;
  for (int i = blockIdx.y; i < n; i += gridDim.y) {
    const float* coli = col + i * strideImage;
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
      const float* colc = coli + static_cast<int64_t>(c) * kh * kw * P;
      float sum = 0.0f;
      for (int oh = ohStart; oh < ohEnd; oh++) {
        const int ki = hp - oh * sh;
        for (int ow = owStart; ow < owEnd; ow++) {
          const int kj = wp - ow * sw;
          sum += __ldg(colc + static_cast<int64_t>(ki * kw + kj) * P + oh * Wo + ow);
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

constexpr int kBiasGradThreads = 1024;

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

// db[k] = Σ_{i, p} g[i, k, p]: one block of kBiasGradThreads per channel, double accumulation, fixed order
// (deterministic). The block is large (1024 threads) because AlexNet's first convolutions have few channels
// (64 or 96 blocks on the H200's 132 SMs) over many pixels (N·3,025): every SM that has a channel then keeps
// 32 warps of loads in flight.
// Plain: g = dy. Relu (the fused ReLU's backward): g = relu_bwd(dy, y), also written to dz — the same
// sum in the same order, so db is bit for bit the unfused path's. dz may alias dy (each element is read,
// then written, by one thread; no read-only-cache load of dy then).
template <bool Relu>
__global__ void __launch_bounds__(kBiasGradThreads) bias_grad_kernel(const float* dy, const float* __restrict__ y, float* dz, float* __restrict__ db,
                                 int N, int K, int64_t P) {
  __shared__ double warpSums[kBiasGradThreads / 32];
  for (int k = blockIdx.x; k < K; k += gridDim.x) {
    double s = 0.0;
    for (int i = 0; i < N; i++) {
      const int64_t off = (static_cast<int64_t>(i) * K + k) * P;
      for (int64_t p = threadIdx.x; p < P; p += blockDim.x) {
        float g;
        if constexpr (Relu) {
          g = relu_bwd(dy[off + p], __ldg(y + off + p));
          dz[off + p] = g;
        } else {
          g = __ldg(dy + off + p);
        }
        s += g;
      }
    }
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warpSums[warp] = s;
    __syncthreads();
    if (warp == 0) {
      s = lane < static_cast<int>(blockDim.x >> 5) ? warpSums[lane] : 0.0;
      for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
      if (lane == 0) db[k] = static_cast<float>(s);
    }
    __syncthreads();  // warpSums is reused by the next channel
  }
}

}  // namespace

void im2col_cuda(const float* x, float* col, int n, const Conv2dDims& d, int64_t strideImage, int64_t strideRow) {
  if (n <= 0) return;
  const int64_t CP = static_cast<int64_t>(d.C) * d.Ho() * d.Wo();
  dim3 grid(gridFor(CP), std::min(n, 65535));
  AXN_LAUNCH("conv2d.im2col", im2col_kernel, grid, kThreads, 0, x, col, n, d.C, d.H, d.W, d.kh, d.kw, d.sh, d.sw, d.ph, d.pw, d.Ho(), d.Wo(), strideImage, strideRow);
}

void col2im_cuda(const float* col, float* x, int n, const Conv2dDims& d) {
  if (n <= 0) return;
  const int64_t CHW = static_cast<int64_t>(d.C) * d.H * d.W;
  dim3 grid(gridFor(CHW), std::min(n, 65535));
  AXN_LAUNCH("conv2dBackward.col2im", col2im_kernel, grid, kThreads, 0, col, x, n, d.C, d.H, d.W, d.kh, d.kw, d.sh, d.sw, d.ph, d.pw, d.Ho(), d.Wo());
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

void bias_grad_cuda(const float* dy, float* db, int N, int K, int64_t P) {
  if (K <= 0) return;
  const float* none = nullptr;
  float* noneOut = nullptr;
  AXN_LAUNCH("conv2dBackward.biasGrad", bias_grad_kernel<false>, std::min(K, 65535), kBiasGradThreads, 0, dy, none, noneOut,
             db, N, K, P);
}

void bias_relu_cuda(float* y, const float* b, int N, int K, int64_t P) {
  if (N <= 0 || K <= 0 || P <= 0) return;
  RowLaunch l(static_cast<int64_t>(N) * K, P);
  AXN_LAUNCH("conv2d.biasRelu", bias_relu_kernel, l.grid, l.block, 0, y, b, N, K, P);
}

void relu_bias_grad_cuda(const float* dy, const float* y, float* dz, float* db, int N, int K, int64_t P) {
  if (K <= 0) return;
  AXN_LAUNCH("conv2dBackward.reluBiasGrad", bias_grad_kernel<true>, std::min(K, 65535), kBiasGradThreads, 0, dy, y, dz, db,
             N, K, P);
}

void zero_cuda(float* p, int64_t n) {
  if (n > 0) cuda::memsetZero(p, static_cast<size_t>(n) * sizeof(float));
}

}  // namespace axn::ops
