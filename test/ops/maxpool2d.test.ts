import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { nativeOps, st } from '../../lib/ops/util.js';
import { maxPool2d, maxPool2dBackward, maxPool2dOutputShape, type MaxPool2dOptions } from '../../lib/ops/pool.js';
import { expectMatchesFixture, fixtureCases, hasNaN, loadFixture, relError, type Fixture } from '../helpers/fixtures.js';
import { gradcheck, mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, noCuda } from '../helpers/gpu.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function optsOf(fx: Fixture): MaxPool2dOptions {
  const p = fx.params;
  return { kernelSize: p.kernelSize, ...(p.stride != null && { stride: p.stride }), padding: p.padding, ceilMode: p.ceilMode };
}

function inputOf(fx: Fixture): Float32Array {
  const x = fx.inputs.x.data;
  const f = x instanceof Int32Array ? Float32Array.from(x) : new Float32Array(x);
  for (const i of fx.params.nanAt as number[]) f[i] = NaN;
  return f;
}

/** Every stored value (whole tensor or samples) equal, NaN where the reference is NaN. */
function expectExact(fx: Fixture, name: string, actual: ArrayLike<number>, shape: readonly number[]): void {
  expect([...shape], `${fx.name}: shape of ${name}`).toEqual(fx.stats[name].shape);
  const full = fx.tensors.get(name);
  const ref = full ? full.data : fx.tensors.get(`${name}.val`)!.data;
  const pos = full ? null : (fx.tensors.get(`${name}.idx`)!.data as Int32Array);
  let bad = 0;
  let first = '';
  for (let i = 0; i < ref.length; i++) {
    const a = actual[pos ? pos[i] : i];
    const r = ref[i];
    if (!(Object.is(a, r) || a === r || (Number.isNaN(a) && Number.isNaN(r)))) {
      if (!bad) first = `at ${pos ? pos[i] : i}: got ${a}, expected ${r}`;
      bad++;
    }
  }
  expect(bad, `${fx.op}/${fx.name}: ${name} differs in ${bad} of ${ref.length} places (first ${first})`).toBe(0);
}

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

const cases = await fixtureCases('maxpool2d');

describe('maxPool2d on the CPU matches PyTorch', () => {
  it('has the fixture cases', () => {
    expect(cases).toEqual(expect.arrayContaining(['alexnet_conv1', 'alexnet_conv2', 'alexnet_conv5', 'torchvision_conv1', 'ceil_mode_trim', 'nan', 'ties']));
  });

  it.each(cases)('%s', async (name) => {
    const fx = loadFixture('maxpool2d', name);
    const opts = optsOf(fx);
    const x = Tensor.from(inputOf(fx), fx.inputs.x.shape);
    const dy = Tensor.from(fx.inputs.dy.data as Float32Array, fx.inputs.dy.shape);
    expect(maxPool2dOutputShape(x.shape, opts)).toEqual(fx.stats.y.shape);
    const { y, indices } = maxPool2d(x, opts);
    expect(indices.dtype).toBe('int32');
    expect(indices.shape).toEqual(y.shape);
    // max pooling selects input values: y and the indices are exact, including ties (first maximum) and
    // NaN (the last NaN of a window wins, as PyTorch)
    const yv = await y.toFloat32Array();
    if (fx.stats.y_isnan) {
      // NaN fixture: the mask of NaNs, then the values with NaN as 0 (JSON metadata has no NaN)
      expectExact(fx, 'y_isnan', yv.map((v) => (Number.isNaN(v) ? 1 : 0)), y.shape);
      expectExact(fx, 'y', yv.map((v) => (Number.isNaN(v) ? 0 : v)), y.shape);
    } else {
      expectExact(fx, 'y', yv, y.shape);
    }
    expectExact(fx, 'indices', await indices.toInt32Array(), indices.shape);
    const dx = maxPool2dBackward(dy, indices, x.shape);
    expectMatchesFixture(fx, 'dx', await dx.toFloat32Array(), dx.shape);
    for (const t of [x, dy, y, indices, dx]) t.dispose();
  });

  it('propagates NaN like PyTorch (the fixture is not vacuous)', async () => {
    const fx = loadFixture('maxpool2d', 'nan');
    const x = Tensor.from(inputOf(fx), fx.inputs.x.shape);
    const { y, indices } = maxPool2d(x, optsOf(fx));
    const yv = await y.toFloat32Array();
    expect(hasNaN(yv)).toBe(true);
    expect(fx.tensors.get('y_isnan')!.data.some((v) => v === 1)).toBe(true);
    expect(yv.some((v) => Number.isFinite(v))).toBe(true);
    for (const t of [x, y, indices]) t.dispose();
  });
});

