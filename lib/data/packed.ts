/** PackedDataset: a packed data set (written by `alexnet pack`, format in native/data/store.h) as a
 * BatchSource whose batches are ready-made model inputs on the device in use.
 *
 * Per batch, and nothing per image in JavaScript beyond drawing its random choices:
 *   1. the native decode threads (one per core by default) decode each image's window — only the crop's
 *      rows and iMCU columns of a JPEG (native/data/jpeg.h) — into a staging buffer of uint8 HWC slots
 *      (pinned memory on CUDA);
 *   2. the staging buffer is copied once to a uint8 tensor on the device (4× fewer bytes than float32; on
 *      CUDA on a copy stream ordered with events, native/data/loader.h);
 *   3. one kernel (ops.augmentBatch, CPU version beside it) flips, adds the PCA colour shift and
 *      normalises into the [n, C, S, S] float32 input.
 * Up to `prefetchBytes` of staging memory hold batches being decoded ahead of the consumer.
 *
 * The random choices of image i in epoch e come from Rng.from(seed, e, AUGMENT_STREAM, i) with
 * drawTrainParams — the same draws, and the same crop rule, as ImageFolder (so a store packed at short side
 * 256 gives the crops ImageFolder takes from the same resized pixels): training takes a size×size window
 * inside the central square, at top = ⌊(H − sq)/2⌋ + ⌊uTop·(sq − size + 1)⌋ (likewise left), flipped with
 * probability ½, plus the PCA shift; evaluation the centred window; ten-crop evaluation the corners and
 * centre of the central resize×resize square and their mirror images (tenCrop: true).
 *
 * Order: an epoch's order is a permutation that depends on (seed, epoch) only; with `world` > 1 it is
 * padded (by repeating its first images) to a multiple of `world` and rank r takes positions r, r + world,
 * … — disjoint, equal shares, so every rank takes the same number of steps. `startBatch` skips batches
 * without decoding them. A damaged record rejects its batch with an error naming the file and the record. */
import os from 'node:os';
import path from 'node:path';
import { describe } from '../errors.js';
import { loadNative, type NativeLoader, type NativeLoaderStats } from '../native.js';
import { augmentBatch } from '../ops/augment.js';
import { Tensor, parseDevice, requireCuda, type Device } from '../tensor.js';
import { IMAGENET_MEAN, IMAGENET_STD, PCA_ALPHA_STD, drawTrainParams, offsetFromUniform } from './augment.js';
import { AUGMENT_STREAM, batchCount, checkStartBatch, epochOrder, resolveBatchOptions, shardOrder, type ResolvedBatchOptions } from './batching.js';
import { boolOption, intOption, optionsObject } from './options.js';
import { Rng } from './rng.js';
import type { Batch, BatchOptions, BatchSource } from './types.js';
import type { PackSettings } from './pack.js';

export interface PackedDatasetOptions {
  /** The paper's training augmentation (default false: the centred crop). */
  train?: boolean;
  /** Evaluation with the paper's ten crops: each batch's input holds 10 views of each image (default false). */
  tenCrop?: boolean;
  /** Crop side (default 224; 227 for the paper's arch). */
  size?: number;
  /** Where batches are made: 'cpu' (default) or 'cuda'. */
  device?: Device | string;
  /** Per-channel mean and std of [0, 1] pixels (default ImageNet's; 1 channel: 0.449, 0.226). */
  mean?: readonly number[];
  std?: readonly number[];
  /** Training: random horizontal flips (default true). */
  flip?: boolean;
  /** Training: std of the PCA colour-jitter coefficients (default 0.1; 0 turns it off; RGB only). */
  pcaStd?: number;
  /** Decode threads (default: one per core). */
  threads?: number;
  /** Where JPEGs are decoded: 'cpu' (default: the decode threads, only the crop's rows and columns) or
   * 'gpu' (nvJPEG's batched decoder, device 'cuda' only, where the addon was built with nvJPEG: whole
   * images on the GPU, then the crops copied on the device). */
  decode?: 'cpu' | 'gpu';
  /** Staging memory for batches decoded ahead (default 256 MiB; at least two batches are always held). */
  prefetchBytes?: number;
  /** Use only this many images, taken round-robin over the classes. */
  limit?: number;
  /** This process's rank and the number of ranks: each takes an equal, disjoint share of every epoch. */
  rank?: number;
  world?: number;
}

