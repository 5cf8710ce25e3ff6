// linear's CUDA kernels: the bias broadcast and the bias gradient (column sums). The GEMMs are cuBLAS.
#include <algorithm>
#include <type_traits>

#include "../cuda/context.h"
#include "../cuda/launch.h"
#include "linear.h"
#include "relu.h"

namespace axn::ops {

namespace {

// y: (N, out) = b in every row. Threads along a row (coalesced), grid-stride in both dimensions.
__global__ void fill_rows_kernel(float* __restrict__ y, const float* __restrict__ b, int N, int out) {
  for (int n = blockIdx.y * blockDim.y + threadIdx.y; n < N; n += gridDim.y * blockDim.y) {
    float* row = y + static_cast<int64_t>(n) * out;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < out; j += gridDim.x * blockDim.x) row[j] = __ldg(b + j);
  }
}

// y: (N, out) = max(y + b, 0) in place (b null: max(y, 0)) — the fused linear → ReLU epilogue.
__global__ void bias_relu_rows_kernel(float* __restrict__ y, const float* __restrict__ b, int N, int out) {
  for (int n = blockIdx.y * blockDim.y + threadIdx.y; n < N; n += gridDim.y * blockDim.y) {
    float* row = y + static_cast<int64_t>(n) * out;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < out; j += gridDim.x * blockDim.x)
      row[j] = relu_fwd(b ? row[j] + __ldg(b + j) : row[j]);
  }
}

// db[j] = Σ_n g[n, j]. A block is 32 columns × 8 row-strands: the 32 lanes of a warp read 32 adjacent
// floats of a row (coalesced); the 8 partial sums of a column are added in a fixed order (deterministic).
// Plain: g = dy. Relu (the fused ReLU's backward): g = relu_bwd(dy, y). dz (null: not written) receives g,
// as float32, or rounded to bf16 in the Bf16 modes; the sum is the same, in the same order, either way.
// dz may alias dy in the float32 Relu mode only (no read-only-cache load of dy there). db null: no sums.
constexpr int kColsPerBlock = 32, kStrands = 8;
enum SumsMode : int { kPlain = 0, kRelu = 1, kPlainBf16 = 2, kReluBf16 = 3 };
__device__ __forceinline__ void put(float* p, float v) { *p = v; }
__device__ __forceinline__ void put(bf16_t* p, float v) { *p = to_bf16(v); }
template <int Mode>
__global__ void column_sums_kernel(const float* dy, const float* __restrict__ y,
                                   std::conditional_t<(Mode & kPlainBf16) != 0, bf16_t, float>* dz,
                                   float* __restrict__ db, int N, int out) {
  constexpr bool Relu = (Mode & kRelu) != 0;
  __shared__ double part[kStrands][kColsPerBlock];
  for (int j0 = blockIdx.x * kColsPerBlock; j0 < out; j0 += gridDim.x * kColsPerBlock) {
    const int j = j0 + threadIdx.x;
    double s = 0.0;
    if (j < out)
      for (int n = threadIdx.y; n < N; n += kStrands) {
        const int64_t i = static_cast<int64_t>(n) * out + j;
        float g;
        if constexpr (Relu) g = relu_bwd(dy[i], __ldg(y + i));
        else g = __ldg(dy + i);  // dz, when written here, is bf16: it cannot alias dy
        if (dz) put(dz + i, g);
        s += g;
      }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < out && db) {
      double t = 0.0;
      for (int r = 0; r < kStrands; r++) t += part[r][threadIdx.x];
      db[j] = static_cast<float>(t);
    }
    __syncthreads();  // `part` is reused by the next column block
  }
}

}  // namespace

namespace {
// Threads along a row of `out` floats (a warp multiple, up to 256), the rest of the 256 on further rows.
struct RowsLaunch {
  dim3 grid, block;
  RowsLaunch(int N, int out) {
    const int bx = out >= 256 ? 256 : (out + 31) / 32 * 32;
    const int by = 256 / bx;
    block = dim3(bx, by);
    grid = dim3(std::min((out + bx - 1) / bx, 64), std::min((N + by - 1) / by, 65535));
  }
};
}  // namespace

void fill_rows_cuda(float* y, const float* b, int N, int out) {
  if (N <= 0 || out <= 0) return;
  RowsLaunch l(N, out);
  AXN_LAUNCH("linear.bias", fill_rows_kernel, l.grid, l.block, 0, y, b, N, out);
}

void bias_relu_rows_cuda(float* y, const float* b, int N, int out) {
  if (N <= 0 || out <= 0) return;
  RowsLaunch l(N, out);
  AXN_LAUNCH("linear.biasRelu", bias_relu_rows_kernel, l.grid, l.block, 0, y, b, N, out);
}

void column_sums_cuda(const float* dy, float* db, int N, int out) {
  if (out <= 0) return;
  dim3 block(kColsPerBlock, kStrands);
  dim3 grid(std::min((out + kColsPerBlock - 1) / kColsPerBlock, 65535));
  const float* none = nullptr;
  float* noneOut = nullptr;
  AXN_LAUNCH("linearBackward.biasGrad", column_sums_kernel<kPlain>, grid, block, 0, dy, none, noneOut, db, N, out);
}

void relu_column_sums_cuda(const float* dy, const float* y, float* dz, float* db, int N, int out) {
  if (out <= 0) return;
  dim3 block(kColsPerBlock, kStrands);
  dim3 grid(std::min((out + kColsPerBlock - 1) / kColsPerBlock, 65535));
  AXN_LAUNCH("linearBackward.reluBiasGrad", column_sums_kernel<kRelu>, grid, block, 0, dy, y, dz, db, N, out);
}

void grad_columns_bf16_cuda(const float* dy, const float* y, bf16_t* dz, float* db, int N, int out) {
  if (out <= 0 || N <= 0) return;
  dim3 block(kColsPerBlock, kStrands);
  dim3 grid(std::min((out + kColsPerBlock - 1) / kColsPerBlock, 65535));
  if (y) AXN_LAUNCH("linearBackward.reluBiasGrad", column_sums_kernel<kReluBf16>, grid, block, 0, dy, y, dz, db, N, out);
  else AXN_LAUNCH("linearBackward.biasGrad", column_sums_kernel<kPlainBf16>, grid, block, 0, dy, y, dz, db, N, out);
}

}  // namespace axn::ops
