import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { resizeBilinear, resizeBilinearBackward } from '../../lib/ops/resize.js';
import { expectMatchesFixture, fixtureCases, hasNaN, loadFixture, relError } from '../helpers/fixtures.js';
import { gradcheck, mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, noCuda } from '../helpers/gpu.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Σ a·b in double. */
function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

const cases = await fixtureCases('resize_bilinear');

describe('resizeBilinear on the CPU matches PyTorch', () => {
  it('has the fixture cases', () => {
    expect(cases).toEqual(
      expect.arrayContaining([
        'fmnist_28_to_227',
        'fmnist_28_to_227_align',
        'down_7x10_to_3x4',
        'down_7x10_to_3x4_align',
        'global_5x5_to_1x1',
        'identity_6x9',
        'identity_6x9_align',
        'up_5x7_to_11x13',
        'mixed_4x9_to_7x5',
        'down_227_to_28',
      ]),
    );
  });

  it.each(cases)('%s', async (name) => {
    const fx = loadFixture('resize_bilinear', name);
    const opts = { alignCorners: fx.params.alignCorners as boolean };
    using x = Tensor.from(fx.inputs.x.data as Float32Array, fx.inputs.x.shape);
    using dy = Tensor.from(fx.inputs.dy.data as Float32Array, fx.inputs.dy.shape);
    using y = resizeBilinear(x, fx.params.size, opts);
    expectMatchesFixture(fx, 'y', await y.toFloat32Array(), y.shape);
    using dx = resizeBilinearBackward(dy, x.shape, opts);
    expectMatchesFixture(fx, 'dx', await dx.toFloat32Array(), dx.shape);
  });
});

describe('resizeBilinear semantics', () => {
  it('is the identity when the sizes agree, both ways', async () => {
    const xv = random(2 * 3 * 6 * 9, 1);
    for (const alignCorners of [false, true]) {
      using x = Tensor.from(xv, [2, 3, 6, 9]);
      using y = resizeBilinear(x, [6, 9], { alignCorners });
      expect(await y.toFloat32Array()).toEqual(xv);
      using dx = resizeBilinearBackward(y, x.shape, { alignCorners });
      expect(await dx.toFloat32Array()).toEqual(xv);
    }
  });

  it('uses half-pixel centres, clamped at the edges (2 → 4)', async () => {
    // scale 0.5: source coordinates −0.25 → 0, 0.25, 0.75, 1.25 → the last pixel
    using x = Tensor.from([0, 1], [1, 1, 1, 2]);
    using y = resizeBilinear(x, [1, 4]);
    expect(Array.from(await y.toFloat32Array())).toEqual([0, 0.25, 0.75, 1]);
    // gradient: pixel 0 gets 1·g0 + 0.75·g1 + 0.25·g2, pixel 1 the rest (g3 whole, split as 0.75 + 0.25 of the
    // clamped coordinate's two coinciding taps)
    using dy = Tensor.from([1, 2, 4, 8], [1, 1, 1, 4]);
    using dx = resizeBilinearBackward(dy, [1, 1, 1, 2]);
    expect(Array.from(await dx.toFloat32Array())).toEqual([1 + 1.5 + 1, 0.5 + 3 + 8]);
  });

  it('maps the corners onto each other with alignCorners (2 → 4)', async () => {
    using x = Tensor.from([0, 3], [1, 1, 2, 1]);
    using y = resizeBilinear(x, [4, 1], { alignCorners: true });
    const got = Array.from(await y.toFloat32Array());
    // the float scale 1/3 makes the interior coordinates inexact
    expect(got[0]).toBe(0);
    expect(got[1]).toBeCloseTo(1, 6);
    expect(got[2]).toBeCloseTo(2, 6);
    expect(got[3]).toBeCloseTo(3, 6);
  });

  it('takes the centre (default) or the first pixel (alignCorners) for a 1×1 output', async () => {
    const xv = random(2 * 5 * 5, 2);
    using x = Tensor.from(xv, [1, 2, 5, 5]);
    using yc = resizeBilinear(x, [1, 1]);
    expect(Array.from(await yc.toFloat32Array())).toEqual([xv[12], xv[25 + 12]]);
    using ya = resizeBilinear(x, [1, 1], { alignCorners: true });
    expect(Array.from(await ya.toFloat32Array())).toEqual([xv[0], xv[25]]);
  });

  it('broadcasts a one-pixel image', async () => {
    using x = Tensor.from([0.75, -2], [1, 2, 1, 1]);
    using y = resizeBilinear(x, [3, 4]);
    const got = await y.toFloat32Array();
    // both taps are the one pixel: l0·x + l1·x, which is x up to rounding
    got.forEach((v, i) => expect(v).toBeCloseTo(i < 12 ? 0.75 : -2, 6));
  });

  const adjointShapes: [string, number[], [number, number], boolean][] = [
    ['28 → 227', [2, 1, 28, 28], [227, 227], false],
    ['28 → 227 aligned', [2, 1, 28, 28], [227, 227], true],
    ['227 → 28', [1, 2, 227, 227], [28, 28], false],
    ['13×17 → 64×5', [2, 3, 13, 17], [64, 5], false],
    ['13×17 → 64×5 aligned', [2, 3, 13, 17], [64, 5], true],
  ];
  it.each(adjointShapes)('backward is the adjoint of forward: ⟨R x, dy⟩ = ⟨x, Rᵀ dy⟩ (%s)', async (_, shape, size, alignCorners) => {
    const xv = random(numel(shape), 5);
    using x = Tensor.from(xv, shape);
    using y = resizeBilinear(x, size, { alignCorners });
    const dyv = random(y.size, 6);
    using dy = Tensor.from(dyv, y.shape);
    using dx = resizeBilinearBackward(dy, shape, { alignCorners });
    const lhs = dot(await y.toFloat32Array(), dyv);
    const rhs = dot(xv, await dx.toFloat32Array());
    // both sides are sums of ~10^5 float32 products rounded differently: relative 1e-5 of the magnitude
    const scale = Math.sqrt(dot(xv, xv) * dot(dyv, dyv));
    expect(Math.abs(lhs - rhs) / scale).toBeLessThan(1e-5);
  });

  it('backward conserves the gradient mass (the weights of an output sum to 1)', async () => {
    const dyv = random(2 * 3 * 227 * 227, 7);
    using dy = Tensor.from(dyv, [2, 3, 227, 227]);
    for (const alignCorners of [false, true]) {
      using dx = resizeBilinearBackward(dy, [2, 3, 28, 28], { alignCorners });
      const sx = (await dx.toFloat32Array()).reduce((a, b) => a + b, 0);
      const sy = dyv.reduce((a, b) => a + b, 0);
      expect(Math.abs(sx - sy) / Math.sqrt(dot(dyv, dyv))).toBeLessThan(1e-5);
    }
  });
});

