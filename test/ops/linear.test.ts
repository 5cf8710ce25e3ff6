import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { linear, linearBackward } from '../../lib/ops/linear.js';
import { expectMatchesFixture, fixtureCases, hasNaN, loadFixture, relError, type Fixture } from '../helpers/fixtures.js';
import { gradcheck, mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, noCuda } from '../helpers/gpu.js';
import { tolFor } from '../helpers/tolerance.js';

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

function input(fx: Fixture, name: string): Tensor {
  return Tensor.from(fx.inputs[name].data as Float32Array, fx.inputs[name].shape);
}

interface Result {
  y: Float32Array;
  dx: Float32Array;
  dw: Float32Array;
  db: Float32Array | null;
}

function run(N: number, inF: number, out: number, d: { x: Float32Array; w: Float32Array; b: Float32Array | null; dy: Float32Array }, device: 'cpu' | 'cuda', precision: 'fp32' | 'tf32' | 'bf16' = 'fp32'): Result {
  const x = Tensor.from(d.x, [N, inF], device);
  const w = Tensor.from(d.w, [out, inF], device);
  const b = d.b ? Tensor.from(d.b, [out], device) : null;
  const y = linear(x, w, b, { precision });
  const dy = Tensor.from(d.dy, [N, out], device);
  const g = linearBackward(dy, x, w, { precision, needBiasGrad: !!b });
  const r = { y: y.dataSync() as Float32Array, dx: g.dx!.dataSync() as Float32Array, dw: g.dw.dataSync() as Float32Array, db: g.db ? (g.db.dataSync() as Float32Array) : null };
  [x, w, b, y, dy, g.dx, g.dw, g.db].forEach((t) => t?.dispose());
  return r;
}

function randomData(N: number, inF: number, out: number, bias: boolean, seed: number) {
  const bound = 1 / Math.sqrt(inF);
  return {
    x: random(N * inF, seed),
    w: random(out * inF, seed + 1, -bound, bound),
    b: bias ? random(out, seed + 2, -bound, bound) : null,
    dy: random(N * out, seed + 3),
  };
}

const cases = await fixtureCases('linear');

beforeAll(() => setPoison(true));
afterAll(() => setPoison(false));

describe('linear on the CPU matches PyTorch (float64 references)', () => {
  it('has the fixture cases', () => {
    expect(cases).toEqual(expect.arrayContaining(['fc6', 'fc8', 'odd_7x5_nobias']));
  });

  it.each(cases)('%s: forward and every gradient', (name) => {
    const fx = loadFixture('linear', name);
    const x = input(fx, 'x');
    const w = input(fx, 'w');
    const b = fx.params.bias ? input(fx, 'b') : null;
    const y = linear(x, w, b, { precision: 'fp32' });
    expectMatchesFixture(fx, 'y', y.dataSync() as Float32Array, y.shape);
    const dy = input(fx, 'dy');
    const g = linearBackward(dy, x, w, { precision: 'fp32', needBiasGrad: b !== null });
    expectMatchesFixture(fx, 'dx', g.dx!.dataSync() as Float32Array, g.dx!.shape);
    expectMatchesFixture(fx, 'dw', g.dw.dataSync() as Float32Array, g.dw.shape);
    if (b) expectMatchesFixture(fx, 'db', g.db!.dataSync() as Float32Array, g.db!.shape);
    else expect(g.db).toBeNull();
    [x, w, b, y, dy, g.dx, g.dw, g.db].forEach((t) => t?.dispose());
  });

  it('skips dx and db when asked', () => {
    const fx = loadFixture('linear', 'fc8');
    const x = input(fx, 'x');
    const w = input(fx, 'w');
    const dy = input(fx, 'dy');
    const g = linearBackward(dy, x, w, { needInputGrad: false, needBiasGrad: false });
    expect(g.dx).toBeNull();
    expect(g.db).toBeNull();
    expectMatchesFixture(fx, 'dw', g.dw.dataSync() as Float32Array, g.dw.shape);
    [x, w, dy, g.dw].forEach((t) => t.dispose());
  });
});

describe('linear gradients match finite differences (CPU)', () => {
  it.each([
    ['with bias, batch 3, 7 → 5', 3, 7, 5, true],
    ['without bias, batch 1, 4 → 9', 1, 4, 9, false],
  ] as const)('%s', (_name, N, inF, out, bias) => {
    const d = randomData(N, inF, out, bias, 3);
    const make = (arr: Float32Array[]) => ({ x: Tensor.from(arr[0], [N, inF]), w: Tensor.from(arr[1], [out, inF]), b: bias ? Tensor.from(arr[2], [out]) : null });
    gradcheck({
      inputs: [d.x, d.w, ...(d.b ? [d.b] : [])],
      names: ['x', 'w', 'b'],
      forward: (arr) => {
        const t = make(arr);
        const y = linear(t.x, t.w, t.b);
        const r = y.dataSync() as Float32Array;
        [t.x, t.w, t.b, y].forEach((v) => v?.dispose());
        return r;
      },
      backward: (arr, r) => {
        const t = make(arr);
        const dy = Tensor.from(r, [N, out]);
        const g = linearBackward(dy, t.x, t.w, { needBiasGrad: bias });
        const res = [g.dx!.dataSync() as Float32Array, g.dw.dataSync() as Float32Array, ...(g.db ? [g.db.dataSync() as Float32Array] : [])];
        [t.x, t.w, t.b, dy, g.dx, g.dw, g.db].forEach((v) => v?.dispose());
        return res;
      },
    });
  });
});

