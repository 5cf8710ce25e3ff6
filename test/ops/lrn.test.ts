import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { LocalResponseNorm } from '../../lib/nn/lrn.js';
import {
  getLrnPath,
  localResponseNorm,
  localResponseNormBackward,
  localResponseNormLegacy,
  localResponseNormLegacyBackward,
  setLrnPath,
  type LocalResponseNormOptions,
  type LrnPath,
} from '../../lib/ops/lrn.js';
import { expectMatchesFixture, fixtureCases, hasNaN, loadFixture, relError } from '../helpers/fixtures.js';
import { gradcheck, mulberry32 } from '../helpers/gradcheck.js';
import { emulated, noCuda, withPlanted } from '../helpers/gpu.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Forward then backward on the CPU, returning plain arrays. */
function run(xv: Float32Array, dyv: Float32Array, shape: number[], opts: LocalResponseNormOptions) {
  using x = Tensor.from(xv, shape);
  using dy = Tensor.from(dyv, shape);
  using y = localResponseNorm(x, opts);
  using dx = localResponseNormBackward(dy, x, opts);
  return { y: y.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array };
}

/**
 * The forward and backward in float64 (the formulas of native/ops/lrn.h), with the magnitudes that bound
 * how far two float32 evaluations may differ: per element |dy·p| (A) and |coef·x|·Σ|t| (B), where dx = A − B
 * and t_c' = dy_c'·x_c'·p_c'/scale_c'.
 */
function lrn64(x: Float32Array, dy: Float32Array, shape: number[], o: LocalResponseNormOptions) {
  const [N, C] = shape;
  const S = numel(shape.slice(2));
  const { size } = o, alpha = o.alpha ?? 1e-4, beta = o.beta ?? 0.75, k = o.k ?? 1;
  const before = Math.floor(size / 2), after = Math.floor((size - 1) / 2);
  const n = x.length;
  const scale = new Float64Array(n), p = new Float64Array(n), t = new Float64Array(n);
  for (let i = 0; i < N; i++)
    for (let c = 0; c < C; c++)
      for (let s = 0; s < S; s++) {
        let sum = 0;
        for (let cc = Math.max(c - before, 0); cc <= Math.min(c + after, C - 1); cc++) sum += x[(i * C + cc) * S + s] ** 2;
        const e = (i * C + c) * S + s;
        scale[e] = k + (alpha / size) * sum;
        p[e] = scale[e] ** -beta;
        t[e] = (dy[e] * x[e] * p[e]) / scale[e];
      }
  const y = new Float64Array(n), dx = new Float64Array(n), A = new Float64Array(n), B = new Float64Array(n);
  const coef = (2 * alpha * beta) / size;
  for (let i = 0; i < N; i++)
    for (let c = 0; c < C; c++)
      for (let s = 0; s < S; s++) {
        let T = 0, Tabs = 0;
        for (let cc = Math.max(c - after, 0); cc <= Math.min(c + before, C - 1); cc++) {
          T += t[(i * C + cc) * S + s];
          Tabs += Math.abs(t[(i * C + cc) * S + s]);
        }
        const e = (i * C + c) * S + s;
        y[e] = x[e] * p[e];
        dx[e] = dy[e] * p[e] - coef * x[e] * T;
        A[e] = Math.abs(dy[e] * p[e]);
        B[e] = Math.abs(coef * x[e]) * Tabs;
      }
  return { scale, y, dx, A, B };
}

