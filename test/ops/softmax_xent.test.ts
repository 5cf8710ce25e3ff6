import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, memoryStats, setPoison } from '../../lib/tensor.js';
import { softmaxCrossEntropy, softmaxCrossEntropyBackward } from '../../lib/ops/loss.js';
import { nativeOps, st } from '../../lib/ops/util.js';
import { expectMatchesFixture, fixtureCases, hasNaN, loadFixture, relError } from '../helpers/fixtures.js';
import { gradcheck, mulberry32 } from '../helpers/gradcheck.js';
import { noCuda } from '../helpers/gpu.js';

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}
function randomLabels(n: number, classes: number, seed: number): Int32Array {
  const r = mulberry32(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * classes));
}

const cases = await fixtureCases('softmax_xent');

describe('softmaxCrossEntropy on the CPU matches PyTorch', () => {
  it('has the fixture cases', () => {
    expect(cases).toEqual(
      expect.arrayContaining(['c10_n2', 'c10_n8', 'c1000_n2', 'c1000_n8', 'c37_n3', 'c37_n7', 'n1_c10', 'n1_c1000', 'extreme_c10_n6', 'extreme_c1000_n4', 'extreme_c2_n8']),
    );
  });
  it.each(cases)('%s', async (name) => {
    const fx = loadFixture('softmax_xent', name);
    using logits = Tensor.from(fx.inputs.logits.data as Float32Array, fx.inputs.logits.shape);
    using labels = Tensor.from(fx.inputs.labels.data as Int32Array, fx.inputs.labels.shape);
    const { loss, probs } = softmaxCrossEntropy(logits, labels);
    using _l = loss;
    using _p = probs;
    expect(loss.shape).toEqual([1]);
    expectMatchesFixture(fx, 'loss', await loss.toFloat32Array(), loss.shape);
    expectMatchesFixture(fx, 'probs', await probs.toFloat32Array(), probs.shape);
    using dlogits = softmaxCrossEntropyBackward(probs, labels, { dloss: fx.params.dloss });
    expectMatchesFixture(fx, 'dlogits', await dlogits.toFloat32Array(), dlogits.shape);
  });
});

