// The class-label check shared by the CPU kernels that index by label (softmax cross-entropy, top-k) and
// their bindings: every label in [0, C), else an error naming the first bad one and its row.
#pragma once
#include <cstdint>
#include <string>

#include "common.h"

namespace axn::ops {

inline void check_labels(const char* op, const int32_t* labels, int N, int C) {
  for (int r = 0; r < N; r++)
    if (labels[r] < 0 || labels[r] >= C)
      fail(op,
           "label " + std::to_string(labels[r]) + " at row " + std::to_string(r) + " is outside [0, " +
               std::to_string(C) + ")",
           __FILE__, __LINE__);
}

}  // namespace axn::ops