describe('maxPool2d output shapes', () => {
  it('AlexNet and torchvision shapes', () => {
    const k3s2 = { kernelSize: 3, stride: 2 };
    expect(maxPool2dOutputShape([128, 96, 55, 55], k3s2)).toEqual([128, 96, 27, 27]);
    expect(maxPool2dOutputShape([128, 256, 27, 27], k3s2)).toEqual([128, 256, 13, 13]);
    expect(maxPool2dOutputShape([128, 256, 13, 13], k3s2)).toEqual([128, 256, 6, 6]);
    expect(maxPool2dOutputShape([1, 3, 224, 224], k3s2)).toEqual([1, 3, 111, 111]);
  });
  it('floor and ceil modes, with PyTorch’s rule for the last window', () => {
    expect(maxPool2dOutputShape([1, 1, 7, 10], { kernelSize: 3, stride: 2 })).toEqual([1, 1, 3, 4]);
    expect(maxPool2dOutputShape([1, 1, 7, 10], { kernelSize: 3, stride: 2, ceilMode: true })).toEqual([1, 1, 3, 5]);
    // ceil would give 4, but the 4th window would start at 6 − 1 = 5, past the input: dropped
    expect(maxPool2dOutputShape([1, 1, 5, 5], { kernelSize: 2, stride: 2, padding: 1, ceilMode: true })).toEqual([1, 1, 3, 3]);
    expect(maxPool2dOutputShape([1, 1, 6, 6], { kernelSize: 2, stride: 2, padding: 1, ceilMode: true })).toEqual([1, 1, 4, 4]);
    expect(maxPool2dOutputShape([2, 3, 7, 10], { kernelSize: [2, 3], stride: [1, 2] })).toEqual([2, 3, 6, 4]);
    expect(maxPool2dOutputShape([2, 3, 6, 9], { kernelSize: 2 })).toEqual([2, 3, 3, 4]);
    expect(maxPool2dOutputShape([1, 1, 3, 3], { kernelSize: 3 })).toEqual([1, 1, 1, 1]);
  });
});

describe('maxPool2d gradients match finite differences', () => {
  // Distinct values 0.1 apart (shuffled) against eps = 1e-2: no perturbation changes a window's argmax.
  function distinct(n: number, seed: number): Float32Array {
    const v = Float32Array.from({ length: n }, (_, i) => (i - n / 2) * 0.1);
    const r = mulberry32(seed);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [v[i], v[j]] = [v[j], v[i]];
    }
    return v;
  }
  const configs: [string, number[], MaxPool2dOptions][] = [
    ['3×3 stride 2 (overlapping)', [2, 2, 7, 7], { kernelSize: 3, stride: 2 }],
    ['padding 1, ceil mode', [1, 3, 5, 6], { kernelSize: 3, stride: 2, padding: 1, ceilMode: true }],
    ['kernel (2,3) stride (1,2)', [1, 2, 5, 7], { kernelSize: [2, 3], stride: [1, 2] }],
  ];
  it.each(configs)('%s', (_, shape, opts) => {
    gradcheck({
      inputs: [distinct(numel(shape), 7)],
      names: ['x'],
      forward: ([xv]) => {
        using x = Tensor.from(xv, shape);
        const { y, indices } = maxPool2d(x, opts);
        const out = y.dataSync() as Float32Array;
        y.dispose();
        indices.dispose();
        return out;
      },
      backward: ([xv], r) => {
        using x = Tensor.from(xv, shape);
        const { y, indices } = maxPool2d(x, opts);
        using dy = Tensor.from(r, y.shape);
        using dx = maxPool2dBackward(dy, indices, shape);
        y.dispose();
        indices.dispose();
        return [dx.dataSync() as Float32Array];
      },
      samples: 80,
    });
  });
});

