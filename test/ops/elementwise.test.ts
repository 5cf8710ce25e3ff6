import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { add, axpy_, fill_, scale_, sumSquares } from '../../lib/ops/elementwise.js';
import { mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, emulated, noCuda } from '../helpers/gpu.js';

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}
const f = Math.fround;

function firstBitDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return -2;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

describe('element-wise ops on the CPU', () => {
  it('axpy_: y = y + α·x, each operation rounded to float32; returns y', async () => {
    const yv = random(1001, 1);
    const xv = random(1001, 2);
    using y = Tensor.from(yv, [7, 11, 13]);
    using x = Tensor.from(xv, [1001]); // any shapes with the same number of elements
    expect(axpy_(y, x, -0.37)).toBe(y);
    expect(await y.toFloat32Array()).toEqual(Float32Array.from(yv, (v, i) => f(v + f(f(-0.37) * xv[i]))));
  });

  it('scale_ and fill_ work in place and return x', async () => {
    const xv = random(37, 3);
    using x = Tensor.from(xv, [37]);
    expect(scale_(x, 2.5)).toBe(x);
    expect(await x.toFloat32Array()).toEqual(Float32Array.from(xv, (v) => f(v * 2.5)));
    expect(fill_(x, 0.1)).toBe(x);
    expect(Array.from(await x.toFloat32Array()).every((v) => v === f(0.1))).toBe(true);
    fill_(x, NaN);
    expect(Array.from(await x.toFloat32Array()).every((v) => Number.isNaN(v))).toBe(true);
    fill_(x, -Infinity);
    expect(Array.from(await x.toFloat32Array()).every((v) => v === -Infinity)).toBe(true);
  });

  it('add: a new tensor z = x + y', async () => {
    const xv = random(103, 4);
    const yv = random(103, 5);
    using x = Tensor.from(xv, [103]);
    using y = Tensor.from(yv, [103]);
    using z = add(x, y);
    expect(z).not.toBe(x);
    expect(z.shape).toEqual([103]);
    expect(await z.toFloat32Array()).toEqual(Float32Array.from(xv, (v, i) => f(v + yv[i])));
    expect(await x.toFloat32Array()).toEqual(xv);
  });

  it('sumSquares: Σ x² in double, rounded once; [1]; empty → 0; NaN and ∞ propagate', async () => {
    const xv = random(100003, 6, -3, 3);
    using x = Tensor.from(xv, [100003]);
    using s = sumSquares(x);
    expect(s.shape).toEqual([1]);
    const ref = xv.reduce((a, v) => a + v * v, 0);
    expect(Math.abs((await s.toFloat32Array())[0] - ref) / ref).toBeLessThanOrEqual(6e-8); // one float rounding
    using e = Tensor.zeros([0]);
    using se = sumSquares(e);
    expect((await se.toFloat32Array())[0]).toBe(0);
    using bad = Tensor.from([1, NaN, 2], [3]);
    using sb = sumSquares(bad);
    expect(Number.isNaN((await sb.toFloat32Array())[0])).toBe(true);
    using inf = Tensor.from([1, -Infinity], [2]);
    using si = sumSquares(inf);
    expect((await si.toFloat32Array())[0]).toBe(Infinity);
    // Accumulating in double: 1e7 values of 1e-4² do not lose their sum to float32 rounding.
    using small = Tensor.from(new Float32Array(1e7).fill(1e-4), [1e7]);
    using ss = sumSquares(small);
    expect(Math.abs((await ss.toFloat32Array())[0] - 1e7 * f(1e-4) ** 2)).toBeLessThan(1e-6);
  });
});

