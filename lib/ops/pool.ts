/** Pooling ops, NCHW float32, PyTorch semantics: max pooling with argmax indices (nn.MaxPool2d,
 * AlexNet's overlapping 3×3 stride 2) and adaptive average pooling (torchvision's AdaptiveAvgPool2d((6, 6))).
 * Native: native/ops/maxpool2d.*, native/ops/avgpool2d.*, native/bind/pool.cc. */
import { describe } from '../errors.js';
import { Tensor, parseShape } from '../tensor.js';
import { expectActivation, expectShape, expectTensor, formatShape, nativeOps, pairOption, sameDevice, st } from './util.js';

export interface MaxPool2dOptions {
  /** Window size (kh, kw). */
  kernelSize: number | [number, number];
  /** Step between windows; defaults to kernelSize. */
  stride?: number | [number, number];
  /** Implicit −∞ padding on each side; at most half of kernelSize (PyTorch's rule). Default 0. */
  padding?: number | [number, number];
  /** Output size rounded up instead of down; the last window must still start inside the input or the
   * left padding (PyTorch's ceil_mode). Default false. */
  ceilMode?: boolean;
}

/** Parsed window geometry of a max pooling. */
interface Geometry {
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  ceilMode: boolean;
}

// int32 indices address an input plane: H·W must fit.
const MAX_PLANE = 2 ** 31 - 1;

const showOpt = (v: number | readonly number[]) => (typeof v === 'number' ? String(v) : formatShape(v as number[]));

function parseMaxPoolOptions(opts: unknown, op: string): Geometry {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new TypeError(`${op}: expected options { kernelSize, stride?, padding?, ceilMode? }, got ${describe(opts)}`);
  const o = opts as Record<string, unknown>;
  if (o.kernelSize === undefined) throw new TypeError(`${op}: options.kernelSize is required (an integer or [int, int] ≥ 1)`);
  const [kh, kw] = pairOption(o.kernelSize, op, 'kernelSize', 1);
  const [sh, sw] = o.stride === undefined ? [kh, kw] : pairOption(o.stride, op, 'stride', 1);
  const [ph, pw] = o.padding === undefined ? [0, 0] : pairOption(o.padding, op, 'padding', 0);
  if (o.ceilMode !== undefined && typeof o.ceilMode !== 'boolean')
    throw new TypeError(`${op}: ceilMode must be a boolean, got ${describe(o.ceilMode)}`);
  if (2 * ph > kh || 2 * pw > kw)
    throw new RangeError(
      `${op}: padding ${showOpt(o.padding as number | number[])} must be at most half of kernelSize ${showOpt(o.kernelSize as number | number[])}`,
    );
  return { kh, kw, sh, sw, ph, pw, ceilMode: o.ceilMode === true };
}

/** PyTorch's pooling_output_shape for one dimension; the caller has checked that inSize + 2·pad ≥ kernel. */
function outSize(inSize: number, k: number, s: number, p: number, ceil: boolean): number {
  let o = Math.floor((inSize + 2 * p - k + (ceil ? s - 1 : 0)) / s) + 1;
  // ceil mode: the last window must start inside the input or the left padding
  if (ceil && (o - 1) * s >= inSize + p) o--;
  return o;
}

function parseInputShape(shape: unknown, op: string, name: string): readonly number[] {
  const s = parseShape(shape, `${op}: ${name}`);
  if (s.length !== 4) throw new RangeError(`${op}: expected ${name} of shape [N, C, H, W], got ${formatShape(s)}`);
  if (s[2] < 1 || s[3] < 1) throw new RangeError(`${op}: expected ${name} with a non-empty plane (H, W ≥ 1), got ${formatShape(s)}`);
  if (s[2] * s[3] > MAX_PLANE)
    throw new RangeError(`${op}: ${name} plane ${s[2]}×${s[3]} has more than 2^31 − 1 elements (int32 indices)`);
  return s;
}

