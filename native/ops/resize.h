// Batched bilinear resize, NCHW float32, PyTorch semantics: F.interpolate(x, size=(Ho, Wo), mode='bilinear',
// align_corners=False|True). Used to upscale small images on the device (Fashion-MNIST 28×28 → the paper
// AlexNet's 227×227) instead of in JavaScript.
//
// Per dimension (rows: in = H, out = Ho; columns: in = W, out = Wo), output o reads input taps i0, i1 with
// weights l0, l1 (resize_tap below):
//   scale = align_corners ? (out > 1 ? float(in − 1) / float(out − 1) : 0) : float(in) / float(out)   (float)
//   src   = align_corners ? scale·o : max(scale·(o + ½) − ½, 0)                                        (double)
//   i0 = min(floor(src), in − 1),  i1 = i0 + 1 if i0 < in − 1 else i0
//   l1 = float(clamp(src − i0, 0, 1)),  l0 = 1 − l1                                                    (float)
// and in == out is the identity (i0 = i1 = o, l0 = 1, l1 = 0). The scale rounded to float and the source
// coordinate kept in double are what PyTorch 1.13's CPU kernel does: these weights equal its weights bit for
// bit (checked by one-hot probes; 28 → 227 has source coordinates up to 27.4, where a float coordinate would
// be off by up to 2e-6). In double the coordinate is exact (a 24-bit scale times o + ½ fits 53 bits for
// o < 2^28), so CPU and CUDA agree exactly.
//   y[oh, ow] = a0·(b0·x[h0, w0] + b1·x[h0, w1]) + a1·(b0·x[h1, w0] + b1·x[h1, w1])
// with (h0, h1, a0, a1) the row taps of oh and (w0, w1, b0, b1) the column taps of ow.
#pragma once
#include "../hd.h"
#include <cstdint>

namespace axn::ops {

// x: (N, C, H, W)  ->  y: (N, C, Ho, Wo)
void resize_bilinear_forward_cpu(const float* x, float* y, int N, int C, int H, int W, int Ho, int Wo,
                                 bool alignCorners);
// dy: (N, C, Ho, Wo)  ->  dx: (N, C, H, W) (overwritten): each output adds (a·b)·dy to its four taps, in the
// order 00, 01, 10, 11, outputs in raster order (taps that coincide at an edge each add their share).
void resize_bilinear_backward_cpu(const float* dy, float* dx, int N, int C, int H, int W, int Ho, int Wo,
                                  bool alignCorners);

#ifdef AXN_WITH_CUDA
// One thread per output element.
void resize_bilinear_forward_cuda(const float* x, float* y, int N, int C, int H, int W, int Ho, int Wo,
                                  bool alignCorners);
// A gather per input element (no atomics): the outputs that tap an input row form a contiguous range, found
// by binary search on the monotone i0(o); contributions are added in the CPU's order with no FMA contraction,
// so the result is bit-equal to the CPU's and deterministic.
void resize_bilinear_backward_cuda(const float* dy, float* dx, int N, int C, int H, int W, int Ho, int Wo,
                                   bool alignCorners);
#endif

// ---- shared by the CPU and CUDA code ---------------------------------------------------------------------

// The float scale of one dimension (computed on the host and passed to kernels, so both use one value).
inline float resize_scale(int in, int out, bool alignCorners) {
  if (alignCorners) return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.f;
  return (float)in / (float)out;
}

struct ResizeTap {
  int i0, i1;
  float l0, l1;
};

// The two input taps of output o (see the top of this file). No FMA contraction on the device: the double
// products are exact anyway, and the explicit roundings keep host and device bit-identical.
AXN_HD inline ResizeTap resize_tap(int o, int in, int out, float scale, bool alignCorners) {
  ResizeTap t;
  if (in == out) {
    t.i0 = t.i1 = o;
    t.l0 = 1.f;
    t.l1 = 0.f;
    return t;
  }
#if defined(__CUDA_ARCH__)
  double src = alignCorners ? __dmul_rn((double)scale, (double)o)
                            : __dadd_rn(__dmul_rn((double)scale, (double)o + 0.5), -0.5);
#else
  double src = alignCorners ? (double)scale * (double)o : (double)scale * ((double)o + 0.5) - 0.5;
#endif
  if (src < 0.0) src = 0.0;
  int i0 = (int)src;  // src ≥ 0: truncation is floor
  if (i0 > in - 1) i0 = in - 1;
  double l = src - (double)i0;
  l = l < 0.0 ? 0.0 : (l > 1.0 ? 1.0 : l);
  t.i0 = i0;
  t.i1 = i0 < in - 1 ? i0 + 1 : i0;
  t.l1 = (float)l;
  t.l0 = 1.f - t.l1;
  return t;
}

// The first output o in [0, out] whose i0(o) ≥ target (out when none): i0 is non-decreasing in o (src is a
// rounded monotone function, floor and the clamps are monotone), so a binary search is exact.
AXN_HD inline int resize_first_output(int target, int in, int out, float scale, bool alignCorners) {
  int lo = 0, hi = out;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (resize_tap(mid, in, out, scale, alignCorners).i0 >= target) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

}  // namespace axn::ops