describe('linear edge cases and memory (CPU)', () => {
  it('an empty batch: empty y and dx, zero dw and db', () => {
    const x = Tensor.zeros([0, 6]);
    const w = Tensor.from(random(24, 1), [4, 6]);
    const b = Tensor.from(random(4, 2), [4]);
    const y = linear(x, w, b);
    expect(y.shape).toEqual([0, 4]);
    const dy = Tensor.zeros([0, 4]);
    const g = linearBackward(dy, x, w);
    expect(g.dx!.shape).toEqual([0, 6]);
    expect(Array.from(g.dw.dataSync())).toEqual(new Array(24).fill(0));
    expect(Array.from(g.db!.dataSync())).toEqual([0, 0, 0, 0]);
    [x, w, b, y, dy, g.dx, g.dw, g.db].forEach((t) => t?.dispose());
  });

  it('returns memory to its baseline after forward and backward', () => {
    const d = randomData(4, 300, 70, true, 5);
    run(4, 300, 70, d, 'cpu');
    const before = memoryStats();
    run(4, 300, 70, d, 'cpu');
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBuffers).toBe(before.native.hostBuffers);
  });
});

describe('linear rejects bad input with clear errors', () => {
  const x = Tensor.zeros([2, 9216]);
  const w = Tensor.zeros([4096, 9216]);
  afterAll(() => [x, w].forEach((t) => t.dispose()));

  it('shapes', () => {
    const x2 = Tensor.zeros([2, 9000]);
    expect(() => linear(x2, w, null)).toThrow('linear: expected x of shape [N, 9216] (w is [4096, 9216]), got [2, 9000]');
    const x4 = Tensor.zeros([2, 256, 6, 6]);
    expect(() => linear(x4, w, null)).toThrow('linear: expected x of shape [N, 9216] (w is [4096, 9216]), got [2, 256, 6, 6]');
    const w1 = Tensor.zeros([9216]);
    expect(() => linear(x, w1, null)).toThrow('linear: expected w of shape [out, in], got [9216]');
    const b = Tensor.zeros([10]);
    expect(() => linear(x, w, b)).toThrow('linear: expected b of shape [4096], got [10]');
    expect(() => linear(x, w, undefined as unknown as null)).toThrow('linear: expected b to be a Tensor or null, got undefined');
    const dy = Tensor.zeros([2, 10]);
    expect(() => linearBackward(dy, x, w)).toThrow('linearBackward: expected dy of shape [2, 4096], got [2, 10]');
    [x2, x4, w1, b, dy].forEach((t) => t.dispose());
  });

  it('options, dtype, disposed', () => {
    expect(() => linear(x, w, null, { precision: 'fp16' as 'fp32' })).toThrow('linear: precision must be "fp32", "tf32" or "bf16", got "fp16"');
    const dy = Tensor.zeros([2, 4096]);
    expect(() => linearBackward(dy, x, w, { needBiasGrad: 'no' as unknown as boolean })).toThrow('linearBackward: needBiasGrad must be a boolean, got "no"');
    const xi = Tensor.zeros([2, 9216], 'cpu', 'int32');
    expect(() => linear(xi, w, null)).toThrow('linear: expected x to be float32 or bfloat16, got int32');
    const gone = Tensor.zeros([2, 9216]);
    gone.dispose();
    expect(() => linear(gone, w, null)).toThrow(DisposedError);
    [dy, xi].forEach((t) => t.dispose());
  });
});

describe.skipIf(noCuda)('linear on CUDA matches the CPU oracle', () => {
  it.each([
    ['fc6', cudaBatch(8), 9216, 4096, true],
    ['fc7', cudaBatch(128), 4096, 4096, true],
    ['fc8, 1000 classes', cudaBatch(128, 8), 4096, 1000, true],
    ['fc8, 10 classes', 2, 4096, 10, true],
    ['odd 7 → 5, no bias', 3, 7, 5, false],
    ['odd 13 → 11', 37, 13, 11, true],
  ] as const)('%s, batch %i: fp32, tf32 and bf16', (_name, N, inF, out, bias) => {
    const d = randomData(N, inF, out, bias, 17);
    setPoison(true);
    const ref = run(N, inF, out, d, 'cpu');
    // y sums inF products, dx out, dw and db the batch.
    const K = { y: inF, dx: out, dw: N, db: N };
    for (const precision of ['fp32', 'tf32', 'bf16'] as const) {
      const got = run(N, inF, out, d, 'cuda', precision);
      for (const k of ['y', 'dx', 'dw', 'db'] as const) {
        const tol = tolFor(precision, K[k]);
        if (!ref[k]) {
          expect(got[k]).toBeNull();
          continue;
        }
        expect(hasNaN(got[k]!), `${k} has NaN`).toBe(false);
        expect(relError(got[k]!, ref[k]!), `${precision} ${k}`).toBeLessThanOrEqual(tol);
      }
    }
  });
});
