import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { topkCorrect } from '../../lib/ops/loss.js';
import { nativeOps, st } from '../../lib/ops/util.js';
import { fixtureCases, loadFixture } from '../helpers/fixtures.js';
import { mulberry32 } from '../helpers/gradcheck.js';
import { noCuda } from '../helpers/gpu.js';

function randomLabels(n: number, classes: number, seed: number): Int32Array {
  const r = mulberry32(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * classes));
}

/** Logits where the label's class gets a random boost, so that top-1 and top-5 counts are neither 0 nor N;
 * `levels` > 0 rounds every logit to one of a few values (many ties). */
function makeLogits(N: number, C: number, labels: Int32Array, seed: number, levels = 0): Float32Array {
  const r = mulberry32(seed);
  const x = Float32Array.from({ length: N * C }, () => (levels ? Math.floor(r() * levels) : r() * 2 - 1));
  for (let i = 0; i < N; i++) x[i * C + labels[i]] += levels ? Math.floor(r() * 2) : r() * 1.5;
  return x;
}

/** The definition, in TypeScript: rank = #{j : x_j > x_label}; correct at k when rank < k; NaN rows wrong. */
function referenceCounts(x: Float32Array, labels: Int32Array, C: number, ks: number[]): number[] {
  const counts = ks.map(() => 0);
  for (let i = 0; i < labels.length; i++) {
    const row = x.subarray(i * C, (i + 1) * C);
    if (row.some((v) => Number.isNaN(v))) continue;
    const ref = row[labels[i]];
    const rank = row.reduce((s, v) => s + (v > ref ? 1 : 0), 0);
    ks.forEach((k, j) => (counts[j] += rank < k ? 1 : 0));
  }
  return counts;
}

const cases = await fixtureCases('topk');

describe('topkCorrect on the CPU matches the PyTorch reference', () => {
  it('has the fixture cases', () => {
    expect(cases).toEqual(['random_c10', 'random_c1000', 'ties_c10', 'ties_c37']);
  });
  it.each(cases)('%s', async (name) => {
    const fx = loadFixture('topk', name);
    const raw = fx.inputs.logits.data;
    // Tie cases store integer logits (randint) that the generator converted to float.
    const x = fx.params.logitsFromInt ? Float32Array.from(raw) : (raw as Float32Array);
    using logits = Tensor.from(x, fx.inputs.logits.shape);
    using labels = Tensor.from(fx.inputs.labels.data as Int32Array, fx.inputs.labels.shape);
    using counts = topkCorrect(logits, labels, fx.params.ks);
    expect(counts.dtype).toBe('int32');
    expect(counts.shape).toEqual([fx.params.ks.length]);
    expect(Array.from(await counts.toInt32Array())).toEqual(Array.from(fx.tensors.get('counts')!.data));
  });
});

describe('topkCorrect semantics', () => {
  it('resolves ties in the label\'s favour, counts NaN rows as wrong, and k ≥ C counts every other row', async () => {
    const rows = [
      [1, 1, 1, 1], // label 2: nothing strictly above → correct at k = 1
      [3, 2, 2, 1], // label 1: one above → wrong at 1, correct at 2
      [0, 5, 5, 5], // label 0: three above → correct only at k ≥ 4
      [0, NaN, 9, 1], // label 2 but a NaN in the row → wrong for every k
      [9, 8, 7, 6], // label 0
    ];
    using logits = Tensor.from(rows.flat(), [5, 4]);
    using labels = Tensor.from(Int32Array.from([2, 1, 0, 2, 0]), [5]);
    using counts = topkCorrect(logits, labels, [1, 2, 3, 4, 100]);
    expect(Array.from(await counts.toInt32Array())).toEqual([2, 3, 3, 4, 4]);
  });

  it('agrees with the definition on random and tied logits', async () => {
    for (const [N, C, levels] of [[200, 10, 0], [100, 37, 3], [64, 1000, 0], [33, 1, 0]]) {
      const lv = randomLabels(N, C, N + C);
      const xv = makeLogits(N, C, lv, N * C, levels);
      const ks = [1, 2, 5, C];
      using x = Tensor.from(xv, [N, C]);
      using l = Tensor.from(lv, [N]);
      using c = topkCorrect(x, l, ks);
      const got = Array.from(await c.toInt32Array());
      expect(got).toEqual(referenceCounts(xv, lv, C, ks));
      expect(got[got.length - 1]).toBe(N); // k = C: every row
    }
  });
});

