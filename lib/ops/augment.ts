/** Batch augmentation of decoded images on the device: uint8 HWC slots in (what the data loader decodes
 * and copies to the device — 4× fewer bytes than float32), the model's normalised float32 NCHW input out, in
 * one pass per batch: for every output image a crop of its slot, an optional horizontal flip, the paper's
 * PCA colour shift and the per-channel normalisation.
 *
 *   y[n, c, r, x] = u8[slot, top + r, flip ? left + Wo − 1 − x : left + x, c] · a[n, c] + b[n, c]
 *   a[n, c] = 1 / (255 · std[c]),   b[n, c] = (shift[n, c] − mean[c]) / std[c]
 *
 * a and b are computed here in double and rounded to float once; the kernel then rounds the product and the
 * sum separately (no FMA) on both devices, so the CPU version (native/ops/augment.cc, the oracle) and the
 * CUDA kernel agree bit for bit. `params` says, for each output image, which slot it reads, where its crop
 * lies and whether it is mirrored; several outputs may read one slot (the paper's ten crops).
 * Native: native/ops/augment.*, native/bind/augment.cc. */
import { describe } from '../errors.js';
import { Tensor } from '../tensor.js';
import { expectTensor, formatShape, nativeOps, st } from './util.js';

export interface AugmentBatchOptions {
  /** Output side, or [Ho, Wo]. */
  size: number | readonly [number, number];
  /** Per-channel mean and std of [0, 1] pixels (C values each; std > 0). */
  mean: readonly number[];
  std: readonly number[];
  /** Per output image and channel (N × C values): a shift added to the [0, 1] pixel before the
   * normalisation — the PCA colour jitter's Σ αᵢλᵢpᵢ. Default none. */
  shift?: Float32Array | Float64Array | readonly number[] | null;
}

const MAX_DIM = 2 ** 31 - 1;

/**
 * Crops, flips, colour-shifts and normalises a batch of decoded images.
 * @param u8 uint8 tensor [S, Hs, Ws, C] (S slots of HWC pixels, C from 1 to 4)
 * @param params N × 4 integers (slot, top, left, flip): output image n is the Ho×Wo window of slot `slot`
 *   whose top-left pixel is (top, left), mirrored when flip is 1
 * @returns float32 tensor [N, C, Ho, Wo] on u8's device
 */
export function augmentBatch(u8: Tensor, params: Int32Array | readonly number[], opts: AugmentBatchOptions): Tensor {
  const op = 'augmentBatch';
  expectTensor(u8, op, 'u8', { rank: 4, dtype: 'uint8', shape: '[S, Hs, Ws, C]' });
  const [S, Hs, Ws, C] = u8.shape;
  if (C < 1 || C > 4) throw new RangeError(`${op}: expected 1 to 4 channels in u8 [S, Hs, Ws, C], got ${formatShape(u8.shape)}`);
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected options { size, mean, std, shift? }, got ${describe(opts)}`);
  for (const k of Object.keys(opts))
    if (!['size', 'mean', 'std', 'shift'].includes(k)) throw new TypeError(`${op}: unknown option ${describe(k)} (expected size, mean, std, shift)`);
  const size = typeof opts.size === 'number' ? [opts.size, opts.size] : opts.size;
  const okDim = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_DIM;
  if (!Array.isArray(size) || size.length !== 2 || !okDim(size[0]) || !okDim(size[1]))
    throw new TypeError(`${op}: size must be a positive integer or [Ho, Wo], got ${describe(opts.size)}`);
  const [Ho, Wo] = size as [number, number];
  if (Ho > Hs || Wo > Ws) throw new RangeError(`${op}: a ${Ho}×${Wo} crop does not fit in ${Hs}×${Ws} slots`);
  const perChannel = (v: unknown, name: string, positive: boolean): number[] => {
    if (!Array.isArray(v) || v.length !== C || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0)))
      throw new TypeError(`${op}: expected ${name} to be ${C} finite${positive ? ' positive' : ''} numbers (one per channel), got ${describe(v)}`);
    return v as number[];
  };
  const mean = perChannel(opts.mean, 'mean', false);
  const std = perChannel(opts.std, 'std', true);
  if (!(params instanceof Int32Array) && !Array.isArray(params))
    throw new TypeError(`${op}: expected params as an Int32Array of (slot, top, left, flip) quadruples, got ${describe(params)}`);
  if (params.length % 4 !== 0) throw new RangeError(`${op}: params holds ${params.length} values, not a whole number of (slot, top, left, flip) quadruples`);
  const N = params.length / 4;
  for (let n = 0; n < N; n++) {
    const [slot, top, left, flip] = [params[4 * n], params[4 * n + 1], params[4 * n + 2], params[4 * n + 3]];
    const int = (v: number) => Number.isInteger(v);
    if (!int(slot) || slot < 0 || slot >= S) throw new RangeError(`${op}: image ${n} reads slot ${describe(slot)}, expected 0 to ${S - 1}`);
    if (!int(top) || !int(left) || top < 0 || left < 0 || top + Ho > Hs || left + Wo > Ws)
      throw new RangeError(`${op}: image ${n}'s ${Ho}×${Wo} crop at (top ${describe(top)}, left ${describe(left)}) is not inside the ${Hs}×${Ws} slot`);
    if (flip !== 0 && flip !== 1) throw new RangeError(`${op}: image ${n}'s flip must be 0 or 1, got ${describe(flip)}`);
  }
  const shift = opts.shift ?? null;
  if (shift !== null) {
    if (!(shift instanceof Float32Array || shift instanceof Float64Array || Array.isArray(shift)) || shift.length !== N * C)
      throw new TypeError(`${op}: expected shift to hold N × C = ${N * C} numbers, got ${describe(shift)}`);
    for (let i = 0; i < shift.length; i++)
      if (!Number.isFinite(shift[i])) throw new RangeError(`${op}: shift[${i}] is ${shift[i]}, expected a finite number`);
  }
  const coef = new Float32Array(N * C * 2);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      coef[(n * C + c) * 2] = 1 / (255 * std[c]);
      coef[(n * C + c) * 2 + 1] = ((shift ? shift[n * C + c] : 0) - mean[c]) / std[c];
    }
  const y = Tensor.empty([N, C, Ho, Wo], u8.device);
  if (N === 0) return y;
  const p = Tensor.from(params instanceof Int32Array ? params : Int32Array.from(params), [N, 4], u8.device);
  const k = Tensor.from(coef, [N, C, 2], u8.device);
  try {
    nativeOps().augment_batch(st(u8, op), st(p, op), st(k, op), st(y, op), S, Hs, Ws, C, N, Ho, Wo);
  } catch (e) {
    y.dispose();
    throw e;
  } finally {
    p.dispose();
    k.dispose();
  }
  return y;
}