const OPTION_KEYS = ['train', 'tenCrop', 'size', 'device', 'mean', 'std', 'flip', 'pcaStd', 'threads', 'decode', 'prefetchBytes', 'limit', 'rank', 'world'];

interface Meta {
  classes: string[];
  settings: PackSettings;
  count: number;
  skipped?: { path: string; reason: string }[];
}

export class PackedDataset implements BatchSource {
  readonly path: string;
  readonly classes: readonly string[];
  /** How the store was packed. */
  readonly settings: Readonly<PackSettings>;
  readonly sampleShape: readonly [number, number, number];
  readonly device: Device;
  readonly train: boolean;
  readonly tenCrop: boolean;
  /** Where JPEGs are decoded. */
  readonly decode: 'cpu' | 'gpu';
  /** Records in the store (all ranks, before `limit`). */
  readonly records: number;
  private readonly loader: NativeLoader;
  private readonly ids: Uint32Array; // the records this dataset uses (after limit)
  private readonly labels: Int32Array;
  private readonly widths: Int32Array;
  private readonly heights: Int32Array;
  private readonly formats: Uint8Array;
  private readonly o: {
    size: number; mean: number[]; std: number[]; flip: boolean; pcaStd: number; prefetchBytes: number; rank: number; world: number;
  };
  private stagingFor = { count: 0, bytes: 0 };
  private busy = false;
  private closed = false;
  private namesCache: string[] | undefined;

  private constructor(file: string, loader: NativeLoader, meta: Meta, info: ReturnType<NativeLoader['info']>, opts: Required<Pick<PackedDatasetOptions, 'train' | 'tenCrop'>> & { device: Device; ids: Uint32Array; gpuDecode: boolean; o: PackedDataset['o'] }) {
    this.path = file;
    this.loader = loader;
    this.classes = Object.freeze([...meta.classes]);
    this.settings = Object.freeze({ ...meta.settings });
    this.records = info.count;
    this.labels = info.labels;
    this.widths = info.widths;
    this.heights = info.heights;
    this.formats = info.formats;
    this.device = opts.device;
    this.train = opts.train;
    this.tenCrop = opts.tenCrop;
    this.decode = opts.gpuDecode ? 'gpu' : 'cpu';
    this.ids = opts.ids;
    this.o = opts.o;
    this.sampleShape = Object.freeze([meta.settings.channels, opts.o.size, opts.o.size] as [number, number, number]);
  }