describe('softmaxCrossEntropy semantics', () => {
  it('is stable for huge logits (max-subtracted log-sum-exp)', async () => {
    using logits = Tensor.from([1000, 0, -1000, 0, 1e30, -1e30], [3, 2]);
    using labels = Tensor.from(Int32Array.from([0, 0, 1]), [3]);
    const { loss, probs } = softmaxCrossEntropy(logits, labels);
    // rows: log(1 + e^-1000) ≈ 0; 1000 + log(1 + e^-1000) ≈ 1000; 2e30
    expect((await loss.toFloat32Array())[0]).toBe(Math.fround((0 + 1000 + 2e30) / 3));
    expect(Array.from(await probs.toFloat32Array())).toEqual([1, 0, 0, 1, 1, 0]);
    loss.dispose();
    probs.dispose();
  });

  it('probability rows sum to 1, and the default dloss is 1', async () => {
    const N = 6;
    const C = 37;
    using logits = Tensor.from(random(N * C, 1, -5, 5), [N, C]);
    using labels = Tensor.from(randomLabels(N, C, 2), [N]);
    const { loss, probs } = softmaxCrossEntropy(logits, labels);
    const p = await probs.toFloat32Array();
    for (let r = 0; r < N; r++) expect(p.subarray(r * C, (r + 1) * C).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    using d1 = softmaxCrossEntropyBackward(probs, labels);
    using d2 = softmaxCrossEntropyBackward(probs, labels, { dloss: 1 });
    using d3 = softmaxCrossEntropyBackward(probs, labels, { dloss: 3 });
    const [a, b, c] = [await d1.toFloat32Array(), await d2.toFloat32Array(), await d3.toFloat32Array()];
    expect(a).toEqual(b);
    expect(relError(c, Float32Array.from(a, (v) => 3 * v))).toBeLessThan(1e-6);
    // Each dlogits row sums to 0 (probabilities minus a one-hot).
    for (let r = 0; r < N; r++) expect(Math.abs(a.subarray(r * C, (r + 1) * C).reduce((s, v) => s + v, 0))).toBeLessThan(1e-7);
    loss.dispose();
    probs.dispose();
  });

  it('a NaN logit makes the loss NaN', async () => {
    using logits = Tensor.from([0, NaN, 1, 2], [2, 2]);
    using labels = Tensor.from(Int32Array.from([0, 1]), [2]);
    const { loss, probs } = softmaxCrossEntropy(logits, labels);
    expect(Number.isNaN((await loss.toFloat32Array())[0])).toBe(true);
    loss.dispose();
    probs.dispose();
  });
});

describe('softmaxCrossEntropy gradient matches finite differences', () => {
  it.each([
    [5, 7],
    [1, 10],
    [3, 33],
  ])('N=%i, C=%i', (N, C) => {
    const labels = randomLabels(N, C, N * C);
    gradcheck({
      inputs: [random(N * C, N + C, -2, 2)],
      names: ['logits'],
      samples: 60,
      forward: ([xv]) => {
        using x = Tensor.from(xv, [N, C]);
        using l = Tensor.from(labels, [N]);
        const { loss, probs } = softmaxCrossEntropy(x, l);
        probs.dispose();
        const out = loss.dataSync() as Float32Array;
        loss.dispose();
        return out;
      },
      backward: ([xv], dy) => {
        using x = Tensor.from(xv, [N, C]);
        using l = Tensor.from(labels, [N]);
        const { loss, probs } = softmaxCrossEntropy(x, l);
        loss.dispose();
        using d = softmaxCrossEntropyBackward(probs, l, { dloss: dy[0] });
        probs.dispose();
        return [d.dataSync() as Float32Array];
      },
    });
  });
});

describe('softmaxCrossEntropy rejects bad input', () => {
  it('labels outside [0, C) on the CPU, in TypeScript and in the native guard', () => {
    using logits = Tensor.zeros([4, 10]);
    using labels = Tensor.from(Int32Array.from([0, 9, 2, 12]), [4]);
    using neg = Tensor.from(Int32Array.from([-1, 0, 0, 0]), [4]);
    using probs = Tensor.zeros([4, 10]);
    expect(() => softmaxCrossEntropy(logits, labels)).toThrow('softmaxCrossEntropy: label 12 at row 3 is outside [0, 10)');
    expect(() => softmaxCrossEntropy(logits, neg)).toThrow('softmaxCrossEntropy: label -1 at row 0 is outside [0, 10)');
    expect(() => softmaxCrossEntropyBackward(probs, labels)).toThrow('softmaxCrossEntropyBackward: label 12 at row 3 is outside [0, 10)');
    // The C++ CPU version checks again (it must never index out of bounds).
    using loss = Tensor.zeros([1]);
    const op = nativeOps();
    expect(() => op.softmax_xent_forward(st(logits, 't'), st(labels, 't'), st(loss, 't'), st(probs, 't'), 4, 10)).toThrow(/softmaxCrossEntropy: label 12 at row 3 is outside \[0, 10\)/);
    expect(() => op.softmax_xent_backward(st(probs, 't'), st(labels, 't'), st(probs, 't'), 4, 10, 1)).toThrow(/softmaxCrossEntropyBackward: label 12 at row 3 is outside \[0, 10\)/);
  });

  it('shapes, dtypes and options', () => {
    using logits = Tensor.zeros([4, 10]);
    using flat = Tensor.zeros([40]);
    using empty = Tensor.zeros([0, 10]);
    using labels = Tensor.zeros([4], 'cpu', 'int32');
    using labelsF = Tensor.zeros([4]);
    using labels3 = Tensor.zeros([3], 'cpu', 'int32');
    expect(() => softmaxCrossEntropy(flat, labels)).toThrow('softmaxCrossEntropy: expected logits of shape [N, C], got [40]');
    expect(() => softmaxCrossEntropy(empty, labels)).toThrow(/softmaxCrossEntropy: expected logits of shape \[N, C\] with N ≥ 1 and C ≥ 1, got \[0, 10\]/);
    expect(() => softmaxCrossEntropy(logits, labelsF)).toThrow('softmaxCrossEntropy: expected labels to be int32, got float32');
    expect(() => softmaxCrossEntropy(logits, labels3)).toThrow('softmaxCrossEntropy: expected labels of shape [4], got [3]');
    expect(() => softmaxCrossEntropy(labels as unknown as Tensor, labels)).toThrow(/expected logits to be float32, got int32/);
    expect(() => softmaxCrossEntropyBackward(logits, labels, { dloss: NaN })).toThrow('softmaxCrossEntropyBackward: dloss must be a finite number, got NaN');
    expect(() => softmaxCrossEntropyBackward(logits, labels, 5 as unknown as { dloss: number })).toThrow(/softmaxCrossEntropyBackward: expected options \{ dloss\?: number \}, got 5/);
    const gone = Tensor.zeros([4, 10]);
    gone.dispose();
    expect(() => softmaxCrossEntropy(gone, labels)).toThrow(DisposedError);
  });
});

describe('softmaxCrossEntropy memory', () => {
  it('leaks nothing, also when it throws', () => {
    const before = memoryStats();
    for (let i = 0; i < 5; i++) {
      using logits = Tensor.from(random(30, i), [3, 10]);
      using labels = Tensor.from(Int32Array.from([1, 2, 3]), [3]);
      using bad = Tensor.from(Int32Array.from([1, 2, 30]), [3]);
      const { loss, probs } = softmaxCrossEntropy(logits, labels);
      using d = softmaxCrossEntropyBackward(probs, labels);
      loss.dispose();
      probs.dispose();
      expect(() => softmaxCrossEntropy(logits, bad)).toThrow();
    }
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.hostBuffers).toBe(before.native.hostBuffers);
  });
});

