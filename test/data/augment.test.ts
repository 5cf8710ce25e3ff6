import { describe, expect, it } from 'vitest';
import {
  IMAGENET_MEAN, IMAGENET_STD, Rng, addChannelShift, augmentEval, augmentTrain, bilinearAxis, centerCrop, centerCropOrigin, crop,
  drawTrainParams, hflip, hwcToChw, normalize, pcaJitter, pcaShift, permutation, randomCrop, randomCropOrigin, resizeBilinear,
  resizeBilinearBatch, tenCrop,
} from '../../lib/data/index.js';
import { epochOrder } from '../../lib/data/batching.js';

const ramp = (n: number, base = 0) => Float32Array.from({ length: n }, (_, i) => base + i);
/** An Rng whose next() returns the given uniforms in turn (for hand-computed crop offsets). */
const fixedRng = (us: number[]) => ({ next: () => { const u = us.shift(); if (u === undefined) throw new Error('fixedRng: out of numbers'); return u; } }) as unknown as Rng;
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) > tol) throw new Error(`element ${i}: got ${a[i]}, expected ${b[i]} (±${tol})`);
};

describe('Rng', () => {
  it('is deterministic per key list, and different keys give different streams', () => {
    const draw = (r: Rng) => Array.from({ length: 8 }, () => r.uint32());
    expect(draw(Rng.from(1, 2))).toEqual(draw(Rng.from(1, 2)));
    expect(draw(new Rng(7))).toEqual(draw(Rng.from(7)));
    const streams = [Rng.from(1, 2), Rng.from(2, 1), Rng.from(1, 3), Rng.from(1), Rng.from(1, 2, 0), Rng.from(-1, 2), Rng.from(2 ** 40 + 1, 2)].map(draw);
    for (let i = 0; i < streams.length; i++) for (let j = i + 1; j < streams.length; j++) expect(streams[i]).not.toEqual(streams[j]);
    const r = Rng.from(5);
    r.next();
    const c = r.clone();
    expect(draw(r)).toEqual(draw(c));
  });

  it('has uniform floats and integers, and standard normals', () => {
    const r = Rng.from(123);
    const N = 100_000;
    let s = 0;
    const hist = new Array(10).fill(0);
    for (let i = 0; i < N; i++) {
      const u = r.next();
      expect(u >= 0 && u < 1).toBe(true);
      s += u;
      hist[r.int(10)]++;
    }
    expect(Math.abs(s / N - 0.5)).toBeLessThan(0.005);
    const chi2 = hist.reduce((a, h) => a + (h - N / 10) ** 2 / (N / 10), 0);
    expect(chi2).toBeLessThan(30); // 9 degrees of freedom: p < 1e-3 at 27.9
    let m = 0, v = 0;
    for (let i = 0; i < N; i++) {
      const z = r.normal();
      m += z;
      v += z * z;
    }
    expect(Math.abs(m / N)).toBeLessThan(0.015);
    expect(Math.abs(v / N - 1)).toBeLessThan(0.02);
  });

  it('checks its arguments', () => {
    expect(() => Rng.from(1.5)).toThrow(/expected safe integer keys, got 1.5 as key 0/);
    expect(() => Rng.from(1, NaN)).toThrow(/got NaN as key 1/);
    expect(() => Rng.from(1).int(0)).toThrow(/1 ≤ n ≤ 2\^32, got 0/);
  });

  it('permutation() is a permutation, and shuffles depend on (seed, epoch) only', () => {
    const p = permutation(1000, Rng.from(3));
    expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Array.from(p)).not.toEqual(Array.from({ length: 1000 }, (_, i) => i));
    const a = epochOrder(500, { shuffle: true, seed: 1, epoch: 4 });
    expect(epochOrder(500, { shuffle: true, seed: 1, epoch: 4 })).toEqual(a);
    expect(epochOrder(500, { shuffle: true, seed: 1, epoch: 5 })).not.toEqual(a);
    expect(epochOrder(500, { shuffle: true, seed: 2, epoch: 4 })).not.toEqual(a);
    expect(Array.from(epochOrder(5, { shuffle: false, seed: 1, epoch: 4 }))).toEqual([0, 1, 2, 3, 4]);
    // each position is equally likely to hold each element: first slot over many seeds
    const first = new Array(4).fill(0);
    for (let s = 0; s < 4000; s++) first[epochOrder(4, { shuffle: true, seed: s, epoch: 0 })[0]]++;
    for (const f of first) expect(Math.abs(f - 1000)).toBeLessThan(120);
  });
});

