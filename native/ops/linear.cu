// linear's CUDA kernels: the bias broadcast and the bias gradient (column sums). The GEMMs are cuBLAS.
#include <algorithm>

#include "../cuda/context.h"
#include "../cuda/launch.h"
#include "linear.h"

namespace axn::ops {

namespace {

// y: (N, out) = b in every row. Threads along a row (coalesced), grid-stride in both dimensions.
__global__ void fill_rows_kernel(float* __restrict__ y, const float* __restrict__ b, int N, int out) {
  for (int n = blockIdx.y * blockDim.y + threadIdx.y; n < N; n += gridDim.y * blockDim.y) {
    float* row = y + static_cast<int64_t>(n) * out;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < out; j += gridDim.x * blockDim.x) row[j] = __ldg(b + j);
  }
}

// db[j] = Σ_n dy[n, j]. A block is 32 columns × 8 row-strands: the 32 lanes of a warp read 32 adjacent
// floats of a row (coalesced); the 8 partial sums of a column are added in a fixed order (deterministic).
constexpr int kColsPerBlock = 32, kStrands = 8;
__global__ void column_sums_kernel(const float* __restrict__ dy, float* __restrict__ db, int N, int out) {
  __shared__ double part[kStrands][kColsPerBlock];
  for (int j0 = blockIdx.x * kColsPerBlock; j0 < out; j0 += gridDim.x * kColsPerBlock) {
    const int j = j0 + threadIdx.x;
    double s = 0.0;
    if (j < out)
      for (int n = threadIdx.y; n < N; n += kStrands) s += __ldg(dy + static_cast<int64_t>(n) * out + j);
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < out) {
      double t = 0.0;
      for (int r = 0; r < kStrands; r++) t += part[r][threadIdx.x];
      db[j] = static_cast<float>(t);
    }
    __syncthreads();  // `part` is reused by the next column block
  }
}

}  // namespace

void fill_rows_cuda(float* y, const float* b, int N, int out) {
  if (N <= 0 || out <= 0) return;
  const int bx = out >= 256 ? 256 : (out + 31) / 32 * 32;
  const int by = 256 / bx;
  dim3 block(bx, by);
  dim3 grid(std::min((out + bx - 1) / bx, 64), std::min((N + by - 1) / by, 65535));
  AXN_LAUNCH("linear.bias", fill_rows_kernel, grid, block, 0, y, b, N, out);
}

void column_sums_cuda(const float* dy, float* db, int N, int out) {
  if (out <= 0) return;
  dim3 block(kColsPerBlock, kStrands);
  dim3 grid(std::min((out + kColsPerBlock - 1) / kColsPerBlock, 65535));
  AXN_LAUNCH("linearBackward.biasGrad", column_sums_kernel, grid, block, 0, dy, db, N, out);
}

}  // namespace axn::ops
