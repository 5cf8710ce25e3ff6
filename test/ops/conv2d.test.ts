import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import {
  conv2d,
  conv2dBackward,
  conv2dForTraining,
  conv2dOutputShape,
  getBiasGradientPath,
  getConvolutionPath,
  setBiasGradientPath,
  setConvolutionPath,
  type BiasGradientPath,
  type Conv2dOptions,
  type ConvolutionPath,
} from '../../lib/ops/conv.js';
import { loadNative } from '../../lib/native.js';
import { expectMatchesFixture, fixtureCases, hasNaN, loadFixture, relError, type Fixture } from '../helpers/fixtures.js';
import { fp32Tol, tolFor } from '../helpers/tolerance.js';
import { gradcheck, mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, emulated, noCuda, withPlanted } from '../helpers/gpu.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

function optsOf(fx: Fixture): Conv2dOptions {
  const p = fx.params;
  return { stride: p.stride, padding: p.padding, groups: p.groups, precision: 'fp32' };
}

function input(fx: Fixture, name: string): Tensor {
  return Tensor.from(fx.inputs[name].data as Float32Array, fx.inputs[name].shape);
}

/** A conv problem on random data: [N, C, H, W] input, K filters of kh×kw. */
interface Problem {
  name: string;
  x: number[];
  w: number[];
  bias: boolean;
  opts: Conv2dOptions;
}

const ALEXNET_BATCH8: Problem[] = [
  { name: 'paper conv1', x: [8, 3, 227, 227], w: [96, 3, 11, 11], bias: true, opts: { stride: 4 } },
  { name: 'paper conv2', x: [8, 96, 27, 27], w: [256, 48, 5, 5], bias: true, opts: { padding: 2, groups: 2 } },
  { name: 'paper conv3', x: [8, 256, 13, 13], w: [384, 256, 3, 3], bias: true, opts: { padding: 1 } },
  { name: 'paper conv4', x: [8, 384, 13, 13], w: [384, 192, 3, 3], bias: true, opts: { padding: 1, groups: 2 } },
  { name: 'paper conv5', x: [8, 384, 13, 13], w: [256, 192, 3, 3], bias: true, opts: { padding: 1, groups: 2 } },
  { name: 'torchvision conv1', x: [8, 3, 224, 224], w: [64, 3, 11, 11], bias: true, opts: { stride: 4, padding: 2 } },
  { name: 'torchvision conv2', x: [8, 64, 27, 27], w: [192, 64, 5, 5], bias: true, opts: { padding: 2 } },
];

const ODD: Problem[] = [
  { name: 'non-square, stride (2, 1), padding (1, 2), batch 1', x: [1, 5, 7, 10], w: [3, 5, 3, 2], bias: true, opts: { stride: [2, 1], padding: [1, 2] } },
  { name: 'groups 3, no bias', x: [2, 6, 9, 8], w: [9, 2, 3, 3], bias: false, opts: { stride: [1, 2], padding: 1, groups: 3 } },
  { name: '1×1 (no im2col)', x: [3, 16, 9, 7], w: [8, 16, 1, 1], bias: true, opts: {} },
  { name: '1×1 stride 2 padding 1', x: [3, 4, 6, 5], w: [6, 4, 1, 1], bias: true, opts: { stride: 2, padding: 1 } },
  { name: 'stride 3, uncovered border', x: [2, 3, 11, 12], w: [4, 3, 4, 3], bias: true, opts: { stride: 3 } },
];

interface Result {
  y: Float32Array;
  dx: Float32Array;
  dw: Float32Array;
  db: Float32Array | null;
}

/** Forward and backward of one problem on `device` with the given host data; every tensor is disposed. */
function run(p: Problem, data: { x: Float32Array; w: Float32Array; b: Float32Array | null; dy: Float32Array }, device: 'cpu' | 'cuda', opts: Conv2dOptions = {}): Result {
  const K = p.w[0];
  const x = Tensor.from(data.x, p.x, device);
  const w = Tensor.from(data.w, p.w, device);
  const b = data.b ? Tensor.from(data.b, [K], device) : null;
  const o = { ...p.opts, ...opts };
  const y = conv2d(x, w, b, o);
  const dy = Tensor.from(data.dy, y.shape, device);
  const g = conv2dBackward(dy, x, w, { ...o, needBiasGrad: !!b });
  const out = { y: y.dataSync() as Float32Array, dx: g.dx!.dataSync() as Float32Array, dw: g.dw.dataSync() as Float32Array, db: g.db ? (g.db.dataSync() as Float32Array) : null };
  [x, w, b, y, dy, g.dx, g.dw, g.db].forEach((t) => t?.dispose());
  return out;
}

function randomData(p: Problem, seed: number) {
  const yShape = conv2dOutputShape(p.x, p.w, p.opts);
  const fan = numel(p.w.slice(1));
  const bound = 1 / Math.sqrt(fan);
  return {
    x: random(numel(p.x), seed),
    w: random(numel(p.w), seed + 1, -bound, bound),
    b: p.bias ? random(p.w[0], seed + 2, -bound, bound) : null,
    dy: random(numel(yShape), seed + 3),
  };
}

const cases = await fixtureCases('conv2d');

beforeAll(() => setPoison(true)); // outputs and workspaces start as NaN: unwritten elements show up
afterAll(() => setPoison(false));

