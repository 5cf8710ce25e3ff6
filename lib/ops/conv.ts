/** 2-D convolution (cross-correlation, as PyTorch's F.conv2d), NCHW float32, with groups (the 2012 paper's
 * two-tower conv2/4/5 are groups 2), as im2col + GEMM over the whole batch — or over chunks of images when
 * the column buffer would exceed `workspaceBytes`. Weights are [K, C/groups, kh, kw], bias [K].
 * Native: native/ops/conv2d.*, native/ops/gemm.*, native/bind/conv2d.cc. */
import { describe } from '../errors.js';
import { Tensor, parseShape } from '../tensor.js';
import { expectActivation, expectShape, expectTensor, formatShape, intOption, nativeOps, pairOption, reluBackwardOptions, reluForwardOption, sameDevice, st, gemmMath, type Precision } from './util.js';

export interface Conv2dOptions {
  /** Step between windows (sh, sw). Default 1. */
  stride?: number | [number, number];
  /** Implicit zero padding on each side (ph, pw). Default 0. */
  padding?: number | [number, number];
  /** Channel groups: C and K must be divisible by it. Default 1. */
  groups?: number;
  /** GEMM precision: 'fp32' (strict), 'tf32' (CUDA tensor cores; the CPU computes in fp32) or 'bf16' (inputs
   * rounded to bfloat16, float32 sums; see Precision).
   * Default: getDefaultPrecision(). */
  precision?: Precision;
  /** Cap on the im2col column buffer in bytes (default 1 GiB on CUDA, 256 MiB on the CPU). The batch is
   * processed in chunks of as many images as fit (always at least one image). */
  workspaceBytes?: number;
}

export interface Conv2dForwardOptions extends Conv2dOptions {
  /** Apply ReLU to the output: y = max(conv2d(x, w) + b, 0), what `relu(conv2d(...))` gives. On CUDA the
   * bias and the ReLU are one kernel after the GEMMs (with a bias, one launch fewer than the two ops); on
   * the CPU the same passes run in one task. Its backward is `conv2dBackward` with `reluOutput: y`.
   * Default false. */
  relu?: boolean;
  /** The output's dtype: 'float32' or 'bfloat16' (computed in float32, rounded once to nearest even).
   * Default: x's. bfloat16 activations (x or y) take the columns path; a convolution that takes the
   * legacy one (a 1×1 stride-1 unpadded convolution, or setConvolutionPath('legacy')) refuses them. */
  dtype?: 'float32' | 'bfloat16';
}

/** How convolutions run (native/ops/conv2d.h says both in full):
 * - 'columns' (the default): im2col into a batch-wide layout with 16-byte-aligned rows (the reduction
 *   dimension padded to a multiple of 4 with zero rows), one GEMM per group over the whole chunk, the NCHW
 *   permute folded into the bias+ReLU pass; a training forward keeps its columns for the backward
 *   (`conv2dForTraining`), which reads them instead of computing im2col again, and writes dz in the
 *   (K, N, Ho·Wo) layout its GEMMs read directly.
 * - 'legacy': the path before it (per-image GEMMs, im2col again and a permute in the backward), kept for
 *   A/B comparisons (bench/run.mjs --conv-path legacy; the GPU check). */
export type ConvolutionPath = 'columns' | 'legacy';
let convPath: ConvolutionPath = 'columns';

/** Sets the convolution path for later calls (process-wide). Returns the previous one. */
export function setConvolutionPath(path: ConvolutionPath): ConvolutionPath {
  if (path !== 'columns' && path !== 'legacy') throw new TypeError(`setConvolutionPath: expected 'columns' or 'legacy', got ${describe(path)}`);
  const prev = convPath;
  convPath = path;
  return prev;
}

/** The convolution path later calls take. */
export function getConvolutionPath(): ConvolutionPath {
  return convPath;
}

/** How conv2dBackward reduces the bias gradient, db[k] = Σ over images and pixels (native/ops/conv2d.h):
 * - 'two-stage' (the default): (channel × image chunk) partial sums that fill every SM, then one sum per
 *   channel over its chunks, in a fixed order;
 * - 'legacy': the reduction before it, one block per channel (96 blocks for conv1), kept for A/B
 *   comparisons (bench/run.mjs --bias-grad-path legacy; the GPU check).
 * Both sum in double in a fixed order (another one each: db may differ in the last bit of float32), run
 * to run the same bits, on the CPU as on CUDA. */
export type BiasGradientPath = 'two-stage' | 'legacy';
let biasGradPath: BiasGradientPath = 'two-stage';

