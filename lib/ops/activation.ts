/** ReLU, forward and backward (native/ops/relu.h). PyTorch semantics: y = max(x, 0) with NaN propagated;
 * dx = dy where y > 0, else 0. Activations may be bfloat16 (y then bfloat16 too, exact); gradients are
 * float32. */
import { describe } from '../errors.js';
import { Tensor } from '../tensor.js';
import { expectActivation, expectShape, expectTensor, nativeOps, sameDevice, st } from './util.js';

function inplaceOption(opts: unknown, op: string): boolean {
  if (opts === undefined) return false;
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected options { inplace?: boolean }, got ${describe(opts)}`);
  const v = (opts as { inplace?: unknown }).inplace;
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new TypeError(`${op}: inplace must be a boolean, got ${describe(v)}`);
  return v;
}

/** y = max(x, 0), any shape. With `inplace: true` x is overwritten and returned itself; otherwise a new
 * tensor on x's device that the caller owns. */
export function relu(x: Tensor, opts?: { inplace?: boolean }): Tensor {
  const op = 'relu';
  expectActivation(x, op, 'x');
  const inplace = inplaceOption(opts, op);
  const y = inplace ? x : Tensor.empty(x.shape, x.device, x.dtype);
  try {
    nativeOps().relu_forward(st(x, op), st(y, op), x.size, x.dtype);
  } catch (e) {
    if (!inplace) y.dispose();
    throw e;
  }
  return y;
}

/** dx = dy · (y > 0), where y is relu's output (same shape as dy). With `inplace: true` the result is
 * written into dy, which is returned; otherwise a new tensor. */
export function reluBackward(dy: Tensor, y: Tensor, opts?: { inplace?: boolean }): Tensor {
  const op = 'reluBackward';
  expectTensor(dy, op, 'dy');
  expectActivation(y, op, 'y');
  expectShape(y, op, 'y (the shape of dy)', dy.shape);
  sameDevice(op, { dy, y });
  const inplace = inplaceOption(opts, op);
  const dx = inplace ? dy : Tensor.empty(dy.shape, dy.device);
  try {
    nativeOps().relu_backward(st(dy, op), st(y, op), st(dx, op), dy.size, y.dtype);
  } catch (e) {
    if (!inplace) dx.dispose();
    throw e;
  }
  return dx;
}
