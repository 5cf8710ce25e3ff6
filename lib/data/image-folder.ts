/** ImageFolder: a folder of JPEG/PNG images, one subfolder per class (torchvision's layout:
 * `root/<class>/<...>/<image>.jpg`), as a BatchSource.
 *
 * - Classes are the subfolders' names sorted by code unit (`Array.prototype.sort`), a label is the index
 *   of its class; files are found recursively, hidden entries skipped, and sorted the same way. The
 *   listing is list-folder.ts's: every real file once, symlinks followed only where that lists nothing
 *   twice and loops nothing, FIFOs/sockets/devices never opened; what it leaves out is in `problems` and
 *   goes to `onSkip` (or, without one, out as a process warning).
 * - Images are decoded and resized by sharp in a pool of worker_threads (see decode-worker.ts), with up
 *   to `inFlight` images in flight, and batches are assembled `prefetch` batches ahead of the consumer.
 *   sharp's native work runs on libuv's thread pool, which all workers of a process share: for more than
 *   4 decodes at once start Node with `UV_THREADPOOL_SIZE` ≥ `inFlight`.
 * - Training (`train: true`) applies the paper's augmentation: short side → `resize` (256), a random
 *   `size`×`size` crop inside the central `resize`×`resize` square, a random horizontal flip and the PCA
 *   colour jitter; evaluation: short side → `resize`, centre crop. Then (x − mean)/std (ImageNet's by
 *   default) into CHW float32. The random choices of an image are drawn from
 *   `Rng.from(seed, epoch, AUGMENT_STREAM, fileIndex)` (see augment.ts's drawTrainParams), so they do not
 *   depend on timing, on workers, or on where a resumed run started.
 * - A file that cannot be decoded (corrupt, truncated, empty, unreadable, vanished) is skipped: it is
 *   added to `skipped` (`{ path, reason }`) and passed to `onSkip`, and the batch is filled from the next
 *   files, so batch sizes stay right. It is left out of later epochs (and of `size`).
 *
 * Order and resuming. An epoch's order is a permutation of all files that depends on (seed, epoch) only;
 * files known to be unreadable are then dropped, and batches are consecutive runs of what remains.
 * `startBatch: k` skips k·batchSize files without decoding them; this equals an uninterrupted run
 * whenever the unreadable files among those were known — always within one process once they have been
 * met, and across processes when the previous run's `skipped` paths are passed back as `exclude`. */
import os from 'node:os';
import path from 'node:path';
import { describe } from '../errors.js';
import { IMAGENET_MEAN, IMAGENET_STD, PCA_ALPHA_STD, drawTrainParams } from './augment.js';
import { AUGMENT_STREAM, batchCount, checkStartBatch, epochOrder, resolveBatchOptions, shardOrder, type ResolvedBatchOptions } from './batching.js';
import { DecodePool, type DecodeConfig, type DecodeResult, type DecodeTask } from './decode-worker.js';
import { FolderError, listImageFolder, type FolderProblem } from './list-folder.js';
import { Rng } from './rng.js';
import type { Batch, BatchOptions, BatchSource } from './types.js';

/** A file that could not be decoded, and why (sharp's message, first line). */
export interface SkippedFile {
  path: string;
  reason: string;
}

export interface ImageFolderOptions {
  /** The paper's training augmentation (default false: resize + centre crop). */
  train?: boolean;
  /** Output side (default 224; 227 for the Caffe-style arch). */
  size?: number;
  /** Short side before cropping (default 256 for sizes 224–256, else round(size · 8/7)); at least `size`. */
  resize?: number;
  /** 3 (RGB, default) or 1 (greyscale). */
  channels?: 1 | 3;
  /** Per-channel mean and std of [0, 1] pixels (default ImageNet's; for 1 channel 0.449 and 0.226). */
  mean?: readonly number[];
  std?: readonly number[];
  /** Training: random horizontal flips (default true). */
  flip?: boolean;
  /** Training: std of the PCA colour-jitter coefficients (default 0.1; 0 turns it off; RGB only). */
  pcaStd?: number;
  /** Decode workers (default min(4, CPU cores)). */
  workers?: number;
  /** Images being decoded at once (default 2 per worker). */
  inFlight?: number;
  /** Finished batches kept ready ahead of the consumer (default 2). */
  prefetch?: number;
  /** Use only this many images, taken round-robin over the classes (so the classes stay balanced). */
  limit?: number;
  /** File extensions (default .jpg, .jpeg, .png; case-insensitive). */
  extensions?: readonly string[];
  /** Files known to be unreadable (absolute, or relative to root), e.g. a previous run's `skipped` paths. */
  exclude?: Iterable<string>;
  /** sharp's `failOn` (default 'warning': a truncated JPEG is an error, so it is skipped). */
  failOn?: 'none' | 'truncated' | 'error' | 'warning';
  /** Called once for each file that is skipped: when it cannot be decoded, and at open() for each entry
   * the listing leaves out (a symlink loop, a FIFO, a name that is not UTF-8: see `problems`). */
  onSkip?: (s: SkippedFile) => void;
  /** Allow class folders without images (default false: that is an error, as in torchvision). */
  allowEmptyClasses?: boolean;
}

