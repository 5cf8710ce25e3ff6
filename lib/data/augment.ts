/** The 2012 AlexNet paper's data augmentation (Krizhevsky, Sutskever & Hinton, §4.1) and the usual
 * pre-processing, as plain functions on float32 CHW images, so the ImageFolder pipeline, the trainer and
 * the evaluator all run the same code.
 *
 * Conventions: an image is a `Float32Array` in CHW order with its `[C, H, W]` shape passed beside it.
 * Functions that change the geometry (crops, flips, resizes) return a new array; point-wise ones
 * (`normalize`, `addChannelShift`, `pcaJitter`) change the array in place and return it. Randomness comes
 * only from the {@link Rng} passed in, so every result is reproducible from its seed.
 *
 * The paper's pipeline: resize the short side to 256 and take the central 256×256 square (sharp does
 * this when decoding), then in training a random 224×224 crop (227 for the Caffe-style arch) with a random
 * horizontal flip and "fancy PCA" colour jitter; in evaluation the centre crop, or the average over ten
 * crops (four corners and the centre, and their mirror images). */
import { describe } from '../errors.js';
import type { Rng } from './rng.js';

export type CHW = readonly [c: number, h: number, w: number];
export type RGB = readonly [number, number, number];

/** ImageNet's per-channel mean and standard deviation of [0, 1] RGB pixels (torchvision's constants). */
export const IMAGENET_MEAN: RGB = Object.freeze([0.485, 0.456, 0.406] as const);
export const IMAGENET_STD: RGB = Object.freeze([0.229, 0.224, 0.225] as const);

/** Eigenvalues of the 3×3 covariance of ImageNet's RGB pixels on [0, 1], as published with the
 * AlexNet-era Torch code (fb.resnet.torch's `Lighting`). */
export const IMAGENET_PCA_EIGVAL: RGB = Object.freeze([0.2175, 0.0188, 0.0045] as const);
/** The matching eigenvectors, as columns: `IMAGENET_PCA_EIGVEC[c][i]` is component c (R, G, B) of
 * eigenvector p_i. The first, ≈ −(0.57, 0.58, 0.58), is brightness. */
export const IMAGENET_PCA_EIGVEC: readonly RGB[] = Object.freeze([
  Object.freeze([-0.5675, 0.7192, 0.4009] as const),
  Object.freeze([-0.5808, -0.0045, -0.814] as const),
  Object.freeze([-0.5836, -0.6948, 0.4203] as const),
]);
/** The paper's standard deviation of the PCA coefficients α_i ~ N(0, 0.1²). */
export const PCA_ALPHA_STD = 0.1;

// ---- checks -------------------------------------------------------------------------------------------

function checkShape(shape: unknown, where: string): CHW {
  if (
    !Array.isArray(shape) || shape.length !== 3 ||
    !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d > 0)
  )
    throw new TypeError(`${where}: expected a shape [C, H, W] of positive integers, got ${describe(shape)}`);
  return shape as unknown as CHW;
}

function checkImage(img: unknown, shape: unknown, where: string): CHW {
  const s = checkShape(shape, where);
  if (!(img instanceof Float32Array)) throw new TypeError(`${where}: expected a Float32Array image, got ${describe(img)}`);
  const n = s[0] * s[1] * s[2];
  if (img.length !== n)
    throw new RangeError(`${where}: an image of shape [${s.join(', ')}] has ${n} values, got a Float32Array(${img.length})`);
  return s;
}

function checkSide(v: unknown, name: string, max: number | undefined, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new TypeError(`${where}: expected ${name} to be a positive integer, got ${describe(v)}`);
  if (max !== undefined && v > max) throw new RangeError(`${where}: ${name} ${v} is larger than the image side ${max}`);
  return v;
}

function checkPerChannel(v: unknown, c: number, name: string, where: string): ArrayLike<number> {
  if (typeof v === 'number' && Number.isFinite(v)) return new Array<number>(c).fill(v);
  if (
    (Array.isArray(v) || ArrayBuffer.isView(v)) &&
    (v as ArrayLike<unknown>).length === c &&
    Array.from(v as ArrayLike<unknown>).every((x) => typeof x === 'number' && Number.isFinite(x))
  )
    return v as ArrayLike<number>;
  throw new TypeError(`${where}: expected ${name} to be a finite number or ${c} finite numbers (one per channel), got ${describe(v)}`);
}

