// bfloat16 activations (item 4 of issue 19, the ops done so far: ReLU, dropout, max pooling, LRN, the
// convolution's columns path and the linear layer). The rule each
// op follows: compute in float32 on the widened values, round the output once to nearest even. So the
// oracle of a bf16 op is the float32 op on cast(x, 'float32') followed by cast(·, 'bfloat16'): the CPU is
// held to it bit for bit, and the CUDA kernels to the CPU bit for bit, in both thread orders on the
// emulated device. Gradients stay float32.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tensor, setPoison } from '../../lib/tensor.js';
import { cast } from '../../lib/ops/elementwise.js';
import { relu, reluBackward } from '../../lib/ops/activation.js';
import { dropout } from '../../lib/ops/dropout.js';
import { maxPool2d } from '../../lib/ops/pool.js';
import { localResponseNorm, localResponseNormBackward } from '../../lib/ops/lrn.js';
import { conv2d, conv2dBackward, conv2dForTraining, setConvolutionPath } from '../../lib/ops/conv.js';
import { linear, linearBackward, linearForTraining } from '../../lib/ops/linear.js';
import { createAlexNet } from '../../lib/models/alexnet.js';
import { Conv2d } from '../../lib/nn/conv2d.js';
import { Linear } from '../../lib/nn/linear.js';
import { AdaptiveAvgPool2d } from '../../lib/nn/adaptive-avgpool2d.js';
import { adaptiveAvgPool2d } from '../../lib/ops/pool.js';
import { mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, emulated, noCuda, withPlanted } from '../helpers/gpu.js';

// LRN at AlexNet's settings and odd ones: an even size, β ≠ 0.75 (powf), rank 3.
const lrnCases: [number[], { size: number; alpha?: number; beta?: number; k?: number }][] = [
  [[2, 96, 9, 11], { size: 5, alpha: 1e-4, beta: 0.75, k: 2 }],
  [[1, 13, 257], { size: 4, alpha: 0.3, beta: 0.6, k: 1 }],
  [[3, 5, 2, 3], { size: 7, alpha: 0.5, beta: 0.75, k: 1 }],
];

/** bf16 values for x: random over a few binades, both signs, with zeros (±0), a NaN and infinities. */
function bf16Input(n: number, seed: number, device: 'cpu' | 'cuda' = 'cpu'): Tensor {
  const r = mulberry32(seed);
  const v = Float32Array.from({ length: n }, (_, i) => {
    if (i % 97 === 5) return i % 2 ? 0 : -0;
    if (i % 211 === 7) return NaN;
    if (i % 307 === 11) return i % 2 ? Infinity : -Infinity;
    return (r() * 2 - 1) * 2 ** Math.floor(r() * 8 - 4);
  });
  return Tensor.from(v, [n], device, 'bfloat16');
}

const bits16 = async (t: Tensor) => Array.from(await t.toBfloat16Bits());
// float32 results by their bits, every NaN as one: a NaN made by arithmetic (inf − inf in LRN's backward,
// from a NaN or infinite x) has the sign the hardware gives it (x86's default NaN is negative), not a value.
const bits32 = async (t: Tensor) => Array.from(new Uint32Array((await t.toFloat32Array()).buffer), (b) => ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff ? 0x7fc00000 : b));

/** The oracle: the float32 op on x's values, cast to bfloat16. */
function viaFloat32(x: Tensor, f: (xf: Tensor) => Tensor): Tensor {
  using xf = cast(x, 'float32');
  using yf = f(xf);
  return cast(yf, 'bfloat16');
}

