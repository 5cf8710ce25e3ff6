import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { relu, reluBackward } from '../../lib/ops/activation.js';
import { expectBitEqual, expectMatchesFixture, fixtureCases, loadFixture } from '../helpers/fixtures.js';
import { gradcheck, mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, noCuda } from '../helpers/gpu.js';

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

const cases = await fixtureCases('relu');

describe('relu on the CPU matches PyTorch', () => {
  it('has the fixture cases', () => {
    expect(cases).toEqual(['alexnet', 'small']);
  });
  it.each(cases)('%s', async (name) => {
    const fx = loadFixture('relu', name);
    using x = Tensor.from(fx.inputs.x.data as Float32Array, fx.inputs.x.shape);
    using dy = Tensor.from(fx.inputs.dy.data as Float32Array, fx.inputs.dy.shape);
    using y = relu(x);
    // ReLU is exact (a select), so the tolerance is at the floor of the helper's checks.
    expectMatchesFixture(fx, 'y', await y.toFloat32Array(), y.shape, 1e-7, 0);
    using dx = reluBackward(dy, y);
    expectMatchesFixture(fx, 'dx', await dx.toFloat32Array(), dx.shape, 1e-7, 0);
  });
});

describe('relu semantics', () => {
  it('clamps negatives, keeps positives, propagates NaN; backward passes dy where y > 0', async () => {
    using x = Tensor.from([-2, -0.5, 0, 0.25, 3, NaN, -Infinity, Infinity], [8]);
    using y = relu(x);
    expect(Array.from(await y.toFloat32Array())).toEqual([0, 0, 0, 0.25, 3, NaN, 0, Infinity]);
    using dy = Tensor.from([1, 2, 3, 4, 5, 6, 7, 8], [2, 4]);
    using yy = y.reshape([2, 4]);
    using dx = reluBackward(dy, yy);
    // PyTorch's threshold_backward: y ≤ 0 → 0, so a NaN y lets dy through.
    expect(Array.from(await dx.toFloat32Array())).toEqual([0, 0, 0, 4, 5, 6, 0, 8]);
    expect(dx.shape).toEqual([2, 4]);
  });

  it('works in place: relu returns x itself, reluBackward writes into dy', async () => {
    const xv = random(1001, 3);
    const x = Tensor.from(xv, [7, 11, 13]);
    const y = relu(x, { inplace: true });
    expect(y).toBe(x);
    const got = await x.toFloat32Array();
    expect(Array.from(got)).toEqual(Array.from(xv, (v) => (v < 0 ? 0 : v)));
    const dyv = random(1001, 4);
    const dy = Tensor.from(dyv, [7, 11, 13]);
    const dx = reluBackward(dy, y, { inplace: true });
    expect(dx).toBe(dy);
    expect(Array.from(await dy.toFloat32Array())).toEqual(Array.from(dyv, (g, i) => (got[i] > 0 ? g : 0)));
    x.dispose();
    dy.dispose();
  });

  it('a new output leaves the input untouched', async () => {
    const xv = random(64, 5);
    using x = Tensor.from(xv, [64]);
    using y = relu(x);
    expect(y).not.toBe(x);
    expect(await x.toFloat32Array()).toEqual(xv);
  });

  it('handles empty tensors', async () => {
    using x = Tensor.zeros([0, 4]);
    using y = relu(x);
    expect(y.shape).toEqual([0, 4]);
    using dx = reluBackward(y, y);
    expect(dx.size).toBe(0);
  });
});

describe('relu gradient matches finite differences (away from 0)', () => {
  it('on [5, 37]', () => {
    // |x| ≥ 0.1 so that x ± eps never crosses the kink.
    const x = random(185, 9).map((v) => (v < 0 ? v - 0.1 : v + 0.1));
    gradcheck({
      inputs: [x],
      names: ['x'],
      samples: 185,
      forward: ([xi]) => {
        using t = Tensor.from(xi, [5, 37]);
        using y = relu(t);
        return y.dataSync() as Float32Array;
      },
      backward: ([xi], dyv) => {
        using t = Tensor.from(xi, [5, 37]);
        using y = relu(t);
        using dy = Tensor.from(dyv, [5, 37]);
        using dx = reluBackward(dy, y);
        return [dx.dataSync() as Float32Array];
      },
    });
  });
});

describe('relu rejects bad input', () => {
  it('with clear messages', () => {
    using x = Tensor.zeros([2, 3]);
    using xi = Tensor.zeros([2, 3], 'cpu', 'int32');
    using other = Tensor.zeros([3, 2]);
    expect(() => relu(null as unknown as Tensor)).toThrow(/relu: expected x to be a Tensor, got null/);
    expect(() => relu(xi)).toThrow(/relu: expected x to be float32 or bfloat16, got int32/);
    expect(() => relu(x, { inplace: 1 as unknown as boolean })).toThrow(/relu: inplace must be a boolean, got 1/);
    expect(() => relu(x, 'yes' as unknown as { inplace: boolean })).toThrow(/relu: expected options/);
    expect(() => reluBackward(x, other)).toThrow(/reluBackward: expected y \(the shape of dy\) of shape \[2, 3\], got \[3, 2\]/);
    expect(() => reluBackward(xi, x)).toThrow(/reluBackward: expected dy to be float32/);
    const d = Tensor.zeros([2]);
    d.dispose();
    expect(() => relu(d)).toThrow(DisposedError);
  });
});

describe('relu memory', () => {
  it('leaks nothing', () => {
    const before = memoryStats();
    for (let i = 0; i < 5; i++) {
      using x = Tensor.from(random(300, i), [300]);
      using y = relu(x);
      using dx = reluBackward(x, y);
      relu(x, { inplace: true });
    }
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBuffers).toBe(before.native.hostBuffers);
  });
});

describe.skipIf(noCuda)('relu on CUDA matches the CPU', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));
  // AlexNet's fc activations (batch 128 × 4096), conv1's output, and odd sizes for the float4 tails.
  const shapes: number[][] = [[cudaBatch(128), 4096], [cudaBatch(128), 96, 55, 55], [1], [3], [1001], [5, 7], [4, 4]];
  it.each(shapes.map((s) => [s.join('x'), s] as const))('%s', async (_name, shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const xv = random(n, n);
    const dyv = random(n, n + 1);
    using x = Tensor.from(xv, shape);
    using dy = Tensor.from(dyv, shape);
    using yc = relu(x);
    using dxc = reluBackward(dy, yc);
    using xg = x.to('cuda');
    using dyg = dy.to('cuda');
    using yg = relu(xg);
    using dxg = reluBackward(dyg, yg);
    // A select on both devices: bit-identical.
    expectBitEqual(await yg.toFloat32Array(), await yc.toFloat32Array(), 'relu');
    expectBitEqual(await dxg.toFloat32Array(), await dxc.toFloat32Array(), 'reluBackward');
    // In place on the device.
    using xg2 = x.to('cuda');
    expect(relu(xg2, { inplace: true })).toBe(xg2);
    expectBitEqual(await xg2.toFloat32Array(), await yc.toFloat32Array(), 'relu in place');
    using dyg2 = dy.to('cuda');
    expect(reluBackward(dyg2, yg, { inplace: true })).toBe(dyg2);
    expectBitEqual(await dyg2.toFloat32Array(), await dxc.toFloat32Array(), 'reluBackward in place');
  });
  it('rejects mixed devices', () => {
    using x = Tensor.zeros([4]);
    using yg = Tensor.zeros([4], 'cuda');
    expect(() => reluBackward(x, yg)).toThrow(/reluBackward: all tensors must be on one device; dy is on cpu, y on cuda/);
  });
});
