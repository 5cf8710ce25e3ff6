/** Data-parallel training, the trainer's side (train() with `distributed`; the communication itself is
 * lib/distributed.ts: MPI for CPU tensors, NCCL for CUDA tensors).
 *
 * - Every rank runs the same model on its block of each global batch (BatchOptions.shard) and computes the
 *   gradient of its own mean loss; the gradients are averaged over the ranks, which is the gradient of the
 *   global batch's mean loss.
 * - The averaging goes in buckets (PyTorch DDP's design): the trainable parameters in the order the backward
 *   pass makes their gradients, cut into buckets of about `bucketBytes`; a bucket is all-reduced as soon as
 *   all its gradients exist, so the classifier's reductions run while the convolutions are still in their
 *   backward pass (on CUDA: on the communication stream). Buckets are issued strictly in order, and their
 *   layout is fixed, so every rank issues the same collectives in the same order (ranks that issued them in
 *   different orders would hang), and the all-reduce gives every rank the same bits (lib/distributed.ts):
 *   the ranks' weights stay bit-identical.
 * - The batch's loss rides in the last bucket: every rank then holds the global batch's mean loss, and the
 *   optimizer's non-finite-loss guard skips an update on every rank or on none.
 * - A watchdog ends the whole job when this rank makes no progress for `timeoutSeconds` (a rank that died
 *   or hangs leaves the others waiting in a collective): MPI_Abort, with a message naming this rank and
 *   what it was waiting for. A rank that dies outright is found faster by mpirun itself, which ends the job
 *   and names it. */
import { abortDistributed, allGatherString, type DistInfo } from './distributed.js';
import { allReduce } from './distributed.js';
import type { DataParallelHooks } from './models/alexnet.js';
import type { Parameter } from './nn/module.js';
import type { Tensor } from './tensor.js';

/** train()'s `distributed` option. */
export interface DistributedOptions {
  /** Gradient bucket size in bytes (default 25 MiB, PyTorch DDP's). */
  bucketBytes?: number;
  /** No progress (a step, an evaluation batch, a checkpoint) for this long ends the job with MPI_Abort,
   * naming this rank (default: the environment's AXN_DIST_TIMEOUT_S, else 300). */
  timeoutSeconds?: number;
  /** Benchmark aid (default true): false skips the gradient all-reduce, so a step's time without it can be
   * measured (bench/dist.mjs: the exposed communication time). The ranks' weights then drift apart. */
  reduce?: boolean;
}

export const DEFAULT_BUCKET_BYTES = 25 * 2 ** 20;

/** The gradient buckets of one model (see the module comment). `params` in the order the backward pass
 * makes their gradients (the reverse of the forward's). */
export class GradientBuckets implements DataParallelHooks {
  readonly buckets: Parameter[][] = [];
  /** Bytes all-reduced per step (the gradients, and the loss). */
  readonly bytesPerStep: number;
  #bucketOf = new Map<Parameter, number>();
  #missing: number[] = [];
  #next = 0;
  #loss: Tensor | null = null;
  #names: Map<Parameter, string>;