describe('resizeBilinear gradients match finite differences', () => {
  const configs: [string, number[], [number, number], boolean][] = [
    ['5×7 → 11×13', [1, 2, 5, 7], [11, 13], false],
    ['5×7 → 11×13 aligned', [1, 2, 5, 7], [11, 13], true],
    ['7×10 → 3×4', [2, 1, 7, 10], [3, 4], false],
    ['7×10 → 3×4 aligned', [2, 1, 7, 10], [3, 4], true],
    ['1×6 → 4×3 aligned', [1, 2, 1, 6], [4, 3], true],
    ['9×8 → 1×5', [1, 1, 9, 8], [1, 5], false],
  ];
  it.each(configs)('%s', (_, shape, size, alignCorners) => {
    gradcheck({
      inputs: [random(numel(shape), 3)],
      names: ['x'],
      forward: ([xv]) => {
        using x = Tensor.from(xv, shape);
        using y = resizeBilinear(x, size, { alignCorners });
        return y.dataSync() as Float32Array;
      },
      backward: (_inputs, r) => {
        using dy = Tensor.from(r, [shape[0], shape[1], ...size]);
        using dx = resizeBilinearBackward(dy, shape, { alignCorners });
        return [dx.dataSync() as Float32Array];
      },
      samples: 60,
    });
  });
});