describe('bfloat16 activations on the CPU: the float32 op on the widened values, rounded once', () => {
  it.each([1, 3, 4, 1001, 65543])('relu, n = %i (in place too); reluBackward reads a bf16 y', async (n) => {
    using x = bf16Input(n, n);
    using y = relu(x);
    expect(y.dtype).toBe('bfloat16');
    using want = viaFloat32(x, (xf) => relu(xf));
    expect(await bits16(y)).toEqual(await bits16(want));
    using x2 = cast(x, 'bfloat16');
    expect(relu(x2, { inplace: true })).toBe(x2);
    expect(await bits16(x2)).toEqual(await bits16(want));

    const r = mulberry32(n + 1);
    using dy = Tensor.from(Float32Array.from({ length: n }, () => r() - 0.5), [n]);
    using dx = reluBackward(dy, y);
    expect(dx.dtype).toBe('float32');
    using yf = cast(y, 'float32');
    using dxWant = reluBackward(dy, yf);
    expect(await bits32(dx)).toEqual(await bits32(dxWant));
  });

  it.each([[1, 0.5], [7, 0.5], [1001, 0.3], [65543, 0.9], [64, 0], [64, 1]])('dropout, n = %i, p = %f', async (n, p) => {
    using x = bf16Input(n, 10 + n);
    const o = { p, seed: 1234567n + BigInt(n), offset: 3 };
    using y = dropout(x, o);
    expect(y.dtype).toBe('bfloat16');
    using want = viaFloat32(x, (xf) => dropout(xf, o));
    expect(await bits16(y)).toEqual(await bits16(want));
    // p = 0.5 scales by 2, exact: the kept values are 2·x exactly.
    if (p === 0.5) {
      const xs = await x.toFloat32Array();
      const ys = await y.toFloat32Array();
      ys.forEach((v, i) => v !== 0 && !Number.isNaN(v) && expect(v).toBe(2 * xs[i]));
    }
  });

  // AlexNet's pools at small batch and odd shapes: 3×3 stride 2 (overlapping), 2×2, padded, ceil mode.
  const pools: [number[], { kernelSize: number | [number, number]; stride?: number; padding?: number; ceilMode?: boolean }][] = [
    [[2, 5, 55, 55], { kernelSize: 3, stride: 2 }],
    [[1, 3, 13, 13], { kernelSize: 3, stride: 2 }],
    [[3, 2, 7, 9], { kernelSize: 2 }],
    [[2, 3, 8, 11], { kernelSize: [3, 2], stride: 2, padding: 1, ceilMode: true }],
  ];
  it.each(pools)('maxPool2d %j %j: y exact, indices those of the float32 pool', async (shape, opts) => {
    const n = shape.reduce((a, b) => a * b, 1);
    using flat = bf16Input(n, n + 5);
    using x = flat.reshape(shape);
    const { y, indices } = maxPool2d(x, opts);
    using _y = y;
    using _i = indices;
    expect(y.dtype).toBe('bfloat16');
    using xf = cast(x, 'float32');
    const ref = maxPool2d(xf, opts);
    using yf = ref.y;
    using idxf = ref.indices;
    using yw = cast(yf, 'bfloat16');
    expect(await bits16(y)).toEqual(await bits16(yw));
    expect(Array.from(await indices.toInt32Array())).toEqual(Array.from(await idxf.toInt32Array()));
    // Nothing was rounded: y widened is the float32 pool's output, bit for bit.
    using yBack = cast(y, 'float32');
    expect(await bits32(yBack)).toEqual(await bits32(yf));
  });

  it.each(lrnCases)('localResponseNorm %j %j: forward rounded once; backward from the bf16 x', async (shape, opts) => {
    const n = shape.reduce((a, b) => a * b, 1);
    using flat = bf16Input(n, n + 40);
    using x = flat.reshape(shape);
    using y = localResponseNorm(x, opts);
    expect(y.dtype).toBe('bfloat16');
    using want = viaFloat32(x, (xf) => localResponseNorm(xf, opts));
    expect(await bits16(y)).toEqual(await bits16(want));
    const r = mulberry32(n + 41);
    using dy = Tensor.from(Float32Array.from({ length: n }, () => r() - 0.5), shape);
    using dx = localResponseNormBackward(dy, x, opts);
    expect(dx.dtype).toBe('float32');
    using xf = cast(x, 'float32');
    using dxWant = localResponseNormBackward(dy, xf, opts);
    expect(await bits32(dx)).toEqual(await bits32(dxWant));
  });

  it('other dtypes are refused, naming both that would do', () => {
    using i = Tensor.zeros([1, 1, 2, 2], 'cpu', 'int32');
    expect(() => relu(i)).toThrow(/relu: expected x to be float32 or bfloat16, got int32/);
    expect(() => maxPool2d(i, { kernelSize: 2 })).toThrow(/maxPool2d: expected x to be float32 or bfloat16, got int32/);
    expect(() => dropout(i, { p: 0.5, seed: 1 })).toThrow(/dropout: expected x to be float32 or bfloat16, got int32/);
    expect(() => localResponseNorm(i, { size: 5 })).toThrow(/localResponseNorm: expected x to be float32 or bfloat16, got int32/);
    using b = Tensor.zeros([4], 'cpu', 'bfloat16');
    // The gradient is float32: a bf16 dy is refused.
    expect(() => reluBackward(b, b)).toThrow(/reluBackward: expected dy to be float32, got bfloat16/);
  });
});

