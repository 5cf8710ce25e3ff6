/** Evaluation: top-1 / top-5 accuracy and mean loss over a BatchSource, counted on the device. */
import { batchInput } from './data/batching.js';
import type { BatchSource } from './data/types.js';
import type { AlexNet } from './models/alexnet.js';
import { softmaxCrossEntropy, topkCorrect } from './ops/loss.js';
import { Tensor } from './tensor.js';

export interface EvalResult {
  n: number;
  top1: number;
  top5: number;
  loss: number;
}

/** Counts on the model's device; the model's train/eval mode is restored afterwards. */
export async function evaluate(
  model: AlexNet,
  source: BatchSource,
  opts: {
    batchSize?: number;
    limit?: number;
    inputTransform?: (x: Tensor) => Tensor;
    onProgress?: (done: number, total: number) => void;
    /** The model's class index of each of the data's labels (e.g. ImageNet synset folders → torchvision's
     * indices); default: the same index. */
    labelMap?: ArrayLike<number>;
    /** Data-parallel evaluation: this rank's share of the data (BatchOptions.shard; `batchSize` is then
     * per rank), and `combine`, which sums the ranks' counts [n, top-1, top-5, loss sum] (every rank gets
     * the result for the whole data). */
    shard?: { rank: number; world: number };
    combine?: (sums: Float64Array) => Promise<Float64Array>;
  } = {},
): Promise<EvalResult> {
  if (opts.shard && opts.limit !== undefined) throw new TypeError('evaluate: limit and shard cannot be combined (limit the data set itself)');
  const total = opts.shard ? Math.ceil(source.size / opts.shard.world) : Math.min(source.size, opts.limit ?? Infinity);
  const was = model.training;
  model.eval();
  const k5 = Math.min(5, model.config.numClasses);
  let n = 0;
  let c1 = 0;
  let c5 = 0;
  let lossSum = 0;
  try {
    for await (const batch of source.batches({ batchSize: opts.batchSize ?? 100, shuffle: false, dropLast: false, shard: opts.shard })) {
      const temps: Tensor[] = [];
      try {
        const raw = batchInput(batch, model.device, 'evaluate');
        if (batch.crops && batch.crops > 1) {
          raw.dispose();
          throw new TypeError('evaluate: the source yields several crops of each image; use evaluateTenCrop (eval --ten-crop)');
        }
        temps.push(raw);
        const x = opts.inputTransform ? opts.inputTransform(raw) : raw;
        temps.push(x);
        const lab = opts.labelMap ? Int32Array.from(batch.labels, (l) => opts.labelMap![l]) : batch.labels;
        const labels = Tensor.from(lab, [batch.n], model.device);
        temps.push(labels);
        const logits = model.forward(x);
        temps.push(logits);
        const { loss, probs } = softmaxCrossEntropy(logits, labels);
        temps.push(loss, probs);
        const counts = topkCorrect(logits, labels, [1, k5]);
        temps.push(counts);
        const [l, c] = await Promise.all([loss.toFloat32Array(), counts.toInt32Array()]);
        if (c[0] < 0 || c[1] < 0) throw new RangeError(`evaluate: a label is outside [0, ${model.config.numClasses}) (the data has ${source.classes.length} classes)`);
        n += batch.n;
        c1 += c[0];
        c5 += c[1];
        lossSum += l[0] * batch.n;
      } finally {
        for (const t of temps) t.dispose();
      }
      opts.onProgress?.(Math.min(n, total), total);
      if (opts.limit !== undefined && n >= opts.limit) break;
    }
  } finally {
    model.train(was);
  }
  if (opts.combine) [n, c1, c5, lossSum] = await opts.combine(Float64Array.of(n, c1, c5, lossSum));
  return { n, top1: n ? c1 / n : NaN, top5: n ? c5 / n : NaN, loss: n ? lossSum / n : NaN };
}
