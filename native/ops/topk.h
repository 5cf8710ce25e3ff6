// Top-k correct counts (accuracy counting) on the device that holds the logits.
//
// Row r is correct at k when #{j : x[r, j] > x[r, label_r]} < k — ties count in the label's favour (the
// label's rank is the number of classes strictly above it). A row holding a NaN logit is wrong for every
// k. counts[i] = number of correct rows at k = ks[i].
// Labels outside [0, C): the CPU version throws (before writing); the CUDA version sets the sign bit of
// every count (a negative count, never a plausible one).
#pragma once
#include <cstdint>

namespace axn::ops {

constexpr int kTopkMaxKs = 16;

// logits: (N, C), labels: (N) int32, ks: host array of nk (1 ≤ nk ≤ kTopkMaxKs) values -> counts: (nk) int32,
// overwritten.
void topk_correct_cpu(const float* logits, const int32_t* labels, int32_t* counts, const int32_t* ks, int nk, int N,
                      int C);

#ifdef AXN_WITH_CUDA
// One warp per row (8 rows per 256-thread block): each lane counts the classes above the label's logit over
// a strided share of the row, a shuffle reduction adds them, and lane 0 does one atomicAdd per k it
// satisfies into counts (zeroed first on the stream).
void topk_correct_cuda(const float* logits, const int32_t* labels, int32_t* counts, const int32_t* ks, int nk, int N,
                       int C);
#endif

}  // namespace axn::ops
