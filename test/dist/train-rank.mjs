// One process of test/dist/train.test.ts: trains the small arch on Fashion-MNIST for a few steps (alone, or
// as one rank of `mpirun -np N`) and writes its weights (float32, in namedParameters order) and the losses
// it saw to <out>.rank<r>.{bin,json}.
//   node test/dist/train-rank.mjs <out> <global batch> <steps> <distributed: 0 | 1> [device]
import { writeFileSync } from 'node:fs';
import { createAlexNet, train, data } from '../../dist/index.js';
import { initDistributed } from '../../dist/distributed.js';

const [out, batch, steps, distributed, device = 'cpu'] = process.argv.slice(2);
const dist = distributed === '1';
const rank = dist ? initDistributed().rank : 0;
const model = createAlexNet({ arch: 'small', numClasses: 10, device, seed: 11, dropout: 0.5 });
const source = data.loadFashionMnist({ split: 'train', limit: 1024 });
const weights = async () => {
  const parts = [];
  for (const [, p] of model.namedParameters()) parts.push(await p.value.toFloat32Array());
  const all = new Float32Array(parts.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of parts) (all.set(a, o), (o += a.length));
  return Buffer.from(all.buffer, all.byteOffset, all.byteLength);
};
if (rank === 0) writeFileSync(`${out}.init.bin`, await weights());
const losses = [];
const r = await train({
  model,
  train: source,
  epochs: 1,
  batchSize: Number(batch),
  lr: 0.05,
  schedule: 'none',
  seed: 4,
  maxBatchesPerEpoch: Number(steps),
  distributed: dist,
  onProgress: (p) => losses.push(p.loss),
});
writeFileSync(`${out}.rank${rank}.bin`, await weights());
writeFileSync(`${out}.rank${rank}.json`, JSON.stringify({ rank, losses, history: r.history }));
r.optimizer.dispose();
model.dispose();
if (dist) await (await import('../../dist/distributed.js')).finalizeDistributed();