describe('element-wise ops reject bad input', () => {
  it('with clear messages', () => {
    using a = Tensor.zeros([4]);
    using b = Tensor.zeros([2, 2]);
    using c = Tensor.zeros([5]);
    using i = Tensor.zeros([4], 'cpu', 'int32');
    expect(() => axpy_(a, c, 1)).toThrow("axpy_: expected x with y's 4 elements, got [5] (5 elements)");
    expect(() => axpy_(a, b, NaN)).toThrow('axpy_: alpha must be a finite number, got NaN');
    expect(() => axpy_(i, a, 1)).toThrow('axpy_: expected y to be float32, got int32');
    expect(() => scale_(a, Infinity)).toThrow('scale_: alpha must be a finite number, got Infinity');
    expect(() => scale_(i, 2)).toThrow('scale_: expected x to be float32, got int32');
    expect(() => fill_(a, '1' as unknown as number)).toThrow('fill_: value must be a number, got string');
    expect(() => add(a, b)).toThrow('add: expected y (the shape of x) of shape [4], got [2, 2]');
    expect(() => add(a, i)).toThrow('add: expected y to be float32, got int32');
    expect(() => sumSquares(i)).toThrow('sumSquares: expected x to be float32, got int32');
    expect(() => sumSquares([1, 2] as unknown as Tensor)).toThrow('sumSquares: expected x to be a Tensor, got [1, 2]');
    const gone = Tensor.zeros([4]);
    gone.dispose();
    expect(() => scale_(gone, 2)).toThrow(DisposedError);
  });
});

describe('element-wise memory', () => {
  it('leaks nothing', () => {
    const before = memoryStats();
    for (let k = 0; k < 5; k++) {
      using x = Tensor.from(random(64, k), [64]);
      using y = Tensor.zeros([64]);
      axpy_(y, x, 2);
      scale_(y, 0.5);
      fill_(x, 1);
      using z = add(x, y);
      using s = sumSquares(z);
    }
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBuffers).toBe(before.native.hostBuffers);
  });
});

describe.skipIf(noCuda)('element-wise ops on CUDA match the CPU', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));
  // A batch of fc activations, fc6's weight (sum of squares over many blocks), odd sizes for the tails.
  // The emulated device takes 2 Mi + 5 instead of fc6's 37.7 M: still more than the 1,024 blocks × 256
  // threads × 4 floats one grid covers, so the grid-stride loops and the block cap are exercised.
  const sizes = [cudaBatch(128) * 4096, emulated ? (1 << 21) + 5 : 4096 * 9216, 1, 3, 1001, 4, 5];
  it.each(sizes)('n = %i', async (n) => {
    const xv = random(n, n);
    const yv = random(n, n + 1);
    using xc = Tensor.from(xv, [n]);
    using yc = Tensor.from(yv, [n]);
    using xg = xc.to('cuda');
    using yg = yc.to('cuda');
    const same = async (g: Tensor, c: Tensor, what: string) =>
      expect(firstBitDiff(await g.toFloat32Array(), await c.toFloat32Array()), what).toBe(-1);

    using zc = add(xc, yc);
    using zg = add(xg, yg);
    await same(zg, zc, 'add');

    axpy_(yc, xc, 0.731);
    axpy_(yg, xg, 0.731);
    await same(yg, yc, 'axpy_');

    scale_(yc, -1.37);
    scale_(yg, -1.37);
    await same(yg, yc, 'scale_');

    using sc = sumSquares(yc);
    using sg = sumSquares(yg);
    const [a, b] = [(await sg.toFloat32Array())[0], (await sc.toFloat32Array())[0]];
    // Both accumulate in double; only the summation order differs.
    expect(Math.abs(a - b) / b).toBeLessThanOrEqual(1e-6);

    fill_(yg, 0.25);
    fill_(yc, 0.25);
    await same(yg, yc, 'fill_');
  });
  it('sumSquares frees its partial sums; nothing leaks on the device', () => {
    using x = Tensor.from(random(1 << 20, 3), [1 << 20], 'cuda');
    const before = memoryStats();
    for (let i = 0; i < 3; i++) {
      using s = sumSquares(x);
      using z = add(x, x);
      axpy_(z, x, 2);
    }
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.native.cuda?.inUseBytes).toBe(before.native.cuda?.inUseBytes);
  });
  it('sumSquares of an empty tensor is 0 on CUDA; NaN propagates', async () => {
    using e = Tensor.zeros([0], 'cuda');
    using s = sumSquares(e);
    expect((await s.toFloat32Array())[0]).toBe(0);
    using bad = Tensor.from([1, 2, NaN, 4, 5], [5], 'cuda');
    using sb = sumSquares(bad);
    expect(Number.isNaN((await sb.toFloat32Array())[0])).toBe(true);
  });
});
