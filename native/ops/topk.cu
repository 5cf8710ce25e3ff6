// Top-k correct counts on CUDA: one warp per row, then an atomicAdd per (row, satisfied k). See topk.h.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common.h"
#include "cuda/context.h"
#include "cuda/launch.h"
#include "ops/topk.h"

namespace axn::ops {
namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

// The ks travel by value in the kernel's parameters.
struct Ks {
  int32_t k[kTopkMaxKs];
  int n;
};

__global__ void topk_correct_kernel(const float* __restrict__ logits, const int32_t* __restrict__ labels,
                                    int32_t* __restrict__ counts, Ks ks, int N, int C) {
  // Every lane of a warp has the same row, so the early returns below are warp-uniform and the
  // full-mask shuffles after them see all 32 lanes.
  const int64_t row = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const int lab = labels[row];
  if (lab < 0 || lab >= C) {
    if (lane == 0)
      for (int i = 0; i < ks.n; i++) atomicOr(&counts[i], (int)0x80000000u);
    return;
  }
  const float* x = logits + row * C;
  const float ref = x[lab];
  int above = 0;
  bool nan = isnan(ref);
  for (int j = lane; j < C; j += 32) {
    const float v = x[j];
    above += v > ref;
    nan = nan || isnan(v);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) above += __shfl_xor_sync(kFull, above, o);
  nan = __any_sync(kFull, nan);
  if (lane == 0 && !nan)
    for (int i = 0; i < ks.n; i++)
      if (above < ks.k[i]) atomicAdd(&counts[i], 1);
}

}  // namespace

void topk_correct_cuda(const float* logits, const int32_t* labels, int32_t* counts, const int32_t* ks, int nk, int N,
                       int C) {
  AXN_CHECK(nk >= 1 && nk <= kTopkMaxKs, "topkCorrect", "expected 1 to 16 values of k, got " + std::to_string(nk));
  Ks k{};
  for (int i = 0; i < nk; i++) k.k[i] = ks[i];
  k.n = nk;
  cuda::memsetZero(counts, sizeof(int32_t) * (size_t)nk);
  if (N <= 0 || C <= 0) return;
  const int64_t blocks = ((int64_t)N + kRowsPerBlock - 1) / kRowsPerBlock;
  AXN_LAUNCH("topkCorrect", topk_correct_kernel, (unsigned)blocks, kThreads, 0, logits, labels, counts, k, N, C);
}

}  // namespace axn::ops
