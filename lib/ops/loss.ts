/** Softmax cross-entropy from int32 labels, and top-k correct counts (native/ops/softmax_xent.h, topk.h). */
import { describe } from '../errors.js';
import { Tensor } from '../tensor.js';
import { expectShape, expectTensor, nativeOps, numberOption, sameDevice, st } from './util.js';

const MAX_INT32 = 2 ** 31 - 1;

/** [N, C] of a rank-2 float32 tensor with N, C ≥ 1. */
function rowsAndClasses(t: Tensor, op: string, name: string): [number, number] {
  expectTensor(t, op, name, { rank: 2, shape: '[N, C]' });
  const [N, C] = t.shape;
  if (N < 1 || C < 1) throw new RangeError(`${op}: expected ${name} of shape [N, C] with N ≥ 1 and C ≥ 1, got [${N}, ${C}]`);
  if (C > MAX_INT32 || N > MAX_INT32) throw new RangeError(`${op}: ${name} [${N}, ${C}] is too large (each dimension must be below 2^31)`);
  return [N, C];
}

/** Labels: int32 [N] on the device of the scores. When they are on the CPU every one is checked to lie in
 * [0, C) here (on CUDA that check would need a sync; the kernels flag bad labels instead). */
function checkLabels(labels: Tensor, op: string, N: number, C: number): void {
  expectTensor(labels, op, 'labels', { rank: 1, dtype: 'int32', shape: '[N]' });
  expectShape(labels, op, 'labels', [N]);
  if (labels.device !== 'cpu') return;
  const l = labels.dataSync();
  for (let r = 0; r < N; r++) {
    if (l[r] < 0 || l[r] >= C) throw new RangeError(`${op}: label ${l[r]} at row ${r} is outside [0, ${C})`);
  }
}

/** Mean softmax cross-entropy of logits [N, C] against int32 labels [N] (PyTorch's F.cross_entropy,
 * reduction 'mean'), numerically stable (max-subtracted log-sum-exp). Returns the loss, a [1] tensor, and
 * the probabilities [N, C] that `softmaxCrossEntropyBackward` needs; the caller owns (and disposes) both.
 * A label outside [0, C) throws when the labels are on the CPU; on CUDA the loss becomes NaN. */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor): { loss: Tensor; probs: Tensor } {
  const op = 'softmaxCrossEntropy';
  const [N, C] = rowsAndClasses(logits, op, 'logits');
  checkLabels(labels, op, N, C);
  const device = sameDevice(op, { logits, labels });
  const loss = Tensor.empty([1], device);
  let probs: Tensor | undefined;
  try {
    probs = Tensor.empty([N, C], device);
    nativeOps().softmax_xent_forward(st(logits, op), st(labels, op), st(loss, op), st(probs, op), N, C);
  } catch (e) {
    loss.dispose();
    probs?.dispose();
    throw e;
  }
  return { loss, probs };
}

/** dlogits = (probs − onehot(labels)) · dloss / N, where probs is softmaxCrossEntropy's output and dloss
 * the gradient of the (scalar) loss (default 1). A new [N, C] tensor. A label outside [0, C) throws when
 * the labels are on the CPU; on CUDA that row of dlogits becomes NaN. */
export function softmaxCrossEntropyBackward(probs: Tensor, labels: Tensor, opts?: { dloss?: number }): Tensor {
  const op = 'softmaxCrossEntropyBackward';
  const [N, C] = rowsAndClasses(probs, op, 'probs');
  if (opts !== undefined && (opts === null || typeof opts !== 'object'))
    throw new TypeError(`${op}: expected options { dloss?: number }, got ${describe(opts)}`);
  const dloss = opts?.dloss === undefined ? 1 : numberOption(opts.dloss, op, 'dloss');
  checkLabels(labels, op, N, C);
  const device = sameDevice(op, { probs, labels });
  const dlogits = Tensor.empty([N, C], device);
  try {
    nativeOps().softmax_xent_backward(st(probs, op), st(labels, op), st(dlogits, op), N, C, dloss / N);
  } catch (e) {
    dlogits.dispose();
    throw e;
  }
  return dlogits;
}

/** Counts, on the logits' device, the rows whose label is in the top k, for each k of `ks` (1 to 16
 * integers ≥ 1; k ≥ C counts every row without NaN): an int32 tensor [ks.length]. Row r counts at k when #{j : logits[r, j] > logits[r, label]}
 * < k — ties are resolved in the label's favour. A row with a NaN logit counts as wrong. A label outside
 * [0, C) throws when the labels are on the CPU; on CUDA every count comes back negative. */
export function topkCorrect(logits: Tensor, labels: Tensor, ks: number[]): Tensor {
  const op = 'topkCorrect';
  const [N, C] = rowsAndClasses(logits, op, 'logits');
  if (!Array.isArray(ks) || ks.length < 1 || ks.length > 16)
    throw new TypeError(`${op}: ks must be an array of 1 to 16 integers, got ${describe(ks)}`);
  ks.forEach((k, i) => {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > MAX_INT32)
      throw new RangeError(`${op}: ks[${i}] must be an integer ≥ 1, got ${describe(k)}`);
  });
  checkLabels(labels, op, N, C);
  const device = sameDevice(op, { logits, labels });
  const counts = Tensor.empty([ks.length], device, 'int32');
  try {
    nativeOps().topk_correct(st(logits, op), st(labels, op), st(counts, op), N, C, Int32Array.from(ks));
  } catch (e) {
    counts.dispose();
    throw e;
  }
  return counts;
}