// ---- layout --------------------------------------------------------------------------------------------

/** Interleaved HWC bytes (what image decoders give) → a CHW float32 image, each value multiplied by
 * `scale` (default 1/255: pixels on [0, 1]). */
export function hwcToChw(src: Uint8Array | Uint8ClampedArray, h: number, w: number, c: number, scale = 1 / 255): Float32Array {
  const where = 'hwcToChw';
  if (!(src instanceof Uint8Array || src instanceof Uint8ClampedArray))
    throw new TypeError(`${where}: expected a Uint8Array of HWC pixels, got ${describe(src)}`);
  checkShape([c, h, w], where);
  if (src.length !== h * w * c)
    throw new RangeError(`${where}: ${h}×${w}×${c} pixels need ${h * w * c} bytes, got ${src.length}`);
  const out = new Float32Array(c * h * w);
  const plane = h * w;
  for (let p = 0; p < plane; p++) for (let k = 0; k < c; k++) out[k * plane + p] = src[p * c + k] * scale;
  return out;
}

// ---- crops and flips ---------------------------------------------------------------------------------

/** The `height`×`width` window whose top-left pixel is (top, left). */
export function crop(img: Float32Array, shape: CHW, top: number, left: number, height: number, width: number): Float32Array {
  const where = 'crop';
  const [c, h, w] = checkImage(img, shape, where);
  checkSide(height, 'height', undefined, where);
  checkSide(width, 'width', undefined, where);
  if (!Number.isInteger(top) || !Number.isInteger(left) || top < 0 || left < 0 || top + height > h || left + width > w)
    throw new RangeError(
      `${where}: the window rows ${top}..${top + height - 1}, columns ${left}..${left + width - 1} is not inside the ${h}×${w} image`,
    );
  const out = new Float32Array(c * height * width);
  for (let k = 0; k < c; k++)
    for (let y = 0; y < height; y++) {
      const s = (k * h + top + y) * w + left;
      out.set(img.subarray(s, s + width), (k * height + y) * width);
    }
  return out;
}

/** Top-left corner of the centred `size`×`size` window: (⌊(h − size)/2⌋, ⌊(w − size)/2⌋) (Caffe's rounding). */
export function centerCropOrigin(h: number, w: number, size: number): [top: number, left: number] {
  checkSide(size, 'size', Math.min(h, w), 'centerCropOrigin');
  return [Math.floor((h - size) / 2), Math.floor((w - size) / 2)];
}

export function centerCrop(img: Float32Array, shape: CHW, size: number): Float32Array {
  const [, h, w] = checkImage(img, shape, 'centerCrop');
  const [top, left] = centerCropOrigin(h, w, size);
  return crop(img, shape, top, left, size, size);
}

/** Maps a uniform u ∈ [0, 1) onto an integer offset in 0..range−1: ⌊u·range⌋. */
export function offsetFromUniform(u: number, range: number): number {
  return Math.min(range - 1, Math.floor(u * range));
}

/** Top-left corner of a uniformly random `size`×`size` window: two draws, rows first,
 * top = ⌊u₁·(h − size + 1)⌋, left = ⌊u₂·(w − size + 1)⌋. */
export function randomCropOrigin(h: number, w: number, size: number, rng: Rng): [top: number, left: number] {
  checkSide(size, 'size', Math.min(h, w), 'randomCropOrigin');
  const top = offsetFromUniform(rng.next(), h - size + 1);
  const left = offsetFromUniform(rng.next(), w - size + 1);
  return [top, left];
}

export function randomCrop(img: Float32Array, shape: CHW, size: number, rng: Rng): Float32Array {
  const [, h, w] = checkImage(img, shape, 'randomCrop');
  const [top, left] = randomCropOrigin(h, w, size, rng);
  return crop(img, shape, top, left, size, size);
}