// Convolutions: AlexNet's conv1 (11×11 stride 4, padding 2) and grouped conv2 at small sizes, and odd ones.
// [x shape, w shape, options]
const convCases: [number[], number[], { stride?: number; padding?: number; groups?: number }][] = [
  [[2, 3, 31, 31], [8, 3, 11, 11], { stride: 4, padding: 2 }],
  [[1, 6, 9, 9], [8, 3, 5, 5], { padding: 2, groups: 2 }],
  [[3, 5, 7, 6], [7, 5, 3, 3], { stride: 2, padding: 1 }],
];

/** A convolution with bf16 activations against the float32 one on the widened values, on `device`, in
 * `precision`: y (float32 out, and bf16 out rounded once) and every gradient bit for bit. */
async function convAgainstFloat(device: 'cpu' | 'cuda', precision: 'fp32' | 'bf16', xs: number[], ws: number[], o: { stride?: number; padding?: number; groups?: number }, seed: number) {
  const nx = xs.reduce((a, b) => a * b, 1), nw = ws.reduce((a, b) => a * b, 1);
  using xflat = bf16Input(nx, seed, device);
  using x = xflat.reshape(xs);
  const r = mulberry32(seed + 1);
  using w = Tensor.from(Float32Array.from({ length: nw }, () => (r() - 0.5) * 0.4), ws, device);
  using b = Tensor.from(Float32Array.from({ length: ws[0] }, () => r() - 0.5), [ws[0]], device);
  using xf = cast(x, 'float32');
  const opts = { ...o, precision };
  // float32 out, no ReLU: the float32 op on x's values, exactly.
  using y32 = conv2d(x, w, b, { ...opts, dtype: 'float32' });
  using want32 = conv2d(xf, w, b, opts);
  expect(y32.dtype).toBe('float32');
  expect(await bits32(y32), 'y (float32 out)').toEqual(await bits32(want32));
  // bf16 out with the fused ReLU, kept columns: rounded once.
  const fwd = conv2dForTraining(x, w, b, { ...opts, relu: true });
  using y = fwd.y;
  using cols = fwd.columns;
  expect(y.dtype).toBe('bfloat16');
  using yfRef = conv2d(xf, w, b, { ...opts, relu: true });
  using yWant = cast(yfRef, 'bfloat16');
  expect(await bits16(y), 'y (bf16 out)').toEqual(await bits16(yWant));
  // the backward through the ReLU, from the bf16 x and y (kept columns, then recomputed ones)
  const ny = y.size;
  using dy = Tensor.from(Float32Array.from({ length: ny }, () => r() - 0.5), y.shape, device);
  using yw = cast(y, 'float32');
  const ref = conv2dBackward(dy, xf, w, { ...opts, reluOutput: yw });
  for (const columns of [cols, null]) {
    const g = conv2dBackward(dy, x, w, { ...opts, reluOutput: y, ...(columns ? { columns } : {}) });
    expect(await bits32(g.dx!), `dx${columns ? ' (kept columns)' : ''}`).toEqual(await bits32(ref.dx!));
    expect(await bits32(g.dw), 'dw').toEqual(await bits32(ref.dw));
    expect(await bits32(g.db!), 'db').toEqual(await bits32(ref.db!));
    g.dx?.dispose();
    g.dw.dispose();
    g.db?.dispose();
  }
  ref.dx?.dispose();
  ref.dw.dispose();
  ref.db?.dispose();
}

// Linear layers: fc8's shape (in 4096 at small out), odd ones, and an empty batch.
const linearCases: [number, number, number][] = [
  [3, 4096, 10],
  [7, 37, 13],
  [1, 9, 1],
  [0, 5, 3],
];

/** A linear layer with bf16 activations against the float32 one on the widened values: y (float32 out,
 * and bf16 out through the fused ReLU, rounded once) and every gradient, bit for bit. */
