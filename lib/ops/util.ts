/** Shared argument checks for the functional ops (lib/ops/*.ts): validate in TypeScript, before the
 * call crosses into C++, with messages that say what was expected and what came (sharp's lib/is.js). */
import { describe } from '../errors.js';
import { loadNative, type NativeAddon, type NativeStorage } from '../native.js';
import { Tensor, type DType, type Device } from '../tensor.js';

/**
 * The arithmetic of the GEMMs (convolutions, linear layers, matmul). All accumulate in float32.
 * - 'fp32': strict float32.
 * - 'tf32': CUDA multiplies on TF32 tensor cores (inputs cut to 10 mantissa bits); the CPU has no TF32 and
 *   computes in fp32.
 * - 'bf16': the GEMM inputs rounded to bfloat16 (7 mantissa bits), float32 products and sums (CUDA:
 *   cublasGemmEx on bf16 tensor cores. Convolutions on the columns path and linear layers round their
 *   operands to nearest even in our kernels; matmul and the legacy convolution path leave it to cuBLAS's
 *   CUBLAS_COMPUTE_32F_FAST_16BF. The CPU rounds every operand to nearest even, as the oracle of that mode).
 *   The ops keep weights, gradients, the loss and SGD in float32; a model in 'bf16' also stores the
 *   activations between its layers in bfloat16 (Conv2d's and Linear's activationDtype).
 */
export type Precision = 'fp32' | 'tf32' | 'bf16';

let defaultPrecision: Precision = 'fp32';

/** The GEMM precision used by ops called without `precision`: strict 'fp32' (default), 'tf32' or 'bf16'. */
export function setDefaultPrecision(p: Precision): void {
  defaultPrecision = parsePrecision(p, 'setDefaultPrecision');
}
export function getDefaultPrecision(): Precision {
  return defaultPrecision;
}

export function parsePrecision(p: unknown, op: string): Precision {
  if (p === undefined) return defaultPrecision;
  if (p === 'fp32' || p === 'tf32' || p === 'bf16') return p;
  throw new TypeError(`${op}: precision must be "fp32", "tf32" or "bf16", got ${describe(p)}`);
}

const GEMM_MATH: Record<Precision, number> = { fp32: 0, tf32: 1, bf16: 2 };

/** The native GEMM arithmetic code of a precision (native/ops/gemm.h GemmMath: 0 fp32, 1 tf32, 2 bf16). */
export function gemmMath(p: unknown, op: string): number {
  return GEMM_MATH[parsePrecision(p, op)];
}

export function nativeOps(): NativeAddon['ops'] {
  return loadNative().ops;
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

export interface TensorSpec {
  /** Expected rank. */
  rank?: number;
  /** Expected dtype (default float32). */
  dtype?: DType;
  /** Human description of the expected shape, e.g. "[N, C, H, W]". */
  shape?: string;
}

/** Checks that `t` is a live Tensor of the given rank/dtype; returns it. */
export function expectTensor(t: unknown, op: string, name: string, spec: TensorSpec = {}): Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`${op}: expected ${name} to be a Tensor, got ${describe(t)}`);
  if (t.isDisposed) Tensor.storageOf(t, `${op}: ${name}`); // throws DisposedError
  const dtype = spec.dtype ?? 'float32';
  if (t.dtype !== dtype) throw new TypeError(`${op}: expected ${name} to be ${dtype}, got ${t.dtype}`);
  if (spec.rank !== undefined && t.shape.length !== spec.rank)
    throw new RangeError(`${op}: expected ${name} of shape ${spec.shape ?? `rank ${spec.rank}`}, got ${fmt(t.shape)}`);
  return t;
}

/** The dtypes an activation may have: float32, or bfloat16 (stored rounded to nearest even; the ops that take
 * it compute in float32 on the widened values and round their output once, to the input's dtype). */
export type ActivationDType = 'float32' | 'bfloat16';

/** Like expectTensor, for an activation: float32 or bfloat16. */
export function expectActivation(t: unknown, op: string, name: string, spec: Omit<TensorSpec, 'dtype'> = {}): Tensor {
  if (t instanceof Tensor && t.dtype !== 'float32' && t.dtype !== 'bfloat16' && !t.isDisposed)
    throw new TypeError(`${op}: expected ${name} to be float32 or bfloat16, got ${t.dtype}`);
  return expectTensor(t, op, name, { ...spec, dtype: t instanceof Tensor && t.dtype === 'bfloat16' ? 'bfloat16' : 'float32' });
}