/** The mirror image (left ↔ right). */
export function hflip(img: Float32Array, shape: CHW): Float32Array {
  const [c, h, w] = checkImage(img, shape, 'hflip');
  const out = new Float32Array(img.length);
  for (let r = 0; r < c * h; r++) {
    const o = r * w;
    for (let x = 0; x < w; x++) out[o + x] = img[o + w - 1 - x];
  }
  return out;
}

/** The paper's ten test crops, stacked as [10, C, size, size]: top-left, top-right, bottom-left,
 * bottom-right, centre (torchvision's FiveCrop order), then the mirror images of those five in the same
 * order. The network's predictions are averaged over the ten. */
export function tenCrop(img: Float32Array, shape: CHW, size: number): Float32Array {
  const [c, h, w] = checkImage(img, shape, 'tenCrop');
  checkSide(size, 'size', Math.min(h, w), 'tenCrop');
  const origins: [number, number][] = [[0, 0], [0, w - size], [h - size, 0], [h - size, w - size], centerCropOrigin(h, w, size)];
  const one = c * size * size;
  const out = new Float32Array(10 * one);
  origins.forEach(([top, left], i) => {
    const a = crop(img, shape, top, left, size, size);
    out.set(a, i * one);
    out.set(hflip(a, [c, size, size]), (i + 5) * one);
  });
  return out;
}

// ---- colour ----------------------------------------------------------------------------------------------

/** The three PCA coefficients α_i ~ N(0, std²) (three normal draws). */
export function pcaAlphas(rng: Rng, std = PCA_ALPHA_STD): [number, number, number] {
  return [rng.normal(0, std), rng.normal(0, std), rng.normal(0, std)];
}

/** The RGB shift of "fancy PCA": Σ_i α_i λ_i p_i, i.e. shift[c] = Σ_i eigvec[c][i] · α_i · eigval[i]. */
export function pcaShift(
  alphas: ArrayLike<number>,
  eigval: ArrayLike<number> = IMAGENET_PCA_EIGVAL,
  eigvec: readonly ArrayLike<number>[] = IMAGENET_PCA_EIGVEC,
): [number, number, number] {
  checkPerChannel(alphas, 3, 'alphas', 'pcaShift');
  checkPerChannel(eigval, 3, 'eigval', 'pcaShift');
  if (!Array.isArray(eigvec) || eigvec.length !== 3) throw new TypeError(`pcaShift: expected eigvec to be a 3×3 matrix, got ${describe(eigvec)}`);
  eigvec.forEach((row, c) => checkPerChannel(row, 3, `eigvec[${c}]`, 'pcaShift'));
  const s: [number, number, number] = [0, 0, 0];
  for (let c = 0; c < 3; c++) for (let i = 0; i < 3; i++) s[c] += eigvec[c][i] * alphas[i] * eigval[i];
  return s;
}

/** Adds `shift[c]` to every pixel of channel c, in place. */
export function addChannelShift(img: Float32Array, shape: CHW, shift: ArrayLike<number> | number): Float32Array {
  const [c, h, w] = checkImage(img, shape, 'addChannelShift');
  const s = checkPerChannel(shift, c, 'shift', 'addChannelShift');
  const plane = h * w;
  for (let k = 0; k < c; k++) {
    const v = s[k];
    for (let i = k * plane, e = i + plane; i < e; i++) img[i] += v;
  }
  return img;
}

/** "Fancy PCA" colour augmentation on an RGB image of [0, 1] pixels, in place: draws α_i ~ N(0, std²)
 * and adds Σ_i α_i λ_i p_i to every pixel (no clipping, as in the paper's reference code). Returns the
 * shift that was added. */
export function pcaJitter(img: Float32Array, shape: CHW, rng: Rng, std = PCA_ALPHA_STD): [number, number, number] {
  const [c] = checkImage(img, shape, 'pcaJitter');
  if (c !== 3) throw new RangeError(`pcaJitter: expected an RGB image of shape [3, H, W], got [${shape.join(', ')}]`);
  const shift = pcaShift(pcaAlphas(rng, std));
  addChannelShift(img, shape, shift);
  return shift;
}

