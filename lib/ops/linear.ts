/** Fully connected layers and matrix products on the row-major GEMM (cuBLAS on CUDA; OpenBLAS or the
 * built-in blocked GEMM on the CPU). Linear weights use PyTorch's layout [out, in].
 * Native: native/ops/linear.*, native/ops/gemm.*, native/bind/{linear,gemm}.cc. */
import { describe } from '../errors.js';
import { Tensor } from '../tensor.js';
import { expectActivation, expectShape, expectTensor, formatShape, nativeOps, reluBackwardOptions, reluForwardOption, sameDevice, st, gemmMath, type Precision } from './util.js';

export interface LinearOptions {
  /** GEMM precision: 'fp32' (strict), 'tf32' (CUDA tensor cores; the CPU computes in fp32) or 'bf16' (inputs
   * rounded to bfloat16, float32 sums; see Precision).
   * Default: getDefaultPrecision(). */
  precision?: Precision;
}

export interface LinearForwardOptions extends LinearOptions {
  /** Apply ReLU to the output: y = max(x · wᵀ + b, 0), what `relu(linear(...))` gives (on CUDA the bias
   * and the ReLU in one kernel after the GEMM: with a bias, one launch fewer than the two ops). Its
   * backward is `linearBackward` with `reluOutput: y`. Default false. */
  relu?: boolean;
  /** The output's dtype: 'float32' or 'bfloat16' (the float32 result rounded once to nearest even).
   * Default: x's. x itself may be bfloat16 (bfloat16 activations); the gradients stay float32. */
  dtype?: 'float32' | 'bfloat16';
}

export interface LinearBackwardOptions extends LinearOptions {
  /** Compute dx (default true). */
  needInputGrad?: boolean;
  /** Compute db (default true). */
  needBiasGrad?: boolean;
  /** The output y of a forward with `relu: true`: dy is then the gradient at the ReLU's output and the
   * gradients go through the ReLU too. */
  reluOutput?: Tensor;
  /** With reluOutput: write the masked gradient over dy instead of a scratch buffer. Default false. */
  reluInPlace?: boolean;
  /** What `linearForTraining` kept for this w (`kept`), or null: the backward then reads the weights'
   * bfloat16 copy from it instead of rounding w again. Must come with the forward's precision. */
  kept?: Tensor | null;
}

export interface LinearGrads {
  dx: Tensor | null;
  dw: Tensor;
  db: Tensor | null;
}

export interface MatmulOptions extends LinearOptions {
  /** Use aᵀ: a is stored [K, M]. */
  transA?: boolean;
  /** Use bᵀ: b is stored [N, K]. */
  transB?: boolean;
}

const INT_MAX = 2 ** 31 - 1;

function options(opts: unknown, op: string, want: string): Record<string, unknown> {
  if (opts === undefined) return {};
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new TypeError(`${op}: expected options ${want}, got ${describe(opts)}`);
  return opts as Record<string, unknown>;
}

function boolOption(v: unknown, op: string, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new TypeError(`${op}: ${name} must be a boolean, got ${describe(v)}`);
  return v;
}

function checkInt32(op: string, what: string, shape: readonly number[]): void {
  if (shape.some((d) => d > INT_MAX)) throw new RangeError(`${op}: ${what} ${formatShape(shape)} has a dimension above 2^31 − 1`);
}

/** [N, in, out] after checking x [N, in] (float32 or bfloat16) against w [out, in]. */
function linearDims(x: Tensor, w: Tensor, op: string): [number, number, number] {
  expectTensor(w, op, 'w', { rank: 2, shape: '[out, in]' });
  const [out, inF] = w.shape;
  if (out < 1 || inF < 1) throw new RangeError(`${op}: expected w of shape [out, in] with out, in ≥ 1, got ${formatShape(w.shape)}`);
  expectActivation(x, op, 'x');
  if (x.shape.length !== 2 || x.shape[1] !== inF)
    throw new RangeError(`${op}: expected x of shape [N, ${inF}] (w is ${formatShape(w.shape)}), got ${formatShape(x.shape)}`);
  checkInt32(op, 'x', x.shape);
  checkInt32(op, 'w', w.shape);
  return [x.shape[0], inF, out];
}

