/** Evaluation: top-1 / top-5 accuracy and mean loss over a BatchSource, counted on the device. */
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

export async function evaluate(model: AlexNet, source: BatchSource, opts: { batchSize?: number; limit?: number; inputTransform?: (x: Tensor) => Tensor } = {}): Promise<EvalResult> {
  model.eval();
  const k5 = Math.min(5, model.config.numClasses);
  let n = 0;
  let c1 = 0;
  let c5 = 0;
  let lossSum = 0;
  try {
    for await (const batch of source.batches({ batchSize: opts.batchSize ?? 100, shuffle: false, dropLast: false })) {
      const raw = Tensor.from(batch.x, batch.shape, model.device);
      const x = opts.inputTransform ? opts.inputTransform(raw) : raw;
      const labels = Tensor.from(batch.labels, [batch.n], model.device);
      const logits = model.forward(x);
      raw.dispose();
      const { loss, probs } = softmaxCrossEntropy(logits, labels);
      const counts = topkCorrect(logits, labels, [1, k5]);
      const [l, c] = await Promise.all([loss.toFloat32Array(), counts.toInt32Array()]);
      [x, labels, logits, loss, probs, counts].forEach((t) => t.dispose());
      n += batch.n;
      c1 += c[0];
      c5 += c[1];
      lossSum += l[0] * batch.n;
      if (opts.limit !== undefined && n >= opts.limit) break;
    }
  } finally {
    model.train(true);
  }
  return { n, top1: n ? c1 / n : NaN, top5: n ? c5 / n : NaN, loss: n ? lossSum / n : NaN };
}
