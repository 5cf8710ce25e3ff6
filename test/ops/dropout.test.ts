import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { dropout, dropoutBackward, dropoutCounters, dropoutMask, philox4x32 } from '../../lib/ops/dropout.js';
import { gradcheck, mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, noCuda } from '../helpers/gpu.js';

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Index of the first element whose bits differ (NaN-safe, fast on big arrays), or -1. */
function firstBitDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return -2;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

const hex = (a: Uint32Array) => Array.from(a, (v) => v.toString(16).padStart(8, '0'));

describe('Philox4x32-10 known-answer tests', () => {
  // From the Random123 distribution (D. E. Shaw Research, v1.09+), file tests/kat_vectors, the three
  // "philox4x32 10" lines — columns: counter (4 words), key (2 words), expected output (4 words):
  //   philox4x32 10 00000000 00000000 00000000 00000000 00000000 00000000   6627e8d5 e169c58d bc57ac4c 9b00dbd8
  //   philox4x32 10 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff   408f276d 41c83b0e a20bc7c6 6d5451fd
  //   philox4x32 10 243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0   d16cfe09 94fdcceb 5001e420 24126ea1
  // (the last one's inputs are the hex digits of pi).
  const kats: [string, number[], number[], string[]][] = [
    ['zeros', [0, 0, 0, 0], [0, 0], ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']],
    ['all ones', [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], ['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']],
    ['pi digits', [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], ['d16cfe09', '94fdcceb', '5001e420', '24126ea1']],
  ];
  it.each(kats)('%s', (_name, ctr, key, want) => {
    expect(hex(philox4x32(ctr, key))).toEqual(want);
  });
  it('rejects malformed counters and keys', () => {
    expect(() => philox4x32([0, 0, 0], [0, 0])).toThrow(/philox4x32: counter must be 4 32-bit words/);
    expect(() => philox4x32([0, 0, 0, 0], [0, 2 ** 32])).toThrow(/philox4x32: key\[1\] must be an integer in \[0, 2\^32\)/);
  });
});

/** The documented mapping, re-derived from the raw generator: element i draws word i % 4 of
 * Philox(counter = offset + ⌊i/4⌋ as [low, high, 0, 0], key = [seed low, seed high]); kept when
 * (word >> 8) < ⌈(1 − p)·2^24⌉. */
function referenceMask(n: number, p: number, seed: bigint, offset: number): Uint8Array {
  const threshold = Math.ceil((1 - p) * 2 ** 24);
  const key = [Number(seed & 0xffffffffn), Number(seed >> 32n)];
  const out = new Uint8Array(n);
  for (let b = 0; b * 4 < n; b++) {
    const c = BigInt(offset + b);
    const r = philox4x32([Number(c & 0xffffffffn), Number(c >> 32n), 0, 0], key);
    for (let l = 0; l < 4 && 4 * b + l < n; l++) out[4 * b + l] = r[l] >>> 8 < threshold ? 1 : 0;
  }
  return out;
}

describe('dropout mask', () => {
  it('follows the documented counter mapping (64-bit seed and offset words included)', () => {
    const cases: [number, number, bigint, number][] = [
      [13, 0.5, 0n, 0],
      [101, 0.3, 12345n, 7],
      [37, 0.5, (1n << 63n) + 5n, 2 ** 40 + 3], // high words of key and counter in use
    ];
    for (const [n, p, seed, offset] of cases) {
      expect(Array.from(dropoutMask(n, { p, seed, offset }))).toEqual(Array.from(referenceMask(n, p, seed, offset)));
    }
  });

  it('is deterministic, and differs with the offset or the seed', () => {
    const a = dropoutMask(4096, { p: 0.5, seed: 42, offset: 0 });
    expect(dropoutMask(4096, { p: 0.5, seed: 42, offset: 0 })).toEqual(a);
    expect(dropoutMask(4096, { p: 0.5, seed: 42n, offset: 0 })).toEqual(a); // number and bigint: same key
    const byOffset = dropoutMask(4096, { p: 0.5, seed: 42, offset: 1024 });
    const bySeed = dropoutMask(4096, { p: 0.5, seed: 43, offset: 0 });
    const agree = (x: Uint8Array, y: Uint8Array) => x.reduce((s, v, i) => s + (v === y[i] ? 1 : 0), 0);
    // Independent masks agree on about half the elements (4σ ≈ 128).
    expect(Math.abs(agree(a, byOffset) - 2048)).toBeLessThan(128);
    expect(Math.abs(agree(a, bySeed) - 2048)).toBeLessThan(128);
  });

  it('one counter per four elements: offset + 1 is the same stream shifted by 4', () => {
    const long = dropoutMask(1003, { p: 0.5, seed: 9, offset: 10 });
    const shifted = dropoutMask(999, { p: 0.5, seed: 9, offset: 11 });
    expect(Array.from(shifted)).toEqual(Array.from(long.subarray(4)));
    expect(dropoutCounters(1003)).toBe(251);
    expect(dropoutCounters(0)).toBe(0);
  });

  it('keep rate is 1 − p within 4σ on 1e6 elements', () => {
    const n = 1_000_000;
    for (const p of [0.1, 0.5, 0.9]) {
      const m = dropoutMask(n, { p, seed: 2024, offset: 5 });
      let kept = 0;
      for (let i = 0; i < n; i++) kept += m[i];
      const sigma = Math.sqrt(n * p * (1 - p));
      expect(Math.abs(kept - n * (1 - p)), `p = ${p}: kept ${kept}`).toBeLessThan(4 * sigma);
    }
  });

  it('p = 0 keeps everything, p = 1 drops everything', () => {
    expect(dropoutMask(1000, { p: 0, seed: 1 }).every((v) => v === 1)).toBe(true);
    expect(dropoutMask(1000, { p: 1, seed: 1 }).every((v) => v === 0)).toBe(true);
  });
});

describe('dropout forward and backward on the CPU', () => {
  it('y = x · mask · float32(1 / (1 − p)) exactly; mean preserved (1e6 elements)', async () => {
    const n = 1_000_000;
    const p = 0.5;
    const xv = random(n, 77, 0.5, 1.5);
    using x = Tensor.from(xv, [1000, 1000]);
    using y = dropout(x, { p, seed: 123n, offset: 17 });
    expect(y.shape).toEqual([1000, 1000]);
    const yv = await y.toFloat32Array();
    const mask = dropoutMask(n, { p, seed: 123n, offset: 17 });
    const scale = Math.fround(1 / (1 - p));
    let bad = -1;
    let sx = 0;
    let sy = 0;
    let syy = 0;
    for (let i = 0; i < n; i++) {
      const want = mask[i] ? Math.fround(xv[i] * scale) : 0;
      if (yv[i] !== want && bad < 0) bad = i;
      sx += xv[i];
      sy += yv[i];
      syy += yv[i] * yv[i];
    }
    expect(bad, 'first element that is not x · mask · scale').toBe(-1);
    const mean = sy / n;
    const sd = Math.sqrt(syy / n - mean * mean);
    expect(Math.abs(mean - sx / n)).toBeLessThan((4 * sd) / Math.sqrt(n));
  });

  it('scale is exact for p = 0.1 and 0.9 too', async () => {
    for (const p of [0.1, 0.9]) {
      const xv = random(4099, 3);
      using x = Tensor.from(xv, [4099]);
      using y = dropout(x, { p, seed: 5 });
      const yv = await y.toFloat32Array();
      const mask = dropoutMask(4099, { p, seed: 5 });
      const scale = Math.fround(1 / (1 - p));
      expect(Array.from(yv)).toEqual(Array.from(xv, (v, i) => (mask[i] ? Math.fround(v * scale) : 0)));
    }
  });

  it('backward applies the forward mask and scale (recomputed from seed and offset)', async () => {
    const n = 5003;
    const opts = { p: 0.3, seed: 99n, offset: 12345 };
    using dy = Tensor.from(random(n, 8), [n]);
    using ones = Tensor.from(new Float32Array(n).fill(1), [n]);
    using y1 = dropout(ones, opts);
    using dx = dropoutBackward(dy, opts);
    const [dyv, keep, dxv] = [await dy.toFloat32Array(), await y1.toFloat32Array(), await dx.toFloat32Array()];
    expect(Array.from(dxv)).toEqual(Array.from(dyv, (g, i) => (keep[i] ? Math.fround(g * keep[i]) : 0)));
    // Backward is the same map as forward: dropout(dy) with the same options.
    using y2 = dropout(dy, opts);
    expect(await y2.toFloat32Array()).toEqual(dxv);
  });

  it('gradient matches finite differences (dropout is linear in x)', () => {
    const opts = { p: 0.4, seed: 31, offset: 3 };
    gradcheck({
      inputs: [random(203, 12)],
      names: ['x'],
      samples: 203,
      forward: ([xv]) => {
        using x = Tensor.from(xv, [7, 29]);
        using y = dropout(x, opts);
        return y.dataSync() as Float32Array;
      },
      backward: (_inputs, dyv) => {
        using dy = Tensor.from(dyv, [7, 29]);
        using dx = dropoutBackward(dy, opts);
        return [dx.dataSync() as Float32Array];
      },
    });
  });

  it('p = 0 is the identity, p = 1 gives zeros (no division by zero)', async () => {
    const xv = random(1001, 4);
    using x = Tensor.from(xv, [1001]);
    using y0 = dropout(x, { p: 0, seed: 1 });
    expect(await y0.toFloat32Array()).toEqual(xv);
    using y1 = dropout(x, { p: 1, seed: 1 });
    expect(Array.from(await y1.toFloat32Array()).every((v) => v === 0)).toBe(true);
    using d1 = dropoutBackward(x, { p: 1, seed: 1 });
    expect(Array.from(await d1.toFloat32Array()).every((v) => v === 0)).toBe(true);
  });

  it('evaluation (training: false) returns a copy, or x itself when inplace; no mask applied', async () => {
    const xv = random(64, 6);
    using x = Tensor.from(xv, [8, 8]);
    using y = dropout(x, { p: 0.5, seed: 1, training: false });
    expect(y).not.toBe(x);
    expect(y.shape).toEqual([8, 8]);
    expect(await y.toFloat32Array()).toEqual(xv);
    expect(dropout(x, { p: 0.5, seed: 1, training: false, inplace: true })).toBe(x);
    expect(await x.toFloat32Array()).toEqual(xv);
  });

  it('works in place', async () => {
    const xv = random(257, 7);
    const x = Tensor.from(xv, [257]);
    using ref = dropout(x, { p: 0.5, seed: 3, offset: 1 });
    expect(dropout(x, { p: 0.5, seed: 3, offset: 1, inplace: true })).toBe(x);
    expect(await x.toFloat32Array()).toEqual(await ref.toFloat32Array());
    using dref = dropoutBackward(ref, { p: 0.5, seed: 3, offset: 1 });
    expect(dropoutBackward(x, { p: 0.5, seed: 3, offset: 1, inplace: true })).toBe(x);
    expect(await x.toFloat32Array()).toEqual(await dref.toFloat32Array());
    x.dispose();
  });
});

describe('dropout rejects bad input', () => {
  it('with clear messages', () => {
    using x = Tensor.zeros([4]);
    using xi = Tensor.zeros([4], 'cpu', 'int32');
    const d = (o: unknown) => () => dropout(x, o as { p: number; seed: number });
    expect(d({ p: -0.1, seed: 1 })).toThrow(/dropout: p must be a number in \[0, 1\], got -0.1/);
    expect(d({ p: 1.5, seed: 1 })).toThrow(/dropout: p must be a number in \[0, 1\], got 1.5/);
    expect(d({ p: NaN, seed: 1 })).toThrow(/dropout: p must be a number in \[0, 1\], got NaN/);
    expect(d({ p: 0.5 })).toThrow(/dropout: seed must be a non-negative integer .* got undefined/);
    expect(d({ p: 0.5, seed: -1 })).toThrow(/dropout: seed must be a non-negative integer/);
    expect(d({ p: 0.5, seed: 1.5 })).toThrow(/dropout: seed must be a non-negative integer/);
    expect(d({ p: 0.5, seed: 1n << 64n })).toThrow(/dropout: seed must be in \[0, 2\^64\), got 18446744073709551616n/);
    expect(d({ p: 0.5, seed: 1, offset: -1 })).toThrow(/dropout: offset must be a non-negative safe integer, got -1/);
    expect(d({ p: 0.5, seed: 1, offset: 2 ** 53 })).toThrow(/dropout: offset must be a non-negative safe integer/);
    expect(d({ p: 0.5, seed: 1, training: 'yes' })).toThrow(/dropout: training must be a boolean, got "yes"/);
    expect(d(undefined)).toThrow(/dropout: expected options \{ p, seed, offset\?, training\?, inplace\? \}, got undefined/);
    expect(() => dropout(xi, { p: 0.5, seed: 1 })).toThrow(/dropout: expected x to be float32 or bfloat16, got int32/);
    expect(() => dropoutBackward(xi, { p: 0.5, seed: 1 })).toThrow(/dropoutBackward: expected dy to be float32/);
    expect(() => dropoutBackward(x, { p: 2, seed: 1 })).toThrow(/dropoutBackward: p must be a number in \[0, 1\]/);
    expect(() => dropoutMask(-1, { p: 0.5, seed: 1 })).toThrow(/dropoutMask: n must be a non-negative integer, got -1/);
    const gone = Tensor.zeros([2]);
    gone.dispose();
    expect(() => dropout(gone, { p: 0.5, seed: 1 })).toThrow(DisposedError);
  });
});

describe('dropout memory', () => {
  it('leaks nothing', () => {
    const before = memoryStats();
    for (let i = 0; i < 5; i++) {
      using x = Tensor.from(random(300, i), [300]);
      using y = dropout(x, { p: 0.5, seed: i });
      using dx = dropoutBackward(y, { p: 0.5, seed: i });
      using e = dropout(x, { p: 0.5, seed: i, training: false });
    }
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBuffers).toBe(before.native.hostBuffers);
  });
});