describe('topkCorrect rejects bad input', () => {
  it('labels outside [0, C) on the CPU, in TypeScript and in the native guard', () => {
    using logits = Tensor.zeros([4, 10]);
    using labels = Tensor.from(Int32Array.from([0, 9, 2, 12]), [4]);
    using counts = Tensor.zeros([1], 'cpu', 'int32');
    expect(() => topkCorrect(logits, labels, [1])).toThrow('topkCorrect: label 12 at row 3 is outside [0, 10)');
    expect(() => nativeOps().topk_correct(st(logits, 't'), st(labels, 't'), st(counts, 't'), 4, 10, Int32Array.from([1]))).toThrow(
      /topkCorrect: label 12 at row 3 is outside \[0, 10\)/,
    );
  });
  it('ks, shapes and dtypes', () => {
    using logits = Tensor.zeros([4, 10]);
    using labels = Tensor.zeros([4], 'cpu', 'int32');
    using labels5 = Tensor.zeros([5], 'cpu', 'int32');
    using flat = Tensor.zeros([40]);
    expect(() => topkCorrect(logits, labels, [])).toThrow('topkCorrect: ks must be an array of 1 to 16 integers, got []');
    expect(() => topkCorrect(logits, labels, Array(17).fill(1))).toThrow('topkCorrect: ks must be an array of 1 to 16 integers, got Array(17)');
    expect(() => topkCorrect(logits, labels, [1, 0])).toThrow('topkCorrect: ks[1] must be an integer ≥ 1, got 0');
    expect(() => topkCorrect(logits, labels, [1.5])).toThrow('topkCorrect: ks[0] must be an integer ≥ 1, got 1.5');
    expect(() => topkCorrect(logits, labels, 5 as unknown as number[])).toThrow('topkCorrect: ks must be an array of 1 to 16 integers, got 5');
    expect(() => topkCorrect(flat, labels, [1])).toThrow('topkCorrect: expected logits of shape [N, C], got [40]');
    expect(() => topkCorrect(logits, labels5, [1])).toThrow('topkCorrect: expected labels of shape [4], got [5]');
    expect(() => topkCorrect(logits, logits, [1])).toThrow('topkCorrect: expected labels to be int32, got float32');
    const gone = Tensor.zeros([4, 10]);
    gone.dispose();
    expect(() => topkCorrect(gone, labels, [1])).toThrow(DisposedError);
  });
});

describe('topkCorrect memory', () => {
  it('leaks nothing', () => {
    const before = memoryStats();
    for (let i = 0; i < 5; i++) {
      using x = Tensor.zeros([3, 10]);
      using l = Tensor.zeros([3], 'cpu', 'int32');
      using c = topkCorrect(x, l, [1, 5]);
    }
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBuffers).toBe(before.native.hostBuffers);
  });
});

describe.skipIf(noCuda)('topkCorrect on CUDA matches the CPU', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));
  const sizes: [number, number, number][] = [
    [128, 1000, 0], // AlexNet
    [128, 1000, 4], // ties
    [10000, 10, 0], // a large evaluation batch
    [1, 1, 0],
    [3, 37, 3],
    [7, 1001, 0],
    [9, 33, 2],
  ];
  it.each(sizes)('N=%i, C=%i, tie levels %i', async (N, C, levels) => {
    const lv = randomLabels(N, C, N * 3 + C);
    const xv = makeLogits(N, C, lv, N + C * 5, levels);
    if (N > 5) xv[5 * C + 0] = NaN; // a NaN row counts as wrong
    const ks = [1, 5, C];
    using x = Tensor.from(xv, [N, C]);
    using l = Tensor.from(lv, [N]);
    using xg = x.to('cuda');
    using lg = l.to('cuda');
    using cc = topkCorrect(x, l, ks);
    using cg = topkCorrect(xg, lg, ks);
    expect(cg.device).toBe('cuda');
    const want = Array.from(await cc.toInt32Array());
    expect(want).toEqual(referenceCounts(xv, lv, C, ks));
    expect(Array.from(await cg.toInt32Array())).toEqual(want);
  });
  it('a label outside [0, C) makes every count negative on CUDA', async () => {
    using x = Tensor.zeros([4, 10], 'cuda');
    using l = Tensor.from(Int32Array.from([0, 9, 12, 3]), [4], 'cuda');
    using c = topkCorrect(x, l, [1, 5]);
    expect(Array.from(await c.toInt32Array()).every((v) => v < 0)).toBe(true);
  });
});
