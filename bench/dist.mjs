#!/usr/bin/env node
// Data-parallel training's benchmark (`npm run bench:dist`): a training step at world size N, with the real
// MPI on loopback (N processes on this machine), each rank with the same images per step (weak scaling, as
// data-parallel training is used):
//   - bytes all-reduced per step: the gradient buckets (and the loss), per rank;
//   - step time, with the gradient all-reduce and without it (DistributedOptions.reduce: false): their
//     difference is the exposed communication time — what the reduction adds to a step, after whatever of
//     it overlaps the backward pass;
//   - img/s and the scaling efficiency, img/s(N) / (N · img/s(1)).
// On the CPU every rank runs one OpenMP thread (OMP_NUM_THREADS=1), so N ranks use N cores: N up to the
// machine's cores measures the communication, beyond it the ranks share cores.
//
//   node bench/dist.mjs [--worlds 1,2] [--arch small|torchvision|paper] [--per-rank 64] [--steps 30]
//                       [--warmup 5] [--device cpu|cuda] [--json FILE] [--md FILE]
// The rank side is bench/dist.mjs --rank (started by mpirun).
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const PKG_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({
  options: {
    worlds: { type: 'string', default: '1,2' },
    arch: { type: 'string', default: 'small' },
    'per-rank': { type: 'string', default: '64' },
    steps: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '5' },
    device: { type: 'string', default: 'cpu' },
    json: { type: 'string' },
    md: { type: 'string' },
    rank: { type: 'boolean', default: false },
    reduce: { type: 'string', default: '1' },
  },
});
const lib = await import(pathToFileURL(path.join(PKG_ROOT, 'dist', 'index.js')).href);
const distributed = await import(pathToFileURL(path.join(PKG_ROOT, 'dist', 'distributed.js')).href);
const perRank = Number(a['per-rank']);
const steps = Number(a.steps);
const warmup = Number(a.warmup);

if (a.rank) {
  // One rank: train() on synthetic-free real data (Fashion-MNIST, upscaled on the device for the big archs),
  // timing the steps after the warm-up from train()'s progress reports (one a step, when its loss arrives).
  const info = distributed.initDistributed();
  const arch = a.arch;
  const side = arch === 'paper' ? 227 : arch === 'torchvision' ? 224 : 28;
  const model = lib.createAlexNet({ arch, numClasses: 10, device: a.device, seed: 1, inChannels: arch === 'small' ? 1 : 3 });
  const global = perRank * info.world;
  const source = lib.data.loadFashionMnist({ split: 'train', channels: arch === 'small' ? 1 : 3, limit: global * (steps + warmup) });
  const inputTransform = side === 28 ? undefined : (x) => lib.ops.resizeBilinear(x, [side, side]);
  const times = [];
  const r = await lib.train({
    model, train: source, epochs: 1, batchSize: global, lr: 0.01, schedule: 'none', maxBatchesPerEpoch: steps + warmup, inputTransform,
    distributed: info.world > 1 ? { reduce: a.reduce === '1' } : false,
    onProgress: () => times.push(performance.now()),
  });
  const per = [];
  for (let k = warmup; k < times.length; k++) per.push(times[k] - times[k - 1]);
  per.sort((x, y) => x - y);
  const median = per[Math.floor(per.length / 2)];
  if (info.rank === 0) console.log(`RESULT ${JSON.stringify({ world: info.world, stepMs: median, bytesPerStep: r.distributed?.bytesPerStep ?? 0, buckets: r.distributed?.buckets ?? 0 })}`);
  r.optimizer.dispose();
  model.dispose();
  await distributed.finalizeDistributed();
  process.exit(0);
}

const support = distributed.distributedSupport();
if (!support.mpi) {
  console.error(`bench/dist: this build has no MPI: ${support.reason}`);
  process.exit(1);
}
const self = fileURLToPath(import.meta.url);
const env = { ...process.env, OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '1' };
function rankRun(world, reduce) {
  const args = ['--rank', '--arch', a.arch, '--per-rank', String(perRank), '--steps', String(steps), '--warmup', String(warmup), '--device', a.device, '--reduce', reduce ? '1' : '0'];
  const r = spawnSync('mpirun', [...distributed.mpirunArgs(world), process.execPath, self, ...args], { encoding: 'utf8', env, timeout: 1_800_000 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`bench/dist: world ${world} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line.slice(7));
}

const worlds = a.worlds.split(',').map(Number);
const rows = [];
let base = null;
for (const world of worlds) {
  const withReduce = rankRun(world, true);
  const without = world > 1 ? rankRun(world, false) : withReduce;
  const ips = (perRank * world) / (withReduce.stepMs / 1000);
  if (world === 1) base = ips;
  const row = {
    world,
    perRank,
    bytesPerStep: withReduce.bytesPerStep,
    buckets: withReduce.buckets,
    stepMs: withReduce.stepMs,
    stepMsNoReduce: without.stepMs,
    exposedMs: withReduce.stepMs - without.stepMs,
    imagesPerSecond: ips,
    efficiency: base ? ips / (world * base) : null,
  };
  rows.push(row);
  console.error(`world ${world}: ${row.stepMs.toFixed(1)} ms/step (${row.stepMsNoReduce.toFixed(1)} without the all-reduce), ${ips.toFixed(0)} img/s`);
}
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const md = [
  `# Data-parallel training step, ${a.arch} arch, ${perRank} images per rank, ${a.device}`,
  '',
  `Machine: ${cpu}, ${os.availableParallelism()} cores; MPI on loopback; OMP_NUM_THREADS=${env.OMP_NUM_THREADS} per rank. ` +
    `Median of ${steps} steps after ${warmup} warm-up steps. Command: \`node bench/dist.mjs ${process.argv.slice(2).join(' ')}\`.`,
  '',
  '| ranks | bytes all-reduced per step (per rank) | buckets | step (ms) | step without the all-reduce (ms) | exposed communication (ms) | img/s | scaling efficiency |',
  '|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.world} | ${r.world > 1 ? (r.bytesPerStep / 2 ** 20).toFixed(2) + ' MiB' : '—'} | ${r.world > 1 ? r.buckets : '—'} | ${r.stepMs.toFixed(1)} | ${r.stepMsNoReduce.toFixed(1)} | ${r.world > 1 ? r.exposedMs.toFixed(1) : '—'} | ${r.imagesPerSecond.toFixed(0)} | ${r.efficiency === null ? '—' : (r.efficiency * 100).toFixed(0) + ' %'} |`),
  '',
].join('\n');
console.log(md);
if (a.json) writeFileSync(a.json, JSON.stringify({ arch: a.arch, device: a.device, perRank, steps, warmup, cpu, rows }, null, 2));
if (a.md) writeFileSync(a.md, md);