async function linearAgainstFloat(device: 'cpu' | 'cuda', precision: 'fp32' | 'bf16', N: number, inF: number, out: number, seed: number) {
  using xflat = bf16Input(Math.max(N * inF, 1), seed, device);
  using x = N > 0 ? xflat.reshape([N, inF]) : Tensor.zeros([0, inF], device, 'bfloat16');
  const r = mulberry32(seed + 1);
  using w = Tensor.from(Float32Array.from({ length: out * inF }, () => (r() - 0.5) * 0.2), [out, inF], device);
  using b = Tensor.from(Float32Array.from({ length: out }, () => r() - 0.5), [out], device);
  using xf = cast(x, 'float32');
  using y32 = linear(x, w, b, { precision, dtype: 'float32' });
  using want32 = linear(xf, w, b, { precision });
  expect(await bits32(y32), 'y (float32 out)').toEqual(await bits32(want32));
  const fwd = linearForTraining(x, w, b, { precision, relu: true });
  using y = fwd.y;
  using kept = fwd.kept;
  expect(y.dtype).toBe('bfloat16');
  using yfRef = linear(xf, w, b, { precision, relu: true });
  using yWant = cast(yfRef, 'bfloat16');
  expect(await bits16(y), 'y (bf16 out)').toEqual(await bits16(yWant));
  using dy = Tensor.from(Float32Array.from({ length: N * out }, () => r() - 0.5), [N, out], device);
  using yw = cast(y, 'float32');
  const ref = linearBackward(dy, xf, w, { precision, reluOutput: yw });
  const g = linearBackward(dy, x, w, { precision, reluOutput: y, kept });
  expect(await bits32(g.dx!), 'dx').toEqual(await bits32(ref.dx!));
  expect(await bits32(g.dw), 'dw').toEqual(await bits32(ref.dw));
  expect(await bits32(g.db!), 'db').toEqual(await bits32(ref.db!));
  for (const t of [g.dx, g.dw, g.db, ref.dx, ref.dw, ref.db]) t?.dispose();
}

describe('linear layers with bfloat16 activations: the float32 layer on the widened values', () => {
  it.each(linearCases)('CPU: N %i, in %i, out %i (fp32 and bf16 GEMMs)', async (N, inF, out) => {
    await linearAgainstFloat('cpu', 'fp32', N, inF, out, 100 + inF);
    await linearAgainstFloat('cpu', 'bf16', N, inF, out, 110 + inF);
  });
  it('refuses other dtypes', () => {
    using x = Tensor.zeros([2, 3], 'cpu', 'int32');
    using w = Tensor.zeros([4, 3]);
    expect(() => linear(x, w, null)).toThrow(/linear: expected x to be float32 or bfloat16, got int32/);
    using xf = Tensor.zeros([2, 3]);
    expect(() => linear(xf, w, null, { dtype: 'int32' as never })).toThrow(/linear: dtype must be "float32" or "bfloat16", got "int32"/);
  });
});

describe("a model in precision 'bf16'", () => {
  it('stores the activations between its layers in bfloat16, its logits in float32; fp32 restores float32', async () => {
    using model = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 1, dropout: 0.5, precision: 'bf16' });
    const layers = model.modules().filter((m): m is Conv2d | Linear => m instanceof Conv2d || m instanceof Linear);
    expect(layers.map((m) => m.activationDtype)).toEqual([...layers.slice(0, -1).map(() => 'bfloat16'), 'float32']);
    const r = mulberry32(3);
    using x = Tensor.from(Float32Array.from({ length: 2 * 28 * 28 }, () => r()), [2, 1, 28, 28]);
    using logits = model.forward(x);
    expect(logits.dtype).toBe('float32');
    expect(Array.from(await logits.toFloat32Array()).every(Number.isFinite)).toBe(true);
    model.bf16Activations = false; // the GEMM inputs alone in bf16 (the design before)
    expect(layers.every((m) => m.activationDtype === 'float32')).toBe(true);
    model.bf16Activations = true;
    expect(layers[0].activationDtype).toBe('bfloat16');
    model.precision = 'fp32';
    expect(layers.every((m) => m.activationDtype === 'float32')).toBe(true);
    expect(() => (model.bf16Activations = 'yes' as never)).toThrow(/AlexNet.bf16Activations: expected a boolean, got "yes"/);
  });
});