function outputShape(s: readonly number[], g: Geometry, op: string, opts: MaxPool2dOptions): number[] {
  const [N, C, H, W] = s;
  if (H + 2 * g.ph < g.kh || W + 2 * g.pw < g.kw) {
    const pad = opts.padding === undefined ? '0' : showOpt(opts.padding);
    throw new RangeError(
      `${op}: kernelSize ${showOpt(opts.kernelSize)} is larger than the padded input ${H + 2 * g.ph}×${W + 2 * g.pw} (padding ${pad})`,
    );
  }
  return [N, C, outSize(H, g.kh, g.sh, g.ph, g.ceilMode), outSize(W, g.kw, g.sw, g.pw, g.ceilMode)];
}

/** The output shape [N, C, Ho, Wo] of maxPool2d for an input of shape [N, C, H, W]. */
export function maxPool2dOutputShape(xShape: readonly number[], opts: MaxPool2dOptions): number[] {
  const op = 'maxPool2dOutputShape';
  const g = parseMaxPoolOptions(opts, op);
  return outputShape(parseInputShape(xShape, op, 'xShape'), g, op, opts);
}

// The window geometry and input shape behind each indices tensor made by maxPool2d, so that
// maxPool2dBackward can run the deterministic CUDA gather without being given the options again.
const geometryOf = new WeakMap<Tensor, { g: Geometry; inputShape: readonly number[] }>();

/**
 * 2-D max pooling of x [N, C, H, W]. Returns y [N, C, Ho, Wo] and int32 `indices` of the same shape: for
 * each output, the flat index ih·W + iw of its maximum within the input plane (PyTorch's
 * return_indices). Ties go to the first element in raster order; a NaN in a window is its maximum.
 * x may be bfloat16: y is then bfloat16 too (each output is one of x's values, so nothing is rounded), and
 * the indices are those of the float32 pooling of x's values.
 */
export function maxPool2d(x: Tensor, opts: MaxPool2dOptions): { y: Tensor; indices: Tensor } {
  const op = 'maxPool2d';
  expectActivation(x, op, 'x', { rank: 4, shape: '[N, C, H, W]' });
  const g = parseMaxPoolOptions(opts, op);
  const s = parseInputShape(x.shape, op, 'x');
  const out = outputShape(s, g, op, opts);
  const y = Tensor.empty(out, x.device, x.dtype);
  const indices = Tensor.empty(out, x.device, 'int32');
  try {
    if (y.size > 0)
      nativeOps().maxpool2d_forward(st(x, op), st(y, op), st(indices, op), s[0], s[1], s[2], s[3], g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, out[2], out[3], x.dtype);
  } catch (e) {
    y.dispose();
    indices.dispose();
    throw e;
  }
  geometryOf.set(indices, { g, inputShape: s });
  return { y, indices };
}

/**
 * Gradient of maxPool2d with respect to its input: dx [inputShape] with dx[p] = Σ dy[o] over the outputs o
 * whose index is p. `indices` must come from maxPool2d. On CUDA the gradient is a deterministic gather that
 * needs the window geometry: it is remembered for indices made by maxPool2d, or may be passed as `opts`
 * (the forward's options); with neither (e.g. indices copied to another tensor), CUDA falls back to an
 * atomic scatter, whose last bits may vary between runs where three or more windows pick one element.
 */
