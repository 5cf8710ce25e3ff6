/** Shared batching rules for every BatchSource: option validation and the (seed, epoch) → order function. */
import { describe } from '../errors.js';
import { Rng, permutation } from './rng.js';
import { Tensor, type Device } from '../tensor.js';
import type { Batch, BatchOptions } from './types.js';

/** BatchOptions with defaults filled in and values checked. */
export interface ResolvedBatchOptions {
  batchSize: number;
  shuffle: boolean;
  seed: number;
  epoch: number;
  dropLast: boolean;
  startBatch: number;
  /** This rank's share (see BatchOptions.shard); null: the whole epoch. */
  shard: { rank: number; world: number } | null;
}

/** A key that separates the shuffle stream from the augmentation streams drawn from the same seed. */
export const SHUFFLE_STREAM = 0x5348;
/** The key of per-image augmentation streams: `Rng.from(seed, epoch, AUGMENT_STREAM, imageIndex)`. */
export const AUGMENT_STREAM = 0x4147;

function int(v: unknown, name: string, where: string, min: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
    throw new TypeError(`${where}: expected ${name} to be an integer ≥ ${min}, got ${describe(v)}`);
  return v;
}

function bool(v: unknown, name: string, where: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new TypeError(`${where}: expected ${name} to be a boolean, got ${describe(v)}`);
  return v;
}

export function resolveBatchOptions(opts: unknown, where: string): ResolvedBatchOptions {
  if (opts === null || typeof opts !== 'object')
    throw new TypeError(`${where}: expected an options object { batchSize, shuffle?, seed?, epoch?, dropLast?, startBatch? }, got ${describe(opts)}`);
  const o = opts as BatchOptions;
  if (o.batchSize === undefined) throw new TypeError(`${where}: batchSize is required (a positive integer)`);
  const seed = o.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed))
    throw new TypeError(`${where}: expected seed to be an integer, got ${describe(o.seed)}`);
  return {
    batchSize: int(o.batchSize, 'batchSize', where, 1, 0),
    shuffle: bool(o.shuffle, 'shuffle', where),
    seed,
    epoch: int(o.epoch, 'epoch', where, 0, 0),
    dropLast: bool(o.dropLast, 'dropLast', where),
    startBatch: int(o.startBatch, 'startBatch', where, 0, 0),
    shard: resolveShard(o.shard, where),
  };
}

function resolveShard(v: unknown, where: string): { rank: number; world: number } | null {
  if (v === undefined || v === null) return null;
  const s = v as { rank?: unknown; world?: unknown };
  const ok = typeof v === 'object' && Number.isSafeInteger(s.world) && (s.world as number) >= 1 && Number.isSafeInteger(s.rank) && (s.rank as number) >= 0 && (s.rank as number) < (s.world as number);
  if (!ok) throw new TypeError(`${where}: expected shard to be { rank, world } with integers 0 ≤ rank < world, got ${describe(v)}`);
  return s.world === 1 ? null : { rank: s.rank as number, world: s.world as number };
}

/** This rank's positions of an epoch's `order` (see BatchOptions.shard): block `rank` of every global batch
 * of `batchSize · world` positions; without a shard, `order` itself. With `dropLast`, the shorter last
 * global batch is left out here already, so every rank has the same number of full batches. */
export function shardOrder(order: Uint32Array, o: Pick<ResolvedBatchOptions, 'batchSize' | 'dropLast' | 'shard'>): Uint32Array {
  if (!o.shard) return order;
  const { rank, world } = o.shard;
  const b = o.batchSize;
  const G = b * world;
  const full = Math.floor(order.length / G);
  const rest = order.length - full * G;
  const part = o.dropLast || rest === 0 ? 0 : Math.ceil(rest / world);
  const lastFrom = Math.min(rest, rank * part);
  const lastTo = Math.min(rest, (rank + 1) * part);
  const out = new Uint32Array(full * b + (lastTo - lastFrom));
  for (let k = 0; k < full; k++) out.set(order.subarray(k * G + rank * b, k * G + (rank + 1) * b), k * b);
  out.set(order.subarray(full * G + lastFrom, full * G + lastTo), full * b);
  return out;
}

/** Number of batches an epoch of `n` images yields. */
export function batchCount(n: number, batchSize: number, dropLast: boolean): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** The visiting order of one epoch: 0..n-1, or, with `shuffle`, a Fisher–Yates permutation seeded
 * by (seed, epoch) only. */
export function epochOrder(n: number, o: Pick<ResolvedBatchOptions, 'shuffle' | 'seed' | 'epoch'>): Uint32Array {
  if (o.shuffle) return permutation(n, Rng.from(o.seed, o.epoch, SHUFFLE_STREAM));
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return p;
}

/** Throws when `startBatch` lies past the end of the epoch (`startBatch === count` is allowed: an
 * epoch that was finished yields nothing). */
export function checkStartBatch(startBatch: number, count: number, where: string): void {
  if (startBatch > count)
    throw new RangeError(`${where}: startBatch ${startBatch} is past the end of the epoch, which has ${count} batches`);
}

/** The model input of a batch on `device`, owned by the caller: the batch's own `input` tensor (moved
 * when it was made on another device), or a new tensor of its host pixels `x`. */
export function batchInput(batch: Batch, device: Device, where: string): Tensor {
  if (batch.input) {
    if (batch.input.device === device) return batch.input;
    const moved = batch.input.to(device);
    batch.input.dispose();
    return moved;
  }
  if (!batch.x) throw new TypeError(`${where}: a batch holds neither x (host pixels) nor input (a tensor)`);
  return Tensor.from(batch.x, batch.shape, device);
}