  /** Opens and checks a packed data set (header, sections, index, every entry; records' checksums as they
   * are read). Errors name the file and what was wrong. */
  static async open(file: string, opts?: PackedDatasetOptions): Promise<PackedDataset> {
    const where = 'PackedDataset';
    if (typeof file !== 'string' || !file) throw new TypeError(`${where}: expected the path of a packed data set, got ${describe(file)}`);
    const o = optionsObject(opts, OPTION_KEYS, where);
    const int = (v: unknown, name: string, lo: number, hi: number, dflt: number) => intOption(v, name, lo, hi, dflt, where);
    const bool = (v: unknown, name: string, dflt: boolean) => boolOption(v, name, dflt, where);
    const device = parseDevice(o.device ?? 'cpu', `${where}: device`);
    if (device === 'cuda') requireCuda(where);
    const train = bool(o.train, 'train', false);
    const tenCrop = bool(o.tenCrop, 'tenCrop', false);
    if (train && tenCrop) throw new TypeError(`${where}: tenCrop is an evaluation mode; it cannot be combined with train`);
    const size = int(o.size, 'size', 1, 65535, 224);
    const threads = int(o.threads, 'threads', 1, 1024, Math.max(1, os.availableParallelism()));
    const prefetchBytes = int(o.prefetchBytes, 'prefetchBytes', 1, 2 ** 40, 256 * 2 ** 20);
    const world = int(o.world, 'world', 1, 1 << 20, 1);
    const rank = int(o.rank, 'rank', 0, world - 1, 0);
    const pcaStd = o.pcaStd ?? PCA_ALPHA_STD;
    if (typeof pcaStd !== 'number' || !Number.isFinite(pcaStd) || pcaStd < 0) throw new TypeError(`${where}: expected pcaStd to be a finite number ≥ 0, got ${describe(o.pcaStd)}`);
    const decode = o.decode ?? 'cpu';
    if (decode !== 'cpu' && decode !== 'gpu') throw new TypeError(`${where}: expected decode to be 'cpu' or 'gpu', got ${describe(o.decode)}`);
    if (decode === 'gpu') {
      if (device !== 'cuda') throw new TypeError(`${where}: decode 'gpu' needs device 'cuda', got '${device}'`);
      const nd = loadNative().data;
      if (!nd.gpuDecode) throw new Error(`${where}: decode 'gpu': nvJPEG is not available: ${nd.gpuDecodeReason}`);
    }
    const abs = path.resolve(file);
    const loader = new (loadNative().data.Loader)(abs, threads, device === 'cuda', decode === 'gpu');
    try {
      const info = loader.info();
      let meta: Meta;
      try {
        meta = JSON.parse(info.meta);
      } catch (e) {
        throw new Error(`packed data set ${abs}: the meta section is not JSON (${(e as Error).message})`);
      }
      const s = meta?.settings;
      if (decode === 'gpu' && Array.from(info.formats).some((f) => f !== 0))
        throw new Error(`packed data set ${abs}: decode 'gpu' needs JPEG records; this store holds raw ones (nothing to decode: use decode 'cpu')`);
      if (!meta || !Array.isArray(meta.classes) || !meta.classes.every((c) => typeof c === 'string') || !s || (s.channels !== 1 && s.channels !== 3) || !Number.isInteger(s.resize))
        throw new Error(`packed data set ${abs}: the meta section lacks classes or settings`);
      const C = s.channels;
      for (let i = 0; i < info.count; i++) {
        if (info.labels[i] >= meta.classes.length) throw new Error(`packed data set ${abs}: record ${i} has label ${info.labels[i]}, the store has ${meta.classes.length} classes`);
        if (info.channels[i] !== C) throw new Error(`packed data set ${abs}: record ${i} has ${info.channels[i]} channels, the store's settings say ${C}`);
        if (info.formats[i] === 0 && !info.jpeg)
          throw new Error(`packed data set ${abs} holds JPEG records, and this addon cannot decode JPEG: ${info.jpegReason}. Use ImageFolder on the original images, or pack with format 'raw' (--format raw)`);
      }
      const need = tenCrop ? Math.max(size, s.resize) : size;
      let smallest = Infinity;
      for (let i = 0; i < info.count; i++) smallest = Math.min(smallest, info.widths[i], info.heights[i]);
      if (info.count > 0 && smallest < need)
        throw new RangeError(`packed data set ${abs}: its smallest image side is ${smallest} (packed at ${s.resize}), smaller than the ${need}×${need} ${tenCrop ? 'square the ten crops are taken from' : 'crop'}`);
      const mean = o.mean ? [...o.mean] : C === 3 ? [...IMAGENET_MEAN] : [0.449];
      const std = o.std ? [...o.std] : C === 3 ? [...IMAGENET_STD] : [0.226];
      if (mean.length !== C || std.length !== C || !mean.every(Number.isFinite) || !std.every((v) => Number.isFinite(v) && v > 0))
        throw new TypeError(`${where}: expected mean and std to be ${C} finite numbers each (std > 0), got ${describe(o.mean)} and ${describe(o.std)}`);
      const limit = int(o.limit, 'limit', 1, 2 ** 32, info.count);
      const ids = limitRoundRobin(info.labels, meta.classes.length, limit);
      return new PackedDataset(abs, loader, meta, info, {
        train, tenCrop, device, ids, gpuDecode: decode === 'gpu',
        o: { size, mean, std, flip: bool(o.flip, 'flip', true), pcaStd: C === 3 ? pcaStd : 0, prefetchBytes, rank, world },
      });
    } catch (e) {
      loader.close();
      throw e;
    }
  }

