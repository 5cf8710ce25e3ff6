import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { adaptiveAvgPool2d, adaptiveAvgPool2dBackward } from '../../lib/ops/pool.js';
import { expectMatchesFixture, fixtureCases, hasNaN, loadFixture, relError } from '../helpers/fixtures.js';
import { gradcheck, mulberry32 } from '../helpers/gradcheck.js';
import { noCuda } from '../helpers/gpu.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

const cases = await fixtureCases('adaptive_avgpool2d');

describe('adaptiveAvgPool2d on the CPU matches PyTorch', () => {
  it('has the fixture cases', () => {
    expect(cases).toEqual(expect.arrayContaining(['alexnet_identity', 'alexnet_13_to_6', 'odd_5x7_to_3x2', 'upsample_2x3_to_4x5']));
  });

  it.each(cases)('%s', async (name) => {
    const fx = loadFixture('adaptive_avgpool2d', name);
    using x = Tensor.from(fx.inputs.x.data as Float32Array, fx.inputs.x.shape);
    using dy = Tensor.from(fx.inputs.dy.data as Float32Array, fx.inputs.dy.shape);
    using y = adaptiveAvgPool2d(x, fx.params.outputSize);
    expectMatchesFixture(fx, 'y', await y.toFloat32Array(), y.shape);
    using dx = adaptiveAvgPool2dBackward(dy, x.shape);
    expectMatchesFixture(fx, 'dx', await dx.toFloat32Array(), dx.shape);
  });
});

describe('adaptiveAvgPool2d semantics', () => {
  it('is the identity when the sizes agree', async () => {
    const xv = random(2 * 3 * 6 * 6, 1);
    using x = Tensor.from(xv, [2, 3, 6, 6]);
    using y = adaptiveAvgPool2d(x, 6);
    expect(await y.toFloat32Array()).toEqual(xv);
    using dx = adaptiveAvgPool2dBackward(y, x.shape);
    expect(await dx.toFloat32Array()).toEqual(xv);
  });
  it('uses windows [floor(i·H/Ho), ceil((i+1)·H/Ho)) — 5 → 3 overlaps', async () => {
    // rows 0..4 → windows [0,2), [1,4), [3,5); one column
    using x = Tensor.from([1, 2, 4, 8, 16], [1, 1, 5, 1]);
    using y = adaptiveAvgPool2d(x, [3, 1]);
    expect(Array.from(await y.toFloat32Array())).toEqual([1.5, 14 / 3, 12].map(Math.fround));
    using dy = Tensor.from([6, 3, 2], [1, 1, 3, 1]);
    using dx = adaptiveAvgPool2dBackward(dy, x.shape);
    expect(Array.from(await dx.toFloat32Array())).toEqual([3, 4, 1, 2, 1]);
  });
  it('repeats rows when upsampling (2 → 3)', async () => {
    using x = Tensor.from([1, 2], [1, 1, 2, 1]);
    using y = adaptiveAvgPool2d(x, [3, 1]);
    expect(Array.from(await y.toFloat32Array())).toEqual([1, 1.5, 2]);
  });
});

describe('adaptiveAvgPool2d gradients match finite differences', () => {
  const configs: [string, number[], number | [number, number]][] = [
    ['13 → 6', [1, 2, 13, 13], 6],
    ['5×7 → 3×2', [2, 2, 5, 7], [3, 2]],
    ['2×3 → 4×5 (upsampling)', [1, 3, 2, 3], [4, 5]],
  ];
  it.each(configs)('%s', (_, shape, out) => {
    gradcheck({
      inputs: [random(numel(shape), 3)],
      names: ['x'],
      forward: ([xv]) => {
        using x = Tensor.from(xv, shape);
        using y = adaptiveAvgPool2d(x, out);
        return y.dataSync() as Float32Array;
      },
      backward: (_inputs, r) => {
        const oShape = [shape[0], shape[1], ...(typeof out === 'number' ? [out, out] : out)];
        using dy = Tensor.from(r, oShape);
        using dx = adaptiveAvgPool2dBackward(dy, shape);
        return [dx.dataSync() as Float32Array];
      },
      samples: 60,
    });
  });
});