const OPTION_KEYS = [
  'train', 'size', 'resize', 'channels', 'mean', 'std', 'flip', 'pcaStd', 'workers', 'inFlight', 'prefetch',
  'limit', 'extensions', 'exclude', 'failOn', 'onSkip', 'allowEmptyClasses',
];
const GREY_MEAN = [0.449];
const GREY_STD = [0.226];

interface Resolved {
  train: boolean;
  size: number;
  resize: number;
  channels: 1 | 3;
  mean: number[];
  std: number[];
  flip: boolean;
  pcaStd: number;
  workers: number;
  inFlight: number;
  prefetch: number;
  limit: number;
  extensions: string[];
  exclude: string[];
  failOn: DecodeConfig['failOn'];
  onSkip: ((s: SkippedFile) => void) | undefined;
  allowEmptyClasses: boolean;
}

function resolveOptions(opts: unknown): Resolved {
  const where = 'ImageFolder';
  if (opts === undefined) opts = {};
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${where}: expected an options object, got ${describe(opts)}`);
  for (const k of Object.keys(opts))
    if (!OPTION_KEYS.includes(k)) throw new TypeError(`${where}: unknown option ${JSON.stringify(k)} (expected one of ${OPTION_KEYS.join(', ')})`);
  const o = opts as ImageFolderOptions;
  const posInt = (v: unknown, name: string, dflt: number, max = 1 << 20): number => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max)
      throw new TypeError(`${where}: expected ${name} to be an integer from 1 to ${max}, got ${describe(v)}`);
    return v;
  };
  const bool = (v: unknown, name: string, dflt: boolean): boolean => {
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw new TypeError(`${where}: expected ${name} to be a boolean, got ${describe(v)}`);
    return v;
  };
  const channels = o.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new TypeError(`${where}: expected channels to be 1 or 3, got ${describe(o.channels)}`);
  const perChannel = (v: unknown, name: string, dflt: readonly number[], positive: boolean): number[] => {
    if (v === undefined) return [...dflt];
    if (!Array.isArray(v) || v.length !== channels || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0)))
      throw new TypeError(`${where}: expected ${name} to be ${channels} finite${positive ? ' positive' : ''} numbers (one per channel), got ${describe(v)}`);
    return [...v];
  };
  const size = posInt(o.size, 'size', 224, 8192);
  const resize = posInt(o.resize, 'resize', size >= 224 && size <= 256 ? 256 : Math.round((size * 8) / 7), 16384);
  if (resize < size) throw new RangeError(`${where}: resize (the short side, ${resize}) must be at least size (the crop, ${size})`);
  const workers = posInt(o.workers, 'workers', Math.max(1, Math.min(4, os.availableParallelism())), 256);
  const pcaStd = o.pcaStd ?? PCA_ALPHA_STD;
  if (typeof pcaStd !== 'number' || !Number.isFinite(pcaStd) || pcaStd < 0)
    throw new TypeError(`${where}: expected pcaStd to be a non-negative number, got ${describe(o.pcaStd)}`);
  const failOn = o.failOn ?? 'warning';
  if (!['none', 'truncated', 'error', 'warning'].includes(failOn))
    throw new TypeError(`${where}: expected failOn to be "none", "truncated", "error" or "warning", got ${describe(o.failOn)}`);
  const extensions = o.extensions ?? ['.jpg', '.jpeg', '.png'];
  if (!Array.isArray(extensions) || extensions.length === 0 || !extensions.every((e) => typeof e === 'string' && /^\.[^./\\]+$/.test(e)))
    throw new TypeError(`${where}: expected extensions to be a non-empty array like [".jpg", ".png"], got ${describe(o.extensions)}`);
  if (o.onSkip !== undefined && typeof o.onSkip !== 'function') throw new TypeError(`${where}: expected onSkip to be a function, got ${describe(o.onSkip)}`);
  let exclude: string[] = [];
  if (o.exclude !== undefined) {
    if (o.exclude === null || typeof (o.exclude as Iterable<string>)[Symbol.iterator] !== 'function' || typeof o.exclude === 'string')
      throw new TypeError(`${where}: expected exclude to be an iterable of paths, got ${describe(o.exclude)}`);
    exclude = [...o.exclude];
    const bad = exclude.find((p) => typeof p !== 'string');
    if (bad !== undefined) throw new TypeError(`${where}: expected exclude to hold paths (strings), got ${describe(bad)}`);
  }
  return {
    train: bool(o.train, 'train', false),
    size,
    resize,
    channels,
    mean: perChannel(o.mean, 'mean', channels === 3 ? IMAGENET_MEAN : GREY_MEAN, false),
    std: perChannel(o.std, 'std', channels === 3 ? IMAGENET_STD : GREY_STD, true),
    flip: bool(o.flip, 'flip', true),
    pcaStd: channels === 3 ? pcaStd : 0,
    workers,
    inFlight: posInt(o.inFlight, 'inFlight', 2 * workers, 4096),
    prefetch: posInt(o.prefetch, 'prefetch', 2, 1024),
    limit: o.limit === undefined ? Infinity : posInt(o.limit, 'limit', 0, 2 ** 31),
    extensions: extensions.map((e) => e.toLowerCase()),
    exclude,
    failOn,
    onSkip: o.onSkip,
    allowEmptyClasses: bool(o.allowEmptyClasses, 'allowEmptyClasses', false),
  };
}

export class ImageFolder implements BatchSource {
  readonly root: string;
  readonly classes: readonly string[];
  /** All image files, in source order (by class, then by path). */
  readonly files: readonly string[];
  /** labels[i] is the class of files[i]. */
  readonly labels: Int32Array;
  /** What the listing left out, and why (list-folder.ts): symlinks not followed, FIFOs, sockets and
   * devices, names that are not UTF-8. */
  readonly problems: readonly FolderProblem[];
  readonly sampleShape: readonly [number, number, number];
  readonly train: boolean;
  private readonly opts: Resolved;
  private readonly bad = new Set<number>();
  private readonly skippedList: SkippedFile[] = [];
  private pool: DecodePool | undefined;

  private constructor(root: string, classes: string[], files: string[], labels: Int32Array, problems: FolderProblem[], opts: Resolved) {
    this.root = root;
    this.classes = Object.freeze(classes);
    this.files = Object.freeze(files);
    this.labels = labels;
    this.problems = Object.freeze(problems);
    this.opts = opts;
    this.train = opts.train;
    this.sampleShape = Object.freeze([opts.channels, opts.size, opts.size] as const);
    const index = new Map(files.map((f, i) => [f, i]));
    for (const p of opts.exclude) {
      const i = index.get(path.resolve(root, p));
      if (i !== undefined) this.bad.add(i);
    }
  }

  /** Scans `root` (class subfolders of images) and checks the options. Errors: root missing or not a
   * folder, no class subfolders, no images, class folders without images (unless allowEmptyClasses). */
  static async open(root: string, opts?: ImageFolderOptions): Promise<ImageFolder> {
    if (typeof root !== 'string' || root === '') throw new TypeError(`ImageFolder: expected root to be a folder path, got ${describe(root)}`);
    const o = resolveOptions(opts);
    let l;
    try {
      l = await listImageFolder(root, { extensions: o.extensions, allowEmptyClasses: o.allowEmptyClasses, limit: o.limit });
    } catch (e) {
      if (e instanceof FolderError) throw new Error(`ImageFolder: ${e.message}`, { cause: e });
      throw e;
    }
    for (const p of l.problems) {
      if (o.onSkip) o.onSkip({ path: p.path, reason: p.reason });
      else process.emitWarning(`ImageFolder: ${p.path}: ${p.reason}`, 'ImageFolderWarning');
    }
    return new ImageFolder(l.root, l.classes, l.files, l.labels, l.problems, o);
  }

  /** Images in one epoch: the files less those known to be unreadable. */
  get size(): number {
    return this.files.length - this.bad.size;
  }

  /** Files skipped so far because they could not be decoded (each once). */
  get skipped(): readonly SkippedFile[] {
    return this.skippedList;
  }

  private skip(i: number, reason: string): void {
    if (this.bad.has(i)) return;
    this.bad.add(i);
    const s = { path: this.files[i], reason };
    this.skippedList.push(s);
    this.opts.onSkip?.(s);
  }

  private startPool(): DecodePool {
    if (!this.pool || this.pool.isBroken) {
      void this.pool?.close(); // a worker died: let the others finish and go
      const { size, resize, channels, train, mean, std, failOn } = this.opts;
      this.pool = new DecodePool(this.opts.workers, { size, resize, channels, train, mean, std, failOn });
    }
    return this.pool;
  }

  /** The task for file `i` in epoch `o.epoch`: its path and its random choices. */
  private task(i: number, o: ResolvedBatchOptions): DecodeTask {
    if (!this.opts.train) return { path: this.files[i], uTop: 0, uLeft: 0, flip: false, shift: null };
    const d = drawTrainParams(Rng.from(o.seed, o.epoch, AUGMENT_STREAM, i), { flip: this.opts.flip, pcaStd: this.opts.pcaStd });
    return { path: this.files[i], uTop: d.uTop, uLeft: d.uLeft, flip: d.flip, shift: this.opts.pcaStd > 0 ? d.shift : null };
  }

  batches(opts: BatchOptions): AsyncIterable<Batch> {
    const o = resolveBatchOptions(opts, 'ImageFolder.batches');
    return { [Symbol.asyncIterator]: () => this.iterate(o) };
  }

  private async *iterate(o: ResolvedBatchOptions): AsyncGenerator<Batch> {
    const order = epochOrder(this.files.length, o);
    const stream = shardOrder(order.filter((i) => !this.bad.has(i)), o);
    checkStartBatch(o.startBatch, batchCount(stream.length, o.batchSize, o.dropLast), 'ImageFolder.batches');
    const pool = this.startPool();
    const B = o.batchSize;
    const [C, H, W] = this.sampleShape;
    const one = C * H * W;
    const { inFlight, prefetch } = this.opts;

    let pos = o.startBatch * B;
    const pending: { i: number; result: Promise<DecodeResult> }[] = [];
    const ready: Batch[] = [];
    let done = false;
    let cancelled = false;
    let error: unknown;
    let wakeConsumer: (() => void) | undefined;
    let wakeProducer: (() => void) | undefined;
    const notify = (which: 'consumer' | 'producer') => {
      const f = which === 'consumer' ? wakeConsumer : wakeProducer;
      if (which === 'consumer') wakeConsumer = undefined;
      else wakeProducer = undefined;
      f?.();
    };
    const topUp = () => {
      while (!cancelled && pending.length < inFlight && pos < stream.length) {
        const i = stream[pos++];
        pending.push({ i, result: pool.run(this.task(i, o)) });
      }
    };

    const produce = async () => {
      try {
        for (;;) {
          const x = new Float32Array(B * one);
          const labels = new Int32Array(B);
          let n = 0;
          while (n < B) {
            topUp();
            const head = pending.shift();
            if (!head) break;
            const r = await head.result;
            if (cancelled) return;
            if (r.ok) {
              if (r.data.length !== one) throw new Error(`ImageFolder: a decode worker returned ${r.data.length} values, expected ${one}`);
              x.set(r.data, n * one);
              labels[n++] = this.labels[head.i];
            } else if (r.fatal) throw r.fatal;
            else this.skip(head.i, r.reason);
          }
          if (n === 0 || (n < B && o.dropLast)) return;
          ready.push(n === B ? { x, labels, n, shape: [n, C, H, W] } : { x: x.slice(0, n * one), labels: labels.slice(0, n), n, shape: [n, C, H, W] });
          notify('consumer');
          if (n < B) return;
          while (ready.length >= prefetch && !cancelled) await new Promise<void>((r) => (wakeProducer = r));
          if (cancelled) return;
        }
      } catch (e) {
        error = e;
      } finally {
        done = true;
        notify('consumer');
      }
    };

    void produce();
    try {
      for (;;) {
        if (ready.length) {
          const b = ready.shift()!;
          notify('producer');
          yield b;
          continue;
        }
        if (done) {
          if (error !== undefined) throw error;
          return;
        }
        await new Promise<void>((r) => (wakeConsumer = r));
      }
    } finally {
      cancelled = true;
      notify('producer');
    }
  }

  /** Stops the decode workers (after the images they hold). A later `batches()` starts new ones. */
  async close(): Promise<void> {
    const p = this.pool;
    this.pool = undefined;
    await p?.close();
  }
}
