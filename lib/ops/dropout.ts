/** Dropout with a seeded counter-based RNG (native/ops/dropout.h, philox.h): nothing is stored between
 * forward and backward; the mask is recomputed from (seed, offset).
 *
 * Element i of a call is kept when u_i < 1 − p, where u_i = (r >> 8) / 2^24 and r is word i % 4 of
 * Philox4x32-10(counter = offset + ⌊i / 4⌋, key = seed) — the generator cuRAND and PyTorch's CUDA dropout
 * use. Kept elements are scaled by float32(1 / (1 − p)), dropped ones are 0 (p = 1: all zeros). The CPU and
 * CUDA versions draw bit-identical masks for the same (seed, offset). One counter serves four elements, so
 * a call on n elements consumes counters [offset, offset + ⌈n / 4⌉) (see `dropoutCounters`): give the next
 * independent call at least that much larger an offset, or another seed. */
import { describe } from '../errors.js';
import { Tensor } from '../tensor.js';
import { expectActivation, expectTensor, nativeOps, st } from './util.js';

export interface DropoutOptions {
  /** Probability of dropping an element, in [0, 1]. */
  p: number;
  /** 64-bit Philox key: a non-negative safe integer or a bigint below 2^64 (the same value either way
   * gives the same key). */
  seed: bigint | number;
  /** First Philox counter of this call (default 0): a non-negative safe integer. */
  offset?: number;
  /** Default true. false: identity (evaluation), no kernel runs. */
  training?: boolean;
  /** Write the result into x and return x itself (default false). */
  inplace?: boolean;
}

const TWO32 = 2 ** 32;

function optionsObject(opts: unknown, op: string, want: string): Record<string, unknown> {
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected options ${want}, got ${describe(opts)}`);
  return opts as Record<string, unknown>;
}

function boolOpt(v: unknown, op: string, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new TypeError(`${op}: ${name} must be a boolean, got ${describe(v)}`);
  return v;
}

function probOpt(v: unknown, op: string): number {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new RangeError(`${op}: p must be a number in [0, 1], got ${describe(v)}`);
  return v;
}

/** The seed as [low, high] 32-bit words. */
function seedWords(v: unknown, op: string): [number, number] {
  if (typeof v === 'bigint') {
    if (v < 0n || v >= 1n << 64n) throw new RangeError(`${op}: seed must be in [0, 2^64), got ${v}n`);
    return [Number(v & 0xffffffffn), Number(v >> 32n)];
  }
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return [v % TWO32, Math.floor(v / TWO32)];
  throw new TypeError(`${op}: seed must be a non-negative integer (a number up to 2^53 − 1, or a bigint below 2^64), got ${describe(v)}`);
}

function offsetOpt(v: unknown, op: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new TypeError(`${op}: offset must be a non-negative safe integer, got ${describe(v)}`);
  return v;
}

/** Philox counters a dropout call on n elements consumes: ⌈n / 4⌉. */
export function dropoutCounters(n: number): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new TypeError(`dropoutCounters: n must be a non-negative integer, got ${describe(n)}`);
  return Math.ceil(n / 4);
}

/** Training: y = x · keep / (1 − p) with the mask of (seed, offset). Evaluation (`training: false`):
 * identity — returns x itself when `inplace`, else a copy (`x.clone()`), so the result is always a tensor
 * the caller may dispose independently of x unless inplace. x may be bfloat16: y is then bfloat16, each kept
 * x · scale computed in float32 and rounded once to nearest even (exact for p = 0.5, whose scale is 2). The
 * backward takes a float32 dy either way. */
export function dropout(x: Tensor, opts: DropoutOptions): Tensor {
  const op = 'dropout';
  expectActivation(x, op, 'x');
  const o = optionsObject(opts, op, '{ p, seed, offset?, training?, inplace? }');
  const p = probOpt(o.p, op);
  const [lo, hi] = seedWords(o.seed, op);
  const offset = offsetOpt(o.offset, op);
  const training = boolOpt(o.training, op, 'training', true);
  const inplace = boolOpt(o.inplace, op, 'inplace', false);
  if (!training) return inplace ? x : x.clone();
  const y = inplace ? x : Tensor.empty(x.shape, x.device, x.dtype);
  try {
    nativeOps().dropout_forward(st(x, op), st(y, op), x.size, p, lo, hi, offset, x.dtype);
  } catch (e) {
    if (!inplace) y.dispose();
    throw e;
  }
  return y;
}

/** dx = dy · keep / (1 − p) with the forward's mask: pass the forward's p, seed and offset (and a dy of the
 * forward's size). With `inplace` the result is written into dy, which is returned. */
export function dropoutBackward(dy: Tensor, opts: { p: number; seed: bigint | number; offset?: number; inplace?: boolean }): Tensor {
  const op = 'dropoutBackward';
  expectTensor(dy, op, 'dy');
  const o = optionsObject(opts, op, '{ p, seed, offset?, inplace? }');
  const p = probOpt(o.p, op);
  const [lo, hi] = seedWords(o.seed, op);
  const offset = offsetOpt(o.offset, op);
  const inplace = boolOpt(o.inplace, op, 'inplace', false);
  const dx = inplace ? dy : Tensor.empty(dy.shape, dy.device);
  try {
    nativeOps().dropout_backward(st(dy, op), st(dx, op), dy.size, p, lo, hi, offset);
  } catch (e) {
    if (!inplace) dx.dispose();
    throw e;
  }
  return dx;
}

/** The keep mask (1 = kept) a dropout call on n elements with these options uses, computed on the CPU
 * (for tests and inspection). */
export function dropoutMask(n: number, opts: { p: number; seed: bigint | number; offset?: number }): Uint8Array {
  const op = 'dropoutMask';
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new TypeError(`${op}: n must be a non-negative integer, got ${describe(n)}`);
  const o = optionsObject(opts, op, '{ p, seed, offset? }');
  const p = probOpt(o.p, op);
  const [lo, hi] = seedWords(o.seed, op);
  const offset = offsetOpt(o.offset, op);
  const mask = new Uint8Array(n);
  nativeOps().dropout_mask(mask, n, p, lo, hi, offset);
  return mask;
}

/** One Philox4x32-10 block: counter (4 words) and key (2 words) → 4 words. The raw generator, on the CPU
 * (for known-answer tests). */
export function philox4x32(counter: ArrayLike<number>, key: ArrayLike<number>): Uint32Array {
  const op = 'philox4x32';
  const words = (a: ArrayLike<number>, n: number, name: string) => {
    if (a === null || typeof a !== 'object' || a.length !== n)
      throw new TypeError(`${op}: ${name} must be ${n} 32-bit words, got ${describe(a)}`);
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const v = a[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= TWO32)
        throw new TypeError(`${op}: ${name}[${i}] must be an integer in [0, 2^32), got ${describe(v)}`);
      out[i] = v;
    }
    return out;
  };
  return nativeOps().philox4x32_10(words(counter, 4, 'counter'), words(key, 2, 'key')) as Uint32Array;
}
