/** Element-wise utilities training needs (native/ops/elementwise.h): memory-bound single passes, float32
 * (and `cast`, between float32 and bfloat16). Functions ending in `_` work in place and return their first
 * argument. */
import { describe } from '../errors.js';
import { Tensor, parseDType, type DType } from '../tensor.js';
import { expectShape, expectTensor, nativeOps, numberOption, sameDevice, st } from './util.js';

function sameSize(op: string, a: Tensor, an: string, b: Tensor, bn: string): void {
  if (a.size !== b.size)
    throw new RangeError(`${op}: expected ${bn} with ${an}'s ${a.size} elements, got [${b.shape.join(', ')}] (${b.size} elements)`);
}

/** y += alpha · x (same number of elements; shapes may differ, e.g. a flat buffer and a view). Returns y. */
export function axpy_(y: Tensor, x: Tensor, alpha: number): Tensor {
  const op = 'axpy_';
  expectTensor(y, op, 'y');
  expectTensor(x, op, 'x');
  sameSize(op, y, 'y', x, 'x');
  const a = numberOption(alpha, op, 'alpha');
  sameDevice(op, { y, x });
  nativeOps().axpy(st(y, op), st(x, op), y.size, a);
  return y;
}

/** x *= alpha. Returns x. */
export function scale_(x: Tensor, alpha: number): Tensor {
  const op = 'scale_';
  expectTensor(x, op, 'x');
  const a = numberOption(alpha, op, 'alpha');
  nativeOps().scale(st(x, op), x.size, a);
  return x;
}

/** x = value everywhere (any float32 value, NaN and ±Infinity included). Returns x. */
export function fill_(x: Tensor, value: number): Tensor {
  const op = 'fill_';
  expectTensor(x, op, 'x');
  if (typeof value !== 'number') throw new TypeError(`${op}: value must be a number, got ${typeof value}`);
  nativeOps().fill(st(x, op), x.size, value);
  return x;
}

/** z = x + y, a new tensor of x's shape (x and y of the same shape). */
export function add(x: Tensor, y: Tensor): Tensor {
  const op = 'add';
  expectTensor(x, op, 'x');
  expectTensor(y, op, 'y');
  expectShape(y, op, 'y (the shape of x)', x.shape);
  const device = sameDevice(op, { x, y });
  const z = Tensor.empty(x.shape, device);
  try {
    nativeOps().add(st(x, op), st(y, op), st(z, op), x.size);
  } catch (e) {
    z.dispose();
    throw e;
  }
  return z;
}

/** Σ x², accumulated in double and rounded once to float32: a new [1] tensor on x's device (for gradient
 * norms: ‖g‖ = sqrt of it). NaN or ±Infinity in x propagate. */
export function sumSquares(x: Tensor): Tensor {
  const op = 'sumSquares';
  expectTensor(x, op, 'x');
  const out = Tensor.empty([1], x.device);
  try {
    nativeOps().sum_squares(st(x, op), st(out, op), x.size);
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/**
 * x converted to `dtype`: a new tensor of x's shape on x's device, which the caller owns.
 * - float32 → bfloat16: each value rounded to the nearest bfloat16, ties to even (infinities stay, a NaN stays
 *   a NaN, a finite value past bfloat16's largest, about 3.39e38, becomes an infinity): what PyTorch's
 *   `x.to(torch.bfloat16)` gives.
 * - bfloat16 → float32: exact.
 * - the same dtype: a copy.
 * Other pairs (int32, uint8) are refused: they are labels and pixels, not values to round.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  const op = 'cast';
  if (!(x instanceof Tensor)) throw new TypeError(`${op}: expected x to be a Tensor, got ${describe(x)}`);
  const to = parseDType(dtype, `${op}: dtype`);
  const from = x.dtype;
  expectTensor(x, op, 'x', { dtype: from }); // a disposed x throws DisposedError here
  if (from === to) return x.clone();
  const fp = (d: DType) => d === 'float32' || d === 'bfloat16';
  if (!fp(from) || !fp(to)) throw new TypeError(`${op}: converts between float32 and bfloat16, got ${from} → ${to}`);
  const y = Tensor.empty(x.shape, x.device, to);
  try {
    if (to === 'bfloat16') nativeOps().cast_to_bf16(st(x, op), st(y, op), x.size);
    else nativeOps().cast_from_bf16(st(x, op), st(y, op), x.size);
  } catch (e) {
    y.dispose();
    throw e;
  }
  return y;
}