/** Sets the bias gradient's reduction for later conv2dBackward calls (process-wide). Returns the previous one. */
export function setBiasGradientPath(path: BiasGradientPath): BiasGradientPath {
  if (path !== 'two-stage' && path !== 'legacy') throw new TypeError(`setBiasGradientPath: expected 'two-stage' or 'legacy', got ${describe(path)}`);
  const prev = biasGradPath;
  biasGradPath = path;
  return prev;
}

/** The bias gradient's reduction later conv2dBackward calls take. */
export function getBiasGradientPath(): BiasGradientPath {
  return biasGradPath;
}

const pathCode = (p: ConvolutionPath) => (p === 'legacy' ? 1 : 0);

export interface Conv2dBackwardOptions extends Conv2dOptions {
  /** The columns that `conv2dForTraining` kept for this x and w: the backward reads them instead of
   * computing im2col again, and overwrites them (they serve one backward; dispose them after). The backward
   * must use the forward's precision and workspaceBytes: on CUDA in 'bf16' the columns are stored in bfloat16
   * (half the bytes, another layout). */
  columns?: Tensor | null;
  /** Compute dx (default true; conv1 needs none). */
  needInputGrad?: boolean;
  /** Compute db (default true). */
  needBiasGrad?: boolean;
  /** The output y of a forward with `relu: true`: dy is then the gradient at the ReLU's output and the
   * gradients go through the ReLU too (dy masked where y ≤ 0, in the bias gradient's pass). */
  reluOutput?: Tensor;
  /** With reluOutput: write the masked gradient over dy instead of a scratch buffer (dy is then the
   * gradient at the convolution's output) — for a caller that has no further use for dy. Default false.
   * The legacy path only: on the columns path dz has another layout than dy and dy is left as it is. */
  reluInPlace?: boolean;
}

export interface Conv2dGrads {
  dx: Tensor | null;
  dw: Tensor;
  db: Tensor | null;
}

interface Geometry {
  N: number;
  C: number;
  H: number;
  W: number;
  K: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  groups: number;
  Ho: number;
  Wo: number;
}

const INT_MAX = 2 ** 31 - 1;

function parseOptions(opts: unknown, op: string): Record<string, unknown> {
  if (opts === undefined) return {};
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new TypeError(`${op}: expected options { stride?, padding?, groups?, precision?, workspaceBytes?, … }, got ${describe(opts)}`);
  return opts as Record<string, unknown>;
}

function boolOption(v: unknown, op: string, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new TypeError(`${op}: ${name} must be a boolean, got ${describe(v)}`);
  return v;
}

/** Checks shapes and options together; every message says what was expected and what came. */
function geometry(xShape: readonly number[], wShape: readonly number[], o: Record<string, unknown>, op: string): Geometry {
  const xs = formatShape(xShape);
  const ws = formatShape(wShape);
  if (wShape.length !== 4) throw new RangeError(`${op}: expected w of shape [K, C/groups, kh, kw], got ${ws}`);
  if (wShape.some((d) => d < 1)) throw new RangeError(`${op}: expected w of shape [K, C/groups, kh, kw] with every dimension ≥ 1, got ${ws}`);
  const groups = o.groups === undefined ? 1 : intOption(o.groups, op, 'groups', 1);
  const [sh, sw] = o.stride === undefined ? [1, 1] : pairOption(o.stride, op, 'stride', 1);
  const [ph, pw] = o.padding === undefined ? [0, 0] : pairOption(o.padding, op, 'padding', 0);
  const [K, Cg, kh, kw] = wShape;
  const C = Cg * groups;
  if (K % groups !== 0) throw new RangeError(`${op}: out channels K = ${K} (w is ${ws}) must be divisible by groups ${groups}`);
  if (xShape.length !== 4) throw new RangeError(`${op}: expected x of shape [N, C, H, W] with C = ${C} (w is ${ws}, groups ${groups}), got ${xs}`);
  const [N, xC, H, W] = xShape;
  if (xC % groups !== 0) throw new RangeError(`${op}: in channels C = ${xC} (x is ${xs}) must be divisible by groups ${groups}`);
  if (xC !== C) throw new RangeError(`${op}: expected x of shape [N, C, H, W] with C = ${C} (w is ${ws}, groups ${groups}), got ${xs}`);
  if (H < 1 || W < 1) throw new RangeError(`${op}: expected x with a non-empty plane (H, W ≥ 1), got ${xs}`);
  if (H + 2 * ph < kh || W + 2 * pw < kw)
    throw new RangeError(`${op}: kernel ${kh}×${kw} is larger than the padded input ${H + 2 * ph}×${W + 2 * pw} (x is ${xs}, padding ${ph}×${pw})`);
  const Ho = Math.floor((H + 2 * ph - kh) / sh) + 1;
  const Wo = Math.floor((W + 2 * pw - kw) / sw) + 1;
  // The native code indexes one image's input, columns and output with 32-bit integers.
  if (N > INT_MAX || C * H * W > INT_MAX || C * Ho * Wo > INT_MAX || K * Ho * Wo > INT_MAX || C * kh * kw > INT_MAX)
    throw new RangeError(`${op}: x ${xs} with w ${ws} is too large: one image's input, output or columns exceed 2^31 − 1 elements`);
  return { N, C, H, W, K, kh, kw, sh, sw, ph, pw, groups, Ho, Wo };
}