/** y = x · wᵀ + b: x [N, in], w [out, in], b [out] or null → y [N, out]; with `relu: true`,
 * y = max(x · wᵀ + b, 0). */
export function linear(x: Tensor, w: Tensor, b: Tensor | null, opts?: LinearForwardOptions): Tensor {
  return linearForward('linear', x, w, b, opts, false).y;
}

/** The floats `linearForTraining` keeps for w [out, in] on `device` in `precision`: on CUDA in 'bf16', the
 * weights' bfloat16 copy (two values to a float); 0 (none) elsewhere. */
function keptFloats(inF: number, out: number, dev: 'cpu' | 'cuda', math: number): number {
  return nativeOps().linear_kept_floats(inF, out, dev === 'cuda', math);
}

/** linear for training: y as `linear` gives it, and `kept` for `linearBackward`'s `kept` option (the
 * caller owns it; null when nothing is worth keeping). On CUDA in 'bf16', the GEMMs run on bfloat16
 * operands that our kernels round to nearest even (the CPU's bf16 GEMM rounds the same ones as its oracle);
 * `kept` is the weights' rounded copy, so that the backward's dx GEMM reads it instead of rounding w again —
 * out·in·2 bytes held from the forward to the backward. */
export function linearForTraining(x: Tensor, w: Tensor, b: Tensor | null, opts?: LinearForwardOptions): { y: Tensor; kept: Tensor | null } {
  return linearForward('linearForTraining', x, w, b, opts, true);
}

function linearForward(op: string, x: Tensor, w: Tensor, b: Tensor | null, opts: LinearForwardOptions | undefined, keep: boolean): { y: Tensor; kept: Tensor | null } {
  const o = options(opts, op, '{ precision?, relu?, dtype? }');
  const [N, inF, out] = linearDims(x, w, op);
  if (b !== null) {
    if (!(b instanceof Tensor)) throw new TypeError(`${op}: expected b to be a Tensor or null, got ${describe(b)}`);
    expectTensor(b, op, 'b');
    expectShape(b, op, 'b', [out]);
  }
  const dev = sameDevice(op, { x, w, b });
  const math = gemmMath(o.precision, op);
  const fuseRelu = reluForwardOption(o, op, 'linearBackward');
  const yType = o.dtype === undefined ? x.dtype : o.dtype;
  if (yType !== 'float32' && yType !== 'bfloat16') throw new TypeError(`${op}: dtype must be "float32" or "bfloat16", got ${describe(o.dtype)}`);
  const n = keep && N > 0 ? keptFloats(inF, out, dev, math) : 0;
  const y = Tensor.empty([N, out], dev, yType);
  let kept: Tensor | null = null;
  try {
    kept = n > 0 ? Tensor.empty([n], dev) : null;
    if (N > 0) nativeOps().linear_forward(st(x, op), st(w, op), b ? st(b, op) : null, st(y, op), N, inF, out, math, fuseRelu, kept ? st(kept, op) : null, x.dtype, yType);
  } catch (e) {
    y.dispose();
    kept?.dispose();
    throw e;
  }
  return { y, kept };
}

/**
 * Gradients of linear given dy [N, out] and the forward's x [N, in] and w [out, in]: dx = dy · w [N, in]
 * (null when needInputGrad is false), dw = dyᵀ · x [out, in], db = Σ_N dy [out] (null when needBiasGrad
 * is false). All are new tensors the caller owns. x and reluOutput may be bfloat16; the gradients are
 * float32.
 */