describe('conv2d on the CPU matches PyTorch (float64 references)', () => {
  it('has the fixture cases', () => {
    expect(cases).toEqual(
      expect.arrayContaining(['paper_conv1', 'paper_conv2', 'paper_conv3', 'paper_conv4', 'paper_conv5', 'tv_conv1', 'tv_conv2', 'odd_nonsquare', 'odd_groups3_nobias', 'conv1x1']),
    );
  });

  it.each(cases.flatMap((c) => (['columns', 'legacy'] as const).map((p) => [c, p] as const)))('%s (%s path): forward and every gradient', (name, path) => {
    const prev = setConvolutionPath(path);
    try {
      fixtureCase(name);
    } finally {
      setConvolutionPath(prev);
    }
  });

  function fixtureCase(name: string) {
    const fx = loadFixture('conv2d', name);
    const opts = optsOf(fx);
    const x = input(fx, 'x');
    const w = input(fx, 'w');
    const b = fx.params.bias ? input(fx, 'b') : null;
    expect(conv2dOutputShape(x.shape, w.shape, opts)).toEqual(fx.stats.y.shape);
    const y = conv2d(x, w, b, opts);
    expectMatchesFixture(fx, 'y', y.dataSync() as Float32Array, y.shape);
    const dy = input(fx, 'dy');
    const g = conv2dBackward(dy, x, w, { ...opts, needBiasGrad: b !== null });
    expectMatchesFixture(fx, 'dx', g.dx!.dataSync() as Float32Array, g.dx!.shape);
    // dw sums N·Ho·Wo products per element (6050 for conv1) in a different order than the float64
    // reference; fp32 rounding of such sums stays well below 1e-5 relative L2 (measured ≤ 3e-7).
    expectMatchesFixture(fx, 'dw', g.dw.dataSync() as Float32Array, g.dw.shape);
    if (b) expectMatchesFixture(fx, 'db', g.db!.dataSync() as Float32Array, g.db!.shape);
    else expect(g.db).toBeNull();
    [x, w, b, y, dy, g.dx, g.dw, g.db].forEach((t) => t?.dispose());
  }

  it('skips dx and db when asked', () => {
    const fx = loadFixture('conv2d', 'paper_conv1');
    const x = input(fx, 'x');
    const w = input(fx, 'w');
    const dy = input(fx, 'dy');
    const g = conv2dBackward(dy, x, w, { ...optsOf(fx), needInputGrad: false, needBiasGrad: false });
    expect(g.dx).toBeNull();
    expect(g.db).toBeNull();
    expectMatchesFixture(fx, 'dw', g.dw.dataSync() as Float32Array, g.dw.shape);
    [x, w, dy, g.dw].forEach((t) => t.dispose());
  });
});

describe('conv2d gradients match finite differences (CPU)', () => {
  const small: Problem[] = [
    { name: 'groups 2, stride (2, 1), padding (1, 2), 3×2 kernel', x: [2, 4, 6, 5], w: [6, 2, 3, 2], bias: true, opts: { stride: [2, 1], padding: [1, 2], groups: 2 } },
    { name: 'stride 2, no padding, 3×3', x: [1, 3, 7, 7], w: [2, 3, 3, 3], bias: true, opts: { stride: 2 } },
    { name: '1×1 (no im2col), no bias', x: [2, 3, 4, 3], w: [5, 3, 1, 1], bias: false, opts: {} },
    { name: 'groups 3 = depthwise-like, padding 2', x: [1, 3, 5, 4], w: [3, 1, 3, 3], bias: true, opts: { padding: 2, groups: 3 } },
  ];
  it.each(small.map((p) => [p.name, p] as const))('%s', (_name, p) => {
    const d = randomData(p, 7);
    const inputs = [d.x, d.w, ...(d.b ? [d.b] : [])];
    const names = ['x', 'w', 'b'];
    const tensors = (arr: Float32Array[]) => ({
      x: Tensor.from(arr[0], p.x),
      w: Tensor.from(arr[1], p.w),
      b: p.bias ? Tensor.from(arr[2], [p.w[0]]) : null,
    });
    gradcheck({
      inputs,
      names,
      samples: 30,
      forward: (arr) => {
        const t = tensors(arr);
        const y = conv2d(t.x, t.w, t.b, p.opts);
        const out = y.dataSync() as Float32Array;
        [t.x, t.w, t.b, y].forEach((v) => v?.dispose());
        return out;
      },
      backward: (arr, r) => {
        const t = tensors(arr);
        const dy = Tensor.from(r, conv2dOutputShape(p.x, p.w, p.opts));
        const g = conv2dBackward(dy, t.x, t.w, { ...p.opts, needBiasGrad: p.bias });
        const out = [g.dx!.dataSync() as Float32Array, g.dw.dataSync() as Float32Array, ...(g.db ? [g.db.dataSync() as Float32Array] : [])];
        [t.x, t.w, t.b, dy, g.dx, g.dw, g.db].forEach((v) => v?.dispose());
        return out;
      },
    });
  });
});

describe('conv2d chunking (workspace cap) on the CPU', () => {
  const p: Problem = { name: 'chunked', x: [5, 4, 9, 8], w: [6, 2, 3, 3], bias: true, opts: { stride: [2, 1], padding: 1, groups: 2 } };
  const d = randomData(p, 99);
  const whole = run(p, d, 'cpu');
  // Forward per image: C·kh·kw·Ho·Wo floats of columns; backward adds K·Ho·Wo.
  const [, K, Ho, Wo] = conv2dOutputShape(p.x, p.w, p.opts);
  const colBytes = 4 * p.x[1] * 9 * Ho * Wo;
  const bwdBytes = colBytes + 4 * K * Ho * Wo;

  it.each([
    ['a cap below one image: one image per chunk', 1],
    ['a cap of two images: chunks 2, 2, 1 backward (2 or 3 forward)', 2 * bwdBytes + 3],
    ['a cap of three images: chunks 3, 2', 3 * bwdBytes + colBytes - 1],
  ])('%s equals the unchunked result', (_name, cap) => {
    const c = run(p, d, 'cpu', { workspaceBytes: cap });
    // y, dx and db come from the same per-image GEMMs and reductions whatever the chunking: bit-exact.
    expect(c.y).toEqual(whole.y);
    expect(c.dx).toEqual(whole.dx);
    expect(c.db).toEqual(whole.db);
    // dw accumulates chunk GEMMs (beta = 1) instead of one long reduction: rounding may differ.
    expect(relError(c.dw, whole.dw)).toBeLessThanOrEqual(1e-6);
  });

  it('a 1-byte cap works on an AlexNet-sized layer (one image at a time)', () => {
    const q: Problem = { name: 'conv2 batch 2', x: [2, 96, 27, 27], w: [256, 48, 5, 5], bias: true, opts: { padding: 2, groups: 2 } };
    const dq = randomData(q, 5);
    const a = run(q, dq, 'cpu');
    const b = run(q, dq, 'cpu', { workspaceBytes: 1 });
    expect(b.y).toEqual(a.y);
    expect(b.dx).toEqual(a.dx);
    expect(relError(b.dw, a.dw)).toBeLessThanOrEqual(1e-6);
  });
});