function workspaceOption(o: Record<string, unknown>, op: string): number {
  // 0 tells the native code to use its device's default cap.
  if (o.workspaceBytes === undefined) return 0;
  const v = intOption(o.workspaceBytes, op, 'workspaceBytes', 1);
  if (v > Number.MAX_SAFE_INTEGER) throw new RangeError(`${op}: workspaceBytes must be at most 2^53 − 1, got ${v}`);
  return v;
}

function biasArg(b: unknown, op: string, K: number): Tensor | null {
  if (b === null) return null;
  if (!(b instanceof Tensor)) throw new TypeError(`${op}: expected b to be a Tensor or null, got ${describe(b)}`);
  expectTensor(b, op, 'b');
  expectShape(b, op, 'b', [K]);
  return b;
}

function geomArgs(g: Geometry): number[] {
  return [g.N, g.C, g.H, g.W, g.K, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.groups];
}

/** The output shape [N, K, Ho, Wo] of conv2d for an input of shape xShape and weights of shape wShape,
 * Ho = ⌊(H + 2·ph − kh) / sh⌋ + 1 (likewise Wo). Throws the same errors as conv2d for bad shapes. */
export function conv2dOutputShape(xShape: readonly number[], wShape: readonly number[], opts?: Conv2dOptions): number[] {
  const op = 'conv2dOutputShape';
  const g = geometry(parseShape(xShape, `${op}: xShape`), parseShape(wShape, `${op}: wShape`), parseOptions(opts, op), op);
  return [g.N, g.K, g.Ho, g.Wo];
}

/** y = conv2d(x, w) + b: x [N, C, H, W], w [K, C/groups, kh, kw], b [K] or null → y [N, K, Ho, Wo];
 * with `relu: true`, y = max(conv2d(x, w) + b, 0). */
export function conv2d(x: Tensor, w: Tensor, b: Tensor | null, opts?: Conv2dForwardOptions): Tensor {
  return forward('conv2d', x, w, b, opts, false).y;
}

/** The floats of the whole batch's columns that a training forward keeps on the columns path, or 0 when
 * it keeps none (the legacy path, a 1×1 stride-1 unpadded convolution, an empty batch, or columns and the
 * GEMM's output over the workspace cap: the backward then computes them again, chunk by chunk). */
function columnsFloats(g: Geometry, ws: number, dev: 'cpu' | 'cuda', math: number): number {
  if (convPath === 'legacy' || g.N === 0) return 0;
  return nativeOps().conv2d_columns_floats(...geomArgs(g), ws, dev === 'cuda', math);
}

/** conv2d for training: y as conv2d gives it, and the columns for `conv2dBackward`'s `columns` option
 * (null when this convolution keeps none; see getConvolutionPath). The caller owns both. */
export function conv2dForTraining(x: Tensor, w: Tensor, b: Tensor | null, opts?: Conv2dForwardOptions): { y: Tensor; columns: Tensor | null } {
  return forward('conv2dForTraining', x, w, b, opts, true);
}

/** bfloat16 activations run on the columns path only (conv2d.h): say so before the call, not from the
 * native code (whose CPU error would come with the next read). */
function bf16NeedsColumns(op: string, g: Geometry, what: string, backward: boolean): void {
  const identity = g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 && g.ph === 0 && g.pw === 0;
  const tooWide = backward && g.N * g.Ho * g.Wo > INT_MAX - 7;
  if (convPath === 'legacy' || identity || tooWide)
    throw new TypeError(`${op}: ${what} is bfloat16, which the columns path alone takes, and this convolution takes the legacy one (${convPath === 'legacy' ? "setConvolutionPath('legacy')" : identity ? 'a 1×1 stride-1 unpadded convolution' : `N·Ho·Wo = ${g.N * g.Ho * g.Wo} exceeds 2^31`}): pass float32`);
}

