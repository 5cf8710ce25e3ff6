import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { localResponseNorm, localResponseNormBackward, type LocalResponseNormOptions } from '../../lib/ops/lrn.js';
import { expectMatchesFixture, fixtureCases, hasNaN, loadFixture, relError } from '../helpers/fixtures.js';
import { gradcheck, mulberry32 } from '../helpers/gradcheck.js';
import { noCuda } from '../helpers/gpu.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Forward then backward on the CPU, returning plain arrays. */
function run(xv: Float32Array, dyv: Float32Array, shape: number[], opts: LocalResponseNormOptions) {
  using x = Tensor.from(xv, shape);
  using dy = Tensor.from(dyv, shape);
  const { y, scale } = localResponseNorm(x, opts);
  using dx = localResponseNormBackward(dy, x, y, scale, opts);
  const out = { y: y.dataSync() as Float32Array, scale: scale.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array };
  y.dispose();
  scale.dispose();
  return out;
}

const cases = await fixtureCases('lrn');

describe('localResponseNorm on the CPU matches PyTorch', () => {
  it('has the fixture cases', () => {
    expect(cases).toEqual(expect.arrayContaining(['alexnet_conv1', 'alexnet_conv2', 'even_size4', 'c_smaller_than_size', 'defaults_k1']));
  });

  it.each(cases)('%s', async (name) => {
    const fx = loadFixture('lrn', name);
    const opts = fx.params as LocalResponseNormOptions;
    const shape = fx.inputs.x.shape;
    const r = run(fx.inputs.x.data as Float32Array, fx.inputs.dy.data as Float32Array, shape, opts);
    // fp32: y and scale are a handful of operations per element; dx sums at most `size` terms
    expectMatchesFixture(fx, 'scale', r.scale, shape);
    expectMatchesFixture(fx, 'y', r.y, shape);
    expectMatchesFixture(fx, 'dx', r.dx, shape);
  });

  it('the fixtures normalise for real: y is not x/k^beta, nor is dx dy/k^beta', () => {
    for (const name of cases) {
      const fx = loadFixture('lrn', name);
      const { k = 1, beta = 0.75 } = fx.params as LocalResponseNormOptions;
      const x = fx.inputs.x.data as Float32Array;
      const dy = fx.inputs.dy.data as Float32Array;
      const r = run(x, dy, fx.inputs.x.shape, fx.params as LocalResponseNormOptions);
      const f = Math.pow(k, -beta);
      expect(relError(r.y, x.map((v) => v * f)), `${name}: y`).toBeGreaterThan(3e-3);
      expect(relError(r.dx, dy.map((v) => v * f)), `${name}: dx`).toBeGreaterThan(3e-3);
    }
  });
});

describe('localResponseNorm semantics', () => {
  it('windows [c − ⌊n/2⌋, c + ⌊(n−1)/2⌋] for an even size, divided by n always', async () => {
    // one pixel, 4 channels, size 4: win(c) = [c−2, c+1]; alpha 4 so alpha/n = 1, k 1, beta 1
    const x = [1, 2, 3, 4];
    using t = Tensor.from(x, [1, 4, 1, 1]);
    const { y, scale } = localResponseNorm(t, { size: 4, alpha: 4, beta: 1, k: 1 });
    const sq = x.map((v) => v * v);
    const win = (c: number) => sq.slice(Math.max(c - 2, 0), Math.min(c + 1, 3) + 1).reduce((a, b) => a + b, 0);
    const want = x.map((_, c) => 1 + win(c));
    expect(Array.from(await scale.toFloat32Array())).toEqual(want);
    expect(want).toEqual([6, 15, 31, 30]);
    expect(Array.from(await y.toFloat32Array())).toEqual(x.map((v, c) => Math.fround(v * Math.fround(Math.pow(want[c], -1)))));
    y.dispose();
    scale.dispose();
  });
});

