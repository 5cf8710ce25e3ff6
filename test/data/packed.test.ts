// Packed data sets end to end: `pack` (round trip, skipped files, crash and resume), the store's checks
// (damaged files name the record), the native decoder against sharp, the loader against ImageFolder (same
// crops, same numbers), epochs and ranks, and the CUDA path against the CPU one.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageFolder } from '../../lib/data/image-folder.js';
import { pack } from '../../lib/data/pack.js';
import { PackedDataset } from '../../lib/data/packed.js';
import { loadNative } from '../../lib/native.js';
import { sharpDecode } from '../../lib/sharp.js';
import { memoryStats } from '../../lib/tensor.js';
import { emulated, noCuda } from '../helpers/gpu.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(import.meta.url);
const photos: { makePhotoFolder: (out: string, o: object) => Promise<{ files: number }>; skimageDataDir: () => string | null } = await import(
  path.join(root, 'bench', 'photos.mjs')
);
const skimage = photos.skimageDataDir();
if (!skimage && process.env.CI) throw new Error('CI: the packed data set tests need scikit-image\'s sample photographs (apt-get install python3-skimage)');

const tmp = mkdtempSync(path.join(tmpdir(), 'axn-packed-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const crc32c = (b: Uint8Array) => loadNative().data.crc32c(b) >>> 0;

/** A folder of real photographs: `perClass` 500×375 JPEGs of each of `classes` photos. */
async function photoFolder(name: string, perClass: number, classes: number): Promise<string> {
  const dir = path.join(tmp, name);
  await photos.makePhotoFolder(dir, { perClass, classes });
  return dir;
}

/**
 * Runs `pack(src, out, { workers: 1 })` in a child process that kills itself (SIGKILL, at an arbitrary point
 * of its work) once its journal holds `records` entries, and returns how many it holds then. The child's
 * event loop is kept busy 20 ms in every turn, so each record takes at least one 20 ms turn: the first
 * journal flush (after 1 s) comes long before the last record on any machine, however fast.
 */
async function crashPack(src: string, out: string, records: number): Promise<number> {
  const journal = `${out}.partial.journal`;
  const lines = () => (existsSync(journal) ? readFileSync(journal, 'utf8').split('\n').length - 2 : 0);
  const script = [
    `import { existsSync, readFileSync } from 'node:fs';`,
    `import { data } from ${JSON.stringify(path.join(root, 'dist', 'index.js'))};`,
    `const j = ${JSON.stringify(journal)};`,
    `setInterval(() => {`,
    `  const t = Date.now(); while (Date.now() - t < 20);`,
    `  if (existsSync(j) && readFileSync(j, 'utf8').split('\\n').length - 2 >= ${records}) process.kill(process.pid, 'SIGKILL');`,
    `}, 1);`,
    `await data.pack(${JSON.stringify(src)}, ${JSON.stringify(out)}, { workers: 1 });`,
    `process.exit(3);`,
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.once('exit', (c, s) => r([c, s])));
  expect(signal, `the pack was killed, not finished (exit ${code}): ${stderr}`).toBe('SIGKILL');
  return lines();
}

/** Collects one epoch's batches: inputs read back, labels, and the inputs' shapes. */
async function epoch(ds: PackedDataset, o: Parameters<PackedDataset['batches']>[0]) {
  const xs: Float32Array[] = [];
  const labels: number[] = [];
  const shapes: number[][] = [];
  for await (const b of ds.batches(o)) {
    shapes.push([...b.input!.shape]);
    xs.push(await b.input!.toFloat32Array());
    b.input!.dispose();
    labels.push(...b.labels);
  }
  return { xs, labels, shapes };
}

describe.skipIf(!skimage)('pack and PackedDataset', () => {
  let src: string;
  let jpegStore: string;
  let rawStore: string;
  beforeAll(async () => {
    src = await photoFolder('photos', 4, 5); // 20 real photos, 5 classes
    jpegStore = path.join(tmp, 'photos.axpk');
    rawStore = path.join(tmp, 'photos-raw.axpk');
    await pack(src, jpegStore, { workers: 2 });
    await pack(src, rawStore, { workers: 2, format: 'raw' });
  });

  it('round-trips every image: the bytes of the one decoding path, its label and its name', async () => {
    const folder = await ImageFolder.open(src);
    for (const [file, format] of [[rawStore, 'raw'], [jpegStore, 'jpeg']] as const) {
      const ds = await PackedDataset.open(file);
      try {
        expect(ds.records).toBe(20);
        expect(ds.classes).toEqual(folder.classes);
        expect(ds.settings).toEqual({ resize: 256, mode: 'short', format, quality: format === 'jpeg' ? 90 : 0, channels: 3 });
        expect(ds.names).toEqual(folder.files.map((f) => path.relative(src, f)));
        for (let i = 0; i < ds.records; i++) {
          const r = ds.record(i);
          expect(r.label).toBe(folder.labels[i]);
          const want = await sharpDecode.encodeResized(sharp, folder.files[i], { channels: 3, resize: 256, format, quality: 90 });
          expect([r.width, r.height]).toEqual([want.width, want.height]);
          expect(Math.min(r.width, r.height)).toBe(256);
          expect(r.bytes.equals(want.data), `record ${i} (${format})`).toBe(true);
        }
      } finally {
        await ds.close();
      }
    }
  });

  it('the same folder and settings give the same file, byte for byte', async () => {
    const again = path.join(tmp, 'again.axpk');
    await pack(src, again, { workers: 1 });
    expect(readFileSync(again).equals(readFileSync(jpegStore))).toBe(true);
  });

  it('decodes JPEG records as sharp (libvips) does: the whole image within 1 level; a window exactly as the whole image cropped', async () => {
    const ds = await PackedDataset.open(jpegStore);
    try {
      let worst = 0;
      for (let i = 0; i < ds.records; i++) {
        const r = ds.record(i);
        const mine = ds.decodeRecord(i);
        const ref = await sharp(r.bytes).raw().toBuffer({ resolveWithObject: true });
        expect([ref.info.width, ref.info.height, ref.info.channels]).toEqual([mine.width, mine.height, 3]);
        for (let k = 0; k < mine.data.length; k++) worst = Math.max(worst, Math.abs(mine.data[k] - ref.data[k]));
      }
      expect(worst).toBeLessThanOrEqual(1);
    } finally {
      await ds.close();
    }
    // windows: the loader's eval batches (centred 224 window, decoded with crop + skip) equal the same
    // window of the whole image decoded natively, normalised by the same formula
    const raw = await PackedDataset.open(jpegStore, { size: 224, mean: [0, 0, 0], std: [1 / 255, 1 / 255, 1 / 255] });
    try {
      const { xs } = await epoch(raw, { batchSize: 20 });
      for (let i = 0; i < 20; i++) {
        const { data, width: W, height: H } = raw.decodeRecord(i);
        const top = Math.floor((H - 224) / 2);
        const left = Math.floor((W - 224) / 2);
        let diff = 0;
        for (let c = 0; c < 3; c++)
          for (let y = 0; y < 224; y++)
            for (let x = 0; x < 224; x++) if (xs[0][((i * 3 + c) * 224 + y) * 224 + x] !== data[((top + y) * W + left + x) * 3 + c]) diff++;
        expect(diff, `image ${i}: window pixels that differ from the whole image's`).toBe(0);
      }
    } finally {
      await raw.close();
    }
  });

  it('gives the batches ImageFolder gives for the same seed and epoch: same images, crops, flips and colour shifts', async () => {
    const folder = await ImageFolder.open(src, { train: true, workers: 1 });
    const ds = await PackedDataset.open(rawStore, { train: true });
    try {
      for (const e of [0, 3]) {
        const o = { batchSize: 8, shuffle: true, seed: 11, epoch: e };
        const mine = await epoch(ds, o);
        const theirs: Float32Array[] = [];
        const labels: number[] = [];
        for await (const b of folder.batches(o)) {
          theirs.push(b.x!);
          labels.push(...b.labels);
        }
        expect(mine.labels).toEqual(labels);
        expect(mine.xs.length).toBe(theirs.length);
        mine.xs.forEach((x, k) => {
          let worst = 0;
          for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - theirs[k][i]));
          // ImageFolder rounds once from double; the kernel rounds a, b, the product and the sum in float
          expect(worst, `epoch ${e} batch ${k}`).toBeLessThan(4e-6);
        });
      }
    } finally {
      await ds.close();
      await folder.close();
    }
  });

  it('visits every image once an epoch; ranks take disjoint equal shares of the padded permutation', async () => {
    const ds = await PackedDataset.open(jpegStore, { train: true });
    const order = (d: PackedDataset, seed: number, ep: number) => Array.from(d.epochRecords({ shuffle: true, seed, epoch: ep }));
    try {
      const a = order(ds, 5, 0);
      expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(order(ds, 5, 0)).toEqual(a);
      expect(order(ds, 5, 1)).not.toEqual(a);
    } finally {
      await ds.close();
    }
    for (const world of [2, 3, 7]) {
      const shares: number[][] = [];
      for (let rank = 0; rank < world; rank++) {
        const r = await PackedDataset.open(jpegStore, { train: true, rank, world });
        shares.push(order(r, 5, 2));
        expect(r.size).toBe(Math.ceil(20 / world));
        await r.close();
      }
      const all = shares.flat();
      const pad = Math.ceil(20 / world) * world - 20;
      expect(all.length).toBe(20 + pad);
      expect(new Set(all).size).toBe(20);
      // position k of the padded permutation goes to rank k mod world; the pad repeats its first images
      const full = order(await PackedDataset.open(jpegStore, { train: true }), 5, 2);
      const padded = [...full, ...full.slice(0, pad)];
      shares.forEach((s, rank) => expect(s).toEqual(padded.filter((_, k) => k % world === rank)));
    }
  });

  it("train()'s shard: block r of each global batch, as for every source; not together with the store's own rank/world", async () => {
    const ds = await PackedDataset.open(jpegStore, { train: true });
    try {
      const whole = Array.from(ds.epochRecords({ shuffle: true, seed: 5, epoch: 2 }));
      for (const world of [2, 3]) {
        const b = 3;
        const shares = Array.from({ length: world }, (_, rank) => Array.from(ds.epochRecords({ shuffle: true, seed: 5, epoch: 2, batchSize: b, dropLast: true, shard: { rank, world } })));
        const steps = Math.floor(20 / (b * world));
        const rebuilt: number[] = [];
        for (let k = 0; k < steps; k++) for (const s of shares) rebuilt.push(...s.slice(k * b, (k + 1) * b));
        expect(rebuilt).toEqual(whole.slice(0, steps * b * world));
        // the batches themselves: this rank's images of the global batch
        const labels: number[] = [];
        for await (const x of ds.batches({ batchSize: b, shuffle: true, seed: 5, epoch: 2, dropLast: true, shard: { rank: 1, world } })) {
          labels.push(...x.labels);
          x.input?.dispose();
        }
        expect(labels).toEqual(shares[1].map((id) => ds.record(id).label));
      }
    } finally {
      await ds.close();
    }
    const r = await PackedDataset.open(jpegStore, { train: true, rank: 0, world: 2 });
    try {
      const it = r.batches({ batchSize: 2, shard: { rank: 0, world: 2 } })[Symbol.asyncIterator]();
      await expect(it.next()).rejects.toThrow(/opened as rank 0 of 2 .* use one of the two, not both/);
    } finally {
      await r.close();
    }
  });

  it('starts at a batch without decoding the ones before: the tail of the epoch', async () => {
    const ds = await PackedDataset.open(jpegStore, { train: true });
    try {
      const o = { batchSize: 6, shuffle: true, seed: 3, epoch: 1 };
      const full = await epoch(ds, o);
      const before = ds.stats().images;
      const tail = await epoch(ds, { ...o, startBatch: 2 });
      expect(ds.stats().images - before).toBe(20 - 12);
      expect(tail.labels).toEqual(full.labels.slice(12));
      expect(tail.xs).toEqual(full.xs.slice(2));
      expect(full.shapes.map((s) => s[0])).toEqual([6, 6, 6, 2]);
    } finally {
      await ds.close();
    }
  });

  it('ten crops per image: corners and centre of the central square and their mirrors', async () => {
    const ds = await PackedDataset.open(rawStore, { tenCrop: true, size: 224, mean: [0, 0, 0], std: [1 / 255, 1 / 255, 1 / 255] });
    try {
      const b = (await ds.batches({ batchSize: 2 })[Symbol.asyncIterator]().next()).value!;
      expect(b.crops).toBe(10);
      expect(b.input!.shape).toEqual([20, 3, 224, 224]);
      const x = await b.input!.toFloat32Array();
      b.input!.dispose();
      const { data, width: W, height: H } = ds.decodeRecord(0);
      const t0 = Math.floor((H - 256) / 2);
      const l0 = Math.floor((W - 256) / 2);
      const px = (y: number, xx: number, c: number) => data[((t0 + y) * W + l0 + xx) * 3 + c];
      const view = (v: number, y: number, xx: number, c: number) => x[((v * 3 + c) * 224 + y) * 224 + xx];
      expect(view(0, 0, 0, 0)).toBe(px(0, 0, 0)); // top-left
      expect(view(1, 0, 0, 1)).toBe(px(0, 32, 1)); // top-right
      expect(view(3, 223, 223, 2)).toBe(px(255, 255, 2)); // bottom-right
      expect(view(4, 0, 0, 0)).toBe(px(16, 16, 0)); // centre
      expect(view(5, 0, 0, 0)).toBe(px(0, 223, 0)); // top-left, mirrored
    } finally {
      await ds.close();
    }
  });

  it('frees what it allocates: no tensors or host bytes left after epochs', async () => {
    const ds = await PackedDataset.open(jpegStore, { train: true });
    try {
      await epoch(ds, { batchSize: 8, shuffle: true, seed: 1 });
      const before = memoryStats();
      for (let e = 0; e < 3; e++) await epoch(ds, { batchSize: 8, shuffle: true, seed: 1, epoch: e });
      const after = memoryStats();
      expect(after.tensors.cpu).toBe(before.tensors.cpu);
      expect(after.bytes.cpu).toBe(before.bytes.cpu);
    } finally {
      await ds.close();
    }
  });

  it('one iteration at a time; closed is closed', async () => {
    const ds = await PackedDataset.open(jpegStore);
    const it1 = ds.batches({ batchSize: 4 })[Symbol.asyncIterator]();
    const first = await it1.next();
    first.value!.input!.dispose();
    await expect(ds.batches({ batchSize: 4 })[Symbol.asyncIterator]().next()).rejects.toThrow(/already being iterated/);
    await it1.return!(undefined);
    await ds.close();
    await expect(ds.batches({ batchSize: 4 })[Symbol.asyncIterator]().next()).rejects.toThrow(/is closed/);
  });

  it('close() while batches are being decoded rejects them at once; a loader dropped with a batch pending is kept until it settles', async () => {
    const ds = await PackedDataset.open(jpegStore, { train: true, threads: 1, prefetchBytes: 1 });
    const it1 = ds.batches({ batchSize: 2, shuffle: true, seed: 1 })[Symbol.asyncIterator]();
    (await it1.next()).value!.input!.dispose();
    await ds.close();
    await expect(it1.next()).rejects.toThrow(/the loader was closed while the batch was being decoded|is closed/);
    const script = `import { loadNative } from ${JSON.stringify(path.join(root, 'dist', 'native.js'))};
      const L = loadNative().data.Loader;
      let l = new L(process.argv[1], 1, false);
      const jobs = new Int32Array(3 * 8);
      const { Tensor } = await import(${JSON.stringify(path.join(root, 'dist', 'tensor.js'))});
      const t = Tensor.empty([8, 64, 64, 3], 'cpu', 'uint8');
      const p = l.decode(-1, jobs, 64, 64, 3, Tensor.storageOf(t, 'test'));
      l = null;
      for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 5)); }
      await p;
      console.log('settled');`;
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script, jpegStore], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).not.toMatch(/AddressSanitizer/);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('settled');
  });

  it('refuses options and stores that do not fit, saying what was expected', async () => {
    await expect(PackedDataset.open(jpegStore, { size: 300 })).rejects.toThrow(/smallest image side is 256 \(packed at 256\), smaller than the 300×300 crop/);
    await expect(PackedDataset.open(jpegStore, { bogus: 1 } as object)).rejects.toThrow(/unknown option "bogus"/);
    await expect(PackedDataset.open(jpegStore, { train: true, tenCrop: true })).rejects.toThrow(/tenCrop is an evaluation mode/);
    await expect(PackedDataset.open(jpegStore, { rank: 2, world: 2 })).rejects.toThrow(/rank to be an integer from 0 to 1/);
    await expect(pack(src, jpegStore)).rejects.toThrow(/exists already; remove it first, or pass overwrite/);
    await expect(pack(src, path.join(tmp, 'x.axpk'), { quality: 0 })).rejects.toThrow(/quality to be an integer from 1 to 100, got 0/);
  });
});

