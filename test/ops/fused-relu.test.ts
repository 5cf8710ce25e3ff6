/** Conv2d/Linear → ReLU fused into one op (lib/ops `relu: true` / `reluOutput`, Sequential's `fuseRelu`):
 * the same values as the unfused ops — bit for bit on the CPU and the emulated device — checked against
 * PyTorch's references and finite differences, with one kernel launch fewer in the forward and one in the
 * backward on CUDA. Fresh random inputs each run (the seed is in the test names). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tensor, memoryStats, setPoison, synchronize } from '../../lib/tensor.js';
import { conv2d, conv2dBackward, conv2dOutputShape, setConvolutionPath, type Conv2dOptions } from '../../lib/ops/conv.js';
import { linear, linearBackward } from '../../lib/ops/linear.js';
import { relu, reluBackward } from '../../lib/ops/activation.js';
import { createAlexNet } from '../../lib/models/alexnet.js';
import { SGD } from '../../lib/optim/sgd.js';
import { Sequential } from '../../lib/nn/sequential.js';
import { fixtureCases, loadFixture, relError } from '../helpers/fixtures.js';
import { gradcheck, mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, emulated, noCuda } from '../helpers/gpu.js';
import { tolFor } from '../helpers/tolerance.js';

const seed = (Date.now() ^ (process.pid << 8)) >>> 0;
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
type Device = 'cpu' | 'cuda';

function random(n: number, s: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(s);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Index of the first element whose bits differ (NaN payloads included), or -1. */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

function expectBitEqual(got: Float32Array | null, want: Float32Array | null, what: string): void {
  if (want === null || got === null) {
    expect(got, what).toBe(want);
    return;
  }
  const i = firstBitDifference(got, want);
  expect(i, `${what}: first difference at ${i} (${got[i]} vs ${want[i]})`).toBe(-1);
}

interface Grads {
  y: Float32Array;
  dx: Float32Array | null;
  dw: Float32Array;
  db: Float32Array | null;
}

const read = (t: Tensor | null) => (t ? (t.dataSync() as Float32Array).slice() : null);

interface ConvProblem {
  name: string;
  x: number[];
  w: number[];
  bias: boolean;
  opts: Conv2dOptions;
}

const CONV: ConvProblem[] = [
  { name: 'non-square, stride (2, 1), padding (1, 2), batch 1', x: [1, 5, 7, 10], w: [3, 5, 3, 2], bias: true, opts: { stride: [2, 1], padding: [1, 2] } },
  { name: 'groups 3, no bias', x: [2, 6, 9, 8], w: [9, 2, 3, 3], bias: false, opts: { stride: [1, 2], padding: 1, groups: 3 } },
  { name: '1×1 (no im2col)', x: [3, 16, 9, 7], w: [8, 16, 1, 1], bias: true, opts: {} },
  { name: 'stride 3, uncovered border', x: [2, 3, 11, 12], w: [4, 3, 4, 3], bias: true, opts: { stride: 3 } },
  { name: 'paper conv2 (groups 2), batch 2', x: [2, 96, 27, 27], w: [256, 48, 5, 5], bias: true, opts: { padding: 2, groups: 2 } },
];

function convData(p: ConvProblem, s: number, nan = false) {
  const bound = 1 / Math.sqrt(numel(p.w.slice(1)));
  const x = random(numel(p.x), s);
  if (nan) x[Math.floor(x.length / 3)] = NaN; // NaN propagates through the ReLU; its backward passes dy there
  return {
    x,
    w: random(numel(p.w), s + 1, -bound, bound),
    b: p.bias ? random(p.w[0], s + 2, -bound, bound) : null,
    dy: random(numel(conv2dOutputShape(p.x, p.w, p.opts)), s + 3),
  };
}

/** A layer op followed by a ReLU, forward and backward, on `device`: fused (the op with `relu: true`, its
 * backward with `reluOutput`) or as the two ops (relu, reluBackward). With `mask`, the fused backward takes
 * those values as the forward's output (a device comparison then sees one ReLU mask: a pre-activation
 * within rounding of 0 may switch sides between devices and precisions). Every tensor is disposed. */