/** The legacy path's forward then backward (setLrnPath('legacy')), on either device, with its scale. */
async function runLegacy(xv: Float32Array, dyv: Float32Array, shape: number[], opts: LocalResponseNormOptions, device: 'cpu' | 'cuda' = 'cpu') {
  using x = Tensor.from(xv, shape, device);
  using dy = Tensor.from(dyv, shape, device);
  const { y, scale } = localResponseNormLegacy(x, opts);
  using y_ = y;
  using scale_ = scale;
  using dx = localResponseNormLegacyBackward(dy, x, y_, scale_, opts);
  return { y: await y_.toFloat32Array(), scale: await scale_.toFloat32Array(), dx: await dx.toFloat32Array() };
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
    // fp32: y is a handful of operations per element; dx sums at most `size` terms
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
    using y = localResponseNorm(t, { size: 4, alpha: 4, beta: 1, k: 1 });
    const sq = x.map((v) => v * v);
    const win = (c: number) => sq.slice(Math.max(c - 2, 0), Math.min(c + 1, 3) + 1).reduce((a, b) => a + b, 0);
    const want = x.map((_, c) => 1 + win(c));
    expect(want).toEqual([6, 15, 31, 30]);
    expect(Array.from(await y.toFloat32Array())).toEqual(x.map((v, c) => Math.fround(v * Math.fround(Math.pow(want[c], -1)))));
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
    const { scale } = lrn64(xv, dyv, shape, opts);
    const local = dyv.map((d, i) => d * Math.pow(scale[i], -opts.beta!));
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
    expect(() => localResponseNorm(xi, { size: 5 })).toThrow('localResponseNorm: expected x to be float32 or bfloat16, got int32');
    expect(() => localResponseNorm(null as never, { size: 5 })).toThrow('localResponseNorm: expected x to be a Tensor, got null');
    const d = Tensor.zeros([1, 4, 2, 2]);
    d.dispose();
    expect(() => localResponseNorm(d, { size: 5 })).toThrow(DisposedError);
  });
  it('backward', () => {
    const opts = { size: 3 };
    using dy = Tensor.zeros([1, 4, 2, 2]);
    using bad = Tensor.zeros([1, 4, 4]);
    expect(() => localResponseNormBackward(bad, x, opts)).toThrow('localResponseNormBackward: expected dy of shape [1, 4, 2, 2], got [1, 4, 4]');
    expect(() => localResponseNormBackward(dy, x, { size: -3 })).toThrow('localResponseNormBackward: size must be an integer ≥ 1, got -3');
    expect(() => localResponseNormBackward(dy, undefined as never, opts)).toThrow('localResponseNormBackward: expected x to be a Tensor, got undefined');
    // the old call (dy, x, y, scale, opts) names what it got
    expect(() => localResponseNormBackward(dy, x, dy as never)).toThrow(/localResponseNormBackward: expected options \{ size, alpha\?, beta\?, k\? \}, got (a )?Tensor/);
    expect(() => (localResponseNormBackward as (...a: unknown[]) => Tensor)(dy, x, dy, dy, opts)).toThrow(
      'localResponseNormBackward: expected (dy, x, options), got 5 arguments; y and scale are no longer passed (the scale is recomputed from x)',
    );
  });
  it('a zero-size batch gives zero-size results', () => {
    using e = Tensor.zeros([0, 4, 3, 3]);
    using y = localResponseNorm(e, { size: 5 });
    expect(y.shape).toEqual([0, 4, 3, 3]);
    using dx = localResponseNormBackward(e, e, { size: 5 });
    expect(dx.shape).toEqual([0, 4, 3, 3]);
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

  it('the layer keeps only x for its backward: one activation-sized buffer (y) per forward, no scale', () => {
    const lrn = new LocalResponseNorm(5, 1e-4, 0.75, 2);
    using x = Tensor.from(random(2 * 8 * 5 * 5, 3, -2, 2), [2, 8, 5, 5]);
    const before = memoryStats().bytes.cpu;
    using y = lrn.forward(x);
    expect(memoryStats().bytes.cpu - before).toBe(y.size * 4);
    using dx = lrn.backward(y);
    expect(memoryStats().bytes.cpu - before).toBe(2 * y.size * 4);
  });
});

