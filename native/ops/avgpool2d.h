// Adaptive 2-D average pooling, NCHW float32, PyTorch semantics (nn.AdaptiveAvgPool2d, torchvision AlexNet's
// AdaptiveAvgPool2d((6, 6))). Output row oh averages input rows [start(oh), end(oh)) with
//   start(oh) = floor(oh·H / Ho),  end(oh) = ceil((oh + 1)·H / Ho)
// (integer arithmetic), columns likewise. H == Ho is the identity; H < Ho repeats input rows (upsampling).
#pragma once
#include "../hd.h"
#include <cstdint>

namespace axn::ops {

// x: (N, C, H, W)  ->  y: (N, C, Ho, Wo)
void adaptive_avgpool2d_forward_cpu(const float* x, float* y, int N, int C, int H, int W, int Ho, int Wo);
// dy: (N, C, Ho, Wo)  ->  dx: (N, C, H, W) (overwritten): each output spreads dy / (its window's size) over
// its window; summed in raster order of the outputs.
void adaptive_avgpool2d_backward_cpu(const float* dy, float* dx, int N, int C, int H, int W, int Ho, int Wo);

#ifdef AXN_WITH_CUDA
void adaptive_avgpool2d_forward_cuda(const float* x, float* y, int N, int C, int H, int W, int Ho, int Wo);
// A gather per input element (no atomics), in the CPU's order: bit-equal to the CPU result.
void adaptive_avgpool2d_backward_cuda(const float* dy, float* dx, int N, int C, int H, int W, int Ho, int Wo);
#endif

// Window bounds, shared by the CPU and CUDA code. Output row o of `out` rows over `in` input rows covers
// input rows [adaptive_start(o, out, in), adaptive_end(o, out, in)). The map inverts with the sizes swapped:
// the outputs whose windows contain input row i are [adaptive_start(i, in, out), adaptive_end(i, in, out))
// (i ≥ floor(o·in/out) ⇔ o < ceil((i+1)·out/in), and i < ceil((o+1)·in/out) ⇔ o ≥ floor(i·out/in)).
// floor(i·in / out), with int64 products.
AXN_HD inline int adaptive_start(int i, int out, int in) { return (int)(((int64_t)i * in) / out); }
// ceil((i + 1)·in / out)
AXN_HD inline int adaptive_end(int i, int out, int in) { return (int)(((int64_t)(i + 1) * in + out - 1) / out); }

}  // namespace axn::ops