function pairRelu(
  device: Device,
  fused: boolean,
  inputs: { x: [Float32Array, number[]]; w: [Float32Array, number[]]; b: Float32Array | null; dy: Float32Array },
  forward: (x: Tensor, w: Tensor, b: Tensor | null, relu: boolean) => Tensor,
  backward: (dz: Tensor, x: Tensor, w: Tensor, o: { needBiasGrad: boolean; reluOutput?: Tensor }) => { dx: Tensor | null; dw: Tensor; db: Tensor | null },
  mask?: Float32Array,
): Grads {
  const x = Tensor.from(inputs.x[0], inputs.x[1], device);
  const w = Tensor.from(inputs.w[0], inputs.w[1], device);
  const b = inputs.b ? Tensor.from(inputs.b, [inputs.w[1][0]], device) : null;
  const made: (Tensor | null)[] = [x, w, b];
  try {
    let y: Tensor;
    let dz: Tensor;
    if (fused) {
      y = forward(x, w, b, true);
      dz = Tensor.from(inputs.dy, y.shape, device);
      made.push(y, dz);
    } else {
      const pre = forward(x, w, b, false);
      y = relu(pre);
      const dy = Tensor.from(inputs.dy, y.shape, device);
      dz = reluBackward(dy, y);
      made.push(pre, y, dy, dz);
    }
    const yMask = mask ? Tensor.from(mask, y.shape, device) : y;
    if (yMask !== y) made.push(yMask);
    const g = backward(dz, x, w, { needBiasGrad: !!b, ...(fused ? { reluOutput: yMask } : {}) });
    made.push(g.dx, g.dw, g.db);
    return { y: read(y)!, dx: read(g.dx), dw: read(g.dw)!, db: read(g.db) };
  } finally {
    made.forEach((t) => t?.dispose());
  }
}

/** relu(conv2d(x)) and its gradients (pairRelu). */
function convRelu(p: ConvProblem, d: ReturnType<typeof convData>, device: Device, fused: boolean, opts: Conv2dOptions = {}, mask?: Float32Array): Grads {
  const o = { ...p.opts, ...opts };
  return pairRelu(
    device,
    fused,
    { x: [d.x, p.x], w: [d.w, p.w], b: d.b, dy: d.dy },
    (x, w, b, r) => conv2d(x, w, b, { ...o, relu: r }),
    (dz, x, w, bo) => conv2dBackward(dz, x, w, { ...o, ...bo }),
    mask,
  );
}

function linearData(N: number, inF: number, out: number, bias: boolean, s: number) {
  const bound = 1 / Math.sqrt(inF);
  return {
    x: random(N * inF, s),
    w: random(out * inF, s + 1, -bound, bound),
    b: bias ? random(out, s + 2, -bound, bound) : null,
    dy: random(N * out, s + 3),
  };
}

/** relu(linear(x)) and its gradients (pairRelu). */
function linearRelu(N: number, inF: number, out: number, d: ReturnType<typeof linearData>, device: Device, fused: boolean, precision: 'fp32' | 'tf32' = 'fp32', mask?: Float32Array): Grads {
  return pairRelu(
    device,
    fused,
    { x: [d.x, [N, inF]], w: [d.w, [out, inF]], b: d.b, dy: d.dy },
    (x, w, b, r) => linear(x, w, b, { precision, relu: r }),
    (dz, x, w, bo) => linearBackward(dz, x, w, { precision, ...bo }),
    mask,
  );
}

const LINEAR: [string, number, number, number, boolean][] = [
  ['fc7-like 4096 → 4096 at batch 3', 3, 4096, 4096, true],
  ['odd 37 → 29, batch 5', 5, 37, 29, true],
  ['no bias 11 → 7, batch 1', 1, 11, 7, false],
];

beforeAll(() => setPoison(true)); // outputs and scratch start as NaN: anything left unwritten shows up
afterAll(() => setPoison(false));

