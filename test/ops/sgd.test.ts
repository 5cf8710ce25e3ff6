import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { sgdUpdate, sgdUpdateMany, type SgdUpdateOptions } from '../../lib/ops/optim.js';
import { expectBitEqual, expectMatchesFixture, fixtureCases, hasNaN, loadFixture, relError } from '../helpers/fixtures.js';
import { mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, emulated, noCuda } from '../helpers/gpu.js';

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** torch.optim.SGD in float64 per element, rounded like float32 at each step (Math.fround): the
 * formulation written out independently of the native code. */
function referenceStep(p: Float32Array, g: Float32Array, buf: Float32Array | null, o: Required<Omit<SgdUpdateOptions, 'firstStep'>> & { firstStep: boolean }) {
  const f = Math.fround;
  const damp1 = f(1 - o.dampening);
  for (let i = 0; i < p.length; i++) {
    let d = g[i];
    if (o.weightDecay !== 0) d = f(d + f(f(o.weightDecay) * p[i]));
    if (o.momentum !== 0) {
      const b = o.firstStep ? d : f(f(f(o.momentum) * buf![i]) + f(damp1 * d));
      buf![i] = b;
      d = o.nesterov ? f(d + f(f(o.momentum) * b)) : b;
    }
    p[i] = f(p[i] + f(f(-o.lr) * d));
  }
}

const cases = await fixtureCases('sgd');

describe('sgdUpdate on the CPU matches torch.optim.SGD', () => {
  it('has the fixture cases', () => {
    expect(cases).toEqual(['dampening', 'large', 'momentum', 'nesterov', 'no_decay', 'no_momentum']);
  });
  it.each(cases)('%s: three steps, parameters and momentum buffers after each', async (name) => {
    const fx = loadFixture('sgd', name);
    const { lr, momentum, weightDecay, dampening, nesterov, steps } = fx.params;
    const n = fx.inputs.param.shape[0];
    using p = Tensor.from(fx.inputs.param.data as Float32Array, [n]);
    using buf = Tensor.empty([n]);
    for (let s = 0; s < steps; s++) {
      using g = Tensor.from(fx.inputs[`grad${s}`].data as Float32Array, [n]);
      sgdUpdate(p, g, momentum !== 0 ? buf : null, { lr, momentum, weightDecay, dampening, nesterov, firstStep: s === 0 });
      // PyTorch's vectorised CPU kernels fuse some multiply-adds; ours round each operation: ≤ 1 ulp apart.
      expectMatchesFixture(fx, `param${s}`, await p.toFloat32Array(), p.shape, 1e-6, 1e-7);
      if (momentum !== 0) expectMatchesFixture(fx, `buf${s}`, await buf.toFloat32Array(), buf.shape, 1e-6, 1e-7);
    }
  });
});