describe('resizeBilinear bad input gets a clear error', () => {
  it('forward', () => {
    using x = Tensor.zeros([1, 2, 5, 5]);
    const sizeMsg = (got: string) => `resizeBilinear: size must be [Ho, Wo], two integers from 1 to 2147483647, got ${got}`;
    expect(() => resizeBilinear(x, [0, 4])).toThrow(sizeMsg('[0, 4]'));
    expect(() => resizeBilinear(x, [4, 2.5])).toThrow(sizeMsg('[4, 2.5]'));
    expect(() => resizeBilinear(x, [4, 2 ** 31])).toThrow(sizeMsg('[4, 2147483648]'));
    expect(() => resizeBilinear(x, 227 as never)).toThrow(sizeMsg('227'));
    expect(() => resizeBilinear(x, [227] as never)).toThrow(sizeMsg('[227]'));
    expect(() => resizeBilinear(x, undefined as never)).toThrow(sizeMsg('undefined'));
    expect(() => resizeBilinear(x, [3, 3], { alignCorners: 1 } as never)).toThrow('resizeBilinear: alignCorners must be a boolean, got 1');
    expect(() => resizeBilinear(x, [3, 3], { align_corners: true } as never)).toThrow(
      'resizeBilinear: unknown option "align_corners" (expected { alignCorners?: boolean })',
    );
    expect(() => resizeBilinear(x, [3, 3], 'bilinear' as never)).toThrow('resizeBilinear: expected options { alignCorners?: boolean }, got "bilinear"');
    using x3 = Tensor.zeros([2, 5, 5]);
    expect(() => resizeBilinear(x3, [3, 3])).toThrow('resizeBilinear: expected x of shape [N, C, H, W], got [2, 5, 5]');
    using xi = Tensor.zeros([1, 1, 2, 2], 'cpu', 'int32');
    expect(() => resizeBilinear(xi, [3, 3])).toThrow('resizeBilinear: expected x to be float32, got int32');
    using e = Tensor.zeros([1, 1, 0, 2]);
    expect(() => resizeBilinear(e, [3, 3])).toThrow('resizeBilinear: expected x with a non-empty plane (H, W ≥ 1), got [1, 1, 0, 2]');
    expect(() => resizeBilinear([1, 2, 3] as never, [3, 3])).toThrow('resizeBilinear: expected x to be a Tensor, got [1, 2, 3]');
    const d = Tensor.zeros([1, 1, 2, 2]);
    d.dispose();
    expect(() => resizeBilinear(d, [3, 3])).toThrow(DisposedError);
  });

  it('backward', () => {
    using dy = Tensor.zeros([2, 3, 227, 227]);
    expect(() => resizeBilinearBackward(dy, [2, 4, 28, 28])).toThrow(
      'resizeBilinearBackward: inputShape [2, 4, 28, 28] and dy [2, 3, 227, 227] differ in N or C',
    );
    expect(() => resizeBilinearBackward(dy, [2, 3, 28])).toThrow('resizeBilinearBackward: expected inputShape of shape [N, C, H, W], got [2, 3, 28]');
    expect(() => resizeBilinearBackward(dy, [2, 3, -1, 28])).toThrow(/resizeBilinearBackward: inputShape: expected an array of non-negative integers/);
    expect(() => resizeBilinearBackward(dy, [2, 3, 0, 28])).toThrow(
      'resizeBilinearBackward: expected inputShape with a non-empty plane (H, W ≥ 1), got [2, 3, 0, 28]',
    );
    expect(() => resizeBilinearBackward(dy, [2, 3, 28, 28], { alignCorners: 'yes' } as never)).toThrow(
      'resizeBilinearBackward: alignCorners must be a boolean, got "yes"',
    );
    using dy3 = Tensor.zeros([3, 227, 227]);
    expect(() => resizeBilinearBackward(dy3, [3, 28, 28])).toThrow('resizeBilinearBackward: expected dy of shape [N, C, Ho, Wo], got [3, 227, 227]');
    using dye = Tensor.zeros([2, 3, 0, 5]);
    expect(() => resizeBilinearBackward(dye, [2, 3, 4, 4])).toThrow('resizeBilinearBackward: expected dy with a non-empty plane (Ho, Wo ≥ 1), got [2, 3, 0, 5]');
  });

  it('a zero-size batch gives zero-size results', () => {
    using x = Tensor.zeros([0, 1, 28, 28]);
    using y = resizeBilinear(x, [227, 227]);
    expect(y.shape).toEqual([0, 1, 227, 227]);
    using dx = resizeBilinearBackward(y, x.shape);
    expect(dx.shape).toEqual([0, 1, 28, 28]);
  });
});