describe(`fused conv2d → ReLU on the CPU equals the two ops bit for bit (seed ${seed})`, () => {
  it.each(CONV.map((p, i) => [p.name, p, i] as const))('%s', (_n, p, i) => {
    for (const nan of [false, true]) {
      const d = convData(p, seed + 10 * i, nan);
      const a = convRelu(p, d, 'cpu', true);
      const b = convRelu(p, d, 'cpu', false);
      for (const k of ['y', 'dx', 'dw', 'db'] as const) expectBitEqual(a[k], b[k], `${p.name}${nan ? ' (NaN in x)' : ''}: ${k}`);
    }
  });

  it.each(['legacy', 'columns'] as const)('reluInPlace (%s path) gives the same gradients; the legacy path writes the masked gradient over dy, the columns path leaves dy; a chunked convolution too', (path) => {
    const p = CONV[4]; // paper conv2, groups 2
    const d = convData(p, seed + 77);
    const x = Tensor.from(d.x, p.x);
    const w = Tensor.from(d.w, p.w);
    const b = Tensor.from(d.b!, [p.w[0]]);
    const prev = setConvolutionPath(path);
    try {
      for (const workspaceBytes of [undefined, 1]) {
        const o = { ...p.opts, ...(workspaceBytes ? { workspaceBytes } : {}) };
        // (a chunked convolution sums dw in another order: the reference runs with the same chunks)
        const want = convRelu(p, d, 'cpu', false, o);
        const y = conv2d(x, w, b, { ...o, relu: true });
        expectBitEqual(read(y), want.y, `y (workspace ${workspaceBytes ?? 'default'})`);
        const dy = Tensor.from(d.dy, y.shape);
        const g = conv2dBackward(dy, x, w, { ...o, reluOutput: y, reluInPlace: true });
        expectBitEqual(read(g.dx), want.dx, 'dx');
        expectBitEqual(read(g.dw), want.dw, 'dw');
        expectBitEqual(read(g.db), want.db, 'db');
        const dz = reluBackward(Tensor.from(d.dy, y.shape), y);
        if (path === 'legacy') expectBitEqual(read(dy), read(dz), 'dy now holds the gradient at the convolution output');
        else expectBitEqual(read(dy), d.dy, 'dy is left as it was (dz has another layout)');
        [y, dy, dz, g.dx, g.dw, g.db].forEach((t) => t?.dispose());
      }
    } finally {
      setConvolutionPath(prev);
    }
    [x, w, b].forEach((t) => t.dispose());
    // linear, no bias (the plain masking path) and with one
    for (const bias of [false, true]) {
      const ld = linearData(4, 9, 6, bias, seed + 78);
      const lwant = linearRelu(4, 9, 6, ld, 'cpu', false);
      const lx = Tensor.from(ld.x, [4, 9]);
      const lw = Tensor.from(ld.w, [6, 9]);
      const lb = ld.b ? Tensor.from(ld.b, [6]) : null;
      const ly = linear(lx, lw, lb, { relu: true });
      const ldy = Tensor.from(ld.dy, [4, 6]);
      const lg = linearBackward(ldy, lx, lw, { reluOutput: ly, reluInPlace: true, needBiasGrad: bias });
      expectBitEqual(read(lg.dx), lwant.dx, 'linear dx');
      expectBitEqual(read(lg.dw), lwant.dw, 'linear dw');
      expectBitEqual(read(lg.db), lwant.db, 'linear db');
      [lx, lw, lb, ly, ldy, lg.dx, lg.dw, lg.db].forEach((t) => t?.dispose());
    }
  });

  it('an empty batch: empty output, zero weight and bias gradients', () => {
    const x = Tensor.zeros([0, 3, 5, 5]);
    const w = Tensor.from(random(2 * 3 * 9, seed), [2, 3, 3, 3]);
    const b = Tensor.from([0.5, -0.5], [2]);
    const y = conv2d(x, w, b, { relu: true });
    expect(y.shape).toEqual([0, 2, 3, 3]);
    const dy = Tensor.zeros([0, 2, 3, 3]);
    const g = conv2dBackward(dy, x, w, { reluOutput: y, reluInPlace: true });
    expect(Array.from(g.dw.dataSync())).toEqual(new Array(54).fill(0));
    expect(Array.from(g.db!.dataSync())).toEqual([0, 0]);
    [x, w, b, y, dy, g.dx, g.dw, g.db].forEach((t) => t?.dispose());
  });
});