  /** Images in one epoch for this rank: its share of the (limited) records, padded as the other ranks'. */
  get size(): number {
    return Math.ceil(this.ids.length / this.o.world);
  }

  /** The source path (relative to the packed folder) of each record. */
  get names(): readonly string[] {
    if (!this.namesCache) this.namesCache = this.loader.names().split('\n').slice(0, this.records).map((l) => JSON.parse(l) as string);
    return this.namesCache;
  }

  /** Record i as stored (its checksum checked): the bytes, label and size. */
  record(i: number): { bytes: Buffer; label: number; width: number; height: number; format: 'jpeg' | 'raw' } {
    const bytes = this.loader.recordBytes(i);
    return { bytes, label: this.labels[i], width: this.widths[i], height: this.heights[i], format: this.formatOf(i) };
  }

  /** Record i decoded whole: HWC uint8 pixels, height × width × channels (one image, on the calling thread). */
  decodeRecord(i: number): { data: Buffer; width: number; height: number; channels: number } {
    return { data: this.loader.decodeRecord(i), width: this.widths[i], height: this.heights[i], channels: this.settings.channels };
  }

  /** Benchmark aid: decodes every record whole, `passes` times, on the calling thread (it blocks) into one
   * buffer: the decoder's ceiling on one core. */
  decodeAllForBenchmark(passes = 1): { images: number; seconds: number; cpuSeconds: number } {
    return this.loader.decodeAll(passes);
  }

  private formatOf(i: number): 'jpeg' | 'raw' {
    return this.formats[i] === 0 ? 'jpeg' : 'raw';
  }

  /** Decode-thread counters: images, seconds decoding, seconds waiting for staging buffers. */
  stats(): NativeLoaderStats {
    return this.loader.stats();
  }

  /** This rank's record ids for an epoch, in order. */
  epochRecords(o: Pick<ResolvedBatchOptions, 'shuffle' | 'seed' | 'epoch'> & Partial<Pick<ResolvedBatchOptions, 'batchSize' | 'dropLast' | 'shard'>>): Uint32Array {
    const order = epochOrder(this.ids.length, o);
    const { rank, world } = this.o;
    if (o.shard) {
      // train()'s data-parallel share (per global batch: see BatchOptions.shard), not this store's own
      if (world > 1)
        throw new Error(`PackedDataset.batches: this dataset was opened as rank ${rank} of ${world} (options rank/world) and the batches are asked for with shard ${JSON.stringify(o.shard)}: use one of the two, not both (train() shards by itself: open the dataset without rank/world)`);
      const mine = shardOrder(order, { batchSize: o.batchSize ?? 1, dropLast: o.dropLast ?? false, shard: o.shard });
      return mine.map((k) => this.ids[k]);
    }
    const share = Math.ceil(order.length / world);
    const out = new Uint32Array(share);
    for (let k = 0; k < share; k++) out[k] = this.ids[order[(rank + k * world) % order.length]];
    return out;
  }

  batches(opts: BatchOptions): AsyncIterable<Batch> {
    const o = resolveBatchOptions(opts, 'PackedDataset.batches');
    return { [Symbol.asyncIterator]: () => this.iterate(o) };
  }