describe('crops and flips', () => {
  it('crop() takes the window at (top, left), per channel', () => {
    const img = Float32Array.from([...ramp(20), ...ramp(20, 100)]); // [2, 4, 5]
    expect(Array.from(crop(img, [2, 4, 5], 1, 2, 2, 3))).toEqual([7, 8, 9, 12, 13, 14, 107, 108, 109, 112, 113, 114]);
    expect(Array.from(crop(img, [2, 4, 5], 0, 0, 1, 1))).toEqual([0, 100]);
    expect(() => crop(img, [2, 4, 5], 3, 0, 2, 2)).toThrow(/window rows 3..4, columns 0..1 is not inside the 4×5 image/);
    expect(() => crop(img, [2, 4, 4], 0, 0, 1, 1)).toThrow(/shape \[2, 4, 4\] has 32 values, got a Float32Array\(40\)/);
    expect(() => crop([1, 2] as unknown as Float32Array, [1, 1, 2], 0, 0, 1, 1)).toThrow(/expected a Float32Array image, got \[1, 2\]/);
  });

  it('centre crop uses floor((side - size) / 2)', () => {
    expect(centerCropOrigin(5, 8, 3)).toEqual([1, 2]);
    expect(centerCropOrigin(5, 5, 2)).toEqual([1, 1]);
    expect(centerCropOrigin(256, 341, 224)).toEqual([16, 58]);
    expect(Array.from(centerCrop(ramp(16), [1, 4, 4], 2))).toEqual([5, 6, 9, 10]);
    expect(() => centerCrop(ramp(16), [1, 4, 4], 5)).toThrow(/size 5 is larger than the image side 4/);
  });

  it('random crop offsets are floor(u * (side - size + 1)), rows first', () => {
    expect(randomCropOrigin(10, 20, 4, fixedRng([0, 0.9999999]))).toEqual([0, 16]);
    expect(randomCropOrigin(10, 20, 4, fixedRng([0.5, 0.25]))).toEqual([3, 4]); // floor(0.5·7), floor(0.25·17)
    expect(randomCropOrigin(4, 4, 4, fixedRng([0.99, 0.99]))).toEqual([0, 0]);
    expect(Array.from(randomCrop(ramp(16), [1, 4, 4], 2, fixedRng([0.7, 0.1])))).toEqual([8, 9, 12, 13]); // top floor(2.1)=2, left 0
    // all offsets are reached, about equally often
    const seen = new Map<string, number>();
    const r = Rng.from(9);
    for (let i = 0; i < 9000; i++) {
      const k = randomCropOrigin(6, 6, 4, r).join(',');
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
    expect(seen.size).toBe(9);
    for (const v of seen.values()) expect(Math.abs(v - 1000)).toBeLessThan(150);
  });

  it('hflip mirrors each row', () => {
    expect(Array.from(hflip(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), [2, 2, 3]))).toEqual([3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]);
  });

  it('tenCrop: corners, centre, then their mirror images', () => {
    const t = Array.from(tenCrop(ramp(16), [1, 4, 4], 2));
    const crops = Array.from({ length: 10 }, (_, i) => t.slice(i * 4, i * 4 + 4));
    expect(crops).toEqual([
      [0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15], [5, 6, 9, 10],
      [1, 0, 5, 4], [3, 2, 7, 6], [9, 8, 13, 12], [11, 10, 15, 14], [6, 5, 10, 9],
    ]);
    const three = tenCrop(Float32Array.from([...ramp(9), ...ramp(9, 10), ...ramp(9, 20)]), [3, 3, 3], 2);
    expect(three.length).toBe(10 * 3 * 4);
    expect(Array.from(three.subarray(12 * 8, 12 * 9))).toEqual([5, 4, 8, 7, 15, 14, 18, 17, 25, 24, 28, 27]); // mirrored bottom-right
    expect(Array.from(three.subarray(12 * 9, 12 * 10))).toEqual([1, 0, 4, 3, 11, 10, 14, 13, 21, 20, 24, 23]); // mirrored centre: origin (0, 0)
  });
});