describe(`fused conv2d → ReLU against PyTorch and finite differences (seed ${seed})`, () => {
  it('matches relu(F.conv2d(...)) of the float64 fixtures', async () => {
    const cases = await fixtureCases('conv2d');
    expect(cases.length).toBeGreaterThan(0);
    for (const name of cases) {
      const fx = loadFixture('conv2d', name);
      const p = fx.params;
      const x = Tensor.from(fx.inputs.x.data as Float32Array, fx.inputs.x.shape);
      const w = Tensor.from(fx.inputs.w.data as Float32Array, fx.inputs.w.shape);
      const b = p.bias ? Tensor.from(fx.inputs.b.data as Float32Array, fx.inputs.b.shape) : null;
      const y = conv2d(x, w, b, { stride: p.stride, padding: p.padding, groups: p.groups, precision: 'fp32', relu: true });
      const got = y.dataSync() as Float32Array;
      // The reference pre-activations (every element, or the fixture's sampled positions); PyTorch's ReLU
      // is exact, so relu(reference) is the reference of the fused op.
      const full = fx.tensors.get('y');
      const idx = full ? null : (fx.tensors.get('y.idx')!.data as Int32Array);
      const pre = full ? full.data : fx.tensors.get('y.val')!.data;
      const at = (i: number) => got[idx ? idx[i] : i];
      const want = Float64Array.from(pre as ArrayLike<number>, (v) => (v < 0 ? 0 : v));
      const mine = Float64Array.from({ length: want.length }, (_, i) => at(i));
      expect(relError(mine, want), `${name}: relative L2 error`).toBeLessThanOrEqual(1e-5);
      const scale = Math.max(...Array.from(pre as ArrayLike<number>, Math.abs));
      for (let i = 0; i < want.length; i++) {
        // Clearly negative pre-activations give exactly 0; the rest agree to fp32 rounding.
        if ((pre[i] as number) < -1e-5 * scale) expect(mine[i], `${name}[${i}]`).toBe(0);
        else expect(Math.abs(mine[i] - want[i]), `${name}[${i}]`).toBeLessThanOrEqual(1e-5 * scale);
      }
      [x, w, b, y].forEach((t) => t?.dispose());
    }
  });

  it('gradients of the fused op match central differences', () => {
    const p: ConvProblem = { name: 'groups 2, stride (2, 1)', x: [2, 4, 6, 5], w: [6, 2, 3, 2], bias: true, opts: { stride: [2, 1], padding: [1, 2], groups: 2 } };
    const eps = 1e-2;
    // Keep every pre-activation well away from the ReLU's kink, where a central difference is meaningless:
    // a perturbation of eps moves a pre-activation by at most eps · max|w| (or eps for the bias).
    let d = convData(p, seed);
    for (let s = seed + 1; ; s++) {
      const x = Tensor.from(d.x, p.x);
      const w = Tensor.from(d.w, p.w);
      const b = Tensor.from(d.b!, [p.w[0]]);
      const pre = conv2d(x, w, b, p.opts);
      const v = pre.dataSync() as Float32Array;
      const clear = v.every((t) => Math.abs(t) > 4 * eps);
      [x, w, b, pre].forEach((t) => t.dispose());
      if (clear) break;
      // a few dozen draws at most (measured over 30 fresh seeds: 2–82, median 15)
      if (s - seed > 10000) expect.fail('no input with every pre-activation away from 0 in 10,000 draws');
      d = convData(p, s);
      d.b = d.b!.map((t, i) => (i % 2 ? 0.6 : -0.6) + t); // biases push pre-activations off zero
    }
    const tensors = (arr: Float32Array[]) => ({ x: Tensor.from(arr[0], p.x), w: Tensor.from(arr[1], p.w), b: Tensor.from(arr[2], [p.w[0]]) });
    gradcheck({
      inputs: [d.x, d.w, d.b!],
      names: ['x', 'w', 'b'],
      samples: 30,
      eps,
      forward: (arr) => {
        const t = tensors(arr);
        const y = conv2d(t.x, t.w, t.b, { ...p.opts, relu: true });
        const out = (y.dataSync() as Float32Array).slice();
        [t.x, t.w, t.b, y].forEach((v) => v.dispose());
        return out;
      },
      backward: (arr, r) => {
        const t = tensors(arr);
        const y = conv2d(t.x, t.w, t.b, { ...p.opts, relu: true });
        const dy = Tensor.from(r, y.shape);
        const g = conv2dBackward(dy, t.x, t.w, { ...p.opts, reluOutput: y });
        const out = [read(g.dx)!, read(g.dw)!, read(g.db)!];
        [t.x, t.w, t.b, y, dy, g.dx, g.dw, g.db].forEach((v) => v?.dispose());
        return out;
      },
    });
  });
});