/** (x − mean[c]) / std[c], in place. `mean` and `std` are one number or one per channel. */
export function normalize(img: Float32Array, shape: CHW, mean: ArrayLike<number> | number, std: ArrayLike<number> | number): Float32Array {
  const [c, h, w] = checkImage(img, shape, 'normalize');
  const m = checkPerChannel(mean, c, 'mean', 'normalize');
  const s = checkPerChannel(std, c, 'std', 'normalize');
  for (let k = 0; k < c; k++)
    if (s[k] === 0) throw new RangeError(`normalize: std of channel ${k} is 0`);
  const plane = h * w;
  for (let k = 0; k < c; k++) {
    const mk = m[k], inv = 1 / s[k];
    for (let i = k * plane, e = i + plane; i < e; i++) img[i] = (img[i] - mk) * inv;
  }
  return img;
}

// ---- bilinear resize ------------------------------------------------------------------------------------

/** Source taps of a bilinear resize along one axis: `i0[o]`, `i1[o]` and the weight `f[o]` of `i1`. */
export interface BilinearAxis {
  i0: Int32Array;
  i1: Int32Array;
  f: Float32Array;
}

/** Taps for resizing an axis of length `inSize` to `outSize` with half-pixel centres (PyTorch's
 * `interpolate(mode='bilinear', align_corners=False)`, OpenCV's INTER_LINEAR): the source coordinate of
 * output o is max(0, (o + ½)·inSize/outSize − ½), blended between its two neighbours, the last one
 * repeated at the far edge. No antialiasing: meant for upscaling. */
export function bilinearAxis(inSize: number, outSize: number): BilinearAxis {
  checkSide(inSize, 'inSize', undefined, 'bilinearAxis');
  checkSide(outSize, 'outSize', undefined, 'bilinearAxis');
  const i0 = new Int32Array(outSize), i1 = new Int32Array(outSize), f = new Float32Array(outSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = Math.max(0, (o + 0.5) * scale - 0.5);
    const a = Math.min(Math.floor(src), inSize - 1);
    i0[o] = a;
    i1[o] = a < inSize - 1 ? a + 1 : a;
    f[o] = Math.min(1, Math.max(0, src - a));
  }
  return { i0, i1, f };
}

/** Resizes `planes` consecutive h×w planes of `src` with the taps `ys`, `xs` (from {@link bilinearAxis}),
 * writing them into `out` from `outOffset` on. No checks: the building block of the resizes below. */
export function resizePlanesInto(
  src: Float32Array, planes: number, h: number, w: number,
  ys: BilinearAxis, xs: BilinearAxis, out: Float32Array, outOffset: number,
): void {
  const oh = ys.i0.length, ow = xs.i0.length;
  for (let p = 0; p < planes; p++) {
    const base = p * h * w;
    let o = outOffset + p * oh * ow;
    for (let y = 0; y < oh; y++) {
      const r0 = base + ys.i0[y] * w, r1 = base + ys.i1[y] * w, fy = ys.f[y], gy = 1 - fy;
      for (let x = 0; x < ow; x++) {
        const a = xs.i0[x], b = xs.i1[x], fx = xs.f[x], gx = 1 - fx;
        out[o++] = gy * (gx * src[r0 + a] + fx * src[r0 + b]) + fy * (gx * src[r1 + a] + fx * src[r1 + b]);
      }
    }
  }
}

/** Bilinear resize of one CHW image to outH×outW (see {@link bilinearAxis} for the convention). */
export function resizeBilinear(img: Float32Array, shape: CHW, outH: number, outW: number): Float32Array {
  const [c, h, w] = checkImage(img, shape, 'resizeBilinear');
  checkSide(outH, 'outH', undefined, 'resizeBilinear');
  checkSide(outW, 'outW', undefined, 'resizeBilinear');
  const out = new Float32Array(c * outH * outW);
  resizePlanesInto(img, c, h, w, bilinearAxis(h, outH), bilinearAxis(w, outW), out, 0);
  return out;
}