describe.skipIf(noCuda)('softmaxCrossEntropy on CUDA matches the CPU', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));
  // AlexNet (128 × 1000), C not a multiple of 32, C below / above one block's threads, batch 1.
  const sizes: [number, number, number][] = [
    [128, 1000, 8],
    [128, 1000, 80],
    [1, 1, 3],
    [3, 37, 3],
    [7, 1001, 5],
    [5, 10, 3],
    [2, 33, 3],
    [4, 4097, 3],
    [1000, 3, 3],
  ];
  it.each(sizes)('N=%i, C=%i, logits in ±%f', async (N, C, range) => {
    const xv = random(N * C, N * 7 + C, -range, range);
    const lv = randomLabels(N, C, N + C);
    using x = Tensor.from(xv, [N, C]);
    using l = Tensor.from(lv, [N]);
    using xg = x.to('cuda');
    using lg = l.to('cuda');
    const cpu = softmaxCrossEntropy(x, l);
    const gpu = softmaxCrossEntropy(xg, lg);
    expect(gpu.loss.device).toBe('cuda');
    // float sums on the GPU vs double on the CPU: a few float ulps.
    expect(relError(await gpu.loss.toFloat32Array(), await cpu.loss.toFloat32Array())).toBeLessThan(1e-5);
    const pg = await gpu.probs.toFloat32Array();
    expect(hasNaN(pg)).toBe(false);
    expect(relError(pg, await cpu.probs.toFloat32Array())).toBeLessThan(1e-5);
    using dc = softmaxCrossEntropyBackward(cpu.probs, l, { dloss: 0.7 });
    using dg = softmaxCrossEntropyBackward(gpu.probs, lg, { dloss: 0.7 });
    const dgv = await dg.toFloat32Array();
    expect(hasNaN(dgv)).toBe(false);
    expect(relError(dgv, await dc.toFloat32Array())).toBeLessThan(1e-5);
    // From the same probabilities the backward is the same arithmetic: bit-identical.
    using pOnCpu = gpu.probs.to('cpu');
    using dFromGpuProbs = softmaxCrossEntropyBackward(pOnCpu, l, { dloss: 0.7 });
    expect(dgv).toEqual(await dFromGpuProbs.toFloat32Array());
    for (const t of [cpu.loss, cpu.probs, gpu.loss, gpu.probs]) t.dispose();
  });

  it('frees its per-row scratch and leaks no device memory', () => {
    using x = Tensor.from(random(64 * 1000, 1), [64, 1000], 'cuda');
    using l = Tensor.from(randomLabels(64, 1000, 2), [64], 'cuda');
    const before = memoryStats();
    for (let i = 0; i < 3; i++) {
      const { loss, probs } = softmaxCrossEntropy(x, l);
      using d = softmaxCrossEntropyBackward(probs, l);
      loss.dispose();
      probs.dispose();
    }
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
    expect(after.native.cuda?.inUseBytes).toBe(before.native.cuda?.inUseBytes);
  });

  it('a label outside [0, C) gives a NaN loss and a NaN dlogits row on CUDA (never silently wrong)', async () => {
    const N = 4;
    const C = 10;
    using x = Tensor.from(random(N * C, 5), [N, C], 'cuda');
    using l = Tensor.from(Int32Array.from([0, 9, 12, 3]), [N], 'cuda');
    const { loss, probs } = softmaxCrossEntropy(x, l);
    expect(Number.isNaN((await loss.toFloat32Array())[0])).toBe(true);
    using d = softmaxCrossEntropyBackward(probs, l);
    const dv = await d.toFloat32Array();
    expect(dv.subarray(2 * C, 3 * C).every((v) => Number.isNaN(v))).toBe(true);
    expect(hasNaN(dv.subarray(0, 2 * C))).toBe(false);
    expect(hasNaN(dv.subarray(3 * C))).toBe(false);
    loss.dispose();
    probs.dispose();
  });
});