describe('localResponseNorm gradients match finite differences', () => {
  // A large alpha, so the cross-channel term of the gradient is big (checked below), and moderate inputs.
  const configs: [string, number[], LocalResponseNormOptions][] = [
    ['size 5, alpha 1, k 1', [2, 7, 3, 4], { size: 5, alpha: 1, beta: 0.75, k: 1 }],
    ['even size 4, alpha 2, beta 0.5, k 2', [1, 6, 2, 3], { size: 4, alpha: 2, beta: 0.5, k: 2 }],
    ['size 7 > C = 3, alpha 1.5', [2, 3, 2, 2], { size: 7, alpha: 1.5, beta: 1.2, k: 1 }],
    ['size 2, rank 3', [2, 5, 6], { size: 2, alpha: 1, beta: 0.75, k: 1 }],
  ];
  it.each(configs)('%s', (_, shape, opts) => {
    const n = numel(shape);
    const xv = random(n, 11, -2, 2);
    gradcheck({
      inputs: [xv],
      names: ['x'],
      forward: ([x]) => run(x, new Float32Array(n), shape, opts).y,
      backward: ([x], r) => [run(x, r, shape, opts).dx],
      samples: 60,
      eps: 1e-2,
    });
    // the cross-channel term matters: without it the gradient would be far off
    const dyv = random(n, 12);
    const r = run(xv, dyv, shape, opts);
    const local = dyv.map((d, i) => d * Math.pow(r.scale[i], -opts.beta!));
    expect(relError(local, r.dx)).toBeGreaterThan(0.1);
  });
});

describe('localResponseNorm bad input gets a clear error', () => {
  const x = Tensor.zeros([1, 4, 2, 2]);
  afterAll(() => x.dispose());
  it('options', () => {
    expect(() => localResponseNorm(x, { size: 0 })).toThrow('localResponseNorm: size must be an integer ≥ 1, got 0');
    expect(() => localResponseNorm(x, { size: 2.5 })).toThrow('localResponseNorm: size must be an integer ≥ 1, got 2.5');
    expect(() => localResponseNorm(x, {} as never)).toThrow('localResponseNorm: options.size is required');
    expect(() => localResponseNorm(x, 5 as never)).toThrow('localResponseNorm: expected options { size, alpha?, beta?, k? }, got 5');
    expect(() => localResponseNorm(x, { size: 5, alpha: -1 })).toThrow('localResponseNorm: alpha must be a finite number ≥ 0, got -1');
    expect(() => localResponseNorm(x, { size: 5, alpha: NaN })).toThrow('localResponseNorm: alpha must be a finite number ≥ 0, got NaN');
    expect(() => localResponseNorm(x, { size: 5, beta: Infinity })).toThrow('localResponseNorm: beta must be a finite number, got Infinity');
    expect(() => localResponseNorm(x, { size: 5, k: 0 })).toThrow('localResponseNorm: k must be a finite number > 0, got 0');
    expect(() => localResponseNorm(x, { size: 5, k: '2' as never })).toThrow('localResponseNorm: k must be a finite number > 0, got "2"');
  });
  it('tensors', () => {
    using x2 = Tensor.zeros([4, 4]);
    expect(() => localResponseNorm(x2, { size: 5 })).toThrow('localResponseNorm: expected x of shape [N, C, H, W] (or [N, C, ...] of rank ≥ 3), got [4, 4]');
    using xi = Tensor.zeros([1, 4, 2, 2], 'cpu', 'int32');
    expect(() => localResponseNorm(xi, { size: 5 })).toThrow('localResponseNorm: expected x to be float32, got int32');
    expect(() => localResponseNorm(null as never, { size: 5 })).toThrow('localResponseNorm: expected x to be a Tensor, got null');
    const d = Tensor.zeros([1, 4, 2, 2]);
    d.dispose();
    expect(() => localResponseNorm(d, { size: 5 })).toThrow(DisposedError);
  });
  it('backward', () => {
    const opts = { size: 3 };
    const { y, scale } = localResponseNorm(x, opts);
    using dy = Tensor.zeros([1, 4, 2, 2]);
    using bad = Tensor.zeros([1, 4, 4]);
    expect(() => localResponseNormBackward(bad, x, y, scale, opts)).toThrow('localResponseNormBackward: expected dy of shape [1, 4, 2, 2], got [1, 4, 4]');
    expect(() => localResponseNormBackward(dy, x, bad, scale, opts)).toThrow('localResponseNormBackward: expected y of shape [1, 4, 2, 2], got [1, 4, 4]');
    expect(() => localResponseNormBackward(dy, x, y, bad, opts)).toThrow('localResponseNormBackward: expected scale of shape [1, 4, 2, 2], got [1, 4, 4]');
    expect(() => localResponseNormBackward(dy, x, y, scale, { size: -3 })).toThrow('localResponseNormBackward: size must be an integer ≥ 1, got -3');
    expect(() => localResponseNormBackward(dy, x, y, undefined as never, opts)).toThrow('localResponseNormBackward: expected scale to be a Tensor, got undefined');
    y.dispose();
    scale.dispose();
  });
  it('a zero-size batch gives zero-size results', () => {
    using e = Tensor.zeros([0, 4, 3, 3]);
    const { y, scale } = localResponseNorm(e, { size: 5 });
    expect(y.shape).toEqual([0, 4, 3, 3]);
    using dx = localResponseNormBackward(e, e, y, scale, { size: 5 });
    expect(dx.shape).toEqual([0, 4, 3, 3]);
    y.dispose();
    scale.dispose();
  });
});