describe('AdaptiveAvgPool2d on bfloat16 activations', () => {
  it("pools in float32 and rounds once; copies where the size is already the output's", async () => {
    using flat = bf16Input(2 * 3 * 7 * 7, 51);
    using x = flat.reshape([2, 3, 7, 7]);
    const pool = new AdaptiveAvgPool2d(6);
    using y = pool.forward(x);
    expect(y.dtype).toBe('bfloat16');
    using xf = cast(x, 'float32');
    using yf = adaptiveAvgPool2d(xf, 6);
    using want = cast(yf, 'bfloat16');
    expect(await bits16(y)).toEqual(await bits16(want));
    using x6 = flat.reshape([2, 3, 7, 7]);
    using same = new AdaptiveAvgPool2d(7).forward(x6);
    expect(same.dtype).toBe('bfloat16');
    expect(await bits16(same)).toEqual(await bits16(x6));
  });
});

describe('convolutions with bfloat16 activations: the float32 convolution on the widened values', () => {
  it.each(convCases)('CPU: x %j, w %j, %j (fp32 and bf16 GEMMs)', async (xs, ws, o) => {
    await convAgainstFloat('cpu', 'fp32', xs, ws, o, 60 + xs[1]);
    await convAgainstFloat('cpu', 'bf16', xs, ws, o, 70 + xs[1]);
  });

  it('a float32 x may give a bf16 y (a first layer); the legacy path and 1×1 convolutions refuse bf16', async () => {
    const r = mulberry32(5);
    using x = Tensor.from(Float32Array.from({ length: 2 * 3 * 8 * 8 }, () => r() - 0.5), [2, 3, 8, 8]);
    using w = Tensor.from(Float32Array.from({ length: 4 * 3 * 3 * 3 }, () => r() - 0.5), [4, 3, 3, 3]);
    using y = conv2d(x, w, null, { dtype: 'bfloat16', relu: true });
    using yf = conv2d(x, w, null, { relu: true });
    using yWant = cast(yf, 'bfloat16');
    expect(await bits16(y)).toEqual(await bits16(yWant));
    using w1 = Tensor.from(Float32Array.from({ length: 4 * 3 }, () => r() - 0.5), [4, 3, 1, 1]);
    expect(() => conv2d(x, w1, null, { dtype: 'bfloat16' })).toThrow(/conv2d: the output \(dtype\) is bfloat16, which the columns path alone takes, and this convolution takes the legacy one \(a 1×1 stride-1 unpadded convolution\): pass float32/);
    using xb = cast(x, 'bfloat16');
    setConvolutionPath('legacy');
    try {
      expect(() => conv2d(xb, w, null)).toThrow(/conv2d: x is bfloat16, which the columns path alone takes.*setConvolutionPath\('legacy'\)/);
      using dy = Tensor.zeros([2, 4, 6, 6]);
      expect(() => conv2dBackward(dy, xb, w)).toThrow(/conv2dBackward: x is bfloat16/);
    } finally {
      setConvolutionPath('columns');
    }
    expect(() => conv2d(x, w, null, { dtype: 'float16' as never })).toThrow(/conv2d: dtype must be "float32" or "bfloat16", got "float16"/);
    using xi = Tensor.zeros([2, 3, 8, 8], 'cpu', 'int32');
    expect(() => conv2d(xi, w, null)).toThrow(/conv2d: expected x to be float32 or bfloat16, got int32/);
  });
});

