// Launch geometry shared by the CUDA kernels: 256-thread blocks over a grid-stride loop.
#pragma once
#include <algorithm>
#include <cstdint>

namespace axn::cuda {

constexpr int kThreads = 256;

// Blocks for `work` items in a grid-stride loop: one item per thread up to `cap` blocks (the loop covers
// the rest); at least 1.
inline unsigned gridFor(int64_t work, int64_t cap = int64_t(1) << 20) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((work + kThreads - 1) / kThreads, cap)));
}

}  // namespace axn::cuda