describe('maxPool2d bad input gets a clear error', () => {
  const x = Tensor.zeros([1, 2, 3, 3]);
  afterAll(() => x.dispose());
  it('options', () => {
    expect(() => maxPool2d(x, { kernelSize: 5 })).toThrow('maxPool2d: kernelSize 5 is larger than the padded input 3×3 (padding 0)');
    expect(() => maxPool2d(x, { kernelSize: [4, 2], padding: [0, 1] })).toThrow('maxPool2d: kernelSize [4, 2] is larger than the padded input 3×5 (padding [0, 1])');
    expect(() => maxPool2d(x, { kernelSize: 3, padding: 2 })).toThrow('maxPool2d: padding 2 must be at most half of kernelSize 3');
    expect(() => maxPool2d(x, { kernelSize: [2, 3], padding: [0, 2] })).toThrow('maxPool2d: padding [0, 2] must be at most half of kernelSize [2, 3]');
    expect(() => maxPool2d(x, { kernelSize: 0 })).toThrow('maxPool2d: kernelSize must be an integer ≥ 1, got 0');
    expect(() => maxPool2d(x, { kernelSize: 1.5 })).toThrow(/kernelSize must be an integer ≥ 1, got 1.5/);
    expect(() => maxPool2d(x, { kernelSize: [2, 2, 2] as never })).toThrow(/kernelSize must be an integer or \[int, int\] ≥ 1, got \[2, 2, 2\]/);
    expect(() => maxPool2d(x, { kernelSize: 2, stride: 0 })).toThrow('maxPool2d: stride must be an integer ≥ 1, got 0');
    expect(() => maxPool2d(x, { kernelSize: 2, padding: -1 })).toThrow('maxPool2d: padding must be an integer ≥ 0, got -1');
    expect(() => maxPool2d(x, { kernelSize: 2, ceilMode: 'yes' as never })).toThrow('maxPool2d: ceilMode must be a boolean, got "yes"');
    expect(() => maxPool2d(x, {} as never)).toThrow('maxPool2d: options.kernelSize is required');
    expect(() => maxPool2d(x, 3 as never)).toThrow('maxPool2d: expected options { kernelSize, stride?, padding?, ceilMode? }, got 3');
  });
  it('tensors', () => {
    using x3 = Tensor.zeros([2, 3, 3]);
    expect(() => maxPool2d(x3, { kernelSize: 2 })).toThrow('maxPool2d: expected x of shape [N, C, H, W], got [2, 3, 3]');
    using xi = Tensor.zeros([1, 1, 3, 3], 'cpu', 'int32');
    expect(() => maxPool2d(xi, { kernelSize: 2 })).toThrow('maxPool2d: expected x to be float32 or bfloat16, got int32');
    using empty = Tensor.zeros([1, 1, 0, 3]);
    expect(() => maxPool2d(empty, { kernelSize: 1 })).toThrow(/non-empty plane/);
    expect(() => maxPool2d([1, 2] as never, { kernelSize: 2 })).toThrow('maxPool2d: expected x to be a Tensor, got [1, 2]');
    const d = Tensor.zeros([1, 1, 3, 3]);
    d.dispose();
    expect(() => maxPool2d(d, { kernelSize: 2 })).toThrow(DisposedError);
  });
  it('backward', () => {
    const { y, indices } = maxPool2d(x, { kernelSize: 2, stride: 1 });
    using dy = Tensor.zeros(y.shape);
    using wrong = Tensor.zeros([1, 2, 2, 3], 'cpu', 'int32');
    expect(() => maxPool2dBackward(dy, y, x.shape)).toThrow('maxPool2dBackward: expected indices to be int32, got float32');
    expect(() => maxPool2dBackward(dy, wrong, x.shape)).toThrow('maxPool2dBackward: expected indices of shape [1, 2, 2, 2], got [1, 2, 2, 3]');
    expect(() => maxPool2dBackward(dy, indices, [2, 2, 3, 3])).toThrow('maxPool2dBackward: inputShape [2, 2, 3, 3] and dy [1, 2, 2, 2] differ in N or C');
    expect(() => maxPool2dBackward(dy, indices, [2, 3, 3])).toThrow('maxPool2dBackward: expected inputShape of shape [N, C, H, W], got [2, 3, 3]');
    expect(() => maxPool2dBackward(dy, indices, [1, 2, 4, 3])).toThrow('maxPool2dBackward: inputShape [1, 2, 4, 3] differs from the input [1, 2, 3, 3] these indices were made from');
    expect(() => maxPool2dBackward(dy, indices, x.shape, { kernelSize: 3 })).toThrow(/maxPool2d of an input \[1, 2, 3, 3\] with these options gives \[1, 2, 1, 1\], but dy is \[1, 2, 2, 2\]/);
    expect(() => maxPool2dBackward(dy, indices, x.shape, { kernelSize: 2, stride: 1, padding: 1 })).toThrow(/gives \[1, 2, 4, 4\]/);
    expect(() => maxPool2dBackward(dy, indices, x.shape, { kernelSize: [2, 2], stride: 1 })).not.toThrow();
    y.dispose();
    indices.dispose();
  });
  it('the native guard rejects indices outside the input plane', async () => {
    using dy = Tensor.from([1, 2, 3, 4], [1, 1, 2, 2]);
    using idx = Tensor.from(Int32Array.from([0, 3, 9, 2]), [1, 1, 2, 2]);
    // The kernel finds the index on the CPU stream's worker; the error comes with the next read.
    using bad = maxPool2dBackward(dy, idx, [1, 1, 3, 3]);
    await expect(bad.toFloat32Array()).rejects.toThrow(/indices\[2\] = 9 is outside the input plane \[0, 9\)/);
    using ok = Tensor.from(Int32Array.from([0, 3, 3, 8]), [1, 1, 2, 2]);
    using dx = maxPool2dBackward(dy, ok, [1, 1, 3, 3]);
    expect(Array.from(dx.dataSync())).toEqual([1, 0, 0, 5, 0, 0, 0, 0, 4]);
  });
  it('the native guard checks sizes', () => {
    using y = Tensor.zeros([1, 2, 2, 2]);
    using idx = Tensor.zeros([1, 2, 2, 2], 'cpu', 'int32');
    expect(() =>
      nativeOps().maxpool2d_forward(st(x, 't'), st(y, 't'), st(idx, 't'), 1, 2, 4, 3, 2, 2, 1, 1, 0, 0, 2, 2, 'float32'),
    ).toThrow(/maxpool2d_forward: x holds 72 bytes, needs 96/);
  });
});

