/** Prediction on image files and the paper's 10-crop evaluation. */
import { checkRegularFile } from './io/files.js';
import { loadSharp, sharpDecode } from './sharp.js';
import { tenCrop } from './data/augment.js';
import type { BatchSource } from './data/types.js';
import type { EvalResult } from './eval.js';
import type { AlexNet, AlexNetConfig } from './models/alexnet.js';
import { Tensor } from './tensor.js';

/** How the model's inputs were prepared in training: side length and per-channel mean/std on [0, 1]. */
export interface InputSpec {
  side: number;
  mean: number[];
  std: number[];
}

/** Decodes image files for the model: short side resized to side·256/224, centre crop to the training
 * input side, grey or RGB to match the first layer, (x/255 − mean)/std. Unreadable files are reported,
 * not fatal. */
export async function loadImagesForPrediction(
  files: string[],
  config: AlexNetConfig,
  norm: InputSpec,
): Promise<{ tensor: Tensor | null; files: string[]; failed: { path: string; reason: string }[] }> {
  const side = norm.side;
  const c = config.inChannels;
  // as `alexnet eval` (lib/data/decode-worker.ts): short side → resize, then the centred side×side window
  // (torchvision's Resize(256) + CenterCrop(224) at side 224). One sharp pipeline can resize only once, so
  // the crop is taken from the resized pixels here.
  const resize = side >= 224 && side <= 256 ? 256 : Math.round((side * 8) / 7);
  const ok: string[] = [];
  const failed: { path: string; reason: string }[] = [];
  const images: Float32Array[] = [];
  const sharp = await loadSharp();
  for (const f of files) {
    try {
      await checkRegularFile(f); // a FIFO would block the decoder forever; devices and sockets are no images
      // the package's one decoding path (lib/data/sharp-decode.cjs): size bounded before decoding, alpha
      // dropped without premultiplying, as ImageFolder and pack decode
      const { data, width: W, height: H, channels } = await sharpDecode.decodeResized(sharp, f, { channels: c as 1 | 3, resize, failOn: 'warning' });
      if (channels !== c || H < side || W < side) throw new Error(`decoded and resized to ${W}×${H}×${channels}, expected at least ${side}×${side}×${c}`);
      const top = Math.floor((H - side) / 2);
      const left = Math.floor((W - side) / 2);
      const out = new Float32Array(c * side * side);
      for (let ch = 0; ch < c; ch++) {
        const m = norm.mean[ch] ?? norm.mean[0];
        const s = norm.std[ch] ?? norm.std[0];
        for (let y = 0; y < side; y++)
          for (let x = 0; x < side; x++) out[ch * side * side + y * side + x] = (data[((top + y) * W + left + x) * c + ch] / 255 - m) / s;
      }
      images.push(out);
      ok.push(f);
    } catch (e) {
      failed.push({ path: f, reason: (e as Error).message.split('\n')[0] });
    }
  }
  if (!images.length) return { tensor: null, files: ok, failed };
  const x = new Float32Array(images.length * c * side * side);
  images.forEach((im, i) => x.set(im, i * im.length));
  return { tensor: Tensor.from(x, [images.length, c, side, side]), files: ok, failed };
}

/** The paper's 10-crop evaluation: four corners, centre and their mirror images of each (larger) image,
 * softmax probabilities averaged over the ten. The source must yield images larger than the model's input. */
/** The crops of `batchSize` images' worth at a time go through the model (a batch of 100 images is not
 * one forward of 1,000 crops), so memory stays that of a normal batch. */
export async function evaluateTenCrop(
  model: AlexNet,
  source: BatchSource,
  opts: { batchSize?: number; side?: number; onProgress?: (done: number, total: number) => void; labelMap?: ArrayLike<number> } = {},
): Promise<EvalResult> {
  const side = opts.side ?? model.config.inputSize;
  const [c, h, w] = source.sampleShape;
  if (h < side || w < side) throw new RangeError(`evaluateTenCrop: the source's images are ${h}×${w}, smaller than the model's ${side}×${side} input`);
  const k = model.config.numClasses;
  const k5 = Math.min(5, k);
  let n = 0;
  let c1 = 0;
  let c5 = 0;
  const batchSize = opts.batchSize ?? 32;
  const perChunk = Math.max(1, Math.floor(batchSize / 10)); // images whose 10 crops make one forward
  const crop = c * side * side;
  /** Scores images i0 … i0 + m − 1 of `labels` from their 10 crops' probabilities. */
  const score = (probs: Float32Array, labels: Int32Array, i0: number, m: number) => {
    for (let i = 0; i < m; i++) {
      const avg = new Float64Array(k);
      for (let j = 0; j < 10; j++) for (let q = 0; q < k; q++) avg[q] += probs[(i * 10 + j) * k + q] / 10;
      const label = opts.labelMap ? opts.labelMap[labels[i0 + i]] : labels[i0 + i];
      if (!(label >= 0 && label < k)) throw new RangeError(`evaluateTenCrop: label ${label} is outside [0, ${k}) (the data has ${source.classes.length} classes, the model ${k})`);
      const above = avg.reduce((a, v) => a + (v > avg[label] ? 1 : 0), 0);
      if (above < 1) c1++;
      if (above < k5) c5++;
    }
    n += m;
    opts.onProgress?.(n, source.size);
  };
  // A source that makes the ten crops itself (PackedDataset with tenCrop): batches of perChunk images.
  const makesCrops = (source as { tenCrop?: boolean }).tenCrop === true;
  for await (const batch of source.batches({ batchSize: makesCrops ? perChunk : batchSize, shuffle: false })) {
    if (batch.input) {
      if (batch.crops !== 10) {
        batch.input.dispose();
        throw new TypeError(`evaluateTenCrop: the source's batches are not ten crops of each image (open a packed data set with tenCrop: true)`);
      }
      let probs: Float32Array;
      try {
        probs = await model.predict(batch.input);
      } finally {
        batch.input.dispose();
      }
      score(probs, batch.labels, 0, batch.n);
      continue;
    }
    const x0 = batch.x!;
    const per = c * h * w;
    for (let i0 = 0; i0 < batch.n; i0 += perChunk) {
      const m = Math.min(perChunk, batch.n - i0);
      const crops = new Float32Array(m * 10 * crop);
      for (let i = 0; i < m; i++) crops.set(tenCrop(x0.subarray((i0 + i) * per, (i0 + i + 1) * per), [c, h, w], side), i * 10 * crop);
      const x = Tensor.from(crops, [m * 10, c, side, side], model.device);
      let probs: Float32Array;
      try {
        probs = await model.predict(x);
      } finally {
        x.dispose();
      }
      score(probs, batch.labels, i0, m);
    }
  }
  return { n, top1: n ? c1 / n : NaN, top5: n ? c5 / n : NaN, loss: NaN };
}