  constructor(
    params: [string, Parameter][],
    bucketBytes = DEFAULT_BUCKET_BYTES,
    readonly reduce = true,
  ) {
    if (!Number.isSafeInteger(bucketBytes) || bucketBytes < 1) throw new RangeError(`distributed: bucketBytes must be a positive integer, got ${bucketBytes}`);
    this.#names = new Map(params.map(([n, p]) => [p, n]));
    let cur: Parameter[] = [];
    let bytes = 0;
    let total = 4;
    for (const [, p] of params) {
      cur.push(p);
      const b = p.value.size * 4;
      bytes += b;
      total += b;
      if (bytes >= bucketBytes) {
        this.buckets.push(cur);
        cur = [];
        bytes = 0;
      }
    }
    if (cur.length) this.buckets.push(cur);
    this.buckets.forEach((b, k) => b.forEach((p) => this.#bucketOf.set(p, k)));
    this.bytesPerStep = total;
  }

  beforeBackward(loss: Tensor): void {
    this.#loss = loss;
    this.#missing = this.buckets.map((b) => b.length);
    this.#next = 0;
  }

  gradients(params: Parameter[]): void {
    for (const p of params) {
      const k = this.#bucketOf.get(p);
      if (k === undefined) continue; // not trained (frozen)
      if (!p.grad) throw new Error(`distributed: the backward pass reported ${this.#names.get(p)} without a gradient`);
      this.#missing[k]--;
    }
    while (this.#next < this.buckets.length && this.#missing[this.#next] === 0) this.#issue(this.#next++);
  }

  beforeUpdate(): void {
    if (this.#next < this.buckets.length) {
      const left = this.buckets.slice(this.#next).flat().filter((p) => !p.grad).map((p) => this.#names.get(p));
      throw new Error(`distributed: the backward pass made no gradient for ${left.join(', ') || 'some trained parameters'}; every trained parameter must get one each step (the ranks would wait for each other forever)`);
    }
    this.#loss = null;
  }

  #issue(k: number): void {
    const ts = this.buckets[k].map((p) => p.grad!);
    if (k === this.buckets.length - 1 && this.#loss) ts.push(this.#loss);
    if (this.reduce) allReduce(ts, 'mean');
  }
}

/** Throws, on every rank alike, when the ranks were not started with the same settings. */
export async function checkSameSettings(info: DistInfo, settings: Record<string, unknown>, where: string): Promise<void> {
  // one level of nesting flattened ("model.seed"), so a message names the setting itself
  const flat: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(settings)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [k2, v2] of Object.entries(v)) flat[`${k}.${k2}`] = v2;
    else flat[k] = v;
  }
  const all = (await allGatherString(JSON.stringify(flat))).map((s) => JSON.parse(s) as Record<string, unknown>);
  const base = all[0];
  const diffs: string[] = [];
  all.forEach((s, r) => {
    if (r === 0) return;
    for (const k of new Set([...Object.keys(base), ...Object.keys(s)]))
      if (JSON.stringify(s[k]) !== JSON.stringify(base[k])) diffs.push(`rank ${r} has ${k} ${JSON.stringify(s[k])}, rank 0 ${JSON.stringify(base[k])}`);
  });
  if (diffs.length)
    throw new Error(`${where}: the ${info.world} ranks were not started with the same settings (${diffs.slice(0, 8).join('; ')}${diffs.length > 8 ? `; and ${diffs.length - 8} more` : ''}); start every rank with the same command and data`);
}

/** Ends the job (every rank) when this rank makes no progress for `seconds`. */
export class Watchdog {
  #last = Date.now();
  #what = 'starting';
  #timer: ReturnType<typeof setInterval>;
  constructor(
    readonly rank: number,
    readonly seconds: number,
  ) {
    this.#timer = setInterval(() => this.#check(), Math.max(100, Math.min(5000, (seconds * 1000) / 4)));
    this.#timer.unref();
  }
  progress(what: string): void {
    this.#last = Date.now();
    this.#what = what;
  }
  #check(): void {
    const idle = (Date.now() - this.#last) / 1000;
    if (idle < this.seconds) return;
    abortDistributed(
      3,
      `alexnet: rank ${this.rank}: no progress for ${idle.toFixed(0)} s (the limit is ${this.seconds} s) after ${this.#what}: ` +
        'a rank died or hangs, and this one waits for it in a collective. Ending the job; the last checkpoint is intact (--resume continues from it).',
    );
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

export function watchdogSeconds(o: DistributedOptions): number {
  const env = process.env.AXN_DIST_TIMEOUT_S;
  const v = o.timeoutSeconds ?? (env !== undefined && env !== '' ? Number(env) : 300);
  if (!(typeof v === 'number' && Number.isFinite(v) && v > 0))
    throw new RangeError(`distributed: timeoutSeconds (or AXN_DIST_TIMEOUT_S) must be a positive number of seconds, got ${JSON.stringify(o.timeoutSeconds ?? env)}`);
  return v;
}