describe('conv2d edge cases (CPU)', () => {
  it('an empty batch gives an empty output and zero weight/bias gradients', () => {
    const x = Tensor.zeros([0, 3, 8, 8]);
    const w = Tensor.from(random(4 * 3 * 9, 1), [4, 3, 3, 3]);
    const b = Tensor.from(random(4, 2), [4]);
    const y = conv2d(x, w, b, { padding: 1 });
    expect(y.shape).toEqual([0, 4, 8, 8]);
    const dy = Tensor.zeros([0, 4, 8, 8]);
    const g = conv2dBackward(dy, x, w, { padding: 1 });
    expect(g.dx!.shape).toEqual([0, 3, 8, 8]);
    expect(Array.from(g.dw.dataSync())).toEqual(new Array(4 * 27).fill(0));
    expect(Array.from(g.db!.dataSync())).toEqual([0, 0, 0, 0]);
    [x, w, b, y, dy, g.dx, g.dw, g.db].forEach((t) => t?.dispose());
  });

  it('a kernel as large as the padded input gives a 1×1 output', () => {
    const x = Tensor.from(random(2 * 2 * 3 * 4, 3), [2, 2, 3, 4]);
    const w = Tensor.from(random(3 * 2 * 5 * 4, 4), [3, 2, 5, 4]);
    const y = conv2d(x, w, null, { padding: [1, 0] });
    expect(y.shape).toEqual([2, 3, 1, 1]);
    // Direct sum for one output: y[1, 2, 0, 0] = Σ_c,i,j x[1, c, i − 1, j] · w[2, c, i, j].
    const xs = x.dataSync();
    const ws = w.dataSync();
    let s = 0;
    for (let c = 0; c < 2; c++)
      for (let i = 0; i < 5; i++)
        for (let j = 0; j < 4; j++) {
          const ih = i - 1;
          if (ih >= 0 && ih < 3) s += xs[((1 * 2 + c) * 3 + ih) * 4 + j] * ws[((2 * 2 + c) * 5 + i) * 4 + j];
        }
    expect(y.dataSync()[1 * 3 + 2]).toBeCloseTo(s, 5);
    [x, w, y].forEach((t) => t.dispose());
  });

  it('returns memory to its baseline after forward and backward (no leaked tensors or buffers)', () => {
    const p = ODD[0];
    const d = randomData(p, 3);
    run(p, d, 'cpu'); // warm-up: anything allocated once
    const before = memoryStats();
    run(p, d, 'cpu');
    run(p, d, 'cpu', { workspaceBytes: 1 });
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBuffers).toBe(before.native.hostBuffers);
    expect(after.native.hostBytes).toBe(before.native.hostBytes);
  });
});

describe('conv2d rejects bad input with clear errors', () => {
  const x = Tensor.zeros([8, 1, 28, 28]);
  const w = Tensor.zeros([96, 3, 11, 11]);
  const x3 = Tensor.zeros([2, 3, 32, 32]);
  afterAll(() => [x, w, x3].forEach((t) => t.dispose()));

  it('channel mismatch', () => {
    expect(() => conv2d(x, w, null)).toThrow('conv2d: expected x of shape [N, C, H, W] with C = 3 (w is [96, 3, 11, 11], groups 1), got [8, 1, 28, 28]');
    const w2 = Tensor.zeros([6, 2, 3, 3]);
    expect(() => conv2d(x3, w2, null, { groups: 3 })).toThrow('conv2d: expected x of shape [N, C, H, W] with C = 6 (w is [6, 2, 3, 3], groups 3), got [2, 3, 32, 32]');
    w2.dispose();
  });

  it('wrong ranks', () => {
    const x2 = Tensor.zeros([3, 32, 32]);
    expect(() => conv2d(x2, w, null)).toThrow('conv2d: expected x of shape [N, C, H, W] with C = 3 (w is [96, 3, 11, 11], groups 1), got [3, 32, 32]');
    const w3 = Tensor.zeros([96, 3, 11]);
    expect(() => conv2d(x3, w3, null)).toThrow('conv2d: expected w of shape [K, C/groups, kh, kw], got [96, 3, 11]');
    [x2, w3].forEach((t) => t.dispose());
  });

  it('kernel larger than the padded input', () => {
    const small = Tensor.zeros([1, 3, 4, 4]);
    expect(() => conv2d(small, w, null, { padding: 2 })).toThrow('conv2d: kernel 11×11 is larger than the padded input 8×8 (x is [1, 3, 4, 4], padding 2×2)');
    small.dispose();
  });

  it('channels not divisible by groups', () => {
    const w5 = Tensor.zeros([5, 1, 3, 3]);
    expect(() => conv2d(x3, w5, null, { groups: 3 })).toThrow('conv2d: out channels K = 5 (w is [5, 1, 3, 3]) must be divisible by groups 3');
    const w6 = Tensor.zeros([6, 1, 3, 3]);
    expect(() => conv2d(x3, w6, null, { groups: 2 })).toThrow('conv2d: in channels C = 3 (x is [2, 3, 32, 32]) must be divisible by groups 2');
    [w5, w6].forEach((t) => t.dispose());
  });

  it('bias shape and type', () => {
    const w1 = Tensor.zeros([4, 3, 3, 3]);
    const b = Tensor.zeros([5]);
    expect(() => conv2d(x3, w1, b)).toThrow('conv2d: expected b of shape [4], got [5]');
    expect(() => conv2d(x3, w1, undefined as unknown as null)).toThrow('conv2d: expected b to be a Tensor or null, got undefined');
    [w1, b].forEach((t) => t.dispose());
  });

  it('bad options', () => {
    const w1 = Tensor.zeros([4, 3, 3, 3]);
    expect(() => conv2d(x3, w1, null, { stride: 0 })).toThrow(/conv2d: stride must be an integer/);
    expect(() => conv2d(x3, w1, null, { padding: -1 })).toThrow('conv2d: padding must be an integer ≥ 0, got -1');
    expect(() => conv2d(x3, w1, null, { stride: [1, 2, 3] as unknown as [number, number] })).toThrow(/conv2d: stride must be/);
    expect(() => conv2d(x3, w1, null, { groups: 0 })).toThrow(/conv2d: groups must be an integer ≥ 1, got 0/);
    expect(() => conv2d(x3, w1, null, { precision: 'fp16' as 'fp32' })).toThrow('conv2d: precision must be "fp32", "tf32" or "bf16", got "fp16"');
    expect(() => conv2d(x3, w1, null, { workspaceBytes: 0 })).toThrow(/conv2d: workspaceBytes must be an integer ≥ 1, got 0/);
    expect(() => conv2d(x3, w1, null, 'big' as unknown as Conv2dOptions)).toThrow(/conv2d: expected options/);
    w1.dispose();
  });

  it('backward: dy of the wrong shape, bad flags', () => {
    const w1 = Tensor.zeros([4, 3, 3, 3]);
    const dy = Tensor.zeros([2, 4, 32, 32]);
    expect(() => conv2dBackward(dy, x3, w1)).toThrow('conv2dBackward: expected dy of shape [2, 4, 30, 30], got [2, 4, 32, 32]');
    expect(() => conv2dBackward(dy, x3, w1, { padding: 1, needInputGrad: 1 as unknown as boolean })).toThrow('conv2dBackward: needInputGrad must be a boolean, got 1');
    [w1, dy].forEach((t) => t.dispose());
  });

  it('wrong dtype, disposed tensors, non-tensors', () => {
    const xi = Tensor.zeros([2, 3, 8, 8], 'cpu', 'int32');
    const w1 = Tensor.zeros([4, 3, 3, 3]);
    expect(() => conv2d(xi, w1, null)).toThrow('conv2d: expected x to be float32 or bfloat16, got int32');
    const gone = Tensor.zeros([4, 3, 3, 3]);
    gone.dispose();
    expect(() => conv2d(x3, gone, null)).toThrow(DisposedError);
    expect(() => conv2d(new Float32Array(4) as unknown as Tensor, w1, null)).toThrow('conv2d: expected x to be a Tensor, got Float32Array(4)');
    [xi, w1].forEach((t) => t.dispose());
  });

  it('conv2dOutputShape', () => {
    expect(conv2dOutputShape([128, 3, 227, 227], [96, 3, 11, 11], { stride: 4 })).toEqual([128, 96, 55, 55]);
    expect(conv2dOutputShape([128, 3, 224, 224], [64, 3, 11, 11], { stride: 4, padding: 2 })).toEqual([128, 64, 55, 55]);
    expect(conv2dOutputShape([2, 96, 27, 27], [256, 48, 5, 5], { padding: 2, groups: 2 })).toEqual([2, 256, 27, 27]);
    expect(conv2dOutputShape([1, 5, 7, 10], [3, 5, 3, 2], { stride: [2, 1], padding: [1, 2] })).toEqual([1, 3, 4, 13]);
    expect(() => conv2dOutputShape([1, 5, 7, 10], [3, 4, 3, 2])).toThrow('conv2dOutputShape: expected x of shape [N, C, H, W] with C = 4');
  });
});