describe('the legacy LRN path (setLrnPath, kept for the A/B of issue 19 lever 2)', () => {
  it.each(cases)('matches PyTorch: %s', async (name) => {
    const fx = loadFixture('lrn', name);
    const opts = fx.params as LocalResponseNormOptions;
    const shape = fx.inputs.x.shape;
    const r = await runLegacy(fx.inputs.x.data as Float32Array, fx.inputs.dy.data as Float32Array, shape, opts);
    expectMatchesFixture(fx, 'scale', r.scale, shape);
    expectMatchesFixture(fx, 'y', r.y, shape);
    expectMatchesFixture(fx, 'dx', r.dx, shape);
  });

  it('agrees with the window path to a few float32 ulps, and is another arithmetic', async () => {
    const shape = [3, 37, 6, 7], opts = { size: 5, alpha: 0.3, beta: 0.75, k: 1 };
    const n = numel(shape);
    const xv = random(n, 71, -3, 3), dyv = random(n, 72);
    const w = run(xv, dyv, shape, opts);
    const l = await runLegacy(xv, dyv, shape, opts);
    const r64 = lrn64(xv, dyv, shape, opts);
    expect(relError(l.y, w.y)).toBeLessThan(1e-6);
    expect(relError(l.dx, w.dx)).toBeLessThan(1e-5);
    expect(relError(l.y, Float32Array.from(r64.y))).toBeLessThan(1e-6);
    expect(relError(l.dx, Float32Array.from(r64.dx))).toBeLessThan(1e-5);
    // not the same kernels under another name: the running double sum and powf round differently
    expect(Buffer.from(l.dx.buffer).equals(Buffer.from(w.dx.buffer))).toBe(false);
  });

  it('gradients match finite differences', () => {
    const shape = [2, 7, 3, 4], opts = { size: 5, alpha: 1, beta: 0.75, k: 1 };
    const n = numel(shape);
    const legacySync = (xv: Float32Array, dyv: Float32Array) => {
      using x = Tensor.from(xv, shape);
      using dy = Tensor.from(dyv, shape);
      const { y, scale } = localResponseNormLegacy(x, opts);
      using dx = localResponseNormLegacyBackward(dy, x, y, scale, opts);
      const out = { y: y.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array };
      y.dispose();
      scale.dispose();
      return out;
    };
    gradcheck({
      inputs: [random(n, 11, -2, 2)],
      names: ['x'],
      forward: ([x]) => legacySync(x, new Float32Array(n)).y,
      backward: ([x], r) => [legacySync(x, r).dx],
      samples: 60,
      eps: 1e-2,
    });
  });

  it('the layer follows setLrnPath: keeps x, y and the scale on the legacy path, the same values to float32 rounding', () => {
    expect(getLrnPath()).toBe('window');
    const shape = [2, 8, 5, 5];
    const xv = random(numel(shape), 3, -2, 2), dyv = random(numel(shape), 4);
    const layer = (path: LrnPath) => {
      const prev = setLrnPath(path);
      try {
        const lrn = new LocalResponseNorm(5, 1e-2, 0.75, 2);
        using x = Tensor.from(xv, shape);
        using dy = Tensor.from(dyv, shape);
        const before = memoryStats().bytes.cpu;
        using y = lrn.forward(x);
        const held = memoryStats().bytes.cpu - before;
        setLrnPath(path === 'legacy' ? 'window' : 'legacy'); // a backward follows its own forward's path
        using dx = lrn.backward(dy);
        const after = memoryStats().bytes.cpu - before;
        return { held, after, y: y.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array };
      } finally {
        setLrnPath(prev);
      }
    };
    const w = layer('window');
    const l = layer('legacy');
    const n4 = numel(shape) * 4;
    expect(w.held).toBe(n4); // y
    expect(l.held).toBe(2 * n4); // y and the scale
    expect(w.after).toBe(2 * n4); // y and dx
    expect(l.after).toBe(2 * n4); // the scale released with the saved tensors
    expect(relError(l.y, w.y)).toBeLessThan(1e-6);
    expect(relError(l.dx, w.dx)).toBeLessThan(1e-5);
    expect(getLrnPath()).toBe('window');
  });

  it('bad input gets a clear error', () => {
    expect(() => setLrnPath('fast' as LrnPath)).toThrow(`setLrnPath: expected 'window' or 'legacy', got "fast"`);
    using xb = Tensor.zeros([1, 4, 2, 2], 'cpu', 'bfloat16');
    using x = Tensor.zeros([1, 4, 2, 2]);
    expect(() => localResponseNormLegacy(xb, { size: 3 })).toThrow("localResponseNormLegacy: x is bfloat16; the legacy LRN path takes float32 only (bfloat16 activations take the window path: setLrnPath('window'))");
    expect(() => localResponseNormLegacy(x, { size: 0 })).toThrow('localResponseNormLegacy: size must be an integer ≥ 1, got 0');
    using s = Tensor.zeros([1, 4, 2, 3]);
    expect(() => localResponseNormLegacyBackward(x, x, x, s, { size: 3 })).toThrow('localResponseNormLegacyBackward: expected scale of shape [1, 4, 2, 2], got [1, 4, 2, 3]');
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
    ['odd: 13 channels, 257 columns (one block and one thread more), size 7', [1, 13, 257], { size: 7, alpha: 0.3, beta: 0.75, k: 1 }, 4],
  ];

  /** The CUDA results; on the emulated device the same bits as the CPU's, on a GPU within the bound below. */
  async function onCuda(xv: Float32Array, dyv: Float32Array, shape: number[], opts: LocalResponseNormOptions) {
    using x = Tensor.from(xv, shape, 'cuda');
    using dy = Tensor.from(dyv, shape, 'cuda');
    using y = localResponseNorm(x, opts);
    expect(y.device).toBe('cuda');
    using dx = localResponseNormBackward(dy, x, opts);
    return { y: await y.toFloat32Array(), dx: await dx.toFloat32Array() };
  }

  /**
   * Elements outside the bound a GPU may differ by (u = 2⁻²⁴, the unit roundoff; native/ops/lrn.h's
   * arithmetic). The window sums and scale round identically on both devices (single IEEE operations in the
   * same order), and so does sqrtf (correctly rounded on both); only scale^−β differs. CUDA's maximum
   * errors are counted from the correctly rounded result, so rsqrtf's 2 ulp are ≤ 2.5 ulp (≤ 5u relative)
   * from the exact value, where the CPU's 1/sqrt is within 2u: each factor differs by ≤ 7u, and p = r₁·r₂
   * by ≤ 16u with the two roundings (powf: 4.5 ulp against < 1, ≤ 11u). Then y = x·p: ≤ 18u·|y|.
   * dx = A − B with A = dy·p (≤ 18u·|A|, and 2u for the subtraction's rounding on each side) and
   * B = coef·x·Σ t: each t differs by ≤ 22u·|t| (p, then three roundings each side), the ≤ size − 1
   * additions by 2u·Σ|t| each, then two more roundings each side: ≤ u·(20·|A| + (26 + 2·size)·|B|),
   * with |B| = |coef·x|·Σ|t|. The magnitudes come from the float64 evaluation (the 1.001: its own error).
   * NVIDIA states its maximum errors as measured, not proven; a GPU run outside them is worth knowing.
   */
  function outsideBound(got: { y: Float32Array; dx: Float32Array }, ref: { y: Float32Array; dx: Float32Array }, r64: ReturnType<typeof lrn64>, size: number) {
    const u = 2 ** -24;
    const bad: string[] = [];
    for (let i = 0; i < got.y.length && bad.length < 5; i++) {
      if (Math.abs(got.y[i] - ref.y[i]) > 18 * u * Math.abs(r64.y[i]) * 1.001) bad.push(`y[${i}]: ${got.y[i]} vs ${ref.y[i]}`);
      if (Math.abs(got.dx[i] - ref.dx[i]) > u * (20 * r64.A[i] + (26 + 2 * size) * r64.B[i]) * 1.001) bad.push(`dx[${i}]: ${got.dx[i]} vs ${ref.dx[i]}`);
    }
    return bad;
  }

  it.each(shapes)('%s', async (_, shape, opts, mag) => {
    const n = numel(shape);
    const xv = random(n, n, -mag, mag);
    const dyv = random(n, n + 1);
    const ref = run(xv, dyv, shape, opts);
    const got = await onCuda(xv, dyv, shape, opts);
    const r64 = lrn64(xv, dyv, shape, opts);
    expect(hasNaN(got.y) || hasNaN(got.dx), 'NaN').toBe(false);
    if (emulated) {
      // the same operations in the same order, rsqrtf = 1/sqrtf as on the CPU: the same bits
      expect(Buffer.from(got.y.buffer).equals(Buffer.from(ref.y.buffer)), 'y bit for bit').toBe(true);
      expect(Buffer.from(got.dx.buffer).equals(Buffer.from(ref.dx.buffer)), 'dx bit for bit').toBe(true);
    } else {
      const bad = outsideBound(got, ref, r64, opts.size);
      expect(bad, `${bad.length} elements outside the derived bound; CPU vs CUDA relative error y ${relError(got.y, ref.y)}, dx ${relError(got.dx, ref.dx)}`).toEqual([]);
    }
    // and both near float64 (PyTorch's fixtures check the CPU more closely)
    expect(relError(got.y, Float32Array.from(r64.y)), 'y vs float64').toBeLessThan(1e-5);
  });

  it.skipIf(!emulated)('a planted window one channel short is caught (emulated device)', async () => {
    const shape = [2, 9, 17], opts = { size: 5, alpha: 0.5, beta: 0.75, k: 1 };
    const xv = random(numel(shape), 5, -3, 3), dyv = random(numel(shape), 6);
    const ref = run(xv, dyv, shape, opts);
    const got = await withPlanted('lrnShortWindow', () => onCuda(xv, dyv, shape, opts));
    expect(Buffer.from(got.y.buffer).equals(Buffer.from(ref.y.buffer)), 'y with the defect').toBe(false);
    expect(Buffer.from(got.dx.buffer).equals(Buffer.from(ref.dx.buffer)), 'dx with the defect').toBe(false);
    // the bound of a GPU run would catch it as well
    expect(outsideBound(got, ref, lrn64(xv, dyv, shape, opts), opts.size).length).toBeGreaterThan(0);
    // and without it the same call is exact again
    const again = await onCuda(xv, dyv, shape, opts);
    expect(Buffer.from(again.y.buffer).equals(Buffer.from(ref.y.buffer))).toBe(true);
  });

  it.each(shapes)('legacy path: %s', async (_, shape, opts, mag) => {
    const n = numel(shape);
    const xv = random(n, n + 7, -mag, mag);
    const dyv = random(n, n + 8);
    const ref = await runLegacy(xv, dyv, shape, opts);
    const got = await runLegacy(xv, dyv, shape, opts, 'cuda');
    expect(hasNaN(got.y) || hasNaN(got.dx), 'NaN').toBe(false);
    if (emulated) {
      // the legacy kernels' arithmetic in their order, powf the host's as on the CPU: the same bits
      for (const k of ['y', 'scale', 'dx'] as const) expect(Buffer.from(got[k].buffer).equals(Buffer.from(ref[k].buffer)), `${k} bit for bit`).toBe(true);
    } else {
      // nvcc may contract k + a_n·sum (the scale then differs by ≤ 1 rounding) and powf is within 4 ulp
      // against the CPU's < 1: inside the window path's bound (see outsideBound), whose terms this shares.
      const bad = outsideBound(got, ref, lrn64(xv, dyv, shape, opts), opts.size);
      expect(bad, `${bad.length} elements outside the derived bound`).toEqual([]);
    }
    expect(relError(got.y, Float32Array.from(lrn64(xv, dyv, shape, opts).y)), 'y vs float64').toBeLessThan(1e-5);
  });

  it('leaks no device memory', async () => {
    const before = memoryStats();
    for (let i = 0; i < 3; i++) {
      using x = Tensor.from(random(4 * 96 * 27 * 27, i, -20, 20), [4, 96, 27, 27], 'cuda');
      using y = localResponseNorm(x, { size: 5, k: 2 });
      using dx = localResponseNormBackward(y, x, { size: 5, k: 2 });
      await dx.toFloat32Array();
    }
    const after = memoryStats();
    expect(after.tensors.cuda).toBe(before.tensors.cuda);
    expect(after.bytes.cuda).toBe(before.bytes.cuda);
    expect(after.native.cuda!.inUseBytes).toBe(before.native.cuda!.inUseBytes);
  });

  it('rejects tensors on different devices', () => {
    using x = Tensor.zeros([1, 4, 2, 2], 'cuda');
    using dy = Tensor.zeros([1, 4, 2, 2]);
    expect(() => localResponseNormBackward(dy, x, { size: 3 })).toThrow(/all tensors must be on one device; dy is on cpu, x on cuda/);
  });
});