describe.skipIf(!skimage)('pack skips what it cannot decode, and reports it', () => {
  it('corrupt, truncated, empty, non-image and oversized files are skipped with their reasons; the rest is packed', async () => {
    const src = await photoFolder('bad', 3, 2);
    const cls = path.join(src, 'astronaut');
    const good = readFileSync(path.join(cls, '0000.jpg'));
    writeFileSync(path.join(cls, 'truncated.jpg'), good.subarray(0, Math.floor(good.length / 3)));
    copyFileSync(path.join(skimage!, 'truncated.jpg'), path.join(cls, 'skimage-truncated.jpg'));
    writeFileSync(path.join(cls, 'text.jpg'), 'this is not an image\n');
    writeFileSync(path.join(cls, 'empty.png'), '');
    // 275-byte class of file from the issue: 65535×1, whose short side resized to 256 would be 4.3 G pixels
    writeFileSync(path.join(cls, 'bomb.png'), await sharp(Buffer.alloc(65535 * 3), { raw: { width: 65535, height: 1, channels: 3 } }).png().toBuffer());
    spawnSync('mkfifo', [path.join(cls, 'fifo.jpg')]); // never opened: opening a FIFO blocks
    const reported: string[] = [];
    const r = await pack(src, path.join(tmp, 'bad.axpk'), { workers: 2, onSkip: (s) => reported.push(path.basename(s.path)) });
    expect(r.count).toBe(6);
    const why = Object.fromEntries(r.skipped.map((s) => [path.basename(s.path), s.reason]));
    expect(Object.keys(why).sort()).toEqual(['bomb.png', 'empty.png', 'fifo.jpg', 'skimage-truncated.jpg', 'text.jpg', 'truncated.jpg']);
    expect(reported.sort()).toEqual(Object.keys(why).sort());
    expect(why['bomb.png']).toMatch(/65535×1: resizing its short side to 256 would make it 16,776,960×256 .* more than the 16,777,216 pixels/);
    expect(why['truncated.jpg']).toMatch(/premature end|truncated|corrupt/i);
    const ds = await PackedDataset.open(r.path);
    expect(ds.records).toBe(6);
    await ds.close();
  });
});