/** The longest reduction behind each output of a conv problem: y sums C/groups·kh·kw products, dx the
 * K/groups·kh·kw of col2im's GEMM columns, dw and db N·Ho·Wo. */
function reductionLengths(p: Problem): Record<'y' | 'dx' | 'dw' | 'db', number> {
  const [n, c] = p.x;
  const [k, , kh, kw] = p.w;
  const g = p.opts.groups ?? 1;
  const [ho, wo] = conv2dOutputShape(p.x, p.w, p.opts).slice(2);
  return { y: (c / g) * kh * kw, dx: (k / g) * kh * kw, dw: n * ho * wo, db: n * ho * wo };
}

describe.skipIf(noCuda)('conv2d on CUDA matches the CPU oracle', () => {
  // AlexNet's layer shapes at batch 8 on a GPU, at batch 2 on the emulated device.
  const problems = [...ODD, ...ALEXNET_BATCH8.map((p) => ({ ...p, x: [cudaBatch(p.x[0]), ...p.x.slice(1)] }))];
  // bf16 too on a GPU (test/ops/bf16.test.ts checks it on odd shapes on the emulated device, where these
  // shapes are slow): its inputs cut to bf16, against the float32 CPU within the bf16 bound.
  const precisions = emulated ? (['fp32', 'tf32'] as const) : (['fp32', 'tf32', 'bf16'] as const);
  it.each(problems.map((p) => [p.name, p] as const))(`%s: ${precisions.join(', ')}`, (_name, p) => {
    const d = randomData(p, 2024);
    const ref = run(p, d, 'cpu', { precision: 'fp32' });
    const K = reductionLengths(p);
    for (const precision of precisions) {
      const got = run(p, d, 'cuda', { precision });
      for (const k of ['y', 'dx', 'dw', 'db'] as const) {
        const tol = tolFor(precision, K[k]);
        const a = got[k];
        const r = ref[k];
        if (!r) {
          expect(a).toBeNull();
          continue;
        }
        expect(hasNaN(a!), `${p.name} ${precision}: ${k} has NaN (unwritten output?)`).toBe(false);
        expect(relError(a!, r), `${p.name} ${precision}: ${k}`).toBeLessThanOrEqual(tol);
      }
    }
  });

  it('chunked equals unchunked on CUDA', () => {
    // Batch 8 on a GPU (one 5,832-term dW reduction against eight of 729), 4 on the emulated device.
    const p = { ...ALEXNET_BATCH8[1], x: [cudaBatch(8, 4), ...ALEXNET_BATCH8[1].x.slice(1)] };
    const d = randomData(p, 11);
    const whole = run(p, d, 'cuda');
    const K = reductionLengths(p);
    for (const cap of [1, 3 * 4 * (96 * 25 * 729 + 256 * 729)]) {
      const c = run(p, d, 'cuda', { workspaceBytes: cap });
      // cuBLAS may pick other kernels (and summation orders) for the chunks' smaller GEMMs.
      expect(relError(c.y, whole.y)).toBeLessThanOrEqual(fp32Tol(K.y));
      expect(relError(c.dx, whole.dx)).toBeLessThanOrEqual(fp32Tol(K.dx));
      expect(relError(c.dw, whole.dw)).toBeLessThanOrEqual(fp32Tol(K.dw));
      expect(c.db).toEqual(whole.db); // our own reduction, in a fixed order
    }
  });

  it('mixing devices is an error; memory returns to its baseline', () => {
    const p = ALEXNET_BATCH8[4];
    const d = randomData(p, 12);
    const x = Tensor.from(d.x, p.x, 'cuda');
    const w = Tensor.from(d.w, p.w);
    expect(() => conv2d(x, w, null, p.opts)).toThrow('conv2d: all tensors must be on one device; x is on cuda, w on cpu');
    [x, w].forEach((t) => t.dispose());
    run(p, d, 'cuda');
    const before = memoryStats();
    run(p, d, 'cuda');
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.native.cuda!.inUseBytes).toBe(before.native.cuda!.inUseBytes);
  });
});