export function maxPool2dBackward(dy: Tensor, indices: Tensor, inputShape: readonly number[], opts?: MaxPool2dOptions): Tensor {
  const op = 'maxPool2dBackward';
  expectTensor(dy, op, 'dy', { rank: 4, shape: '[N, C, Ho, Wo]' });
  expectTensor(indices, op, 'indices', { rank: 4, shape: '[N, C, Ho, Wo]', dtype: 'int32' });
  expectShape(indices, op, 'indices', dy.shape);
  const device = sameDevice(op, { dy, indices });
  const s = parseInputShape(inputShape, op, 'inputShape');
  if (s[0] !== dy.shape[0] || s[1] !== dy.shape[1])
    throw new RangeError(`${op}: inputShape ${formatShape(s)} and dy ${formatShape(dy.shape)} differ in N or C`);
  let g: Geometry | undefined;
  if (opts !== undefined) {
    g = parseMaxPoolOptions(opts, op);
    const want = outputShape(s, g, op, opts);
    if (want.some((d, i) => d !== dy.shape[i]))
      throw new RangeError(`${op}: maxPool2d of an input ${formatShape(s)} with these options gives ${formatShape(want)}, but dy is ${formatShape(dy.shape)}`);
  }
  const known = geometryOf.get(indices);
  if (known) {
    if (known.inputShape.some((d, i) => d !== s[i]))
      throw new RangeError(`${op}: inputShape ${formatShape(s)} differs from the input ${formatShape(known.inputShape)} these indices were made from`);
    if (g && (['kh', 'kw', 'sh', 'sw', 'ph', 'pw'] as const).some((k) => g![k] !== known.g[k]))
      throw new RangeError(`${op}: options differ from those these indices were made with`);
    g = known.g;
  }
  const [N, C, H, W] = s;
  const [, , Ho, Wo] = dy.shape;
  const dx = Tensor.empty(s, device);
  try {
    if (dx.size > 0) {
      const args = [st(dy, op), st(indices, op), st(dx, op), N, C, H, W, Ho, Wo];
      if (g) nativeOps().maxpool2d_backward(...args, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw);
      else nativeOps().maxpool2d_backward(...args);
    }
  } catch (e) {
    dx.dispose();
    throw e;
  }
  return dx;
}

function parseOutputSize(v: unknown, op: string): [number, number] {
  return pairOption(v, op, 'outputSize', 1);
}

/**
 * Adaptive 2-D average pooling of x [N, C, H, W] to [N, C, Ho, Wo] (PyTorch's AdaptiveAvgPool2d): output
 * row oh averages input rows [floor(oh·H/Ho), ceil((oh+1)·H/Ho)), columns likewise. H == Ho is the
 * identity; H < Ho repeats rows.
 */
export function adaptiveAvgPool2d(x: Tensor, outputSize: number | [number, number]): Tensor {
  const op = 'adaptiveAvgPool2d';
  expectTensor(x, op, 'x', { rank: 4, shape: '[N, C, H, W]' });
  const [Ho, Wo] = parseOutputSize(outputSize, op);
  const [N, C, H, W] = parseInputShape(x.shape, op, 'x');
  const y = Tensor.empty([N, C, Ho, Wo], x.device);
  try {
    if (y.size > 0) nativeOps().adaptive_avgpool2d_forward(st(x, op), st(y, op), N, C, H, W, Ho, Wo);
  } catch (e) {
    y.dispose();
    throw e;
  }
  return y;
}

/** Gradient of adaptiveAvgPool2d with respect to its input of shape `inputShape` [N, C, H, W]. */
export function adaptiveAvgPool2dBackward(dy: Tensor, inputShape: readonly number[]): Tensor {
  const op = 'adaptiveAvgPool2dBackward';
  expectTensor(dy, op, 'dy', { rank: 4, shape: '[N, C, Ho, Wo]' });
  const s = parseInputShape(inputShape, op, 'inputShape');
  const [N, C, H, W] = s;
  const [, , Ho, Wo] = dy.shape;
  if (N !== dy.shape[0] || C !== dy.shape[1])
    throw new RangeError(`${op}: inputShape ${formatShape(s)} and dy ${formatShape(dy.shape)} differ in N or C`);
  if (Ho < 1 || Wo < 1) throw new RangeError(`${op}: expected dy with a non-empty plane, got ${formatShape(dy.shape)}`);
  const dx = Tensor.empty(s, dy.device);
  try {
    if (dx.size > 0) nativeOps().adaptive_avgpool2d_backward(st(dy, op), st(dx, op), N, C, H, W, Ho, Wo);
  } catch (e) {
    dx.dispose();
    throw e;
  }
  return dx;
}