describe('maxPool2d memory', () => {
  it('returns to the baseline', () => {
    const before = memoryStats();
    for (let i = 0; i < 3; i++) {
      using x = Tensor.from(random(2 * 3 * 9 * 9, i), [2, 3, 9, 9]);
      const { y, indices } = maxPool2d(x, { kernelSize: 3, stride: 2 });
      using dy = Tensor.from(random(y.size, 100 + i), y.shape);
      using dx = maxPool2dBackward(dy, indices, x.shape);
      expect(dx.shape).toEqual(x.shape);
      y.dispose();
      indices.dispose();
    }
    {
      // a call whose kernel fails (reported at the next read) leaks nothing either
      using dy = Tensor.zeros([1, 1, 2, 2]);
      using idx = Tensor.from(Int32Array.from([0, 0, 0, 99]), [1, 1, 2, 2]);
      using dx = maxPool2dBackward(dy, idx, [1, 1, 3, 3]);
      expect(() => dx.dataSync()).toThrow(/outside/);
    }
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBytes).toBe(before.native.hostBytes);
  });
});

describe.skipIf(noCuda)('maxPool2d on CUDA matches the CPU', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));

  const shapes: [string, number[], MaxPool2dOptions, 'uniform' | 'ties' | 'nan'][] = [
    ['AlexNet conv1 pool', [cudaBatch(8), 96, 55, 55], { kernelSize: 3, stride: 2 }, 'uniform'],
    ['AlexNet conv2 pool', [cudaBatch(8), 256, 27, 27], { kernelSize: 3, stride: 2 }, 'uniform'],
    ['AlexNet conv5 pool', [cudaBatch(8), 256, 13, 13], { kernelSize: 3, stride: 2 }, 'uniform'],
    ['torchvision conv1 pool', [cudaBatch(8), 64, 55, 55], { kernelSize: 3, stride: 2 }, 'uniform'],
    ['non-square, batch 1', [1, 3, 7, 10], { kernelSize: 3, stride: 2 }, 'uniform'],
    ['ceil mode, padding 1', [2, 5, 7, 10], { kernelSize: 3, stride: 2, padding: 1, ceilMode: true }, 'uniform'],
    ['ceil mode, last window dropped', [3, 3, 5, 5], { kernelSize: 2, stride: 2, padding: 1, ceilMode: true }, 'uniform'],
    ['kernel (2,3) stride (1,2)', [2, 5, 7, 10], { kernelSize: [2, 3], stride: [1, 2] }, 'uniform'],
    ['kernel (4,3) stride (3,2) padding (2,1) ceil', [3, 7, 8, 9], { kernelSize: [4, 3], stride: [3, 2], padding: [2, 1], ceilMode: true }, 'uniform'],
    ['stride 1 (many windows per input)', [2, 3, 17, 19], { kernelSize: 5, stride: 1, padding: 2 }, 'uniform'],
    ['ties', [4, 8, 13, 13], { kernelSize: 3, stride: 2 }, 'ties'],
    ['NaN', [2, 4, 11, 12], { kernelSize: 3, stride: 2, padding: 1 }, 'nan'],
  ];

  it.each(shapes)('%s', async (_, shape, opts, kind) => {
    const n = numel(shape);
    const xv = random(n, n);
    if (kind === 'ties') for (let i = 0; i < n; i++) xv[i] = Math.floor((xv[i] + 1) * 1.5);
    if (kind === 'nan') for (let i = 0; i < n; i += 37) xv[i] = NaN;
    using xc = Tensor.from(xv, shape);
    using xg = Tensor.from(xv, shape, 'cuda');
    const c = maxPool2d(xc, opts);
    const g = maxPool2d(xg, opts);
    expect(g.y.device).toBe('cuda');
    const [yc, yg] = [await c.y.toFloat32Array(), await g.y.toFloat32Array()];
    const [ic, ig] = [await c.indices.toInt32Array(), await g.indices.toInt32Array()];
    expect(ig).toEqual(ic);
    expect(yg).toEqual(yc); // toEqual treats NaN as equal to NaN
    if (kind === 'nan') expect(hasNaN(yc)).toBe(true);
    else expect(hasNaN(yg)).toBe(false);

    const dyv = random(c.y.size, n + 1);
    using dyc = Tensor.from(dyv, c.y.shape);
    using dyg = Tensor.from(dyv, c.y.shape, 'cuda');
    using dxc = maxPool2dBackward(dyc, c.indices, shape);
    const ref = await dxc.toFloat32Array();
    // gather with the geometry remembered from the forward
    using dxg = maxPool2dBackward(dyg, g.indices, shape);
    const got = await dxg.toFloat32Array();
    expect(hasNaN(got)).toBe(false);
    expect(relError(got, ref)).toBeLessThanOrEqual(1e-6);
    // same sums in the same order as the CPU scatter: bit-equal
    expect(got).toEqual(ref);
    // gather with the geometry given explicitly, and the atomic scatter for indices with unknown geometry
    using idx2 = g.indices.clone();
    using dxo = maxPool2dBackward(dyg, idx2, shape, opts);
    expect(await dxo.toFloat32Array()).toEqual(ref);
    using dxs = maxPool2dBackward(dyg, idx2, shape);
    const scat = await dxs.toFloat32Array();
    expect(hasNaN(scat)).toBe(false);
    expect(relError(scat, ref)).toBeLessThanOrEqual(1e-6);
    for (const t of [c.y, c.indices, g.y, g.indices]) t.dispose();
  });

  it('rejects tensors on different devices', () => {
    using xg = Tensor.zeros([1, 1, 4, 4], 'cuda');
    const { y, indices } = maxPool2d(xg, { kernelSize: 2 });
    using dyc = Tensor.zeros(y.shape);
    expect(() => maxPool2dBackward(dyc, indices, xg.shape)).toThrow(/all tensors must be on one device; dy is on cpu, indices on cuda/);
    y.dispose();
    indices.dispose();
  });

  it('leaks no device memory', async () => {
    const before = memoryStats();
    for (let i = 0; i < 3; i++) {
      using x = Tensor.from(random(4 * 96 * 27 * 27, i), [4, 96, 27, 27], 'cuda');
      const { y, indices } = maxPool2d(x, { kernelSize: 3, stride: 2 });
      using dx = maxPool2dBackward(y, indices, x.shape);
      await dx.toFloat32Array();
      y.dispose();
      indices.dispose();
    }
    const after = memoryStats();
    expect(after.tensors.cuda).toBe(before.tensors.cuda);
    expect(after.bytes.cuda).toBe(before.bytes.cuda);
    expect(after.native.cuda!.inUseBytes).toBe(before.native.cuda!.inUseBytes);
  });
});