/** The bias gradient alone, through conv2dBackward of a 1×1 convolution of one input channel (dy is
 * (N, K, Ho, Wo) whatever the layer; dx is skipped, dw is a K×1 GEMM). With `relu` (the fused ReLU's
 * output y) also dz, the masked gradient, which reluInPlace writes over dy. */
function biasGrad(s: BiasShape, dyData: Float32Array, device: 'cpu' | 'cuda', relu?: { y: Float32Array; inPlace: boolean }) {
  const [N, K, Ho, Wo] = s.dy;
  const x = Tensor.zeros([N, 1, Ho, Wo], device);
  const w = Tensor.zeros([K, 1, 1, 1], device);
  const dy = Tensor.from(dyData, s.dy, device);
  const y = relu ? Tensor.from(relu.y, s.dy, device) : null;
  const g = conv2dBackward(dy, x, w, { needInputGrad: false, needBiasGrad: true, ...(y ? { reluOutput: y, reluInPlace: relu!.inPlace } : {}) });
  const db = g.db!.dataSync() as Float32Array;
  const dz = relu?.inPlace ? (dy.dataSync() as Float32Array) : null;
  [x, w, dy, y, g.dw, g.db].forEach((t) => t?.dispose());
  return { db, dz };
}

interface BiasShape {
  name: string;
  dy: [number, number, number, number];
}

/** The chunking of conv2d.h (bias_grad_chunk_images): T images per chunk, J chunks. */
function biasChunks(N: number, P: number): { T: number; J: number } {
  const T = Math.max(1, Math.min(P >= 8192 ? 1 : Math.ceil(8192 / P), Math.max(N, 1)));
  return { T, J: Math.ceil(N / T) };
}

/** Gradients over a wide range of magnitudes (2^-30 … 2^8, either sign): their double sums round, so a sum
 * taken in another order than the oracle's would show in the bits (values of one scale often sum exactly). */
function wideRandom(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (r() < 0.5 ? -1 : 1) * 2 ** (-30 + 38 * r()) * (1 + r()));
}

/** wideRandom, and in every channel two pairs of large values that cancel (±L, L ≈ 2^40 … 2^56), at random
 * distinct elements (so in random lanes and chunks). The small values that meet an L in a double sum are
 * rounded to its ulp (2^-12 … 2^4), and which ones do depends on the order of the additions: the float32
 * result then shows a change of lane, tree or chunk order — where values of one range sum to doubles whose
 * float rounding hides the order. */
function orderSensitive(s: BiasShape, seed: number): Float32Array {
  const [N, K, Ho, Wo] = s.dy;
  const P = Ho * Wo;
  const g = wideRandom(N * K * P, seed);
  const r = mulberry32(seed + 1);
  for (let k = 0; k < K; k++) {
    const used = new Set<number>();
    const pick = () => {
      for (;;) {
        const e = Math.floor(r() * N * P); // element e = i·P + p of channel k
        if (!used.has(e)) {
          used.add(e);
          return (Math.floor(e / P) * K + k) * P + (e % P);
        }
      }
    };
    for (let pair = 0; pair < 2 && used.size + 2 <= N * P; pair++) {
      const L = Math.fround(2 ** (40 + 16 * r()));
      g[pick()] = L;
      g[pick()] = -L;
    }
  }
  return g;
}

/** Indices where two float32 arrays differ in their bits (so -0 ≠ +0, and NaN = NaN of the same bits). */
function bitMismatches(a: Float32Array, b: Float32Array): number[] {
  expect(a.length).toBe(b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) out.push(i);
  return out;
}