describe('adaptiveAvgPool2d bad input gets a clear error', () => {
  it('forward', () => {
    using x = Tensor.zeros([1, 2, 5, 5]);
    expect(() => adaptiveAvgPool2d(x, 0)).toThrow('adaptiveAvgPool2d: outputSize must be an integer ≥ 1, got 0');
    expect(() => adaptiveAvgPool2d(x, [6, 0])).toThrow('adaptiveAvgPool2d: outputSize[1] must be an integer ≥ 1, got 0');
    expect(() => adaptiveAvgPool2d(x, [6] as never)).toThrow('adaptiveAvgPool2d: outputSize must be an integer or [int, int] ≥ 1, got [6]');
    expect(() => adaptiveAvgPool2d(x, undefined as never)).toThrow(/outputSize must be an integer or \[int, int\] ≥ 1, got undefined/);
    using x3 = Tensor.zeros([2, 5, 5]);
    expect(() => adaptiveAvgPool2d(x3, 2)).toThrow('adaptiveAvgPool2d: expected x of shape [N, C, H, W], got [2, 5, 5]');
    using xi = Tensor.zeros([1, 1, 2, 2], 'cpu', 'int32');
    expect(() => adaptiveAvgPool2d(xi, 1)).toThrow('adaptiveAvgPool2d: expected x to be float32, got int32');
    using e = Tensor.zeros([1, 1, 0, 2]);
    expect(() => adaptiveAvgPool2d(e, 1)).toThrow(/adaptiveAvgPool2d: expected x with a non-empty plane/);
    const d = Tensor.zeros([1, 1, 2, 2]);
    d.dispose();
    expect(() => adaptiveAvgPool2d(d, 1)).toThrow(DisposedError);
  });
  it('backward', () => {
    using dy = Tensor.zeros([2, 3, 6, 6]);
    expect(() => adaptiveAvgPool2dBackward(dy, [2, 4, 13, 13])).toThrow('adaptiveAvgPool2dBackward: inputShape [2, 4, 13, 13] and dy [2, 3, 6, 6] differ in N or C');
    expect(() => adaptiveAvgPool2dBackward(dy, [2, 3, 13])).toThrow('adaptiveAvgPool2dBackward: expected inputShape of shape [N, C, H, W], got [2, 3, 13]');
    expect(() => adaptiveAvgPool2dBackward(dy, [2, 3, -1, 13])).toThrow(/expected an array of non-negative integers/);
    using dy3 = Tensor.zeros([3, 6, 6]);
    expect(() => adaptiveAvgPool2dBackward(dy3, [3, 13, 13])).toThrow('adaptiveAvgPool2dBackward: expected dy of shape [N, C, Ho, Wo], got [3, 6, 6]');
  });
  it('a zero-size batch gives zero-size results', () => {
    using x = Tensor.zeros([0, 3, 13, 13]);
    using y = adaptiveAvgPool2d(x, 6);
    expect(y.shape).toEqual([0, 3, 6, 6]);
    using dx = adaptiveAvgPool2dBackward(y, x.shape);
    expect(dx.shape).toEqual([0, 3, 13, 13]);
  });
});

describe('adaptiveAvgPool2d memory', () => {
  it('returns to the baseline', () => {
    const before = memoryStats();
    for (let i = 0; i < 3; i++) {
      using x = Tensor.from(random(2 * 4 * 13 * 13, i), [2, 4, 13, 13]);
      using y = adaptiveAvgPool2d(x, 6);
      using dx = adaptiveAvgPool2dBackward(y, x.shape);
      expect(dx.shape).toEqual(x.shape);
    }
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBytes).toBe(before.native.hostBytes);
  });
});

describe.skipIf(noCuda)('adaptiveAvgPool2d on CUDA matches the CPU', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));

  const shapes: [string, number[], number | [number, number]][] = [
    ['torchvision AlexNet 6×6 → 6×6, batch 8', [8, 256, 6, 6], 6],
    ['torchvision AlexNet 13×13 → 6×6, batch 8', [8, 256, 13, 13], [6, 6]],
    ['27×27 → 6×6, batch 8', [8, 256, 27, 27], 6],
    ['5×7 → 3×2, batch 1', [1, 3, 5, 7], [3, 2]],
    ['2×3 → 4×5 (upsampling)', [2, 5, 2, 3], [4, 5]],
    ['55×55 → 1 (global)', [2, 3, 55, 55], 1],
    ['100×33 → 7×5', [4, 7, 100, 33], [7, 5]],
    ['3×40 → 8×6 (mixed)', [3, 5, 3, 40], [8, 6]],
  ];

  it.each(shapes)('%s', async (_, shape, out) => {
    const n = numel(shape);
    const xv = random(n, n);
    using xc = Tensor.from(xv, shape);
    using xg = Tensor.from(xv, shape, 'cuda');
    using yc = adaptiveAvgPool2d(xc, out);
    using yg = adaptiveAvgPool2d(xg, out);
    expect(yg.device).toBe('cuda');
    const [rc, rg] = [await yc.toFloat32Array(), await yg.toFloat32Array()];
    expect(hasNaN(rg)).toBe(false);
    expect(relError(rg, rc)).toBeLessThanOrEqual(1e-6);
    const dyv = random(yc.size, n + 1);
    using dyc = Tensor.from(dyv, yc.shape);
    using dyg = Tensor.from(dyv, yc.shape, 'cuda');
    using dxc = adaptiveAvgPool2dBackward(dyc, shape);
    using dxg = adaptiveAvgPool2dBackward(dyg, shape);
    const [gc, gg] = [await dxc.toFloat32Array(), await dxg.toFloat32Array()];
    expect(hasNaN(gg)).toBe(false);
    expect(relError(gg, gc)).toBeLessThanOrEqual(1e-6);
  });

  it('leaks no device memory', async () => {
    const before = memoryStats();
    for (let i = 0; i < 3; i++) {
      using x = Tensor.from(random(8 * 256 * 13 * 13, i), [8, 256, 13, 13], 'cuda');
      using y = adaptiveAvgPool2d(x, 6);
      using dx = adaptiveAvgPool2dBackward(y, x.shape);
      await dx.toFloat32Array();
    }
    const after = memoryStats();
    expect(after.tensors.cuda).toBe(before.tensors.cuda);
    expect(after.bytes.cuda).toBe(before.bytes.cuda);
    expect(after.native.cuda!.inUseBytes).toBe(before.native.cuda!.inUseBytes);
  });
});