/** Bilinear resize of a batch [N, C, H, W] → [N, C, outH, outW] (e.g. Fashion-MNIST 28×28 → 227×227). */
export function resizeBilinearBatch(x: Float32Array, shape: readonly [number, number, number, number], outH: number, outW: number): Float32Array {
  const where = 'resizeBilinearBatch';
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new TypeError(`${where}: expected a shape [N, C, H, W] of non-negative integers, got ${describe(shape)}`);
  const [n, c, h, w] = shape;
  if (!(x instanceof Float32Array) || x.length !== n * c * h * w)
    throw new RangeError(`${where}: a batch of shape [${shape.join(', ')}] has ${n * c * h * w} values, got ${describe(x)}`);
  checkSide(outH, 'outH', undefined, where);
  checkSide(outW, 'outW', undefined, where);
  const out = new Float32Array(n * c * outH * outW);
  if (n * c === 0) return out;
  checkShape([c, h, w], where);
  resizePlanesInto(x, n * c, h, w, bilinearAxis(h, outH), bilinearAxis(w, outW), out, 0);
  return out;
}

// ---- the paper's transforms ---------------------------------------------------------------------------

/** The random numbers one training image consumes, in the order they are drawn from its Rng. */
export interface TrainDraws {
  /** uniforms of the crop's top and left offsets (see {@link randomCropOrigin}) */
  uTop: number;
  uLeft: number;
  flip: boolean;
  /** RGB shift of the PCA colour jitter (zeros when pcaStd is 0) */
  shift: [number, number, number];
}

/** Draws the random choices of one training image: crop (2 uniforms), flip (1 uniform, only when
 * `flip`), PCA coefficients (3 normals, only when `pcaStd > 0`). */
export function drawTrainParams(rng: Rng, opts: { flip?: boolean; pcaStd?: number } = {}): TrainDraws {
  const uTop = rng.next();
  const uLeft = rng.next();
  const flip = (opts.flip ?? true) ? rng.bool(0.5) : false;
  const pcaStd = opts.pcaStd ?? PCA_ALPHA_STD;
  const shift: [number, number, number] = pcaStd > 0 ? pcaShift(pcaAlphas(rng, pcaStd)) : [0, 0, 0];
  return { uTop, uLeft, flip, shift };
}

export interface TrainAugmentOptions {
  /** Crop side (224, or 227 for the Caffe-style arch). */
  size: number;
  /** Random horizontal flips (default true). */
  flip?: boolean;
  /** Standard deviation of the PCA coefficients α (default 0.1; 0 turns the colour jitter off). */
  pcaStd?: number;
  /** Normalisation after augmentation (default ImageNet's). */
  mean?: ArrayLike<number> | number;
  std?: ArrayLike<number> | number;
}

/** The paper's training transform of an RGB image on [0, 1] pixels (already resized, e.g. the central
 * 256×256 square): random size×size crop, horizontal flip with probability ½, PCA colour jitter,
 * then (x − mean)/std. Randomness as in {@link drawTrainParams}. Returns a new [3, size, size] image. */
export function augmentTrain(img: Float32Array, shape: CHW, rng: Rng, opts: TrainAugmentOptions): Float32Array {
  const [c, h, w] = checkImage(img, shape, 'augmentTrain');
  if (c !== 3) throw new RangeError(`augmentTrain: expected an RGB image of shape [3, H, W], got [${shape.join(', ')}]`);
  const size = checkSide(opts?.size, 'size', Math.min(h, w), 'augmentTrain');
  const d = drawTrainParams(rng, opts);
  const top = offsetFromUniform(d.uTop, h - size + 1);
  const left = offsetFromUniform(d.uLeft, w - size + 1);
  let out = crop(img, shape, top, left, size, size);
  const s: CHW = [3, size, size];
  if (d.flip) out = hflip(out, s);
  addChannelShift(out, s, d.shift);
  return normalize(out, s, opts.mean ?? IMAGENET_MEAN, opts.std ?? IMAGENET_STD);
}

/** The evaluation transform: centre size×size crop, then (x − mean)/std. Returns a new image. */
export function augmentEval(
  img: Float32Array, shape: CHW,
  opts: { size: number; mean?: ArrayLike<number> | number; std?: ArrayLike<number> | number },
): Float32Array {
  const [c] = checkImage(img, shape, 'augmentEval');
  const out = centerCrop(img, shape, opts?.size);
  return normalize(out, [c, opts.size, opts.size], opts.mean ?? IMAGENET_MEAN, opts.std ?? IMAGENET_STD);
}