describe(`fused linear → ReLU on the CPU equals the two ops bit for bit (seed ${seed})`, () => {
  it.each(LINEAR.map(([name, N, i, o, b], k) => [name, N, i, o, b, k] as const))('%s', (_n, N, inF, out, bias, k) => {
    const d = linearData(N, inF, out, bias, seed + 100 * k);
    const a = linearRelu(N, inF, out, d, 'cpu', true);
    const b = linearRelu(N, inF, out, d, 'cpu', false);
    for (const key of ['y', 'dx', 'dw', 'db'] as const) expectBitEqual(a[key], b[key], `${key}`);
  });
});

describe('fused ops reject bad input with clear errors', () => {
  it('relu must be a boolean; reluOutput a tensor of dy\'s shape on its device', () => {
    const x = Tensor.from(random(2 * 3 * 5 * 5, seed), [2, 3, 5, 5]);
    const w = Tensor.from(random(4 * 3 * 9, seed + 1), [4, 3, 3, 3]);
    const dy = Tensor.from(random(2 * 4 * 3 * 3, seed + 2), [2, 4, 3, 3]);
    expect(() => conv2d(x, w, null, { relu: 1 as unknown as boolean })).toThrow('conv2d: relu must be a boolean, got 1');
    expect(() => conv2dBackward(dy, x, w, { reluOutput: [1, 2] as unknown as Tensor })).toThrow('conv2dBackward: reluOutput must be a Tensor (the output of conv2d with relu: true), got');
    const wrong = Tensor.zeros([2, 4, 3, 4]);
    expect(() => conv2dBackward(dy, x, w, { reluOutput: wrong })).toThrow(/conv2dBackward: expected reluOutput \(the shape of dy\) of shape \[2, 4, 3, 3\], got \[2, 4, 3, 4\]/);
    const lx = Tensor.from(random(6, seed), [2, 3]);
    const lw = Tensor.from(random(12, seed), [4, 3]);
    const ldy = Tensor.zeros([2, 4]);
    expect(() => linear(lx, lw, null, { relu: 'yes' as unknown as boolean })).toThrow('linear: relu must be a boolean, got');
    const lwrong = Tensor.zeros([4, 2]);
    expect(() => linearBackward(ldy, lx, lw, { reluOutput: lwrong })).toThrow(/linearBackward: expected reluOutput \(the shape of dy\) of shape \[2, 4\], got \[4, 2\]/);
    // A misplaced option would be ignored — a silently unmasked gradient — so it is an error.
    expect(() => conv2dBackward(dy, x, w, { relu: true } as never)).toThrow('conv2dBackward: relu is an option of conv2d; the backward of a fused forward takes reluOutput: y (its output)');
    expect(() => linearBackward(ldy, lx, lw, { relu: true } as never)).toThrow('linearBackward: relu is an option of linear');
    expect(() => conv2d(x, w, null, { reluOutput: dy } as never)).toThrow('conv2d: reluOutput is an option of conv2dBackward; the forward takes relu: true');
    expect(() => linear(lx, lw, null, { reluInPlace: true } as never)).toThrow('linear: reluInPlace is an option of linearBackward');
    expect(() => conv2dBackward(dy, x, w, { reluInPlace: true })).toThrow('conv2dBackward: reluInPlace needs reluOutput (the output of conv2d with relu: true)');
    expect(() => conv2dBackward(dy, x, w, { reluOutput: dy.reshape(dy.shape), reluInPlace: true })).toThrow('conv2dBackward: reluInPlace overwrites dy, and reluOutput shares its memory');
    expect(() => linearBackward(ldy, lx, lw, { reluOutput: ldy, reluInPlace: 1 as unknown as boolean })).toThrow('linearBackward: reluInPlace must be a boolean, got 1');
    [x, w, dy, wrong, lx, lw, ldy, lwrong].forEach((t) => t.dispose());
  });
});

