// SGD with momentum, weight decay, dampening and Nesterov as ONE fused in-place update over a flat
// buffer — torch.optim.SGD's (PyTorch 1.13, single-tensor path) formulation exactly, per element:
//
//   g = grad + wd · p                       (when wd ≠ 0)
//   if momentum ≠ 0:
//     buf = first ? g : momentum · buf + (1 − dampening) · g
//     g   = nesterov ? g + momentum · buf : buf
//   p = p − lr · g                          (PyTorch's p.add_(g, alpha=−lr))
//
// Each product and sum is rounded to float separately (no FMA contraction; CUDA uses __fmul_rn/__fadd_rn),
// so the CPU and CUDA updates are bit-identical on x86-64.
#pragma once
#include <cstdint>

namespace axn::ops {

struct SgdOptions {
  float lr = 0.f;
  float momentum = 0.f;
  float oneMinusDampening = 1.f;  // 1 − dampening computed in double, then rounded (PyTorch's alpha)
  float weightDecay = 0.f;
  bool nesterov = false;
  bool firstStep = false;  // initialise buf with g (PyTorch: no momentum_buffer in the state yet)
};

// param: (n), grad: (n), buf: (n) momentum buffer (ignored and may be null when momentum == 0).
// param and buf are updated in place.
void sgd_update_cpu(float* param, const float* grad, float* buf, int64_t n, const SgdOptions& o);

// The same update over many tensors at once (a model's parameters): one launch on CUDA. Per tensor its own
// weight decay (0 for parameters without decay) and first-step flag; lr, momentum, dampening and nesterov
// shared. With `guard` (e.g. the step's loss) non-null and not finite, or `halt` (a float flag, read and
// written) non-null and non-zero, nothing is updated and *halt becomes 1: a diverged step changes no
// weight, and neither does any step enqueued after it until the flag is cleared — decided on the device,
// without a host synchronisation, so the host may keep a step in flight.
struct SgdTensor {
  float* param;
  const float* grad;
  float* buf;  // null when momentum == 0
  int64_t n;
  float weightDecay;
  bool firstStep;
};
constexpr int kSgdMaxTensors = 32;  // per launch (kernel parameter space); more go in several launches
void sgd_update_multi_cpu(const SgdTensor* t, int count, const SgdOptions& o, const float* guard, float* halt);

#ifdef AXN_WITH_CUDA
void sgd_update_cuda(float* param, const float* grad, float* buf, int64_t n, const SgdOptions& o);
void sgd_update_multi_cuda(const SgdTensor* t, int count, const SgdOptions& o, const float* guard, float* halt);
#endif

}  // namespace axn::ops
