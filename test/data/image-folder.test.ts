import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AUGMENT_STREAM, IMAGENET_MEAN, IMAGENET_STD, ImageFolder, Rng, augmentEval, augmentTrain, centerCrop, epochOrder, hwcToChw,
  type Batch, type BatchOptions, type ImageFolderOptions, type SkippedFile,
} from '../../lib/data/index.js';
import { makeImageTree, type ImageTree } from './helpers/image-tree.js';

let tree: ImageTree;
const opened: ImageFolder[] = [];
async function open(root: string, opts?: ImageFolderOptions): Promise<ImageFolder> {
  const f = await ImageFolder.open(root, opts);
  opened.push(f);
  return f;
}

beforeAll(async () => {
  tree = await makeImageTree({ perClass: 20, width: 64, height: 48, corrupt: true });
});
afterAll(async () => {
  await Promise.all(opened.map((f) => f.close()));
  if (tree) await rm(tree.root, { recursive: true, force: true });
});

async function collect(f: ImageFolder, opts: BatchOptions): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of f.batches(opts)) out.push(b);
  return out;
}

/** Decodes a file the way the worker does, independently, into a CHW image on [0, 1]. */
/** The reference decoding: EXIF orientation, alpha dropped first (PIL's convert('RGB'): colour kept, not
 * premultiplied — libvips premultiplies around a resize), then the colour space and the resize. */