describe('sgdUpdate semantics', () => {
  const configs: [string, Omit<SgdUpdateOptions, 'firstStep'>][] = [
    ['plain', { lr: 0.1 }],
    ['momentum + weight decay', { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 }],
    ['nesterov', { lr: 0.01, momentum: 0.9, weightDecay: 5e-4, nesterov: true }],
    ['dampening', { lr: 0.01, momentum: 0.5, dampening: 0.1 }],
  ];
  it.each(configs)('%s: matches the formulation written out in TypeScript, bit for bit', async (_name, opts) => {
    const n = 1001;
    const full = { momentum: 0, weightDecay: 0, dampening: 0, nesterov: false, ...opts };
    const pRef = random(n, 1);
    const bRef = new Float32Array(n);
    using p = Tensor.from(pRef, [7, 11, 13]);
    using buf = Tensor.empty([n]);
    for (let s = 0; s < 4; s++) {
      const gv = random(n, 10 + s);
      using g = Tensor.from(gv, [n]);
      sgdUpdate(p, g, full.momentum ? buf : null, { ...opts, firstStep: s === 0 });
      referenceStep(pRef, gv, bRef, { ...full, firstStep: s === 0 });
      expect(await p.toFloat32Array()).toEqual(pRef);
      if (full.momentum) expect(await buf.toFloat32Array()).toEqual(bRef);
    }
  });

  it('the first step ignores the buffer contents (it may be uninitialised)', async () => {
    using p = Tensor.from([1, 2, 3], [3]);
    using g = Tensor.from([0.5, -1, 2], [3]);
    using buf = Tensor.from([NaN, NaN, NaN], [3]);
    sgdUpdate(p, g, buf, { lr: 0.1, momentum: 0.9, firstStep: true });
    expect(Array.from(await buf.toFloat32Array())).toEqual([0.5, -1, 2]);
    expect(Array.from(await p.toFloat32Array())).toEqual([1 - 0.05, 2 + 0.1, 3 - 0.2].map(Math.fround));
  });

  it('without momentum the buffer may be null, and a given one is left untouched', async () => {
    using p = Tensor.from([1, 2], [2]);
    using g = Tensor.from([1, 1], [2]);
    using buf = Tensor.from([7, 8], [2]);
    sgdUpdate(p, g, null, { lr: 0.5, firstStep: true });
    sgdUpdate(p, g, buf, { lr: 0.5, momentum: 0, firstStep: false });
    expect(Array.from(await p.toFloat32Array())).toEqual([0, 1]);
    expect(Array.from(await buf.toFloat32Array())).toEqual([7, 8]);
  });

  it('lr 0 leaves the parameters unchanged but still updates the buffer', async () => {
    using p = Tensor.from([1, 2], [2]);
    using g = Tensor.from([3, 4], [2]);
    using buf = Tensor.zeros([2]);
    sgdUpdate(p, g, buf, { lr: 0, momentum: 0.9, firstStep: true });
    expect(Array.from(await p.toFloat32Array())).toEqual([1, 2]);
    expect(Array.from(await buf.toFloat32Array())).toEqual([3, 4]);
  });
});

describe('sgdUpdate rejects bad input', () => {
  it('with clear messages', () => {
    using p = Tensor.zeros([4]);
    using g = Tensor.zeros([2, 2]);
    using g3 = Tensor.zeros([3]);
    using buf = Tensor.zeros([4]);
    using pi = Tensor.zeros([4], 'cpu', 'int32');
    const call = (o: unknown, b: Tensor | null = buf) => () => sgdUpdate(p, g, b, o as SgdUpdateOptions);
    expect(call({ lr: -1, firstStep: true })).toThrow('sgdUpdate: lr must be a finite number ≥ 0, got -1');
    expect(call({ lr: NaN, firstStep: true })).toThrow('sgdUpdate: lr must be a finite number ≥ 0, got NaN');
    expect(call({ lr: 0.1, momentum: -0.5, firstStep: true })).toThrow('sgdUpdate: momentum must be a finite number ≥ 0, got -0.5');
    expect(call({ lr: 0.1, weightDecay: -1, firstStep: true })).toThrow('sgdUpdate: weightDecay must be a finite number ≥ 0, got -1');
    expect(call({ lr: 0.1 })).toThrow('sgdUpdate: firstStep must be a boolean, got undefined');
    expect(call({ lr: 0.1, momentum: 0.9, firstStep: true }, null)).toThrow('sgdUpdate: momentum is 0.9, so a momentumBuffer tensor is required, got null');
    expect(call({ lr: 0.1, momentum: 0.9, nesterov: true, dampening: 0.1, firstStep: true })).toThrow(/sgdUpdate: Nesterov momentum needs momentum > 0 and dampening 0/);
    expect(call({ lr: 0.1, nesterov: true, firstStep: true })).toThrow(/sgdUpdate: Nesterov momentum needs momentum > 0/);
    expect(call({ lr: 0.1, nesterov: 1, firstStep: true })).toThrow('sgdUpdate: nesterov must be a boolean, got 1');
    expect(call(null)).toThrow(/sgdUpdate: expected options \{ lr, momentum\?, weightDecay\?, dampening\?, nesterov\?, firstStep \}, got null/);
    expect(() => sgdUpdate(p, g3, null, { lr: 0.1, firstStep: true })).toThrow("sgdUpdate: expected grad with param's 4 elements, got [3] (3 elements)");
    expect(() => sgdUpdate(p, g, g3, { lr: 0.1, momentum: 0.9, firstStep: true })).toThrow("sgdUpdate: expected momentumBuffer with param's 4 elements, got [3] (3 elements)");
    expect(() => sgdUpdate(p, p, null, { lr: 0.1, firstStep: true })).toThrow('sgdUpdate: grad and param must be different tensors');
    expect(() => sgdUpdate(p, g, p, { lr: 0.1, momentum: 0.9, firstStep: true })).toThrow('sgdUpdate: momentumBuffer must be a tensor of its own, not param or grad');
    expect(() => sgdUpdate(pi, g, null, { lr: 0.1, firstStep: true })).toThrow('sgdUpdate: expected param to be float32, got int32');
    const gone = Tensor.zeros([4]);
    gone.dispose();
    expect(() => sgdUpdate(p, gone, null, { lr: 0.1, firstStep: true })).toThrow(DisposedError);
  });
});

