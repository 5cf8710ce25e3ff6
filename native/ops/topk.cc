// Top-k correct counts, CPU. See topk.h.
#include "ops/topk.h"

#include <cmath>
#include <string>

#include "common.h"
#include "ops/labels.h"

namespace axn::ops {

void topk_correct_cpu(const float* logits, const int32_t* labels, int32_t* counts, const int32_t* ks, int nk, int N,
                      int C) {
  AXN_CHECK(nk >= 1 && nk <= kTopkMaxKs, "topkCorrect", "expected 1 to 16 values of k, got " + std::to_string(nk));
  check_labels("topkCorrect", labels, N, C);
  int64_t local[kTopkMaxKs] = {};
  for (int r = 0; r < N; r++) {
    const float* x = logits + static_cast<int64_t>(r) * C;
    const float ref = x[labels[r]];
    bool nan = std::isnan(ref);
    int above = 0;
    for (int j = 0; j < C; j++) {
      above += x[j] > ref;
      nan = nan || std::isnan(x[j]);
    }
    if (nan) continue;
    for (int i = 0; i < nk; i++) local[i] += above < ks[i];
  }
  for (int i = 0; i < nk; i++) counts[i] = static_cast<int32_t>(local[i]);
}

}  // namespace axn::ops