describe.skipIf(noCuda)('dropout on CUDA is bit-identical to the CPU', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));
  const shapes: number[][] = [[cudaBatch(128), 4096], [cudaBatch(128), 9216], [1], [3], [1001], [5, 7]];
  const settings: [number, bigint | number, number][] = [
    [0.5, 1234, 0],
    [0.1, (1n << 63n) + 77n, 2 ** 33 + 5], // high key and counter words
    [0.9, 7, 1],
  ];
  it.each(shapes.map((s) => [s.join('x'), s] as const))('%s', async (_name, shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const xv = random(n, n);
    using x = Tensor.from(xv, shape);
    using xg = x.to('cuda');
    for (const [p, seed, offset] of settings) {
      const o = { p, seed, offset };
      using yc = dropout(x, o);
      using yg = dropout(xg, o);
      expect(firstBitDiff(await yg.toFloat32Array(), await yc.toFloat32Array()), `forward ${JSON.stringify({ p, offset })}`).toBe(-1);
      using dc = dropoutBackward(x, o);
      using dg = dropoutBackward(xg, o);
      expect(firstBitDiff(await dg.toFloat32Array(), await dc.toFloat32Array()), 'backward').toBe(-1);
      // In place on the device.
      using xg2 = x.to('cuda');
      expect(dropout(xg2, { ...o, inplace: true })).toBe(xg2);
      expect(firstBitDiff(await xg2.toFloat32Array(), await yc.toFloat32Array()), 'in place').toBe(-1);
    }
  });
  it('the CUDA mask is the CPU mask (x = 1)', async () => {
    const n = 128 * 4096;
    using ones = Tensor.from(new Float32Array(n).fill(1), [n], 'cuda');
    using y = dropout(ones, { p: 0.5, seed: 2024n, offset: 99 });
    const yv = await y.toFloat32Array();
    const mask = dropoutMask(n, { p: 0.5, seed: 2024n, offset: 99 });
    let bad = -1;
    for (let i = 0; i < n && bad < 0; i++) if ((yv[i] !== 0 ? 1 : 0) !== mask[i] || (mask[i] && yv[i] !== 2)) bad = i;
    expect(bad).toBe(-1);
  });
  it('p = 1 gives zeros, evaluation returns a device copy', async () => {
    using x = Tensor.from(random(1001, 1), [1001], 'cuda');
    using z = dropout(x, { p: 1, seed: 3 });
    expect(Array.from(await z.toFloat32Array()).every((v) => v === 0)).toBe(true);
    using e = dropout(x, { p: 0.5, seed: 3, training: false });
    expect(e.device).toBe('cuda');
    expect(e).not.toBe(x);
    expect(await e.toFloat32Array()).toEqual(await x.toFloat32Array());
  });
});
