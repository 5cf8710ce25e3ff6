/** Bilinear resize of NCHW float32 batches, PyTorch semantics: `F.interpolate(x, size=(Ho, Wo),
 * mode='bilinear', align_corners=False)` (half-pixel centres, the source coordinate clamped at 0 and the
 * index at the edge), or `align_corners=True`. Upscales and downscales (without antialiasing, as PyTorch's
 * default). Its use: upscaling Fashion-MNIST's 28×28 batches to the paper AlexNet's 227×227 on the device.
 * Native: native/ops/resize.*, native/bind/resize.cc. */
import { describe } from '../errors.js';
import { Tensor, parseShape } from '../tensor.js';
import { expectTensor, formatShape, nativeOps, st } from './util.js';

export interface ResizeOptions {
  /** Map the corner pixels' centres onto each other (PyTorch's align_corners=True) instead of the images'
   * edges (half-pixel centres, the default: align_corners=False). */
  alignCorners?: boolean;
}

// Sizes cross into C++ as int32.
const MAX_DIM = 2 ** 31 - 1;

function parseOptions(opts: unknown, op: string): boolean {
  if (opts === undefined) return false;
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new TypeError(`${op}: expected options { alignCorners?: boolean }, got ${describe(opts)}`);
  const o = opts as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (k !== 'alignCorners') throw new TypeError(`${op}: unknown option ${describe(k)} (expected { alignCorners?: boolean })`);
  if (o.alignCorners !== undefined && typeof o.alignCorners !== 'boolean')
    throw new TypeError(`${op}: alignCorners must be a boolean, got ${describe(o.alignCorners)}`);
  return o.alignCorners === true;
}

function parseSize(size: unknown, op: string): [number, number] {
  const ok = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_DIM;
  if (!Array.isArray(size) || size.length !== 2 || !ok(size[0]) || !ok(size[1]))
    throw new TypeError(`${op}: size must be [Ho, Wo], two integers from 1 to ${MAX_DIM}, got ${describe(size)}`);
  return [size[0], size[1]];
}

function checkPlane(s: readonly number[], op: string, name: string, dims: string): void {
  if (s[2] < 1 || s[3] < 1) throw new RangeError(`${op}: expected ${name} with a non-empty plane (${dims} ≥ 1), got ${formatShape(s)}`);
  if (s[2] > MAX_DIM || s[3] > MAX_DIM) throw new RangeError(`${op}: ${name} ${formatShape(s)} has a plane dimension above ${MAX_DIM}`);
}

/**
 * Bilinear resize of x [N, C, H, W] to [N, C, Ho, Wo] with `size = [Ho, Wo]`, as PyTorch's
 * `F.interpolate(x, size, mode='bilinear', align_corners)`. Same size is the identity; Ho or Wo of 1 takes
 * the centre (align_corners=False) or the first row/column (true).
 */
export function resizeBilinear(x: Tensor, size: [number, number], opts?: ResizeOptions): Tensor {
  const op = 'resizeBilinear';
  expectTensor(x, op, 'x', { rank: 4, shape: '[N, C, H, W]' });
  const [Ho, Wo] = parseSize(size, op);
  const alignCorners = parseOptions(opts, op);
  checkPlane(x.shape, op, 'x', 'H, W');
  const [N, C, H, W] = x.shape;
  const y = Tensor.empty([N, C, Ho, Wo], x.device);
  try {
    if (y.size > 0) nativeOps().resize_bilinear_forward(st(x, op), st(y, op), N, C, H, W, Ho, Wo, alignCorners);
  } catch (e) {
    y.dispose();
    throw e;
  }
  return y;
}

/**
 * Gradient of resizeBilinear with respect to its input of shape `inputShape` [N, C, H, W], given dy
 * [N, C, Ho, Wo] (the same `opts` as the forward): each output's gradient goes to its four source pixels
 * with the bilinear weights. Deterministic on both devices (a gather on CUDA, no atomics).
 */
export function resizeBilinearBackward(dy: Tensor, inputShape: readonly number[], opts?: ResizeOptions): Tensor {
  const op = 'resizeBilinearBackward';
  expectTensor(dy, op, 'dy', { rank: 4, shape: '[N, C, Ho, Wo]' });
  const s = parseShape(inputShape, `${op}: inputShape`);
  if (s.length !== 4) throw new RangeError(`${op}: expected inputShape of shape [N, C, H, W], got ${formatShape(s)}`);
  const alignCorners = parseOptions(opts, op);
  checkPlane(s, op, 'inputShape', 'H, W');
  checkPlane(dy.shape, op, 'dy', 'Ho, Wo');
  const [N, C, H, W] = s;
  const [, , Ho, Wo] = dy.shape;
  if (N !== dy.shape[0] || C !== dy.shape[1])
    throw new RangeError(`${op}: inputShape ${formatShape(s)} and dy ${formatShape(dy.shape)} differ in N or C`);
  const dx = Tensor.empty(s, dy.device);
  try {
    if (dx.size > 0) nativeOps().resize_bilinear_backward(st(dy, op), st(dx, op), N, C, H, W, Ho, Wo, alignCorners);
  } catch (e) {
    dx.dispose();
    throw e;
  }
  return dx;
}
