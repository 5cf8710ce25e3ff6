// Data-parallel training's pieces that need no MPI: each rank's share of an epoch (BatchOptions.shard), the
// dropout masks keyed by the image's place in the global batch, and the gradient buckets' order.
import { describe, expect, it } from 'vitest';
import { Dropout, Parameter, RandomStream } from '../../lib/nn/index.js';
import { GradientBuckets } from '../../lib/data-parallel.js';
import { epochOrder, shardOrder } from '../../lib/data/batching.js';
import { loadFashionMnist } from '../../lib/data/fashion-mnist.js';
import { Tensor } from '../../lib/tensor.js';

describe('BatchOptions.shard', () => {
  it('the ranks’ batches of step k are, in rank order, batch k of one process with the global batch', () => {
    for (const [n, b, world, dropLast] of [[100, 4, 3, true], [100, 4, 3, false], [7, 2, 2, false], [64, 8, 2, true], [13, 1, 5, false], [5, 3, 3, false]] as const) {
      const order = epochOrder(n, { shuffle: true, seed: 9, epoch: 2 });
      const G = b * world;
      const shares = Array.from({ length: world }, (_, rank) => shardOrder(order, { batchSize: b, dropLast, shard: { rank, world } }));
      const globalBatches = dropLast ? Math.floor(n / G) : Math.ceil(n / G);
      const rebuilt: number[] = [];
      for (let k = 0; k < globalBatches; k++) {
        for (const s of shares) rebuilt.push(...s.subarray(k * b, Math.min(s.length, (k + 1) * b)));
      }
      const expected = Array.from(order.subarray(0, dropLast ? Math.floor(n / G) * G : n));
      expect(rebuilt, `n ${n}, b ${b}, world ${world}, dropLast ${dropLast}`).toEqual(expected);
      if (dropLast) for (const s of shares) expect(s.length).toBe(Math.floor(n / G) * b); // equal step counts
    }
  });

  it('world 1 is no sharding; bad shards are refused', async () => {
    const src = loadFashionMnist({ split: 'test', limit: 40 });
    const all = [];
    for await (const x of src.batches({ batchSize: 8, shuffle: true, seed: 3, shard: { rank: 0, world: 1 } })) all.push(x.labels);
    const plain = [];
    for await (const x of src.batches({ batchSize: 8, shuffle: true, seed: 3 })) plain.push(x.labels);
    expect(all).toEqual(plain);
    for (const shard of [{ rank: 2, world: 2 }, { rank: -1, world: 2 }, { rank: 0, world: 0 }, { rank: 0.5, world: 2 }, 'x'])
      expect(() => src.batches({ batchSize: 8, shard: shard as never }), JSON.stringify(shard)).toThrow(/expected shard to be \{ rank, world \} with integers 0 ≤ rank < world/);
  });

  it('a sharded source yields its block of every global batch (Fashion-MNIST, startBatch too)', async () => {
    const src = loadFashionMnist({ split: 'test', limit: 100 });
    const whole: Float32Array[] = [];
    for await (const x of src.batches({ batchSize: 12, shuffle: true, seed: 5, epoch: 1, dropLast: true })) whole.push(x.x!);
    for (const rank of [0, 1, 2]) {
      let k = 1;
      for await (const x of src.batches({ batchSize: 4, shuffle: true, seed: 5, epoch: 1, dropLast: true, startBatch: 1, shard: { rank, world: 3 } })) {
        const one = x.x!.length / 4;
        expect(x.x).toEqual(whole[k].subarray(rank * 4 * one, (rank + 1) * 4 * one));
        k++;
      }
      expect(k).toBe(whole.length);
    }
  });
});

describe('dropout keyed by the image’s place in the global batch', () => {
  it('N processes draw together the masks one process draws for the whole batch', async () => {
    const B = 12, F = 10; // per rank 6 × 10 or 4 × 10 elements: each share starts a Philox block
    const x = Tensor.from(Float32Array.from({ length: B * F }, (_, i) => 1 + (i % 7)), [B, F]);
    const one = new Dropout(0.5, new RandomStream(77n, 5));
    const y1 = await one.forward(x).toFloat32Array();
    expect(one.rng.offset).toBe(5 + Math.ceil((B * F) / 4));
    for (const world of [2, 3]) {
      const b = B / world;
      const parts: number[] = [];
      for (let r = 0; r < world; r++) {
        const rng = new RandomStream(77n, 5);
        rng.shard = { start: r * b, total: B };
        const d = new Dropout(0.5, rng);
        const xs = Tensor.from((await x.toFloat32Array()).subarray(r * b * F, (r + 1) * b * F), [b, F]);
        const y = d.forward(xs);
        parts.push(...(await y.toFloat32Array()));
        // the backward uses the same mask
        const dx = await d.backward(Tensor.from(new Float32Array(b * F).fill(1), [b, F]))!.toFloat32Array();
        for (let i = 0; i < b * F; i++) expect(dx[i] === 0).toBe(parts[parts.length - b * F + i] === 0);
        expect(rng.offset, 'every rank reserves the global batch’s counters').toBe(one.rng.offset);
      }
      expect(parts, `world ${world}`).toEqual(Array.from(y1));
    }
  });

  it('refuses a share that does not start a Philox block', () => {
    const rng = new RandomStream(1n);
    rng.shard = { start: 1, total: 2 };
    const x = Tensor.from(new Float32Array(3), [1, 3]);
    expect(() => new Dropout(0.5, rng).forward(x)).toThrow(/start a Philox block of 4/);
  });
});

describe('gradient buckets', () => {
  const param = (n: number) => new Parameter(Tensor.zeros([n]));
  it('cuts the parameters in backward order into buckets of at least bucketBytes, and refuses a missing gradient', () => {
    const ps = [param(10), param(300), param(5), param(5), param(1000)];
    const named = ps.map((p, i) => [`p${i}`, p] as [string, Parameter]);
    const gb = new GradientBuckets(named, 1024);
    expect(gb.buckets.map((b) => b.map((p) => ps.indexOf(p)))).toEqual([[0, 1], [2, 3, 4]]);
    expect(gb.bytesPerStep).toBe(4 * (10 + 300 + 5 + 5 + 1000) + 4);
    const loss = Tensor.zeros([1]);
    gb.beforeBackward(loss);
    expect(() => gb.gradients([ps[0]])).toThrow(/reported p0 without a gradient/);
    gb.beforeBackward(loss);
    expect(() => gb.beforeUpdate()).toThrow(/made no gradient for p0, p1, p2, p3, p4/);
  });
});