describe('sgdUpdate memory', () => {
  it('allocates nothing', () => {
    using p = Tensor.from(random(1000, 1), [1000]);
    using g = Tensor.from(random(1000, 2), [1000]);
    using buf = Tensor.zeros([1000]);
    const before = memoryStats();
    for (let s = 0; s < 5; s++) sgdUpdate(p, g, buf, { lr: 0.01, momentum: 0.9, weightDecay: 5e-4, firstStep: s === 0 });
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBuffers).toBe(before.native.hostBuffers);
  });
});

describe.skipIf(noCuda)('sgdUpdate on CUDA matches the CPU', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));
  const configs: [string, Omit<SgdUpdateOptions, 'firstStep'>][] = [
    ['momentum + weight decay', { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 }],
    ['nesterov', { lr: 0.01, momentum: 0.9, weightDecay: 5e-4, nesterov: true }],
    ['dampening', { lr: 0.02, momentum: 0.9, weightDecay: 5e-4, dampening: 0.1 }],
    ['no momentum', { lr: 0.05, weightDecay: 5e-4 }],
    ['no decay', { lr: 0.1, momentum: 0.9 }],
  ];
  // fc7's weight (4096 × 4096; 1 Mi + 3 on the emulated device), a batch of fc activations' size, and
  // odd sizes for the float4 tails.
  const sizes = [emulated ? (1 << 20) + 3 : 4096 * 4096, cudaBatch(128) * 4096, 1, 3, 1001];
  for (const [name, opts] of configs) {
    it.each(sizes)(`${name}, n = %i, three steps`, async (n) => {
      const pv = random(n, n + 1);
      using pc = Tensor.from(pv, [n]);
      using pg = Tensor.from(pv, [n], 'cuda');
      using bc = Tensor.empty([n]);
      using bg = Tensor.empty([n], 'cuda'); // poisoned: the first step must not read it
      const mom = (opts.momentum ?? 0) !== 0;
      for (let s = 0; s < 3; s++) {
        const gv = random(n, n + 10 + s);
        using gc = Tensor.from(gv, [n]);
        using gg = Tensor.from(gv, [n], 'cuda');
        sgdUpdate(pc, gc, mom ? bc : null, { ...opts, firstStep: s === 0 });
        sgdUpdate(pg, gg, mom ? bg : null, { ...opts, firstStep: s === 0 });
      }
      const pairs: [Tensor, Tensor][] = mom ? [[pg, pc], [bg, bc]] : [[pg, pc]];
      for (const [g, c] of pairs) {
        const gv = await g.toFloat32Array();
        const cv = await c.toFloat32Array();
        expect(hasNaN(gv)).toBe(false);
        // Same operations, same rounding (no FMA contraction on either side): identical within 1e-6.
        let worst = 0;
        for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(gv[i] - cv[i]) / Math.max(Math.abs(cv[i]), 1e-3));
        expect(worst).toBeLessThanOrEqual(1e-6);
        expect(relError(gv, cv)).toBeLessThanOrEqual(1e-6);
      }
    });
  }
});

