import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { augmentBatch } from '../../lib/ops/augment.js';
import { mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, noCuda } from '../helpers/gpu.js';

const f = Math.fround;

function randomBytes(n: number, seed: number): Uint8Array {
  const r = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

interface Case {
  S: number;
  Hs: number;
  Ws: number;
  C: number;
  N: number;
  Ho: number;
  Wo: number;
}

/** Random (slot, top, left, flip) for each output image, every crop inside its slot. */
function randomParams(c: Case, seed: number): Int32Array {
  const r = mulberry32(seed);
  const p = new Int32Array(c.N * 4);
  for (let n = 0; n < c.N; n++) {
    p[4 * n] = Math.floor(r() * c.S);
    p[4 * n + 1] = Math.floor(r() * (c.Hs - c.Ho + 1));
    p[4 * n + 2] = Math.floor(r() * (c.Ws - c.Wo + 1));
    p[4 * n + 3] = r() < 0.5 ? 1 : 0;
  }
  return p;
}

/** The op's definition, element by element, in the float arithmetic it specifies (a and b rounded once,
 * then a rounded product and a rounded sum), and the same in float64 as the mathematical value. */
function reference(u8: Uint8Array, c: Case, p: Int32Array, mean: number[], std: number[], shift: Float32Array | null) {
  const exact = new Float32Array(c.N * c.C * c.Ho * c.Wo);
  const ideal = new Float64Array(exact.length);
  for (let n = 0; n < c.N; n++) {
    const [slot, top, left, flip] = p.subarray(4 * n, 4 * n + 4);
    for (let ch = 0; ch < c.C; ch++) {
      const s = shift ? shift[n * c.C + ch] : 0;
      const a = f(1 / (255 * std[ch]));
      const b = f((s - mean[ch]) / std[ch]);
      for (let y = 0; y < c.Ho; y++)
        for (let x = 0; x < c.Wo; x++) {
          const sx = flip ? left + c.Wo - 1 - x : left + x;
          const v = u8[((slot * c.Hs + top + y) * c.Ws + sx) * c.C + ch];
          const o = ((n * c.C + ch) * c.Ho + y) * c.Wo + x;
          exact[o] = f(f(v * a) + b);
          ideal[o] = (v / 255 + s - mean[ch]) / std[ch];
        }
    }
  }
  return { exact, ideal };
}

const MEAN3 = [0.485, 0.456, 0.406];
const STD3 = [0.229, 0.224, 0.225];
const norm = (C: number) => (C === 3 ? { mean: MEAN3, std: STD3 } : { mean: Array(C).fill(0.449), std: Array(C).fill(0.226) });

const cases: [string, Case, boolean][] = [
  ['the paper: 256² slots → 224², PCA shift', { S: 3, Hs: 256, Ws: 256, C: 3, N: 3, Ho: 224, Wo: 224 }, true],
  ['exact crops (slot = output), 227²', { S: 2, Hs: 227, Ws: 227, C: 3, N: 2, Ho: 227, Wo: 227 }, true],
  ['ten crops of two slots', { S: 2, Hs: 40, Ws: 52, C: 3, N: 20, Ho: 32, Wo: 32 }, false],
  ['grey, odd sizes', { S: 5, Hs: 31, Ws: 17, C: 1, N: 7, Ho: 13, Wo: 9 }, false],
  ['two channels, 1×1 crops', { S: 4, Hs: 3, Ws: 5, C: 2, N: 6, Ho: 1, Wo: 1 }, true],
  ['four channels, a row', { S: 1, Hs: 1, Ws: 300, C: 4, N: 3, Ho: 1, Wo: 257 }, false],
];

function run(device: 'cpu' | 'cuda', u8v: Uint8Array, c: Case, p: Int32Array, shift: Float32Array | null) {
  const { mean, std } = norm(c.C);
  using u8 = Tensor.from(u8v, [c.S, c.Hs, c.Ws, c.C], device);
  return augmentBatch(u8, p, { size: [c.Ho, c.Wo], mean, std, shift });
}

describe('augmentBatch on the CPU', () => {
  it.each(cases)('%s: the specified float arithmetic exactly, within 4 units of rounding of the exact value', async (_, c, withShift) => {
    const seed = c.S * 1000 + c.N;
    const u8v = randomBytes(c.S * c.Hs * c.Ws * c.C, seed);
    const p = randomParams(c, seed + 1);
    const r = mulberry32(seed + 2);
    const shift = withShift ? Float32Array.from({ length: c.N * c.C }, () => (r() - 0.5) * 0.2) : null;
    using y = run('cpu', u8v, c, p, shift);
    expect(y.shape).toEqual([c.N, c.C, c.Ho, c.Wo]);
    expect(y.dtype).toBe('float32');
    const got = await y.toFloat32Array();
    const { exact, ideal } = reference(u8v, c, p, norm(c.C).mean, norm(c.C).std, shift);
    expect(got).toEqual(exact);
    // two roundings of a and b, one of the product, one of the sum: |err| ≤ 4u·(|v·a| + |b|) ≤ 4u·max|ideal|+...
    let worst = 0;
    for (let i = 0; i < got.length; i++) {
      const scale = Math.max(Math.abs(ideal[i]), 1 / 0.225);
      worst = Math.max(worst, Math.abs(got[i] - ideal[i]) / scale);
    }
    expect(worst).toBeLessThanOrEqual(4 * 2 ** -24);
  });

  it('flips mirror the crop, not the slot', async () => {
    const u8v = Uint8Array.from([0, 10, 20, 30, 40, 50]);
    using u8 = Tensor.from(u8v, [1, 1, 6, 1]);
    using y = augmentBatch(u8, [0, 0, 2, 0, 0, 0, 2, 1], { size: [1, 3], mean: [0], std: [1 / 255] });
    expect(Array.from(await y.toFloat32Array())).toEqual([20, 30, 40, 40, 30, 20]);
  });

  it('refuses what does not fit, naming the image and what was expected', () => {
    using u8 = Tensor.from(new Uint8Array(2 * 8 * 8 * 3), [2, 8, 8, 3]);
    const o = { size: 4, mean: MEAN3, std: STD3 };
    expect(() => augmentBatch(u8, [2, 0, 0, 0], o)).toThrow(/image 0 reads slot 2, expected 0 to 1/);
    expect(() => augmentBatch(u8, [0, 0, 0, 0, 1, 5, 0, 0], o)).toThrow(/image 1's 4×4 crop at \(top 5, left 0\) is not inside the 8×8 slot/);
    expect(() => augmentBatch(u8, [0, 0, -1, 0], o)).toThrow(/not inside/);
    expect(() => augmentBatch(u8, [0, 0, 0, 2], o)).toThrow(/flip must be 0 or 1, got 2/);
    expect(() => augmentBatch(u8, [0, 0, 0], o)).toThrow(/not a whole number of \(slot, top, left, flip\) quadruples/);
    expect(() => augmentBatch(u8, [0, 0, 0, 0], { ...o, size: 9 })).toThrow(/a 9×9 crop does not fit in 8×8 slots/);
    expect(() => augmentBatch(u8, [0, 0, 0, 0], { ...o, std: [1, 0, 1] })).toThrow(/std to be 3 finite positive numbers/);
    expect(() => augmentBatch(u8, [0, 0, 0, 0], { ...o, shift: [0, 0] })).toThrow(/shift to hold N × C = 3 numbers/);
    expect(() => augmentBatch(u8, [0, 0, 0, 0], { ...o, shift: [0, NaN, 0] })).toThrow(/shift\[1\] is NaN/);
    using f32 = Tensor.zeros([1, 8, 8, 3]);
    expect(() => augmentBatch(f32, [0, 0, 0, 0], o)).toThrow(/expected u8 to be uint8, got float32/);
    using five = Tensor.from(new Uint8Array(8 * 8 * 5), [1, 8, 8, 5]);
    expect(() => augmentBatch(five, [0, 0, 0, 0], { ...o, mean: [0, 0, 0, 0, 0], std: [1, 1, 1, 1, 1] })).toThrow(/1 to 4 channels/);
  });

  it('an empty batch is an empty tensor', async () => {
    using u8 = Tensor.from(new Uint8Array(8 * 8 * 3), [1, 8, 8, 3]);
    using y = augmentBatch(u8, new Int32Array(0), { size: 4, mean: MEAN3, std: STD3 });
    expect(y.shape).toEqual([0, 3, 4, 4]);
  });
});

describe.skipIf(noCuda)('augmentBatch on CUDA matches the CPU bit for bit', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));

  const gpuCases: [string, Case, boolean][] = [
    ...cases.slice(2),
    ['the paper at batch 4 (emulator) / 128 (GPU)', { S: cudaBatch(128, 4), Hs: 256, Ws: 256, C: 3, N: cudaBatch(128, 4), Ho: 224, Wo: 224 }, true],
    ['227² crops of 227² slots', { S: cudaBatch(64, 2), Hs: 227, Ws: 227, C: 3, N: cudaBatch(64, 2), Ho: 227, Wo: 227 }, true],
  ];

  it.each(gpuCases)('%s', async (_, c, withShift) => {
    const seed = 77 + c.S * 31 + c.N;
    const u8v = randomBytes(c.S * c.Hs * c.Ws * c.C, seed);
    const p = randomParams(c, seed + 1);
    const r = mulberry32(seed + 2);
    const shift = withShift ? Float32Array.from({ length: c.N * c.C }, () => (r() - 0.5) * 0.2) : null;
    using yc = run('cpu', u8v, c, p, shift);
    using yg = run('cuda', u8v, c, p, shift);
    expect(yg.device).toBe('cuda');
    expect(await yg.toFloat32Array()).toEqual(await yc.toFloat32Array());
  });

  it('uint8 tensors round-trip through the device', async () => {
    const v = randomBytes(1001, 5);
    using t = Tensor.from(v, [7, 11, 13], 'cuda');
    expect(t.bytes).toBe(1001);
    expect(await t.toUint8Array()).toEqual(v);
    using back = t.to('cpu');
    expect(back.dataSync()).toEqual(v);
  });

  it('leaks no device memory', async () => {
    const before = memoryStats();
    const c = { S: 2, Hs: 20, Ws: 20, C: 3, N: 4, Ho: 16, Wo: 16 };
    for (let i = 0; i < 3; i++) {
      using y = run('cuda', randomBytes(2 * 20 * 20 * 3, i), c, randomParams(c, i), null);
      await y.toFloat32Array();
    }
    const after = memoryStats();
    expect(after.tensors.cuda).toBe(before.tensors.cuda);
    expect(after.native.cuda!.inUseBytes).toBe(before.native.cuda!.inUseBytes);
  });
});

