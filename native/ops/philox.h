// Philox4x32-10, the counter-based random number generator of Salmon, Moraes, Dror and Shaw, "Parallel
// random numbers: as easy as 1, 2, 3" (SC'11) — the generator cuRAND (curand_Philox4x32_10) and PyTorch's
// CUDA dropout use. One call maps a 128-bit counter and a 64-bit key to four independent 32-bit words;
// there is no state, so any element of a stream can be drawn in any order, on any thread.
//
// Written once as __host__ __device__ code and included by the CPU (.cc) and CUDA (.cu) files alike, so a
// build's CPU and GPU draw bit-identical numbers for the same (key, counter). Checked against the
// known-answer vectors of the Random123 distribution (tests/kat_vectors) in test/ops/dropout.test.ts.
#pragma once
#include <cstdint>

#include "../hd.h"

namespace axn::philox {

struct U32x4 {
  uint32_t x, y, z, w;
};

// Random123's constants: the multipliers, and the Weyl sequence that bumps the key between rounds
// (the golden ratio and sqrt(3) - 1, as 32-bit fractions).
constexpr uint32_t kM0 = 0xD2511F53u;
constexpr uint32_t kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u;
constexpr uint32_t kW1 = 0xBB67AE85u;

AXN_HD_INLINE uint32_t mulhi(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
#endif
}

// One Philox round (Random123's philox4x32round): two 32x32 -> 64-bit products, then a fixed permutation
// that XORs the high halves with the other words and the key.
AXN_HD_INLINE U32x4 round(U32x4 c, uint32_t k0, uint32_t k1) {
  const uint32_t hi0 = mulhi(kM0, c.x), lo0 = kM0 * c.x;
  const uint32_t hi1 = mulhi(kM1, c.z), lo1 = kM1 * c.z;
  return U32x4{hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
}

// Philox4x32 with 10 rounds: round, then (bump key, round) nine times.
AXN_HD_INLINE U32x4 philox4x32_10(U32x4 ctr, uint32_t k0, uint32_t k1) {
  ctr = round(ctr, k0, k1);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 1; r < 10; r++) {
    k0 += kW0;
    k1 += kW1;
    ctr = round(ctr, k0, k1);
  }
  return ctr;
}

// The block of four words for a 64-bit seed (the key: low word first) and a 64-bit counter (words x, y;
// z = w = 0). Dropout draws element i from block (offset + i / 4), word i % 4 (see dropout.h).
AXN_HD_INLINE U32x4 block(uint64_t seed, uint64_t counter) {
  return philox4x32_10(U32x4{static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u},
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

AXN_HD_INLINE uint32_t word(const U32x4& r, int lane) {
  return lane == 0 ? r.x : lane == 1 ? r.y : lane == 2 ? r.z : r.w;
}

}  // namespace axn::philox