/** One training step's worth of the small arch, fused or not, from the same weights and batch. */
async function smallSteps(device: Device, fuse: boolean, steps: number, n: number) {
  const model = createAlexNet({ arch: 'small', numClasses: 10, device, seed: seed % 1000 });
  (model.net as Sequential).setFuseRelu(fuse);
  const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  const x = Tensor.from(random(n * 28 * 28, seed + 7), [n, 1, 28, 28], device);
  const y = Int32Array.from({ length: n }, (_, i) => (i * 7 + seed) % 10);
  const losses: number[] = [];
  await model.step(x, y, opt); // warm-up
  const cuda0 = device === 'cuda' ? memoryStats().native.cuda! : null;
  for (let i = 0; i < steps; i++) losses.push((await model.step(x, y, opt)).loss);
  synchronize();
  const cuda1 = device === 'cuda' ? memoryStats().native.cuda! : null;
  const launches = cuda0 && cuda1 ? (cuda1.kernelLaunches - cuda0.kernelLaunches) / steps : 0;
  const allocs = cuda0 && cuda1 ? (cuda1.allocCalls - cuda0.allocCalls) / steps : 0;
  const weights = model.parameters().map((p) => (p.value.dataSync() as Float32Array).slice());
  x.dispose();
  opt.dispose();
  model.dispose();
  return { losses, weights, launches, allocs };
}

describe(`Sequential fuses Conv2d/Linear → ReLU: training unchanged (seed ${seed})`, () => {
  it('the small arch on the CPU: three SGD steps give bit-identical losses and weights fused and unfused', async () => {
    const a = await smallSteps('cpu', true, 3, 8);
    const b = await smallSteps('cpu', false, 3, 8);
    expect(a.losses).toEqual(b.losses);
    a.weights.forEach((w, i) => expectBitEqual(w, b.weights[i], `parameter ${i}`));
  });

  it('a Sequential built by hand fuses only Conv2d/Linear directly followed by a ReLU', async () => {
    const { Conv2d, Linear, ReLU, Flatten, MaxPool2d } = await import('../../lib/nn/index.js');
    const net = new Sequential([new Conv2d(1, 2, 3), new MaxPool2d(2), new ReLU(), new Flatten(), new Linear(2 * 3 * 3, 3), new ReLU(true)]);
    const r = mulberry32(seed);
    for (const p of net.parameters()) p.value.write(Float32Array.from({ length: p.value.size }, () => r() - 0.5));
    const x = Tensor.from(random(2 * 64, seed), [2, 1, 8, 8]);
    const outs: Float32Array[] = [];
    const dxs: Float32Array[] = [];
    for (const fuse of [true, false]) {
      net.fuseRelu = fuse;
      const y = net.forward(x);
      outs.push(read(y)!);
      const dy = Tensor.from(random(6, seed + 1), [2, 3]);
      const dx = net.backward(dy);
      dxs.push(read(dx)!);
      // the caller's gradient is never overwritten (only gradients the Sequential made are)
      expectBitEqual(read(dy), random(6, seed + 1), "the caller's dy");
      [y, dx, dy].forEach((t) => t?.dispose());
    }
    expectBitEqual(outs[0], outs[1], 'output');
    expectBitEqual(dxs[0], dxs[1], 'dx');
    // A subclass may have its own forward: it is run as written, not fused.
    class Scaled extends Linear {
      override forward(t: Tensor): Tensor {
        const y = super.forward(t);
        const out = Tensor.from((y.dataSync() as Float32Array).map((v) => 2 * v), y.shape);
        y.dispose();
        return out;
      }
    }
    const sub = new Sequential([new Scaled(3, 2), new ReLU()]);
    sub.parameters()[0].value.write(Float32Array.of(1, 0, 0, 0, -1, 0));
    const sx = Tensor.from([1, 2, 3], [1, 3]);
    const sy = sub.forward(sx);
    expect(Array.from(sy.dataSync())).toEqual([2, 0]);
    // After a forward in eval mode there is nothing to differentiate: a clear error.
    net.fuseRelu = true;
    net.eval();
    const ey = net.forward(x);
    const edy = Tensor.zeros([2, 3]);
    expect(() => net.backward(edy)).toThrow('Linear.backward: no saved input; call forward in training mode first');
    [sx, sy, ey, edy].forEach((t) => t.dispose());
    sub.dispose();
    x.dispose();
    net.dispose();
  });
});