async function decodeRef(file: string, resize: number, channels: 1 | 3) {
  const flat = await sharp(file).rotate().removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  let p = sharp(flat.data, { raw: { width: flat.info.width, height: flat.info.height, channels: flat.info.channels } });
  p = channels === 3 ? p.toColourspace('srgb') : p.greyscale();
  const { data, info } = await p.resize({ width: resize, height: resize, fit: 'outside' }).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  return { img: hwcToChw(new Uint8Array(data.buffer, data.byteOffset, data.length), info.height, info.width, info.channels), h: info.height, w: info.width };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function expectSameBatches(a: Batch[], b: Batch[], what: string): void {
  expect(a.length, `${what}: number of batches`).toBe(b.length);
  a.forEach((x, i) => {
    expect(Array.from(x.labels), `${what}: labels of batch ${i}`).toEqual(Array.from(b[i].labels));
    expect(x.shape).toEqual(b[i].shape);
    expect(Buffer.from(x.x.buffer, x.x.byteOffset, x.x.byteLength).equals(Buffer.from(b[i].x.buffer, b[i].x.byteOffset, b[i].x.byteLength)), `${what}: x of batch ${i}`).toBe(true);
  });
}

describe('ImageFolder', () => {
  it('eval: every good image comes out once, in order, with its label and the centre-crop transform; corrupt files are skipped and reported', async () => {
    const skips: SkippedFile[] = [];
    const f = await open(tree.root, { size: 32, workers: 2, onSkip: (s) => skips.push(s) });
    expect(f.classes).toEqual(['bag', 'sneaker', 'trouser']);
    expect(f.sampleShape).toEqual([3, 32, 32]);
    expect(f.files.length).toBe(63);
    expect(f.size).toBe(63); // the corrupt files are not known yet
    expect([...f.files].sort()).toEqual([...tree.good.map((g) => g.path), ...tree.corrupt].sort());
    expect(f.files.some((p) => p.endsWith('notes.txt') || p.includes('.hidden'))).toBe(false);
    const bs = await collect(f, { batchSize: 16 });
    expect(bs.map((b) => b.n)).toEqual([16, 16, 16, 12]);
    expect(bs.map((b) => b.shape)).toEqual([[16, 3, 32, 32], [16, 3, 32, 32], [16, 3, 32, 32], [12, 3, 32, 32]]);
    expect(f.skipped.map((s) => s.path).sort()).toEqual([...tree.corrupt].sort());
    for (const s of f.skipped) expect(s.reason.length).toBeGreaterThan(5);
    expect(skips).toEqual([...f.skipped]);
    expect(f.size).toBe(60);
    // order, labels and pixels, against an independent decode + augment.ts
    const good = f.files.filter((p) => !tree.corrupt.includes(p));
    expect(good).toEqual(tree.good.map((g) => g.path));
    const labels = bs.flatMap((b) => Array.from(b.labels));
    expect(labels).toEqual(tree.good.map((g) => g.label));
    let k = 0;
    for (const b of bs)
      for (let i = 0; i < b.n; i++, k++) {
        const ref = await decodeRef(good[k], 37, 3); // resize default for size 32: round(32 · 8/7)
        expect(Math.min(ref.h, ref.w)).toBe(37);
        const want = augmentEval(ref.img, [3, ref.h, ref.w], { size: 32, mean: IMAGENET_MEAN, std: IMAGENET_STD });
        expect(maxDiff(b.x.subarray(i * 3072, (i + 1) * 3072), want), `image ${k} (${good[k]})`).toBeLessThan(1e-5);
      }
    // a second epoch: nothing new skipped, no callback, the same batches
    const again = await collect(f, { batchSize: 16 });
    expect(skips.length).toBe(3);
    expectSameBatches(again, bs, 'second epoch');
    expect((await collect(f, { batchSize: 16, dropLast: true })).map((b) => b.n)).toEqual([16, 16, 16]);
  });

  it("train: the paper's augmentation, per-image randomness from (seed, epoch, file), shuffled order from (seed, epoch)", async () => {
    const f = await open(tree.root, { size: 32, resize: 40, train: true, workers: 2, inFlight: 3, prefetch: 1 });
    const opts = { batchSize: 16, shuffle: true, seed: 3, epoch: 1, dropLast: true };
    const bs = await collect(f, opts);
    expect(bs.map((b) => b.n)).toEqual([16, 16, 16]);
    const order = Array.from(epochOrder(f.files.length, opts)).filter((i) => !tree.corrupt.includes(f.files[i]));
    let k = 0;
    for (const b of bs)
      for (let i = 0; i < b.n; i++, k++) {
        const fi = order[k];
        expect(b.labels[i]).toBe(f.labels[fi]);
        expect(f.labels[fi]).toBe(tree.good.find((g) => g.path === f.files[fi])!.label);
        const ref = await decodeRef(f.files[fi], 40, 3);
        const sq = Math.min(ref.h, ref.w);
        const square = centerCrop(ref.img, [3, ref.h, ref.w], sq);
        const want = augmentTrain(square, [3, sq, sq], Rng.from(3, 1, AUGMENT_STREAM, fi), { size: 32 });
        expect(maxDiff(b.x.subarray(i * 3072, (i + 1) * 3072), want), `image ${k} (${f.files[fi]})`).toBeLessThan(1e-5);
      }
    // the same epoch again is identical; another epoch is not
    expectSameBatches(await collect(f, opts), bs, 'same (seed, epoch)');
    const other = await collect(f, { ...opts, epoch: 2 });
    expect(other.map((b) => Array.from(b.labels))).not.toEqual(bs.map((b) => Array.from(b.labels)));
  });

  it('startBatch resumes exactly: in the same process, and in a fresh one given the previous skipped files', async () => {
    const opts = { batchSize: 8, shuffle: true, seed: 9, epoch: 4, dropLast: false };
    const fo = { size: 24, train: true, workers: 2 } as const;
    const first = await open(tree.root, fo);
    const full = await collect(first, opts);
    expect(full.reduce((a, b) => a + b.n, 0)).toBe(60);
    expect(full.length).toBe(8);
    expectSameBatches(await collect(first, { ...opts, startBatch: 3 }), full.slice(3), 'same process, startBatch 3');
    const fresh = await open(tree.root, { ...fo, exclude: first.skipped.map((s) => path.relative(tree.root, s.path)) });
    expect(fresh.size).toBe(60);
    for (const k of [1, 5, 7, 8]) expectSameBatches(await collect(fresh, { ...opts, startBatch: k }), full.slice(k), `fresh process, startBatch ${k}`);
    expect(fresh.skipped).toEqual([]);
    await expect(collect(fresh, { ...opts, startBatch: 9 })).rejects.toThrow(/startBatch 9 is past the end of the epoch, which has 8 batches/);
  });

  it('keeps the batches coming when the consumer is slow, stops cleanly on break, and restarts after close()', async () => {
    const f = await open(tree.root, { size: 16, workers: 2, inFlight: 2, prefetch: 2 });
    const ref = await collect(f, { batchSize: 10 });
    const slow: Batch[] = [];
    for await (const b of f.batches({ batchSize: 10 })) {
      slow.push(b);
      await new Promise((r) => setTimeout(r, 30));
    }
    expectSameBatches(slow, ref, 'slow consumer');
    let n = 0;
    for await (const b of f.batches({ batchSize: 10 })) {
      expect(b.n).toBe(10);
      if (++n === 2) break;
    }
    await f.close();
    await f.close(); // idempotent
    expectSameBatches(await collect(f, { batchSize: 10 }), ref, 'after close()');
  });

  it('greyscale output, class-balanced limit, and files that vanish after open() are skipped, not fatal', async () => {
    const grey = await open(tree.root, { size: 20, channels: 1, limit: 7, workers: 1 });
    expect(grey.sampleShape).toEqual([1, 20, 20]);
    expect(Array.from(grey.labels)).toEqual([0, 0, 0, 1, 1, 2, 2]);
    const [b] = await collect(grey, { batchSize: 7 });
    expect(b.shape).toEqual([7, 1, 20, 20]);
    for (let i = 0; i < 7; i++) {
      const ref = await decodeRef(grey.files[i], 23, 1);
      const want = augmentEval(ref.img, [1, ref.h, ref.w], { size: 20, mean: 0.449, std: 0.226 });
      expect(maxDiff(b.x.subarray(i * 400, (i + 1) * 400), want)).toBeLessThan(1e-5);
    }

    const dir = await mkdtemp(path.join(os.tmpdir(), 'axn-vanish-'));
    try {
      await mkdir(path.join(dir, 'a'));
      await mkdir(path.join(dir, 'b'));
      const img = await sharp({ create: { width: 30, height: 20, channels: 3, background: { r: 200, g: 100, b: 50 } } }).png().toBuffer();
      for (const n of ['a/1.png', 'a/2.png', 'b/1.png', 'b/2.png', 'b/3.png']) await writeFile(path.join(dir, n), img);
      const f = await open(dir, { size: 16, workers: 1 });
      await rm(path.join(dir, 'a/2.png'));
      const bs = await collect(f, { batchSize: 2 });
      expect(bs.map((x) => x.n)).toEqual([2, 2]);
      expect(bs.flatMap((x) => Array.from(x.labels))).toEqual([0, 1, 1, 1]);
      expect(f.skipped).toEqual([{ path: path.join(dir, 'a/2.png'), reason: expect.stringMatching(/missing|no such file/i) }]);
      // a constant image normalises to ((200/255 - 0.485)/0.229, …) everywhere
      const v = (200 / 255 - 0.485) / 0.229;
      expect(bs[0].x[0]).toBeCloseTo(v, 4);
      expect(bs[0].x[255]).toBeCloseTo(v, 4);
      expect(bs[0].x[256]).toBeCloseTo((100 / 255 - 0.456) / 0.224, 4);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('says clearly what is wrong with the folder or the options', async () => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'axn-errors-'));
    try {
      await expect(ImageFolder.open(path.join(base, 'nope'))).rejects.toThrow(/ImageFolder: the folder .*nope does not exist/);
      await writeFile(path.join(base, 'file.jpg'), 'x');
      await expect(ImageFolder.open(path.join(base, 'file.jpg'))).rejects.toThrow(/expected .*file.jpg to be a folder with one subfolder per class, got a file/);
      await mkdir(path.join(base, 'empty'));
      await expect(ImageFolder.open(path.join(base, 'empty'))).rejects.toThrow(/expected one subfolder per class in .*empty \(root\/<class>\/<image>.jpg\), found an empty folder/);
      await mkdir(path.join(base, 'flat'));
      await writeFile(path.join(base, 'flat', 'a.jpg'), 'x');
      await expect(ImageFolder.open(path.join(base, 'flat'))).rejects.toThrow(/found 1 file\(s\) and no subfolders/);
      await mkdir(path.join(base, 'noimg', 'cats'), { recursive: true });
      await mkdir(path.join(base, 'noimg', 'dogs'), { recursive: true });
      await writeFile(path.join(base, 'noimg', 'cats', 'readme.txt'), 'x');
      await expect(ImageFolder.open(path.join(base, 'noimg'))).rejects.toThrow(/no images \(.jpg, .jpeg, .png\) in the 2 class folder\(s\) of .*noimg: cats, dogs/);
      await writeFile(path.join(base, 'noimg', 'cats', 'a.png'), 'x');
      await expect(ImageFolder.open(path.join(base, 'noimg'))).rejects.toThrow(/1 class folder\(s\) of .*noimg hold no images \(.jpg, .jpeg, .png\): dogs \(pass allowEmptyClasses: true/);
      const lenient = await ImageFolder.open(path.join(base, 'noimg'), { allowEmptyClasses: true });
      expect(lenient.classes).toEqual(['cats', 'dogs']);
      expect(lenient.size).toBe(1);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
    await expect(ImageFolder.open('')).rejects.toThrow(/expected root to be a folder path, got ""/);
    await expect(ImageFolder.open(tree.root, { sise: 3 } as never)).rejects.toThrow(/unknown option "sise" \(expected one of train, size/);
    await expect(ImageFolder.open(tree.root, { size: 64, resize: 32 })).rejects.toThrow(/resize \(the short side, 32\) must be at least size \(the crop, 64\)/);
    await expect(ImageFolder.open(tree.root, { channels: 4 as 3 })).rejects.toThrow(/expected channels to be 1 or 3, got 4/);
    await expect(ImageFolder.open(tree.root, { mean: [0.5, 0.5] })).rejects.toThrow(/expected mean to be 3 finite numbers \(one per channel\), got \[0.5, 0.5\]/);
    await expect(ImageFolder.open(tree.root, { std: [1, 0, 1] })).rejects.toThrow(/expected std to be 3 finite positive numbers/);
    await expect(ImageFolder.open(tree.root, { workers: 0 })).rejects.toThrow(/expected workers to be an integer from 1 to 256, got 0/);
    await expect(ImageFolder.open(tree.root, { failOn: 'never' as 'none' })).rejects.toThrow(/expected failOn to be "none", "truncated", "error" or "warning", got "never"/);
    const f = await open(tree.root, { size: 16 });
    expect(() => f.batches({ batchSize: -1 })).toThrow(/ImageFolder.batches: expected batchSize to be an integer ≥ 1, got -1/);
  });
});