describe('colour and normalisation', () => {
  it('pcaShift is Σ α_i λ_i p_i with the published ImageNet eigen-pairs', () => {
    const a = [0.1, -0.2, 0.3];
    const expected = [
      -0.5675 * 0.1 * 0.2175 + 0.7192 * -0.2 * 0.0188 + 0.4009 * 0.3 * 0.0045,
      -0.5808 * 0.1 * 0.2175 + -0.0045 * -0.2 * 0.0188 + -0.814 * 0.3 * 0.0045,
      -0.5836 * 0.1 * 0.2175 + -0.6948 * -0.2 * 0.0188 + 0.4203 * 0.3 * 0.0045,
    ];
    close(pcaShift(a), expected, 1e-12);
    close(pcaShift([1, 0, 0]), [-0.5675 * 0.2175, -0.5808 * 0.2175, -0.5836 * 0.2175], 1e-12);
    close(pcaShift([0, 0, 0]), [0, 0, 0], 0);
    expect(() => pcaShift([1, 2])).toThrow(/expected alphas to be a finite number or 3 finite numbers/);
  });

  it('pcaJitter adds the same shift to every pixel of a channel, from α ~ N(0, 0.1)', () => {
    const img = Float32Array.from({ length: 3 * 4 * 5 }, (_, i) => (i % 7) / 7);
    const orig = img.slice();
    const r = Rng.from(42);
    const alphas = [r.clone()].map((c) => [c.normal(0, 0.1), c.normal(0, 0.1), c.normal(0, 0.1)])[0];
    const shift = pcaJitter(img, [3, 4, 5], r);
    close(shift, pcaShift(alphas), 1e-12);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 20; p++) expect(img[c * 20 + p] - orig[c * 20 + p]).toBeCloseTo(shift[c], 6);
    // the α's spread: brightness (first eigenvector) shifts have std 0.1 · 0.2175 · |p_1|
    const rr = Rng.from(7);
    let s2 = 0;
    const N = 20000;
    for (let i = 0; i < N; i++) s2 += pcaShift([rr.normal(0, 0.1), 0, 0])[0] ** 2;
    expect(Math.sqrt(s2 / N)).toBeCloseTo(0.1 * 0.2175 * 0.5675, 3);
    expect(() => pcaJitter(new Float32Array(4), [1, 2, 2], r)).toThrow(/expected an RGB image of shape \[3, H, W\], got \[1, 2, 2\]/);
  });

  it('normalize computes (x - mean[c]) / std[c] in place', () => {
    const img = Float32Array.from([0.485 + 0.229, 0.485, 0.456 + 2 * 0.224, 0.456, 0.406 - 0.225, 0.406]); // [3, 1, 2]
    const out = normalize(img, [3, 1, 2], IMAGENET_MEAN, IMAGENET_STD);
    expect(out).toBe(img);
    close(out, [1, 0, 2, 0, -1, 0], 1e-6);
    close(normalize(Float32Array.from([1, 3]), [1, 1, 2], 1, 2), [0, 1]);
    expect(() => normalize(new Float32Array(3), [3, 1, 1], [0, 0], 1)).toThrow(/expected mean to be a finite number or 3 finite numbers \(one per channel\), got \[0, 0\]/);
    expect(() => normalize(new Float32Array(1), [1, 1, 1], 0, 0)).toThrow(/std of channel 0 is 0/);
    close(addChannelShift(Float32Array.from([1, 1, 2, 2]), [2, 1, 2], [0.5, -1]), [1.5, 1.5, 1, 1]);
  });

  it('hwcToChw de-interleaves and scales to [0, 1]', () => {
    const hwc = Uint8Array.from([0, 10, 255, 51, 20, 0, 102, 30, 0, 204, 40, 0]); // 2×2 RGB
    close(hwcToChw(hwc, 2, 2, 3), [0, 51, 102, 204, 10, 20, 30, 40, 255, 0, 0, 0].map((v) => v / 255));
    expect(() => hwcToChw(hwc, 2, 3, 3)).toThrow(/2×3×3 pixels need 18 bytes, got 12/);
  });
});