function forward(op: string, x: Tensor, w: Tensor, b: Tensor | null, opts: Conv2dForwardOptions | undefined, keepColumns: boolean): { y: Tensor; columns: Tensor | null } {
  expectActivation(x, op, 'x');
  expectTensor(w, op, 'w');
  const o = parseOptions(opts, op);
  const g = geometry(x.shape, w.shape, o, op);
  const bias = biasArg(b, op, g.K);
  const dev = sameDevice(op, { x, w, b: bias });
  const math = gemmMath(o.precision, op);
  const ws = workspaceOption(o, op);
  const fuseRelu = reluForwardOption(o, op, 'conv2dBackward');
  const yType = o.dtype === undefined ? x.dtype : o.dtype;
  if (yType !== 'float32' && yType !== 'bfloat16') throw new TypeError(`${op}: dtype must be "float32" or "bfloat16", got ${describe(o.dtype)}`);
  if (x.dtype === 'bfloat16') bf16NeedsColumns(op, g, 'x', false);
  else if (yType === 'bfloat16') bf16NeedsColumns(op, g, 'the output (dtype)', false);
  const n = keepColumns ? columnsFloats(g, ws, dev, math) : 0;
  const y = Tensor.empty([g.N, g.K, g.Ho, g.Wo], dev, yType);
  let columns: Tensor | null = null;
  try {
    columns = n > 0 ? Tensor.empty([n], dev) : null;
    if (g.N > 0)
      nativeOps().conv2d_forward(st(x, op), st(w, op), bias ? st(bias, op) : null, st(y, op), ...geomArgs(g), ws, math, fuseRelu, pathCode(convPath), columns ? st(columns, op) : null, x.dtype, yType);
  } catch (e) {
    y.dispose();
    columns?.dispose();
    throw e;
  }
  return { y, columns };
}

/**
 * Gradients of conv2d given dy [N, K, Ho, Wo], the forward's x and w, and the same options:
 * dx [N, C, H, W] (null when needInputGrad is false), dw [K, C/groups, kh, kw], db [K] (null when
 * needBiasGrad is false). All are new tensors the caller owns. x and reluOutput may be bfloat16 (the
 * columns path); the gradients are float32.
 */
export function conv2dBackward(dy: Tensor, x: Tensor, w: Tensor, opts?: Conv2dBackwardOptions): Conv2dGrads {
  const op = 'conv2dBackward';
  expectTensor(dy, op, 'dy');
  expectActivation(x, op, 'x');
  expectTensor(w, op, 'w');
  const o = parseOptions(opts, op);
  const g = geometry(x.shape, w.shape, o, op);
  expectShape(dy, op, 'dy', [g.N, g.K, g.Ho, g.Wo]);
  const dev = sameDevice(op, { dy, x, w });
  const needDx = boolOption(o.needInputGrad, op, 'needInputGrad', true);
  const needDb = boolOption(o.needBiasGrad, op, 'needBiasGrad', true);
  const math = gemmMath(o.precision, op);
  const ws = workspaceOption(o, op);
  const relu = reluBackwardOptions(o, op, 'conv2d', dy, true);
  if (x.dtype === 'bfloat16') bf16NeedsColumns(op, g, 'x', true);
  else if (relu.y?.dtype === 'bfloat16') bf16NeedsColumns(op, g, 'reluOutput', true);
  const columns = o.columns === undefined || o.columns === null ? null : o.columns;
  if (columns !== null) {
    if (!(columns instanceof Tensor)) throw new TypeError(`${op}: columns must be a Tensor (from conv2dForTraining) or null, got ${describe(columns)}`);
    expectTensor(columns, op, 'columns');
    sameDevice(op, { dy, columns });
    const want = nativeOps().conv2d_columns_floats(...geomArgs(g), ws, dev === 'cuda', math);
    if (want === 0 || columns.shape.length !== 1 || columns.shape[0] !== want)
      throw new RangeError(`${op}: expected columns of shape [${want}] (what conv2dForTraining keeps for x ${formatShape(x.shape)}, w ${formatShape(w.shape)}${want === 0 ? ': none' : ''}), got ${formatShape(columns.shape)}`);
  }
  const made: Tensor[] = [];
  try {
    const dx = needDx ? Tensor.empty(x.shape, dev) : null;
    if (dx) made.push(dx);
    const dw = Tensor.empty(w.shape, dev);
    made.push(dw);
    const db = needDb ? Tensor.empty([g.K], dev) : null;
    if (db) made.push(db);
    nativeOps().conv2d_backward(
      st(dy, op), st(x, op), st(w, op), dx ? st(dx, op) : null, st(dw, op), db ? st(db, op) : null, ...geomArgs(g), ws, math,
      relu.y ? st(relu.y, op) : null, relu.inPlace, columns ? 0 : pathCode(convPath), columns ? st(columns, op) : null,
      x.dtype, relu.y?.dtype ?? 'float32', biasGradPath === 'legacy' ? 1 : 0,
    );
    return { dx, dw, db };
  } catch (e) {
    made.forEach((t) => t.dispose());
    throw e;
  }
}