describe.skipIf(noCuda)(`fused ops on CUDA (seed ${seed})`, () => {
  // cuBLAS's epilogue adds C to the product with one rounding (acc + C), so bias-after equals bias-first;
  // the emulated cuBLAS does exactly that. On a GPU the two paths may run different GEMM kernels.
  const sameOnCuda = (got: Float32Array | null, want: Float32Array | null, what: string, tol: number) => {
    if (emulated) expectBitEqual(got, want, what);
    else expect(relError(got!, want!), what).toBeLessThanOrEqual(tol);
  };

  it.each(CONV.map((p, i) => [p.name, p, i] as const))('conv %s: as the CPU oracle, as the unfused CUDA ops, one launch fewer each way', (_n, p, i) => {
    const q = { ...p, x: [cudaBatch(p.x[0], 1), ...p.x.slice(1)] };
    const d = convData(q, seed + 10 * i);
    const ref = convRelu(q, d, 'cpu', true);
    const K = { y: numel(q.w.slice(1)), dx: (q.w[0] / (q.opts.groups ?? 1)) * q.w[2] * q.w[3], dw: numel(conv2dOutputShape(q.x, q.w, q.opts)) / q.w[0], db: 0 };
    for (const precision of ['fp32', 'tf32'] as const) {
      const l0 = memoryStats().native.cuda!.kernelLaunches;
      const fused = convRelu(q, d, 'cuda', true, { precision });
      const l1 = memoryStats().native.cuda!.kernelLaunches;
      const plain = convRelu(q, d, 'cuda', false, { precision });
      const l2 = memoryStats().native.cuda!.kernelLaunches;
      // The ReLU's forward and backward launches are saved: they join the columns path's epilogue and its
      // dz pass, which run with or without a bias. A 1×1 stride-1 unpadded convolution takes the legacy path
      // (conv2d.h), where without a bias there is no bias pass to join: the same launches.
      const s = q.opts.stride ?? 1, pd = q.opts.padding ?? 0;
      const identity = q.w[2] === 1 && q.w[3] === 1 && (Array.isArray(s) ? s.every((v) => v === 1) : s === 1) && (Array.isArray(pd) ? pd.every((v) => v === 0) : pd === 0);
      expect(l2 - l1 - (l1 - l0), `${q.name} ${precision}: launches saved`).toBe(q.bias || !identity ? 2 : 0);
      expect(relError(fused.y, ref.y), `${q.name} ${precision}: y vs the CPU oracle`).toBeLessThanOrEqual(tolFor(precision, K.y));
      // The gradients against the oracle's, through the oracle's ReLU mask on both sides.
      const masked = convRelu(q, d, 'cuda', true, { precision }, ref.y);
      for (const k of ['dx', 'dw', 'db'] as const) {
        if (!ref[k]) continue;
        expect(relError(masked[k]!, ref[k]!), `${q.name} ${precision}: ${k} vs the CPU oracle`).toBeLessThanOrEqual(tolFor(precision, Math.max(K[k], 1)));
      }
      // On a GPU the two paths' GEMMs may round a pre-activation differently: their gradients are compared
      // through the unfused path's mask there.
      const f = emulated ? fused : { ...convRelu(q, d, 'cuda', true, { precision }, plain.y), y: fused.y };
      for (const k of ['y', 'dx', 'dw', 'db'] as const) sameOnCuda(f[k], plain[k], `${q.name} ${precision}: ${k} fused vs unfused`, tolFor(precision, Math.max(K[k], 1)));
    }
  });

  it.each(LINEAR.map(([name, N, i, o, b], k) => [name, N, i, o, b, k] as const))('linear %s: as the CPU oracle, as the unfused CUDA ops, one launch fewer each way', (_n, N, inF, out, bias, k) => {
    const d = linearData(N, inF, out, bias, seed + 100 * k);
    const ref = linearRelu(N, inF, out, d, 'cpu', true);
    const K = { y: inF, dx: out, dw: N, db: 0 };
    for (const precision of ['fp32', 'tf32'] as const) {
      const l0 = memoryStats().native.cuda!.kernelLaunches;
      const fused = linearRelu(N, inF, out, d, 'cuda', true, precision);
      const l1 = memoryStats().native.cuda!.kernelLaunches;
      const plain = linearRelu(N, inF, out, d, 'cuda', false, precision);
      const l2 = memoryStats().native.cuda!.kernelLaunches;
      expect(l2 - l1 - (l1 - l0), `${precision}: launches saved`).toBe(bias ? 2 : 0);
      expect(relError(fused.y, ref.y), `${precision}: y vs the CPU oracle`).toBeLessThanOrEqual(tolFor(precision, K.y));
      const masked = linearRelu(N, inF, out, d, 'cuda', true, precision, ref.y);
      for (const key of ['dx', 'dw', 'db'] as const) {
        if (!ref[key]) continue;
        expect(relError(masked[key]!, ref[key]!), `${precision}: ${key} vs the CPU oracle`).toBeLessThanOrEqual(tolFor(precision, Math.max(K[key], 1)));
      }
      const f = emulated ? fused : { ...linearRelu(N, inF, out, d, 'cuda', true, precision, plain.y), y: fused.y };
      for (const key of ['y', 'dx', 'dw', 'db'] as const) sameOnCuda(f[key], plain[key], `${precision}: ${key} fused vs unfused`, tolFor(precision, Math.max(K[key], 1)));
    }
  });

  it('the small arch: two launches fewer per Conv2d/Linear → ReLU pair and step (7 pairs), same training', async () => {
    const a = await smallSteps('cuda', true, 2, 2);
    const b = await smallSteps('cuda', false, 2, 2);
    expect(b.launches - a.launches).toBe(14);
    // The masked gradient goes over the incoming one (the Sequential owns it): the ReLU backward's seven
    // gradient tensors are not allocated.
    expect(b.allocs - a.allocs, `${b.allocs} → ${a.allocs} allocations per step`).toBe(7);
    console.log(`small arch on CUDA: ${b.launches} → ${a.launches} kernel launches, ${b.allocs} → ${a.allocs} allocations from the caching allocator per training step with the ReLUs fused`);
    if (emulated) {
      expect(a.losses).toEqual(b.losses);
      a.weights.forEach((w, i) => expectBitEqual(w, b.weights[i], `parameter ${i}`));
    } else {
      a.weights.forEach((w, i) => expect(relError(w, b.weights[i]), `parameter ${i}`).toBeLessThanOrEqual(1e-3));
    }
  });
});