/** All tensors on one device; returns it. */
export function sameDevice(op: string, named: Record<string, Tensor | null | undefined>): Device {
  let dev: Device | undefined;
  let first = '';
  for (const [name, t] of Object.entries(named)) {
    if (!t) continue;
    if (dev === undefined) {
      dev = t.device;
      first = name;
    } else if (t.device !== dev) {
      throw new Error(`${op}: all tensors must be on one device; ${first} is on ${dev}, ${name} on ${t.device}`);
    }
  }
  return dev ?? 'cpu';
}

/** Checks a tensor's exact shape. */
export function expectShape(t: Tensor, op: string, name: string, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
    throw new RangeError(`${op}: expected ${name} of shape ${fmt(shape)}, got ${fmt(t.shape)}`);
}

/** A positive (or non-negative with `min: 0`) integer option. */
export function intOption(v: unknown, op: string, name: string, min = 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new TypeError(`${op}: ${name} must be an integer ≥ ${min}, got ${describe(v)}`);
  return v;
}

/** An int or [int, int] option (kernel size, stride, padding). */
export function pairOption(v: unknown, op: string, name: string, min = 1): [number, number] {
  if (typeof v === 'number') {
    intOption(v, op, name, min);
    return [v, v];
  }
  if (Array.isArray(v) && v.length === 2) {
    intOption(v[0], op, `${name}[0]`, min);
    intOption(v[1], op, `${name}[1]`, min);
    return [v[0], v[1]];
  }
  throw new TypeError(`${op}: ${name} must be an integer or [int, int] ≥ ${min}, got ${describe(v)}`);
}

export function numberOption(v: unknown, op: string, name: string, check?: (x: number) => boolean, want = 'a finite number'): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (check && !check(v)))
    throw new TypeError(`${op}: ${name} must be ${want}, got ${describe(v)}`);
  return v;
}

/** The native storage of a tensor, for the op binding call. */
export function st(t: Tensor, op: string): NativeStorage {
  return Tensor.storageOf(t, op);
}

export { fmt as formatShape };

/** The fused-ReLU options (conv2d, linear): `relu` belongs to the forward, `reluOutput` / `reluInPlace` to
 * the backward, and a misplaced one would otherwise be ignored — a silently wrong gradient — so it is an
 * error. Returns the forward's `relu` flag. */
export function reluForwardOption(o: Record<string, unknown>, op: string, backwardOp: string): boolean {
  for (const k of ['reluOutput', 'reluInPlace'])
    if (o[k] !== undefined) throw new TypeError(`${op}: ${k} is an option of ${backwardOp}; the forward takes relu: true`);
  const v = o.relu;
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new TypeError(`${op}: relu must be a boolean, got ${describe(v)}`);
  return v;
}

/** The backward's fused-ReLU options: `reluOutput`, the output y of the forward with `relu: true` (dy's
 * shape and device), and `reluInPlace` (dy is overwritten with the gradient before the ReLU). */
export function reluBackwardOptions(o: Record<string, unknown>, op: string, forwardOp: string, dy: Tensor, bf16 = false): { y: Tensor | null; inPlace: boolean } {
  if (o.relu !== undefined) throw new TypeError(`${op}: relu is an option of ${forwardOp}; the backward of a fused forward takes reluOutput: y (its output)`);
  const v = o.reluOutput;
  const inPlace = o.reluInPlace;
  if (inPlace !== undefined && typeof inPlace !== 'boolean') throw new TypeError(`${op}: reluInPlace must be a boolean, got ${describe(inPlace)}`);
  if (v === undefined || v === null) {
    if (inPlace) throw new TypeError(`${op}: reluInPlace needs reluOutput (the output of ${forwardOp} with relu: true)`);
    return { y: null, inPlace: false };
  }
  if (!(v instanceof Tensor)) throw new TypeError(`${op}: reluOutput must be a Tensor (the output of ${forwardOp} with relu: true), got ${describe(v)}`);
  if (bf16) expectActivation(v, op, 'reluOutput');
  else expectTensor(v, op, 'reluOutput');
  expectShape(v, op, 'reluOutput (the shape of dy)', dy.shape);
  sameDevice(op, { dy, reluOutput: v });
  if (inPlace && Tensor.storageOf(v, op) === Tensor.storageOf(dy, op))
    throw new RangeError(`${op}: reluInPlace overwrites dy, and reluOutput shares its memory: pass a copy of one`);
  return { y: v, inPlace: inPlace === true };
}