describe('uint8 tensors', () => {
  it('hold bytes: from, read back, sizes, errors', async () => {
    const v = Uint8Array.from([0, 1, 127, 128, 255]);
    using t = Tensor.from(v, [5]);
    expect(t.dtype).toBe('uint8');
    expect(t.bytes).toBe(5);
    expect(await t.toUint8Array()).toEqual(v);
    expect(Array.from(await t.toFloat32Array())).toEqual([0, 1, 127, 128, 255]);
    using u = Tensor.from([3, 4], [2], 'cpu', 'uint8');
    expect(await u.toUint8Array()).toEqual(Uint8Array.from([3, 4]));
    expect(() => Tensor.from([256], [1], 'cpu', 'uint8')).toThrow(/integers from 0 to 255, got 256 at index 0/);
    expect(() => Tensor.from(new Float32Array(1), [1], 'cpu', 'uint8')).toThrow(/got a Float32Array for dtype "uint8"/);
    expect(() => Tensor.from(v, [5], 'cpu', 'float32')).toThrow(/got a Uint8Array for dtype "float32"/);
    using z = Tensor.zeros([3], 'cpu', 'uint8');
    expect(z.dataSync()).toEqual(new Uint8Array(3));
    await expect(z.toInt32Array()).rejects.toThrow(/tensor is uint8/);
  });
});