describe.skipIf(!skimage)('a crash while packing', () => {
  it('leaves no store under the final name; the resumed pack is the uninterrupted one, byte for byte', async () => {
    const src = await photoFolder('crash', 30, 4); // 120 photos
    const out = path.join(tmp, 'crash.axpk');
    const journal = `${out}.partial.journal`;
    const done = await crashPack(src, out, 5);
    expect(done, 'the journal recorded some images before the kill').toBeGreaterThanOrEqual(5);
    expect(done).toBeLessThan(120);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.partial`)).toBe(true);
    // the partial file may hold records past the journal: they are cut off and redone
    const r = await pack(src, out, { workers: 2 });
    expect(r.resumedFrom).toBe(done);
    expect(existsSync(journal)).toBe(false);
    expect(existsSync(`${out}.partial`)).toBe(false);
    const whole = path.join(tmp, 'crash-whole.axpk');
    await pack(src, whole, { workers: 2 });
    expect(readFileSync(out).equals(readFileSync(whole))).toBe(true);
  });

  it('one pack at a time writes an output: a second stops at once, naming the process that holds it', async () => {
    const src = await photoFolder('twice', 6, 3);
    const out = path.join(tmp, 'twice.axpk');
    const first = pack(src, out, { workers: 1 });
    const t0 = Date.now();
    while (!existsSync(`${out}.lock`) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 5));
    await expect(pack(src, out, { workers: 1 })).rejects.toThrow(new RegExp(`pack: the output .* is in use by another run: process ${process.pid} on this host \\(this process\\)`));
    const r = await first;
    expect(r.count).toBe(18);
    expect(existsSync(`${out}.lock`)).toBe(false);
  });

  it('refuses to continue an interrupted pack of files that changed since', async () => {
    const src = await photoFolder('changed', 10, 4); // 40 photos: seconds to pack with one worker
    const out = path.join(tmp, 'changed.axpk');
    expect(await crashPack(src, out, 2)).toBeGreaterThanOrEqual(2);
    expect(existsSync(out), 'the pack was interrupted').toBe(false);
    const f = path.join(src, 'astronaut', '0000.jpg');
    writeFileSync(f, Buffer.concat([readFileSync(f), Buffer.from([0])])); // the same name, other bytes
    await expect(pack(src, out, { workers: 1 })).rejects.toThrow(/was of other files .*sizes or modification times\); the folder changed: pass resume: false \(--restart\)/);
    const r = await pack(src, out, { workers: 2, resume: false });
    expect(r.resumedFrom).toBe(0);
  });

  it('refuses to continue an interrupted pack with other settings; --restart starts over', async () => {
    const src = await photoFolder('restart', 2, 2);
    const out = path.join(tmp, 'restart.axpk');
    const partial = `${out}.partial`;
    writeFileSync(partial, Buffer.alloc(128));
    writeFileSync(`${partial}.journal`, JSON.stringify({ packJournal: 1, settings: { resize: 128, mode: 'short', format: 'jpeg', quality: 90, channels: 3 }, files: 4, list: 'x' }) + '\n');
    await expect(pack(src, out)).rejects.toThrow(/used other settings .*pass the same options to continue it, or resume: false \(--restart\)/);
    const r = await pack(src, out, { resume: false });
    expect(r.count).toBe(4);
    expect(r.resumedFrom).toBe(0);
  });
});

describe.skipIf(!skimage)('a damaged store', () => {
  let good: string;
  let bytes: Buffer;
  beforeAll(async () => {
    good = path.join(tmp, 'dmg.axpk');
    await pack(await photoFolder('dmg', 2, 3), good, { workers: 2 });
    bytes = readFileSync(good);
  });
  const variant = (name: string, f: (b: Buffer) => Buffer) => {
    const p = path.join(tmp, name);
    writeFileSync(p, f(Buffer.from(bytes)));
    return p;
  };
  const u64 = (b: Buffer, at: number) => Number(b.readBigUInt64LE(at));
  const refreshCrcs = (b: Buffer) => {
    const idx = [u64(b, 40), u64(b, 48)];
    b.writeUInt32LE(crc32c(b.subarray(idx[0], idx[0] + idx[1])), 88);
    b.writeUInt32LE(crc32c(b.subarray(0, 124)), 124);
    return b;
  };

  it('a flipped byte in a record: the batch fails naming the record and its source file', async () => {
    const ds0 = await PackedDataset.open(good);
    const at = ds0.record(4);
    await ds0.close();
    const off = u64(bytes, u64(bytes, 40) + 4 * 32);
    expect(off).toBeGreaterThanOrEqual(128);
    const p = variant('flip-record.axpk', (b) => {
      b[off + Math.floor(at.bytes.length / 2)] ^= 0x10;
      return b;
    });
    const ds = await PackedDataset.open(p);
    try {
      await expect(epoch(ds, { batchSize: 3 })).rejects.toThrow(new RegExp(`flip-record\\.axpk: record 4 is damaged: its checksum is 0x[0-9a-f]{8}, the index says 0x[0-9a-f]{8} \\(packed from ${ds.names[4].replace('/', '\\/')}\\)`));
    } finally {
      await ds.close();
    }
  });

  it('a truncated file, a flipped byte in the index, header or meta, a wrong index entry, not a store: clear errors at open', async () => {
    const idxOff = u64(bytes, 40);
    const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
      ['truncated', (b) => b.subarray(0, b.length - 100), /the names section \(bytes \d+ to \d+\) does not follow .* the file is truncated or damaged/],
      ['half', (b) => b.subarray(0, 60), /fewer than the 128-byte header: not a packed data set, or truncated/],
      ['index', (b) => ((b[idxOff + 33] ^= 1), b), /the index's checksum is wrong \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\): the index is damaged/],
      ['header', (b) => ((b[20] ^= 1), b), /the header's checksum is wrong/],
      ['meta', (b) => ((b[u64(b, 56) + 3] ^= 1), b), /the meta section's checksum is wrong/],
      ['outside', (b) => (b.writeBigUInt64LE(BigInt(idxOff), idxOff + 2 * 32), refreshCrcs(b)), /record 2: bytes \d+ to \d+ lie outside the data section \(128 to \d+\)/],
      ['channels', (b) => ((b[idxOff + 32 + 24] = 4), refreshCrcs(b)), /record 1: 4 channels, expected 1 or 3/],
      ['magic', (b) => ((b[0] = 0x42), b), /not a packed data set \(expected the magic/],
      ['version', (b) => (b.writeUInt32LE(9, 8), refreshCrcs(b)), /format version 9, this package reads version 1/],
    ];
    for (const [name, f, re] of cases) {
      const p = variant(`${name}.axpk`, f);
      await expect(PackedDataset.open(p), name).rejects.toThrow(re);
    }
    await expect(PackedDataset.open(path.join(tmp, 'nope.axpk'))).rejects.toThrow(/cannot open: No such file/);
  });

  it('a JPEG larger than its index entry says is refused before it is decoded', async () => {
    // record 0 claims 200×200: the JPEG's own header disagrees, so nothing is decoded past the header
    const idxOff = u64(bytes, 40);
    const p = variant('size.axpk', (b) => (b.writeUInt16LE(200, idxOff + 20), b.writeUInt16LE(200, idxOff + 22), refreshCrcs(b)));
    const ds = await PackedDataset.open(p, { size: 100 });
    try {
      expect(() => ds.decodeRecord(0)).toThrow(/record 0: JPEG: the image is \d+×\d+, the index says 200×200/);
      await expect(epoch(ds, { batchSize: 2 })).rejects.toThrow(/record 0: JPEG: the image is \d+×\d+, the index says 200×200/);
    } finally {
      await ds.close();
    }
  });
});

// GPU decoding (nvJPEG; emulated on the emulated device by the CPU decoder).
const gpuDecode = !noCuda && loadNative().data.gpuDecode;
describe.skipIf(!gpuDecode || (!skimage && !process.env.AXN_PACKED_STORE))('PackedDataset decoding on the GPU (nvJPEG)', () => {
  it("gives the CPU decoder's pixels: exactly on the emulated device, within the stated bound on a GPU", async () => {
    let file = process.env.AXN_PACKED_STORE ?? '';
    if (!file) {
      file = path.join(tmp, 'nvjpeg.axpk');
      await pack(await photoFolder('nvjpeg', 1, 3), file, { workers: 2 });
    }
    // pixel levels out: mean 0, std 1/255 (value = level), no flips or colour shifts
    const o = { size: 224, device: 'cuda' as const, mean: [0, 0, 0], std: [1 / 255, 1 / 255, 1 / 255] };
    const cpu = await PackedDataset.open(file, { ...o, decode: 'cpu' });
    const gpu = await PackedDataset.open(file, { ...o, decode: 'gpu' });
    try {
      const b = { batchSize: emulated ? 3 : 128 };
      const want = await epoch(cpu, b);
      const before = memoryStats();
      const got = await epoch(gpu, b);
      expect(got.labels).toEqual(want.labels);
      let worst = 0;
      let sum = 0;
      let n = 0;
      got.xs.forEach((x, k) => {
        for (let i = 0; i < x.length; i++, n++) {
          const d = Math.abs(x[i] - want.xs[k][i]);
          worst = Math.max(worst, d);
          sum += d;
        }
      });
      console.log(`nvJPEG vs the CPU decoder: ${n} values, mean |Δ| ${(sum / n).toFixed(4)} levels, max ${worst.toFixed(1)}`);
      if (emulated) expect(worst).toBe(0);
      else {
        // Both are IDCT-exact-to-rounding decoders of the same baseline 4:2:0 JPEGs; nvJPEG may upsample
        // chroma without libjpeg's "fancy" triangle filter, which moves edge pixels of strong colour edges
        // by up to a few tens of levels: the mean stays near one level.
        expect(sum / n).toBeLessThan(2);
        expect(worst).toBeLessThanOrEqual(64);
      }
      const after = memoryStats();
      expect(after.tensors.cuda).toBe(before.tensors.cuda);
    } finally {
      await cpu.close();
      await gpu.close();
    }
  });

  it('checks each record as the CPU path does before nvJPEG sees it: a header that disagrees with the index is refused', async () => {
    const img = sharp(Buffer.alloc(40 * 36 * 3, 77), { raw: { width: 40, height: 36, channels: 3 } });
    const good = await img.jpeg().toBuffer();
    const rec = (width: number, height: number) => ({ bytes: good, label: 0, width, height, channels: 3, format: 0 as const });
    const file = writeStore(path.join(tmp, 'gpu-lies.axpk'), [rec(40, 36), rec(40, 40)], ['c']);
    const ds = await PackedDataset.open(file, { size: 32, device: 'cuda', decode: 'gpu' });
    try {
      await expect(epoch(ds, { batchSize: 2 })).rejects.toThrow(/record 1: JPEG: the image is 40×36, the index says 40×40/);
    } finally {
      await ds.close();
    }
  });

  it('refuses what it cannot do, saying why', async () => {
    const file = process.env.AXN_PACKED_STORE ?? path.join(tmp, 'nvjpeg.axpk');
    await expect(PackedDataset.open(file, { decode: 'gpu' })).rejects.toThrow(/decode 'gpu' needs device 'cuda', got 'cpu'/);
    await expect(PackedDataset.open(file, { device: 'cuda', decode: 'fpga' as never })).rejects.toThrow(/expected decode to be 'cpu' or 'gpu'/);
  });
});

// On the GPU machine (no scikit-image there) the photos come packed: AXN_PACKED_STORE (scripts/gpu-check.sh).
const carried = process.env.AXN_PACKED_STORE;
/** Writes a packed data set from the README's description of the format alone (what another tool would
 * do): records as given, labels, classes. */
function writeStore(file: string, records: { bytes: Buffer; label: number; width: number; height: number; channels: number; format: 0 | 1 }[], classes: string[]) {
  const data = Buffer.concat(records.map((r) => r.bytes));
  const index = Buffer.alloc(records.length * 32);
  let at = 128;
  records.forEach((r, i) => {
    index.writeBigUInt64LE(BigInt(at), i * 32);
    index.writeUInt32LE(r.bytes.length, i * 32 + 8);
    index.writeUInt32LE(crc32c(r.bytes), i * 32 + 12);
    index.writeInt32LE(r.label, i * 32 + 16);
    index.writeUInt16LE(r.width, i * 32 + 20);
    index.writeUInt16LE(r.height, i * 32 + 22);
    index[i * 32 + 24] = r.channels;
    index[i * 32 + 25] = r.format;
    at += r.bytes.length;
  });
  const meta = Buffer.from(JSON.stringify({ classes, settings: { resize: 32, mode: 'short', format: 'jpeg', quality: 90, channels: 3 }, count: records.length }));
  const names = Buffer.from(records.map((_, i) => JSON.stringify(`r${i}.jpg`) + '\n').join(''));
  const h = Buffer.alloc(128);
  h.write('AXPACK\r\n', 0, 'latin1');
  h.writeUInt32LE(1, 8);
  h.writeUInt32LE(128, 12);
  h.writeBigUInt64LE(BigInt(records.length), 16);
  const secs = [data, index, meta, names];
  let off = 128;
  secs.forEach((b, k) => {
    h.writeBigUInt64LE(BigInt(off), 24 + 16 * k);
    h.writeBigUInt64LE(BigInt(b.length), 32 + 16 * k);
    off += b.length;
  });
  h.writeUInt32LE(crc32c(index), 88);
  h.writeUInt32LE(crc32c(meta), 92);
  h.writeUInt32LE(crc32c(names), 96);
  h.writeUInt32LE(crc32c(h.subarray(0, 124)), 124);
  writeFileSync(file, Buffer.concat([h, ...secs]));
  return file;
}

describe('a store written by another tool from the documented format', () => {
  const rgb = (w: number, h: number) => sharp(Buffer.alloc(w * h * 3).map((_, i) => (i * 37) % 251), { raw: { width: w, height: h, channels: 3 } });
  it('opens and decodes; progressive, CMYK and truncated-with-a-matching-checksum JPEG records are refused, naming the record', async () => {
    const base = await rgb(40, 36).jpeg({ quality: 90 }).toBuffer();
    const raw = await rgb(40, 36).raw().toBuffer();
    const progressive = await rgb(40, 36).jpeg({ quality: 90, progressive: true }).toBuffer();
    const cmyk = await rgb(40, 36).toColourspace('cmyk').jpeg({ quality: 90 }).toBuffer();
    const truncated = base.subarray(0, base.length - 40);
    const rec = (bytes: Buffer, format: 0 | 1 = 0) => ({ bytes, label: 0, width: 40, height: 36, channels: 3, format });
    const file = writeStore(path.join(tmp, 'other.axpk'), [rec(base), rec(raw, 1), rec(progressive), rec(cmyk), rec(truncated)], ['only']);
    const ds = await PackedDataset.open(file, { size: 32 });
    try {
      expect(ds.records).toBe(5);
      expect(ds.names).toEqual(['r0.jpg', 'r1.jpg', 'r2.jpg', 'r3.jpg', 'r4.jpg']);
      const full = ds.decodeRecord(0);
      const ref = await sharp(base).raw().toBuffer();
      expect(Buffer.compare(full.data, ref)).toBe(0);
      expect(ds.decodeRecord(1).data.equals(raw)).toBe(true);
      expect(() => ds.decodeRecord(2)).toThrow(/record 2: JPEG: a progressive JPEG \(SOF2\); packed records are baseline or extended-sequential Huffman JPEGs/);
      expect(() => ds.decodeRecord(3)).toThrow(/record 3: JPEG: 4 components \(e\.g\. CMYK\); packed records are grey or colour \(1 or 3\)/);
      expect(() => ds.decodeRecord(4)).toThrow(/record 4: JPEG: the data does not end with the EOI marker: the record is truncated/);
    } finally {
      await ds.close();
    }
  });
});

describe.skipIf(noCuda || (!skimage && !carried))('PackedDataset on CUDA', () => {
  it('makes the inputs the CPU makes, bit for bit (crops, flips, PCA shifts), and frees its device memory', async () => {
    let file = carried ?? '';
    if (!carried) {
      file = path.join(tmp, 'cuda.axpk');
      await pack(await photoFolder('cuda', 1, 3), file, { workers: 2 });
    }
    const cpu = await PackedDataset.open(file, { train: true, device: 'cpu' });
    const gpu = await PackedDataset.open(file, { train: true, device: 'cuda' });
    try {
      // the emulator runs 2 images; a GPU the first 256 of the carried store (two batches of 128)
      const o = { batchSize: emulated ? 2 : 128, shuffle: true, seed: 9, epoch: 4 };
      const a = await epoch(cpu, o);
      const before = memoryStats();
      const b = await epoch(gpu, o);
      expect(b.labels).toEqual(a.labels);
      expect(b.xs.length).toBe(a.xs.length);
      let differ = 0;
      b.xs.forEach((x, k) => {
        for (let i = 0; i < x.length; i++) if (!Object.is(x[i], a.xs[k][i])) differ++;
      });
      expect(differ, 'values that differ from the CPU path').toBe(0);
      const after = memoryStats();
      expect(after.tensors.cuda).toBe(before.tensors.cuda);
      expect(after.native.cuda!.inUseBytes).toBe(before.native.cuda!.inUseBytes);
    } finally {
      await cpu.close();
      await gpu.close();
    }
  });
});

describe.skipIf(!emulated || !skimage)('PackedDataset on the emulated device: the upload is ordered by its two stream waits', () => {
  // Each run is a child process (the same emulated addon, environment and sanitizers as this one): with a
  // wait dropped, the device may run the upload after the kernel that reads it (the kernel then reads the
  // poison) or after the block's free (AddressSanitizer then aborts the process on a use-after-poison).
  // Either way the missing wait is caught; with the waits, every order gives the CPU's numbers.
  const run = (drop: string) =>
    spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { data, setPoison } from ${JSON.stringify(path.join(root, 'dist', 'index.js'))};
         import { loadNative } from ${JSON.stringify(path.join(root, 'dist', 'native.js'))};
         const emu = loadNative().emulator;
         const file = process.argv[1];
         const epoch = async (ds) => { const xs = []; for await (const b of ds.batches({ batchSize: 2 })) { xs.push(await b.input.toFloat32Array()); b.input.dispose(); } return xs[0]; };
         const cpu = await data.PackedDataset.open(file, { size: 64, device: 'cpu' });
         const gpu = await data.PackedDataset.open(file, { size: 64, device: 'cuda' });
         setPoison(true);
         const want = await epoch(cpu);
         emu.setDropStreamWaits(process.argv[2] === 'none' ? false : process.argv[2]);
         const wrong = [];
         for (const [order, seed] of [['forward', 0], ['reverse', 0], ['shuffle', 1], ['shuffle', 2], ['shuffle', 3], ['shuffle', 4]]) {
           emu.setOrder(order, seed);
           const got = await epoch(gpu);
           if (!got.every((v, i) => Object.is(v, want[i]))) wrong.push(order + '/' + seed);
         }
         console.log(JSON.stringify({ wrong }));`,
        file,
        drop,
      ],
      { encoding: 'utf8', timeout: 600_000 },
    );
  let file: string;
  beforeAll(async () => {
    file = path.join(tmp, 'streams.axpk');
    await pack(await photoFolder('streams', 1, 2), file, { workers: 2 });
  });

  it('with both waits, the inputs are right under every stream order', () => {
    const r = run('none');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual({ wrong: [] });
  });

  it.each(['intoCompute', 'intoSide'])('with the waits %s dropped, some order goes wrong (or AddressSanitizer stops it)', (drop) => {
    const r = run(drop);
    if (r.status === 0) expect(JSON.parse(r.stdout.trim().split('\n').pop()!).wrong.length, 'orders that went wrong').toBeGreaterThan(0);
    else expect(r.stderr).toMatch(/AddressSanitizer: use-after-poison/);
  });
});

void statSync;
void mkdirSync;
void require;
