// Softmax + cross-entropy from int32 class labels (PyTorch's F.cross_entropy with reduction 'mean'),
// fused: forward gives the mean loss and the probabilities that backward needs.
//
//   m_r = max_c x[r, c],  s_r = Σ_c exp(x[r, c] − m_r)            (max-subtracted: stable for any logits)
//   probs[r, c] = exp(x[r, c] − m_r) / s_r
//   loss = (1 / N) Σ_r (log s_r − (x[r, label_r] − m_r))
//   dlogits[r, c] = (probs[r, c] − [c == label_r]) · scale,  scale = dloss / N
//
// Labels outside [0, C): the CPU versions throw (before writing anything), naming the first such row; the
// CUDA forward writes NaN to the loss and the CUDA backward NaN to that row of dlogits (never silently
// wrong). A NaN logit makes its row's probabilities and the loss NaN.
#pragma once
#include <cstdint>

namespace axn::ops {

// logits: (N, C), labels: (N) int32 -> loss: (1), probs: (N, C).
// CPU: sums and the loss in double, each output rounded once.
void softmax_xent_forward_cpu(const float* logits, const int32_t* labels, float* loss, float* probs, int N, int C);
// probs: (N, C), labels: (N) -> dlogits: (N, C). dlogits may alias probs.
void softmax_xent_backward_cpu(const float* probs, const int32_t* labels, float* dlogits, int N, int C, float scale);

#ifdef AXN_WITH_CUDA
// One block per row (32 to 256 threads, by C), max and sum reduced with warp shuffles and shared memory;
// per-row losses go to a scratch buffer that a second one-block kernel averages in a fixed order
// (deterministic, no atomics).
void softmax_xent_forward_cuda(const float* logits, const int32_t* labels, float* loss, float* probs, int N, int C);
void softmax_xent_backward_cuda(const float* probs, const int32_t* labels, float* dlogits, int N, int C, float scale);
#endif

}  // namespace axn::ops