  private ensureStaging(batchBytes: number): number {
    const depth = Math.max(2, Math.min(16, Math.floor(this.o.prefetchBytes / batchBytes)));
    if (this.stagingFor.count !== depth || this.stagingFor.bytes !== batchBytes) {
      this.loader.setStaging(depth, batchBytes);
      this.stagingFor = { count: depth, bytes: batchBytes };
    }
    return depth;
  }

  private async *iterate(o: ResolvedBatchOptions): AsyncGenerator<Batch> {
    if (this.closed) throw new Error(`PackedDataset: ${this.path} is closed`);
    if (this.busy) throw new Error(`PackedDataset: ${this.path} is already being iterated (one batches() loop at a time; close the other first)`);
    this.busy = true;
    const pending: Promise<void>[] = [];
    let plansRef: { u8: Tensor | null }[] = [];
    const ring: (Tensor | undefined)[] = [];
    try {
      const recs = this.epochRecords(o);
      const B = o.batchSize;
      const count = batchCount(recs.length, B, o.dropLast);
      checkStartBatch(o.startBatch, count, 'PackedDataset.batches');
      const C = this.settings.channels;
      const S = this.o.size;
      const views = this.tenCrop ? 10 : 1;
      const slot = this.tenCrop ? Math.max(S, this.settings.resize) : S; // ten crops come from the central square
      const slotBytes = slot * slot * C;
      // CUDA: pinned staging buffers, one upload a batch; CPU: decoded straight into the batch's tensor;
      // GPU decoding: into the batch's device tensor, on the copy stream
      const gpu = this.decode === 'gpu';
      const direct = this.device === 'cpu' || gpu;
      const depth = direct ? Math.max(2, Math.min(16, Math.floor(this.o.prefetchBytes / (B * slotBytes)))) : this.ensureStaging(B * slotBytes);
      // batch b: its records, decoded into staging buffer b mod depth
      const batchRecs = (b: number) => recs.subarray(b * B, Math.min(recs.length, (b + 1) * B));
      const plans: { params: Int32Array; shift: Float32Array | null; n: number; u8: Tensor | null }[] = [];
      plansRef = plans;
      const start = (b: number) => {
        const r = batchRecs(b);
        const jobs = new Int32Array(r.length * 3);
        const params = new Int32Array(r.length * views * 4);
        const shift = this.train && this.o.pcaStd > 0 ? new Float32Array(r.length * C) : null;
        for (let j = 0; j < r.length; j++) {
          const id = r[j];
          const H = this.heights[id], W = this.widths[id];
          let top: number, left: number;
          if (this.train) {
            const d = drawTrainParams(Rng.from(o.seed, o.epoch, AUGMENT_STREAM, id), { flip: this.o.flip, pcaStd: this.o.pcaStd });
            const sq = Math.min(H, W);
            top = Math.floor((H - sq) / 2) + offsetFromUniform(d.uTop, sq - S + 1);
            left = Math.floor((W - sq) / 2) + offsetFromUniform(d.uLeft, sq - S + 1);
            params.set([j, 0, 0, d.flip ? 1 : 0], j * 4);
            if (shift) shift.set(d.shift, j * C);
          } else {
            top = Math.floor((H - slot) / 2);
            left = Math.floor((W - slot) / 2);
            if (this.tenCrop) {
              const e = slot - S;
              const m = Math.floor(e / 2);
              const corners = [[0, 0], [0, e], [e, 0], [e, e], [m, m]];
              corners.forEach(([t, l], k) => {
                params.set([j, t, l, 0], (j * 10 + k) * 4);
                params.set([j, t, l, 1], (j * 10 + 5 + k) * 4);
              });
            } else params.set([j, 0, 0, 0], j * 4);
          }
          jobs[3 * j] = id;
          jobs[3 * j + 1] = top;
          jobs[3 * j + 2] = left;
        }
        // CPU: a ring of `depth` batch tensors, reused (the decode waits for the augmentation that read the
        // ring slot last, in CPU-stream order): no memory churn, no page faults per batch. GPU decoding: a
        // fresh tensor from the caching allocator (stream-ordered, cheap)
        let u8: Tensor | null = null;
        if (gpu) u8 = Tensor.empty([r.length, slot, slot, C], this.device, 'uint8');
        else if (direct) u8 = ring[b % depth] ??= Tensor.empty([B, slot, slot, C], 'cpu', 'uint8');
        plans[b % depth] = { params, shift, n: r.length, u8 };
        const p = gpu
          ? this.loader.decodeGpu(jobs, slot, slot, C, Tensor.storageOf(u8!, 'PackedDataset'))
          : u8
            ? this.loader.decode(-1, jobs, slot, slot, C, Tensor.storageOf(u8, 'PackedDataset'))
            : this.loader.decode(b % depth, jobs, slot, slot, C);
        p.catch(() => {}); // awaited in order below
        return p;
      };
      let nextStart = o.startBatch;
      const top = () => {
        while (nextStart < count && pending.length < depth) pending.push(start(nextStart++));
      };
      top();
      for (let b = o.startBatch; b < count; b++) {
        const done = pending.shift()!;
        try {
          await done;
        } catch (e) {
          throw new Error(`packed data set ${this.path}: ${(e as Error).message}${this.recordName(e as Error)}`);
        }
        const plan = plans[b % depth];
        const r = batchRecs(b);
        const labels = new Int32Array(r.length);
        for (let j = 0; j < r.length; j++) labels[j] = this.labels[r[j]];
        let u8 = plan.u8;
        plan.u8 = null;
        const owned = !direct || gpu; // the ring's tensors stay for the next batches
        let input: Tensor;
        try {
          if (!u8) {
            u8 = Tensor.empty([plan.n, slot, slot, C], this.device, 'uint8');
            this.loader.upload(b % depth, plan.n * slotBytes, Tensor.storageOf(u8, 'PackedDataset'));
          }
          input = augmentBatch(u8, plan.params, { size: S, mean: this.o.mean, std: this.o.std, shift: plan.shift });
        } finally {
          if (owned) u8?.dispose(); // freed in stream order, after the kernel that reads it
        }
        try {
          top(); // the staging buffer is free for the batch `depth` ahead (its decode waits for the copy)
        } catch (e) {
          input.dispose();
          throw e;
        }
        const batch: Batch = { input, labels, n: plan.n, shape: [plan.n, C, S, S] };
        if (views > 1) batch.crops = views;
        yield batch;
      }
    } finally {
      // let the batches still being decoded finish before the staging buffers can be reused
      await Promise.allSettled(pending);
      for (const p of plansRef) if (p?.u8 && !ring.includes(p.u8)) p.u8.dispose();
      for (const t of ring) t?.dispose();
      this.busy = false;
    }
  }

  private recordName(e: Error): string {
    const m = /^record (\d+)/.exec(e.message);
    if (!m) return '';
    const i = Number(m[1]);
    try {
      return i < this.records ? ` (packed from ${this.names[i]})` : '';
    } catch {
      return '';
    }
  }

  /** Frees the decode threads, staging memory and the mapping. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.loader.close();
  }
}

/** `limit` records, taken round-robin over the classes in record order (all of them when limit ≥ n). */
function limitRoundRobin(labels: Int32Array, classes: number, limit: number): Uint32Array {
  const n = labels.length;
  if (limit >= n) return Uint32Array.from({ length: n }, (_, i) => i);
  const perClass: number[][] = Array.from({ length: classes }, () => []);
  for (let i = 0; i < n; i++) perClass[labels[i]].push(i);
  const pick: number[] = [];
  for (let r = 0; pick.length < limit; r++)
    for (let c = 0; c < classes && pick.length < limit; c++) if (r < perClass[c].length) pick.push(perClass[c][r]);
  return Uint32Array.from(pick.sort((a, b) => a - b));
}
