// Batch augmentation of decoded images: uint8 HWC slots in, the model's normalised float32 NCHW input out,
// in one pass. The data loader (native/data/loader.*) decodes images into uint8 slots (4× fewer bytes to
// copy to the device than float32); this op makes, for every output image, a crop of its slot, an optional
// horizontal flip, the paper's PCA colour shift and the per-channel normalisation.
//
// Output image n reads slot p[n].slot; its (y, x) pixel of channel c is
//   v = u8[slot, top + y, flip ? left + Wo − 1 − x : left + x, c]          (top, left, flip = p[n])
//   y[n, c, y, x] = v · a[n, c] + b[n, c]       (one float multiply, one float add: no FMA, both devices)
// with a = 1 / (255 · std[c]) and b = (shift[n, c] − mean[c]) / std[c], computed once on the host (the
// caller, lib/ops/augment.ts) in float and passed in, so the CPU and the CUDA version round identically
// and agree bit for bit. Several outputs may read one slot (the paper's ten crops of an image).
#pragma once
#include <cstdint>

#include "../hd.h"

namespace axn::ops {

// One output image's choices: which slot, the crop's top-left corner in it, and a horizontal flip (0/1).
struct AugmentParams {
  int32_t slot, top, left, flip;
};

// u8: (S, Hs, Ws, C) uint8 HWC; p: N × AugmentParams (as int32 quadruples); coef: (N, C, 2) float (a, b);
// y: (N, C, Ho, Wo). Every p[n] satisfies 0 ≤ slot < S, 0 ≤ top ≤ Hs − Ho, 0 ≤ left ≤ Ws − Wo (checked
// by the binding before anything runs).
void augment_batch_cpu(const uint8_t* u8, const int32_t* p, const float* coef, float* y, int S, int Hs, int Ws,
                       int C, int N, int Ho, int Wo);
#ifdef AXN_WITH_CUDA
// One thread per output pixel (all C channels), a block row of threads per output row segment: the reads
// of a warp are 32 consecutive pixels of one slot row (C·32 bytes), the writes coalesced per plane.
void augment_batch_cuda(const uint8_t* u8, const int32_t* p, const float* coef, float* y, int S, int Hs, int Ws,
                        int C, int N, int Ho, int Wo);
#endif

// The value of one output element (shared by both versions).
AXN_HD_INLINE float augment_value(uint8_t v, float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(__fmul_rn((float)v, a), b);
#else
  return (float)v * a + b;  // -ffp-contract=off: two roundings, as on the device
#endif
}

}  // namespace axn::ops