describe.skipIf(noCuda)('conv2d bias gradient on CUDA: the two-stage reduction in a fixed order', () => {
  // A fresh seed per run (in every message, to reproduce a failure).
  const seed = (Math.random() * 2 ** 31) >>> 0;
  const shapes: BiasShape[] = [
    // (N, K, Ho, Wo); T and J from biasChunks.
    { name: 'P = 35 < B, T = 235, N = 487: J = 3, the last chunk 17 images', dy: [487, 3, 5, 7] },
    { name: 'P = 299 > B, not a multiple of B, T = 28, N = 30: J = 2, the last chunk 2 images', dy: [30, 5, 13, 23] },
    { name: 'K = 1, P = 1,600, T = 6, N = 17: J = 3', dy: [17, 1, 40, 40] },
    { name: 'N = 1 (one chunk), P = 99', dy: [1, 6, 9, 11] },
    { name: 'P = 1, N = 8,200: T = 8,192, J = 2, the last chunk 8 images', dy: [8200, 2, 1, 1] },
    { name: 'P = 8,281 > 8,192: one image per chunk, J = 3', dy: [3, 2, 91, 91] },
    { name: 'P = 256 = B exactly, T = 32, N = 33: J = 2, the last chunk 1 image', dy: [33, 3, 16, 16] },
    { name: `paper conv1 (K = 96, P = 3,025) at batch ${cudaBatch(128, 8)}`, dy: [cudaBatch(128, 8), 96, 55, 55] },
    { name: `paper conv3 (K = 384, P = 169) at batch ${cudaBatch(128, 8)}`, dy: [cudaBatch(128, 8), 384, 13, 13] },
  ];

  it('the shapes cover what they claim (the chunking as conv2d.h defines it)', () => {
    const c = shapes.map((s) => biasChunks(s.dy[0], s.dy[2] * s.dy[3]));
    expect(c.slice(0, 7)).toEqual([
      { T: 235, J: 3 },
      { T: 28, J: 2 },
      { T: 6, J: 3 },
      { T: 1, J: 1 },
      { T: 8192, J: 2 },
      { T: 1, J: 3 },
      { T: 32, J: 2 },
    ]);
    // The paper's conv1 at batch 8 (emulated) or 128: three images per chunk, J = 3 or 43.
    expect(c[7]).toEqual({ T: 3, J: Math.ceil(cudaBatch(128, 8) / 3) });
  });

  /** db (and dz) from CUDA against the CPU oracle, bit for bit on the emulated device and on a GPU alike:
   * both do the same double additions (no products, so nothing to contract) in the same order, and
   * round once to float32. A tolerance (two double sums of n terms: |a − r| ≤ 2^-23·|r| + 2·n·2^-53·Σ|g|)
   * would let an order defect that only a GPU shows (the shuffle tree, say) pass. */
  function expectMatchesOracle(got: Float32Array, ref: Float32Array, what: string) {
    expect(hasNaN(got), `${what}: NaN (unwritten?)`).toBe(false);
    expect(bitMismatches(got, ref), `${what}: channels whose bits differ from the CPU oracle's (seed ${seed})`).toEqual([]);
  }

  it.each(shapes.map((s, i) => [s.name, s, i] as const))('%s: db as the CPU oracle, run to run bit-identical', (_name, s, i) => {
    // gradients whose sum shows the order of its additions
    const dy = orderSensitive(s, seed + i);
    const ref = biasGrad(s, dy, 'cpu').db;
    const a = biasGrad(s, dy, 'cuda').db;
    const b = biasGrad(s, dy, 'cuda').db;
    expectMatchesOracle(a, ref, `${s.name}: db`);
    expect(bitMismatches(a, b), `${s.name}: run to run (seed ${seed})`).toEqual([]);
  });

  it.each(shapes.map((s, i) => [s.name, s, i] as const))('%s: fused ReLU — dz and db as the CPU oracle, db as the plain sum of dz', (_name, s, i) => {
    const dy = orderSensitive(s, seed + 100 + i);
    const r = mulberry32(seed + 200 + i);
    const y = Float32Array.from({ length: dy.length }, () => Math.max(0, r() - 0.5)); // half of it 0: masked
    const ref = biasGrad(s, dy, 'cpu', { y, inPlace: true });
    const got = biasGrad(s, dy, 'cuda', { y, inPlace: true });
    expect(bitMismatches(got.dz!, ref.dz!), `${s.name}: dz (seed ${seed})`).toEqual([]);
    expectMatchesOracle(got.db, ref.db, `${s.name}: fused db`);
    // dz into scratch memory instead of over dy: the same db; and the same bits as the plain reduction of dz.
    const scratch = biasGrad(s, dy, 'cuda', { y, inPlace: false });
    expect(bitMismatches(scratch.db, got.db), `${s.name}: dz in scratch vs in place (seed ${seed})`).toEqual([]);
    expect(bitMismatches(biasGrad(s, got.dz!, 'cuda').db, got.db), `${s.name}: fused vs plain over dz (seed ${seed})`).toEqual([]);
  });

  it.skipIf(!emulated)('a planted defect — the last image chunk dropped — is caught', async () => {
    // J = 3 chunks of 235, 235 and 17 images; every channel has gradients in the last chunk.
    const s = shapes[0];
    const dy = wideRandom(numel(s.dy), seed + 300);
    const ref = biasGrad(s, dy, 'cpu').db;
    const y = new Float32Array(dy.length).fill(1); // the fused variant, nothing masked
    const planted = await withPlanted('biasGradDropLastChunk', () => ({ plain: biasGrad(s, dy, 'cuda').db, fused: biasGrad(s, dy, 'cuda', { y, inPlace: false }).db }));
    const all = Array.from({ length: s.dy[1] }, (_, k) => k);
    expect(bitMismatches(planted.plain, ref), 'plain: the channels the comparison flags').toEqual(all);
    expect(bitMismatches(planted.fused, ref), 'fused: the channels the comparison flags').toEqual(all);
    // What the dropped chunk held: db without it is the oracle's sum of the first two chunks.
    const [N, K, Ho, Wo] = s.dy;
    const P = Ho * Wo;
    const head = dy.slice(0, 470 * K * P);
    expect(bitMismatches(planted.plain, biasGrad({ name: 'the first 470 images', dy: [470, K, Ho, Wo] }, head, 'cpu').db)).toEqual([]);
    expect(N).toBe(487);
    // And with the defect gone, the same comparison passes.
    expect(bitMismatches(biasGrad(s, dy, 'cuda').db, ref)).toEqual([]);
  });

  describe('the legacy reduction (one block per channel), kept for the A/B', () => {
    it.each(shapes.map((s, i) => [s.name, s, i] as const))('%s: db (plain and fused) and dz as its CPU oracle, run to run bit-identical', (_name, s, i) => {
      withBiasPath('legacy', () => {
        const dy = orderSensitive(s, seed + 400 + i);
        const ref = biasGrad(s, dy, 'cpu').db;
        const a = biasGrad(s, dy, 'cuda').db;
        expectMatchesOracle(a, ref, `${s.name}: legacy db`);
        expect(bitMismatches(biasGrad(s, dy, 'cuda').db, a), `${s.name}: legacy run to run (seed ${seed})`).toEqual([]);
        const r = mulberry32(seed + 500 + i);
        const y = Float32Array.from({ length: dy.length }, () => Math.max(0, r() - 0.5));
        const fref = biasGrad(s, dy, 'cpu', { y, inPlace: true });
        const fgot = biasGrad(s, dy, 'cuda', { y, inPlace: true });
        expect(bitMismatches(fgot.dz!, fref.dz!), `${s.name}: legacy dz (seed ${seed})`).toEqual([]);
        expectMatchesOracle(fgot.db, fref.db, `${s.name}: legacy fused db`);
      });
    });

    it('on the columns path (dz in the (K, N, P) layout, float32 and bf16 storage): db as the CPU oracle, the rest as the two-stage run', () => {
      // ODD[1] has no bias: the legacy kernel writes dz alone (db null)
      for (const p of [ODD[0], ODD[1], ODD[4], { ...ALEXNET_BATCH8[1], x: [2, 96, 27, 27] }]) {
        const d = randomData(p, 58);
        const ref = withBiasPath('legacy', () => runKept(p, d, 'cpu'));
        const got = withBiasPath('legacy', () => runKept(p, d, 'cuda'));
        const two = runKept(p, d, 'cuda');
        if (p.bias) expectMatchesOracle(got.db!, ref.db!, `${p.name}: legacy db, columns path`);
        else expect(got.db).toBeNull();
        for (const k of ['y', 'dx', 'dw'] as const) expect(bitMismatches(got[k], two[k]), `${p.name}: ${k} as the two-stage run's`).toEqual([]);
        const bf = withBiasPath('legacy', () => runKept(p, d, 'cuda', { precision: 'bf16' }));
        const bfTwo = runKept(p, d, 'cuda', { precision: 'bf16' });
        for (const k of ['y', 'dx', 'dw'] as const) expect(bitMismatches(bf[k], bfTwo[k]), `${p.name}: bf16 ${k} as the two-stage run's`).toEqual([]);
        if (p.bias) expectMatchesOracle(bf.db!, withBiasPath('legacy', () => runKept(p, d, 'cpu', { precision: 'bf16' })).db!, `${p.name}: legacy db, bf16 storage`);
      }
    });
  });
});