export function linearBackward(dy: Tensor, x: Tensor, w: Tensor, opts?: LinearBackwardOptions): LinearGrads {
  const op = 'linearBackward';
  const o = options(opts, op, '{ precision?, needInputGrad?, needBiasGrad?, reluOutput?, reluInPlace?, kept? }');
  expectTensor(dy, op, 'dy');
  const [N, inF, out] = linearDims(x, w, op);
  expectShape(dy, op, 'dy', [N, out]);
  const dev = sameDevice(op, { dy, x, w });
  const needDx = boolOption(o.needInputGrad, op, 'needInputGrad', true);
  const needDb = boolOption(o.needBiasGrad, op, 'needBiasGrad', true);
  const math = gemmMath(o.precision, op);
  const relu = reluBackwardOptions(o, op, 'linear', dy, true);
  const kept = o.kept === undefined || o.kept === null ? null : o.kept;
  if (kept !== null) {
    if (!(kept instanceof Tensor)) throw new TypeError(`${op}: kept must be a Tensor (from linearForTraining) or null, got ${describe(kept)}`);
    expectTensor(kept, op, 'kept');
    sameDevice(op, { dy, kept });
    const want = keptFloats(inF, out, dev, math);
    if (want === 0 || kept.shape.length !== 1 || kept.shape[0] !== want)
      throw new RangeError(`${op}: expected kept of shape [${want}] (what linearForTraining keeps for w ${formatShape(w.shape)} in this precision${want === 0 ? ': nothing' : ''}), got ${formatShape(kept.shape)}`);
  }
  const made: Tensor[] = [];
  try {
    const dx = needDx ? Tensor.empty([N, inF], dev) : null;
    if (dx) made.push(dx);
    const dw = Tensor.empty([out, inF], dev);
    made.push(dw);
    const db = needDb ? Tensor.empty([out], dev) : null;
    if (db) made.push(db);
    nativeOps().linear_backward(st(dy, op), st(x, op), st(w, op), dx ? st(dx, op) : null, st(dw, op), db ? st(db, op) : null, N, inF, out, math, relu.y ? st(relu.y, op) : null, relu.inPlace, kept ? st(kept, op) : null, x.dtype, relu.y?.dtype ?? 'float32');
    return { dx, dw, db };
  } catch (e) {
    made.forEach((t) => t.dispose());
    throw e;
  }
}

/** c = op(a) · op(b) with op(a) [M, K] (a is [M, K], or [K, M] with transA) and op(b) [K, N] (b is [K, N],
 * or [N, K] with transB) → c [M, N]. */
export function matmul(a: Tensor, b: Tensor, opts?: MatmulOptions): Tensor {
  const op = 'matmul';
  const o = options(opts, op, '{ transA?, transB?, precision? }');
  const transA = boolOption(o.transA, op, 'transA', false);
  const transB = boolOption(o.transB, op, 'transB', false);
  expectTensor(a, op, 'a', { rank: 2, shape: transA ? '[K, M]' : '[M, K]' });
  expectTensor(b, op, 'b', { rank: 2, shape: transB ? '[N, K]' : '[K, N]' });
  checkInt32(op, 'a', a.shape);
  checkInt32(op, 'b', b.shape);
  const [M, K] = transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const [K2, N] = transB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
  if (K !== K2)
    throw new RangeError(
      `${op}: inner dimensions differ: op(a) is ${formatShape([M, K])} (a is ${formatShape(a.shape)}${transA ? ', transposed' : ''}) ` +
        `but op(b) is ${formatShape([K2, N])} (b is ${formatShape(b.shape)}${transB ? ', transposed' : ''})`,
    );
  const dev = sameDevice(op, { a, b });
  const math = gemmMath(o.precision, op);
  const c = Tensor.empty([M, N], dev);
  try {
    // Row-major leading dimensions are the stored column counts (≥ 1 for BLAS even when a side is empty).
    if (M > 0 && N > 0)
      nativeOps().gemm(transA, transB, M, N, K, 1, st(a, op), Math.max(1, a.shape[1]), st(b, op), Math.max(1, b.shape[1]), 0, st(c, op), N, math);
  } catch (e) {
    c.dispose();
    throw e;
  }
  return c;
}
