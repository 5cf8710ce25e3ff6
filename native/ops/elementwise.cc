// Element-wise utilities, CPU: plain loops (OpenMP for the big ones). See elementwise.h.
#include "ops/elementwise.h"

namespace axn::ops {

namespace {
// Below this many elements a thread team costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
}  // namespace

void axpy_cpu(float* y, const float* x, int64_t n, float alpha) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    const float ax = alpha * x[i];
    y[i] = y[i] + ax;
  }
}

void scale_cpu(float* x, int64_t n, float alpha) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) x[i] = x[i] * alpha;
}

void fill_cpu(float* x, int64_t n, float value) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) x[i] = value;
}

void add_cpu(const float* x, const float* y, float* z, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) z[i] = x[i] + y[i];
}

void sum_squares_cpu(const float* x, float* out, int64_t n) {
  double s = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    const double v = x[i];
    s += v * v;
  }
  out[0] = static_cast<float>(s);
}

void to_bf16_cpu(const float* src, bf16_t* dst, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) dst[i] = to_bf16(src[i]);
}

void from_bf16_cpu(const bf16_t* src, float* dst, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) dst[i] = from_bf16(src[i]);
}

}  // namespace axn::ops