describe('sgdUpdateMany: every tensor in one call, bit-identical to one sgdUpdate each', () => {
  const devices = noCuda ? (['cpu'] as const) : (['cpu', 'cuda'] as const);
  it.each(devices)('%s: 40 tensors (two launches of up to 32 on CUDA), mixed decay, a later first step, nesterov', async (device) => {
    const sizes = Array.from({ length: 40 }, (_, i) => (i * 37) % 301 + (i === 7 ? 0 : 1)); // one empty tensor
    const opts = { lr: 0.03, momentum: 0.9, nesterov: true };
    const mk = (seed: number) => sizes.map((n, i) => Tensor.from(random(n, seed + i), [n], device));
    const [pa, pb] = [mk(1), mk(1)];
    const [ba, bb] = [sizes.map((n) => Tensor.empty([n], device)), sizes.map((n) => Tensor.empty([n], device))];
    for (let s = 0; s < 3; s++) {
      const grads = mk(100 + 50 * s);
      const first = (i: number) => s === 0 || (s === 1 && i % 5 === 0);
      const decay = (i: number) => (i % 3 === 0 ? 0 : 5e-4);
      sizes.forEach((_, i) => sgdUpdate(pa[i], grads[i], ba[i], { ...opts, weightDecay: decay(i), firstStep: first(i) }));
      sgdUpdateMany(sizes.map((_, i) => ({ param: pb[i], grad: grads[i], momentumBuffer: bb[i], weightDecay: decay(i), firstStep: first(i) })), opts);
      grads.forEach((g) => g.dispose());
    }
    for (let i = 0; i < sizes.length; i++) {
      expectBitEqual(await pb[i].toFloat32Array(), await pa[i].toFloat32Array(), `param ${i}`);
      expectBitEqual(await bb[i].toFloat32Array(), await ba[i].toFloat32Array(), `buffer ${i}`);
    }
    [...pa, ...pb, ...ba, ...bb].forEach((t) => t.dispose());
  });

  it.each(devices)('%s: a non-finite guard skips every update and sets the halt flag, which keeps skipping until cleared', async (device) => {
    const pv = random(257, 3);
    using p = Tensor.from(pv, [257], device);
    using g = Tensor.from(random(257, 4), [257], device);
    using halt = Tensor.zeros([1], device);
    const e = [{ param: p, grad: g, momentumBuffer: null, weightDecay: 0, firstStep: false }];
    for (const bad of [NaN, Infinity, -Infinity]) {
      using guard = Tensor.from([bad], [1], device);
      sgdUpdateMany(e, { lr: 0.1 }, guard, halt);
      expectBitEqual(await p.toFloat32Array(), pv, `guard ${bad}: no update`);
      expect(Array.from(await halt.toFloat32Array())).toEqual([1]);
      using ok = Tensor.from([2.5], [1], device);
      sgdUpdateMany(e, { lr: 0.1 }, ok, halt); // halted: still no update
      expectBitEqual(await p.toFloat32Array(), pv, 'halted: no update');
      halt.zero_();
    }
    using ok = Tensor.from([2.5], [1], device);
    sgdUpdateMany(e, { lr: 0.1 }, ok, halt);
    expect(relError(await p.toFloat32Array(), pv)).toBeGreaterThan(0);
    expect(() => sgdUpdateMany(e, { lr: 0.1 }, Tensor.zeros([0], device))).toThrow(/sgdUpdate: guard must hold one value, got \[0\]/);
  });
});