describe.skipIf(noCuda)('bfloat16 activations on CUDA match the CPU bit for bit', () => {
  // On CUDA the oracle is the device's own float32 convolution on the widened values (the float32 path is
  // held to the CPU by test/ops/conv2d.test.ts): bit for bit, in fp32 and in bf16 (bf16 column storage,
  // where im2col copies a bf16 x's values as they are and rounds a float32 x's: the same bits).
  it.each(convCases)('convolution: x %j, w %j, %j', async (xs, ws, o) => {
    await convAgainstFloat('cuda', 'fp32', xs, ws, o, 80 + xs[1]);
    await convAgainstFloat('cuda', 'bf16', xs, ws, o, 90 + xs[1]);
  });

  // The same oracle on the device: bf16 storage reads a bf16 x as its GEMM operand, where a float32 x is
  // rounded to the same bits first.
  it.each(linearCases)('linear: N %i, in %i, out %i', async (N, inF, out) => {
    await linearAgainstFloat('cuda', 'fp32', N, inF, out, 120 + inF);
    await linearAgainstFloat('cuda', 'bf16', N, inF, out, 130 + inF);
  });

  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));
  // Sizes: fc6's activations at batch 128 on a GPU (a float4/ushort4 path with no tail), odd ones for the
  // scalar tails.
  it.each([cudaBatch(128) * 4096, 1, 3, 1001])('relu, reluBackward and dropout, n = %i', async (n) => {
    using xc = bf16Input(n, n + 20);
    using xg = xc.to('cuda');
    using yc = relu(xc);
    using yg = relu(xg);
    expect(await bits16(yg)).toEqual(await bits16(yc));
    const r = mulberry32(n + 21);
    using dyc = Tensor.from(Float32Array.from({ length: n }, () => r() - 0.5), [n]);
    using dyg = dyc.to('cuda');
    using dxc = reluBackward(dyc, yc);
    using dxg = reluBackward(dyg, yg);
    expect(await bits32(dxg)).toEqual(await bits32(dxc));
    for (const p of [0.5, 0.3]) {
      const o = { p, seed: 99n, offset: 7 };
      using dc = dropout(xc, o);
      using dg = dropout(xg, o);
      expect(await bits16(dg)).toEqual(await bits16(dc));
    }
  });

  it.each([
    [[cudaBatch(128), 96, 55, 55], 3, 2],
    [[cudaBatch(128), 256, 13, 13], 3, 2],
    [[2, 3, 7, 9], 2, 2],
  ])('maxPool2d %j kernel %i stride %i', async (shape, k, s) => {
    const n = shape.reduce((a, b) => a * b, 1);
    using flatc = bf16Input(n, n + 30);
    using xc = flatc.reshape(shape);
    using xg = xc.to('cuda');
    const c = maxPool2d(xc, { kernelSize: k, stride: s });
    const g = maxPool2d(xg, { kernelSize: k, stride: s });
    using _a = c.y;
    using _b = c.indices;
    using _c = g.y;
    using _d = g.indices;
    expect(g.y.dtype).toBe('bfloat16');
    expect(await bits16(g.y)).toEqual(await bits16(c.y));
    expect(Array.from(await g.indices.toInt32Array())).toEqual(Array.from(await c.indices.toInt32Array()));
  });

  // The emulated device runs lrn.h's arithmetic exactly (rsqrtf = 1/sqrtf): the same bits as the CPU. A GPU's
  // rsqrtf and powf differ from the CPU's by a few float32 ulps (test/ops/lrn.test.ts derives ≤ 18u for y),
  // which can move a rounded bf16 y by one bf16 ulp where it sits on a rounding boundary, never more.
  it.each(lrnCases)('localResponseNorm %j %j', async (shape, opts) => {
    const n = shape.reduce((a, b) => a * b, 1);
    using flat = bf16Input(n, n + 50);
    using xc = flat.reshape(shape);
    using xg = xc.to('cuda');
    const r = mulberry32(n + 51);
    using dyc = Tensor.from(Float32Array.from({ length: n }, () => r() - 0.5), shape);
    using dyg = dyc.to('cuda');
    using yc = localResponseNorm(xc, opts);
    using yg = localResponseNorm(xg, opts);
    using dxc = localResponseNormBackward(dyc, xc, opts);
    using dxg = localResponseNormBackward(dyg, xg, opts);
    if (emulated) {
      expect(await bits16(yg)).toEqual(await bits16(yc));
      expect(await bits32(dxg)).toEqual(await bits32(dxc));
    } else {
      const a = await yg.toBfloat16Bits(), b = await yc.toBfloat16Bits();
      const far = Array.from(a).findIndex((v, i) => Math.abs(v - b[i]) > 1 || (v ^ b[i]) & 0x8000);
      expect(far, 'a bf16 y more than one bf16 ulp from the CPU').toBe(-1);
      const g = await dxg.toFloat32Array(), c = await dxc.toFloat32Array();
      let num = 0, den = 0;
      g.forEach((v, i) => ((num += (v - c[i]) ** 2), (den += c[i] ** 2)));
      expect(Math.sqrt(num / den)).toBeLessThan(1e-5);
    }
  });

  it.skipIf(!emulated)('a planted LRN window one channel short is caught in bf16 too (emulated device)', async () => {
    const shape = [2, 9, 17], opts = { size: 5, alpha: 0.5, beta: 0.75, k: 1 };
    using flat = bf16Input(2 * 9 * 17, 77);
    using xc = flat.reshape(shape);
    using xg = xc.to('cuda');
    using yc = localResponseNorm(xc, opts);
    const planted = await withPlanted('lrnShortWindow', async () => {
      using yg = localResponseNorm(xg, opts);
      return yg.toBfloat16Bits();
    });
    expect(Array.from(planted)).not.toEqual(await bits16(yc));
  });
});