/** fn with the bias gradient's reduction set to `path`, restored after. */
function withBiasPath<T>(path: BiasGradientPath, fn: () => T): T {
  const prev = setBiasGradientPath(path);
  try {
    return fn();
  } finally {
    setBiasGradientPath(prev);
  }
}

describe('conv2d bias gradient: the legacy reduction (setBiasGradientPath, kept for the A/B of issue 19 lever 3)', () => {
  it('sums what the two-stage one sums, in another order', () => {
    expect(getBiasGradientPath()).toBe('two-stage');
    const s: BiasShape = { name: 'N 5, K 4, P 1,369', dy: [5, 4, 37, 37] };
    const dy = random(numel(s.dy), 41);
    const two = biasGrad(s, dy, 'cpu').db;
    const legacy = withBiasPath('legacy', () => biasGrad(s, dy, 'cpu').db);
    // both round a double sum once: within an ulp or so of the float64 sum
    const [N, K, Ho, Wo] = s.dy;
    const P = Ho * Wo;
    const exact = Float32Array.from({ length: K }, (_, k) => {
      let t = 0;
      for (let i = 0; i < N; i++) for (let p = 0; p < P; p++) t += dy[(i * K + k) * P + p];
      return t;
    });
    expect(relError(legacy, exact)).toBeLessThan(1e-6);
    expect(relError(two, exact)).toBeLessThan(1e-6);
    // on data whose sums show their order, the two differ: the switch reaches the native reduction
    const od = orderSensitive(s, 42);
    expect(bitMismatches(withBiasPath('legacy', () => biasGrad(s, od, 'cpu').db), biasGrad(s, od, 'cpu').db).length).toBeGreaterThan(0);
    expect(getBiasGradientPath()).toBe('two-stage');
  });

  it('on the columns path (dz in the (K, N, P) layout): y, dx and dw as the two-stage run bit for bit, db within float32 rounding', () => {
    // ODD[1] has no bias: dz alone, db not computed
    for (const p of [ODD[0], ODD[1], ODD[4], { ...ALEXNET_BATCH8[1], x: [2, 96, 27, 27] }]) {
      const d = randomData(p, 57);
      const two = runKept(p, d, 'cpu');
      const legacy = withBiasPath('legacy', () => runKept(p, d, 'cpu'));
      expect(legacy.kept, p.name).toBeGreaterThan(0);
      for (const k of ['y', 'dx', 'dw'] as const) expect(bitMismatches(legacy[k], two[k]), `${p.name}: ${k}`).toEqual([]);
      expect(legacy.db === null, `${p.name}: db computed only with a bias`).toBe(!p.bias);
      if (p.bias) expect(relError(legacy.db!, two.db!), `${p.name}: db`).toBeLessThan(1e-6);
    }
  });

  it('bad input gets a clear error', () => {
    expect(() => setBiasGradientPath('fast' as BiasGradientPath)).toThrow(`setBiasGradientPath: expected 'two-stage' or 'legacy', got "fast"`);
    expect(getBiasGradientPath()).toBe('two-stage');
  });
});

/** Forward with kept columns (conv2dForTraining) and the backward that reads them. */
function runKept(p: Problem, data: ReturnType<typeof randomData>, device: 'cpu' | 'cuda', opts: Conv2dOptions = {}): Result & { kept: number } {
  const K = p.w[0];
  const x = Tensor.from(data.x, p.x, device);
  const w = Tensor.from(data.w, p.w, device);
  const b = data.b ? Tensor.from(data.b, [K], device) : null;
  const o = { ...p.opts, ...opts };
  const { y, columns } = conv2dForTraining(x, w, b, o);
  const dy = Tensor.from(data.dy, y.shape, device);
  const g = conv2dBackward(dy, x, w, { ...o, needBiasGrad: !!b, columns });
  const out = { y: y.dataSync() as Float32Array, dx: g.dx!.dataSync() as Float32Array, dw: g.dw.dataSync() as Float32Array, db: g.db ? (g.db.dataSync() as Float32Array) : null, kept: columns ? columns.shape[0] : 0 };
  [x, w, b, y, dy, g.dx, g.dw, g.db, columns].forEach((t) => t?.dispose());
  return out;
}

const pad4 = (v: number) => Math.ceil(v / 4) * 4;
/** The floats conv2d.h's columns path keeps: G·pad4(C/G·kh·kw) rows of pad4(N·Ho·Wo). */
function keptFloats(p: Problem): number {
  const G = p.opts.groups ?? 1;
  const [, , Ho, Wo] = conv2dOutputShape(p.x, p.w, p.opts);
  const identity = p.w[2] === 1 && p.w[3] === 1 && (p.opts.stride ?? 1) === 1 && (p.opts.padding ?? 0) === 0;
  return identity ? 0 : G * pad4(p.w[1] * p.w[2] * p.w[3]) * pad4(p.x[0] * Ho * Wo);
}