describe('resizeBilinear memory', () => {
  it('returns to the baseline', () => {
    const before = memoryStats();
    for (let i = 0; i < 3; i++) {
      using x = Tensor.from(random(2 * 1 * 28 * 28, i), [2, 1, 28, 28]);
      using y = resizeBilinear(x, [227, 227]);
      using dx = resizeBilinearBackward(y, x.shape);
      expect(dx.shape).toEqual(x.shape);
    }
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBytes).toBe(before.native.hostBytes);
  });
});

describe.skipIf(noCuda)('resizeBilinear on CUDA matches the CPU', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));

  const shapes: [string, number[], [number, number], boolean][] = [
    ['Fashion-MNIST 1×28×28 → 227×227', [cudaBatch(128, 8), 1, 28, 28], [227, 227], false],
    ['Fashion-MNIST 1×28×28 → 227×227, aligned', [cudaBatch(128, 8), 1, 28, 28], [227, 227], true],
    ['227×227 → 28×28, C 3', [cudaBatch(8), 3, 227, 227], [28, 28], false],
    ['7×10 → 3×4, batch 1, C 3', [1, 3, 7, 10], [3, 4], false],
    ['7×10 → 3×4, aligned', [3, 5, 7, 10], [3, 4], true],
    ['5×5 → 1×1', [2, 3, 5, 5], [1, 1], false],
    ['5×5 → 1×1, aligned', [2, 3, 5, 5], [1, 1], true],
    ['identity 6×9', [2, 3, 6, 9], [6, 9], false],
    ['1×1 → 5×7', [1, 3, 1, 1], [5, 7], false],
    ['100×33 → 57×250 (mixed)', [4, 7, 100, 33], [57, 250], false],
    ['13×17 → 64×31, aligned', [2, 3, 13, 17], [64, 31], true],
    ['9×8 → 1×5', [3, 2, 9, 8], [1, 5], false],
  ];

  it.each(shapes)('%s', async (_, shape, size, alignCorners) => {
    const n = numel(shape);
    const xv = random(n, n);
    using xc = Tensor.from(xv, shape);
    using xg = Tensor.from(xv, shape, 'cuda');
    using yc = resizeBilinear(xc, size, { alignCorners });
    using yg = resizeBilinear(xg, size, { alignCorners });
    expect(yg.device).toBe('cuda');
    expect(yg.shape).toEqual(yc.shape);
    const [rc, rg] = [await yc.toFloat32Array(), await yg.toFloat32Array()];
    expect(hasNaN(rg)).toBe(false);
    expect(relError(rg, rc)).toBeLessThanOrEqual(1e-6);
    const dyv = random(yc.size, n + 1);
    using dyc = Tensor.from(dyv, yc.shape);
    using dyg = Tensor.from(dyv, yc.shape, 'cuda');
    using dxc = resizeBilinearBackward(dyc, shape, { alignCorners });
    using dxg = resizeBilinearBackward(dyg, shape, { alignCorners });
    const [gc, gg] = [await dxc.toFloat32Array(), await dxg.toFloat32Array()];
    expect(hasNaN(gg)).toBe(false);
    expect(relError(gg, gc)).toBeLessThanOrEqual(1e-6);
  });

  it('the backward gather is deterministic', async () => {
    using dy = Tensor.from(random(16 * 3 * 227 * 227, 9), [16, 3, 227, 227], 'cuda');
    using a = resizeBilinearBackward(dy, [16, 3, 28, 28]);
    using b = resizeBilinearBackward(dy, [16, 3, 28, 28]);
    expect(await a.toFloat32Array()).toEqual(await b.toFloat32Array());
  });

  it('leaks no device memory', async () => {
    const before = memoryStats();
    for (let i = 0; i < 3; i++) {
      using x = Tensor.from(random(cudaBatch(128, 8) * 28 * 28, i), [cudaBatch(128, 8), 1, 28, 28], 'cuda');
      using y = resizeBilinear(x, [227, 227]);
      using dx = resizeBilinearBackward(y, x.shape);
      await dx.toFloat32Array();
    }
    const after = memoryStats();
    expect(after.tensors.cuda).toBe(before.tensors.cuda);
    expect(after.bytes.cuda).toBe(before.bytes.cuda);
    expect(after.native.cuda!.inUseBytes).toBe(before.native.cuda!.inUseBytes);
  });
});