describe('bilinear resize (half-pixel centres, as PyTorch align_corners=False)', () => {
  it('upscales a ramp 4 → 8 to the hand-computed values', () => {
    // source x = max(0, (o + 0.5)/2 - 0.5): -0.25→0, 0.25, 0.75, …, 3.25→clamped to the last pixel
    expect(Array.from(resizeBilinear(ramp(4), [1, 1, 4], 1, 8))).toEqual([0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]);
    // downscale 4 → 2: source 0.5 and 2.5
    expect(Array.from(resizeBilinear(ramp(4), [1, 1, 4], 1, 2))).toEqual([0.5, 2.5]);
    expect(Array.from(resizeBilinear(ramp(4), [1, 1, 4], 1, 4))).toEqual([0, 1, 2, 3]);
    // 3 → 7: sources (o + 0.5)·3/7 − 0.5 = −0.29→0, 0.14, 0.57, 1.0, 1.43, 1.86, 2.29
    const ax = bilinearAxis(3, 7);
    expect(Array.from(ax.i0)).toEqual([0, 0, 0, 1, 1, 1, 2]);
    expect(Array.from(ax.i1)).toEqual([1, 1, 1, 2, 2, 2, 2]);
    close(ax.f.subarray(0, 6), [0, 1 / 7, 4 / 7, 0, 3 / 7, 6 / 7], 1e-6);
  });

  it('reproduces a 2-D linear function inside the clamped border, per channel', () => {
    const [h, w, oh, ow] = [3, 4, 6, 8];
    const img = new Float32Array(2 * h * w);
    for (let c = 0; c < 2; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) img[(c * h + y) * w + x] = (c ? -1 : 1) * (10 * y + x);
    const out = resizeBilinear(img, [2, h, w], oh, ow);
    const src = (o: number, n: number, m: number) => Math.min(n - 1, Math.max(0, (o + 0.5) * (n / m) - 0.5));
    for (let c = 0; c < 2; c++)
      for (let y = 0; y < oh; y++)
        for (let x = 0; x < ow; x++) expect(out[(c * oh + y) * ow + x]).toBeCloseTo((c ? -1 : 1) * (10 * src(y, h, oh) + src(x, w, ow)), 5);
  });

  it('resizes a batch image by image', () => {
    const x = Float32Array.from([...ramp(6), ...ramp(6, 50)]); // [2, 1, 2, 3]
    const out = resizeBilinearBatch(x, [2, 1, 2, 3], 4, 5);
    expect(out.length).toBe(2 * 20);
    expect(Array.from(out.subarray(0, 20))).toEqual(Array.from(resizeBilinear(ramp(6), [1, 2, 3], 4, 5)));
    expect(Array.from(out.subarray(20))).toEqual(Array.from(resizeBilinear(ramp(6, 50), [1, 2, 3], 4, 5)));
    expect(() => resizeBilinearBatch(x, [2, 1, 3, 3], 4, 5)).toThrow(/a batch of shape \[2, 1, 3, 3\] has 18 values, got Float32Array\(12\)/);
  });
});

describe("the paper's transforms", () => {
  it('augmentTrain = crop at the drawn offsets, flip when drawn, PCA shift, normalise — in that order', () => {
    const img = Float32Array.from({ length: 3 * 9 * 9 }, (_, i) => ((i * 37) % 101) / 100);
    let flips = 0;
    for (let seed = 0; seed < 40; seed++) {
      const r = Rng.from(seed);
      const d = drawTrainParams(r.clone());
      const out = augmentTrain(img, [3, 9, 9], r, { size: 5 });
      const top = Math.floor(d.uTop * 5), left = Math.floor(d.uLeft * 5);
      let ref = crop(img, [3, 9, 9], top, left, 5, 5);
      if (d.flip) ref = hflip(ref, [3, 5, 5]);
      for (let c = 0; c < 3; c++) for (let p = 0; p < 25; p++) ref[c * 25 + p] = (ref[c * 25 + p] + d.shift[c] - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
      close(out, ref, 1e-5);
      flips += d.flip ? 1 : 0;
    }
    expect(flips).toBeGreaterThan(8);
    expect(flips).toBeLessThan(32);
    // without flips and jitter only the crop is random
    const d = drawTrainParams(Rng.from(1), { flip: false, pcaStd: 0 });
    expect(d.flip).toBe(false);
    expect(d.shift).toEqual([0, 0, 0]);
  });

  it('augmentEval = centre crop + normalise', () => {
    const img = Float32Array.from({ length: 3 * 6 * 7 }, (_, i) => (i % 13) / 13);
    const out = augmentEval(img, [3, 6, 7], { size: 4, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    const ref = crop(img, [3, 6, 7], 1, 1, 4, 4).map((v) => (v - 0.5) / 0.5);
    close(out, ref, 1e-6);
  });
});