describe('localResponseNorm memory', () => {
  it('returns to the baseline', () => {
    const before = memoryStats();
    for (let i = 0; i < 3; i++) run(random(2 * 8 * 5 * 5, i, -20, 20), random(2 * 8 * 5 * 5, 50 + i), [2, 8, 5, 5], { size: 5, k: 2 });
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBytes).toBe(before.native.hostBytes);
  });
});

describe.skipIf(noCuda)('localResponseNorm on CUDA matches the CPU', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));

  const paper = { size: 5, alpha: 1e-4, beta: 0.75, k: 2 };
  const shapes: [string, number[], LocalResponseNormOptions, number][] = [
    ['AlexNet conv1 LRN, batch 8', [8, 96, 55, 55], paper, 20],
    ['AlexNet conv2 LRN, batch 8', [8, 256, 27, 27], paper, 100],
    ['256×13×13, batch 8', [8, 256, 13, 13], paper, 50],
    ['C smaller than size', [1, 3, 4, 5], { size: 5, alpha: 1e-2, beta: 0.6, k: 1.5 }, 5],
    ['even size 4', [2, 7, 5, 6], { size: 4, alpha: 1e-2, k: 2 }, 5],
    ['PyTorch defaults (k 1)', [2, 5, 7, 10], { size: 3 }, 20],
    ['large alpha', [3, 9, 6, 7], { size: 5, alpha: 1, beta: 0.75, k: 1 }, 3],
    ['size 1', [2, 4, 3, 3], { size: 1, alpha: 0.5, k: 1 }, 3],
    ['rank 3, size 2', [2, 6, 9], { size: 2, alpha: 0.5, beta: 1, k: 1 }, 2],
    ['1×1 spatial, C 1', [5, 1, 1, 1], { size: 5, alpha: 1, k: 1 }, 3],
  ];

  it.each(shapes)('%s', async (_, shape, opts, mag) => {
    const n = numel(shape);
    const xv = random(n, n, -mag, mag);
    const dyv = random(n, n + 1);
    const ref = run(xv, dyv, shape, opts);
    using x = Tensor.from(xv, shape, 'cuda');
    using dy = Tensor.from(dyv, shape, 'cuda');
    const { y, scale } = localResponseNorm(x, opts);
    expect(y.device).toBe('cuda');
    using dx = localResponseNormBackward(dy, x, y, scale, opts);
    const got = { y: await y.toFloat32Array(), scale: await scale.toFloat32Array(), dx: await dx.toFloat32Array() };
    for (const k of ['scale', 'y', 'dx'] as const) {
      expect(hasNaN(got[k]), `${k} has NaN`).toBe(false);
      // running double sum vs direct float sums, and powf's few ulps: ≤ 1e-5
      expect(relError(got[k], ref[k]), k).toBeLessThanOrEqual(1e-5);
    }
    y.dispose();
    scale.dispose();
  });

  it('leaks no device memory', async () => {
    const before = memoryStats();
    for (let i = 0; i < 3; i++) {
      using x = Tensor.from(random(4 * 96 * 27 * 27, i, -20, 20), [4, 96, 27, 27], 'cuda');
      const { y, scale } = localResponseNorm(x, { size: 5, k: 2 });
      using dx = localResponseNormBackward(y, x, y, scale, { size: 5, k: 2 });
      await dx.toFloat32Array();
      y.dispose();
      scale.dispose();
    }
    const after = memoryStats();
    expect(after.tensors.cuda).toBe(before.tensors.cuda);
    expect(after.bytes.cuda).toBe(before.bytes.cuda);
    expect(after.native.cuda!.inUseBytes).toBe(before.native.cuda!.inUseBytes);
  });

  it('rejects tensors on different devices', () => {
    using x = Tensor.zeros([1, 4, 2, 2], 'cuda');
    const { y, scale } = localResponseNorm(x, { size: 3 });
    using dy = Tensor.zeros([1, 4, 2, 2]);
    expect(() => localResponseNormBackward(dy, x, y, scale, { size: 3 })).toThrow(/all tensors must be on one device; dy is on cpu, x on cuda/);
    y.dispose();
    scale.dispose();
  });
});
