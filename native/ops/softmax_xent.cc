// Softmax + cross-entropy, CPU. See softmax_xent.h.
#include "ops/softmax_xent.h"

#include <cmath>
#include <string>
#include <vector>

#include "common.h"
#include "ops/labels.h"

namespace axn::ops {

void softmax_xent_forward_cpu(const float* logits, const int32_t* labels, float* loss, float* probs, int N, int C) {
  check_labels("softmaxCrossEntropy", labels, N, C);
  std::vector<double> rowLoss(N);
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * C >= (1 << 15))
  for (int r = 0; r < N; r++) {
    const float* x = logits + static_cast<int64_t>(r) * C;
    float* p = probs + static_cast<int64_t>(r) * C;
    float m = x[0];
    for (int c = 1; c < C; c++) m = x[c] > m ? x[c] : m;
    double s = 0.0;
    for (int c = 0; c < C; c++) s += std::exp(static_cast<double>(x[c]) - m);
    // exp again rather than a stored float copy, so each probability is rounded to float once.
    for (int c = 0; c < C; c++) p[c] = static_cast<float>(std::exp(static_cast<double>(x[c]) - m) / s);
    rowLoss[r] = std::log(s) - (static_cast<double>(x[labels[r]]) - m);
  }
  double total = 0.0;
  for (int r = 0; r < N; r++) total += rowLoss[r];
  loss[0] = static_cast<float>(total / N);
}

void softmax_xent_backward_cpu(const float* probs, const int32_t* labels, float* dlogits, int N, int C, float scale) {
  check_labels("softmaxCrossEntropyBackward", labels, N, C);
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(N) * C >= (1 << 15))
  for (int r = 0; r < N; r++) {
    const int64_t row = static_cast<int64_t>(r) * C;
    for (int c = 0; c < C; c++) {
      const float d = probs[row + c] - (c == labels[r] ? 1.0f : 0.0f);
      dlogits[row + c] = d * scale;
    }
  }
}

}  // namespace axn::ops