describe('conv2d columns path: kept columns (CPU)', () => {
  it.each([...ODD, ALEXNET_BATCH8[0], ALEXNET_BATCH8[1]].map((p) => [p.name, p] as const))('%s: the backward reading the kept columns equals the one computing them again, bit for bit', (_name, p) => {
    const q = p.name.startsWith('paper') ? { ...p, x: [3, ...p.x.slice(1)] } : p; // an odd batch: N·P not a multiple of 4
    const d = randomData(q, 31);
    const again = run(q, d, 'cpu');
    const kept = runKept(q, d, 'cpu');
    expect(kept.kept).toBe(keptFloats(q));
    for (const k of ['y', 'dx', 'dw', 'db'] as const) expect(kept[k], k).toEqual(again[k]);
  });

  it('keeps none over the workspace cap, on the legacy path, or for a 1×1 convolution; wrong columns are refused', () => {
    const p = ODD[0];
    const d = randomData(p, 3);
    expect(runKept(p, d, 'cpu', { workspaceBytes: 64 }).kept).toBe(0);
    const prev = setConvolutionPath('legacy');
    try {
      expect(getConvolutionPath()).toBe('legacy');
      expect(runKept(p, d, 'cpu').kept).toBe(0);
    } finally {
      setConvolutionPath(prev);
    }
    expect(runKept(ODD[2], randomData(ODD[2], 4), 'cpu').kept).toBe(0);
    expect(() => setConvolutionPath('fast' as ConvolutionPath)).toThrow(`setConvolutionPath: expected 'columns' or 'legacy', got "fast"`);
    const x = Tensor.from(d.x, p.x);
    const w = Tensor.from(d.w, p.w);
    const { y, columns } = conv2dForTraining(x, w, null, p.opts);
    const dy = Tensor.zeros(y.shape);
    const short = Tensor.zeros([columns!.shape[0] - 1]);
    expect(() => conv2dBackward(dy, x, w, { ...p.opts, columns: short })).toThrow(`conv2dBackward: expected columns of shape [${keptFloats(p)}]`);
    expect(() => conv2dBackward(dy, x, w, { ...p.opts, columns: 3 as unknown as Tensor })).toThrow('conv2dBackward: columns must be a Tensor (from conv2dForTraining) or null, got 3');
    [x, w, y, dy, short, columns].forEach((t) => t?.dispose());
  });
});

interface EmuCounters {
  cublasCalls: number;
  cublasMisaligned: number;
  lastMisalignedGemm: string;
}
const emuCounters = () => (loadNative() as unknown as { emulator: { counters(): EmuCounters } }).emulator.counters();

describe.skipIf(noCuda)('conv2d columns path on CUDA', () => {
  const problems = [...ODD, ...ALEXNET_BATCH8.map((p) => ({ ...p, x: [cudaBatch(p.x[0], 3), ...p.x.slice(1)] }))];
  it.each(problems.map((p) => [p.name, p] as const))('%s: kept columns equal recomputed ones bit for bit; the legacy path agrees to GEMM rounding', (_name, p) => {
    const d = randomData(p, 77);
    const kept = runKept(p, d, 'cuda');
    const again = run(p, d, 'cuda');
    expect(kept.kept).toBe(keptFloats(p));
    for (const k of ['y', 'dx', 'dw', 'db'] as const) expect(kept[k], k).toEqual(again[k]);
    const prev = setConvolutionPath('legacy');
    let legacy: Result;
    try {
      legacy = run(p, d, 'cuda');
    } finally {
      setConvolutionPath(prev);
    }
    const K = reductionLengths(p);
    for (const k of ['y', 'dx', 'dw'] as const) expect(relError(again[k], legacy[k]), k).toBeLessThanOrEqual(fp32Tol(K[k]));
    if (again.db) expect(again.db).toEqual(legacy.db); // the same reduction, in the same order
  });

  it.skipIf(!emulated)('every GEMM of the columns path has 16-byte-aligned leading dimensions, strides and pointers (fp32 and bf16 storage); the legacy path and a planted unpadded K do not', async () => {
    const shapes = [ALEXNET_BATCH8[0], ALEXNET_BATCH8[1], ALEXNET_BATCH8[5], ODD[0], ODD[1], ODD[4]].map((p) => ({ ...p, x: [Math.min(p.x[0], 3), ...p.x.slice(1)] }));
    const misaligned = (fn: () => void) => {
      const c0 = emuCounters();
      fn();
      const c1 = emuCounters();
      expect(c1.cublasCalls).toBeGreaterThan(c0.cublasCalls);
      return { n: c1.cublasMisaligned - c0.cublasMisaligned, last: c1.lastMisalignedGemm };
    };
    for (const p of shapes) {
      const d = randomData(p, 5);
      const m = misaligned(() => runKept(p, d, 'cuda'));
      expect(m.n, `${p.name}: ${m.last}`).toBe(0);
      expect(misaligned(() => run(p, d, 'cuda')).n, `${p.name}, recomputed columns`).toBe(0);
      // bf16 storage: rows and leading dimensions padded to 8 elements (16 bytes of bf16); kept columns
      // give the recomputed ones' results bit for bit there too
      let kept: Result | null = null;
      let again: Result | null = null;
      const mb = misaligned(() => void (kept = runKept(p, d, 'cuda', { precision: 'bf16' })));
      expect(mb.n, `${p.name} bf16: ${mb.last}`).toBe(0);
      expect(misaligned(() => void (again = run(p, d, 'cuda', { precision: 'bf16' }))).n, `${p.name} bf16, recomputed columns`).toBe(0);
      for (const k of ['y', 'dx', 'dw', 'db'] as const) expect(kept![k], `${p.name} bf16 ${k}`).toEqual(again![k]);
    }
    // conv1 (K = 3·11·11 = 363): the legacy path's leading dimensions are 363 and P = 3,025
    const c1 = shapes[0];
    const d = randomData(c1, 6);
    const prev = setConvolutionPath('legacy');
    try {
      expect(misaligned(() => run(c1, d, 'cuda')).n).toBeGreaterThan(0);
    } finally {
      setConvolutionPath(prev);
    }
    // planted: the columns path without the padding of K: still the right values, but misaligned GEMMs
    const want = run(c1, d, 'cuda');
    const planted = await withPlanted('convUnpaddedK', () => {
      let out: Result | null = null;
      const m = misaligned(() => (out = runKept(c1, d, 'cuda')));
      return { m, out: out! };
    });
    expect(planted.m.n).toBeGreaterThan(0);
    expect(planted.m.last).toMatch(/ld[abc] 363/);
    expect(relError(planted.out.y, want.y)).toBeLessThanOrEqual(fp32Tol(363));
  });
});
