#!/usr/bin/env node
// The data pipeline's benchmark (`npm run bench:data`): how fast images reach the model, on a folder of
// real photographs it prepares itself (bench/photos.mjs: scikit-image's sample photos cut into 500×375
// JPEGs at quality 90), at batch 128, warm page cache, in total and per core:
//   - pack:        `alexnet pack` of the folder (decode, resize to short side 256, JPEG q90, write);
//   - ceiling:     the bare decode rate of the stored JPEGs on one core (libjpeg-turbo, whole images);
//   - packed:      PackedDataset with the paper's training augmentation into the model's input tensor on
//                  the device in use — decode threads, one upload, ops.augmentBatch;
//   - torchvision: torchvision's ImageFolder + DataLoader on the original files, as many worker processes
//                  as we use cores (PIL; Resize 256, RandomCrop 224, flip, normalise), in the same run;
//   - ImageFolder: ours, sharp in worker threads, on the original files;
//   - training:    the small arch on 64×64 crops from a store packed at short side 73, with the loader vs
//                  the same model on one synthetic batch: does the loader hold the step back?
//
//   node bench/data.mjs [--count 2000] [--threads N] [--batch 128] [--epochs 3] [--device cpu|cuda]
//                       [--photos DIR] [--json FILE] [--md FILE] [--no-torch] [--no-train]
//                       [--store FILE.axpk] [--train-arch small|paper]
// --store: an existing packed data set (e.g. made here and carried to a GPU machine, which has no sample
// photos): no photos, no packing, no torchvision or ImageFolder rows. --train-arch paper: the training row
// uses the paper arch on 227×227 crops of the store itself (GPU-sized work).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { makePhotoFolder } from './photos.mjs';

const PKG_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    threads: { type: 'string' },
    batch: { type: 'string', default: '128' },
    epochs: { type: 'string', default: '3' },
    device: { type: 'string', default: 'cpu' },
    photos: { type: 'string' },
    json: { type: 'string' },
    md: { type: 'string' },
    'no-torch': { type: 'boolean', default: false },
    'no-train': { type: 'boolean', default: false },
    store: { type: 'string' },
    'train-arch': { type: 'string', default: 'small' },
  },
  strict: true,
});
const fail = (m) => {
  console.error(`bench:data: ${m}`);
  process.exit(2);
};
const count = Number(a.count);
const batch = Number(a.batch);
const epochs = Number(a.epochs);
const cores = os.availableParallelism();
const threads = a.threads ? Number(a.threads) : cores;
for (const [k, v] of [['count', count], ['batch', batch], ['epochs', epochs], ['threads', threads]])
  if (!Number.isInteger(v) || v < 1) fail(`--${k} must be a positive integer`);
if (!['cpu', 'cuda'].includes(a.device)) fail(`--device must be cpu or cuda, got "${a.device}"`);
if (!['small', 'paper'].includes(a['train-arch'])) fail(`--train-arch must be small or paper, got "${a['train-arch']}"`);
const given = a.store ? path.resolve(a.store) : null;
if (given && !existsSync(given)) fail(`--store ${given} does not exist`);

const pkg = await import(pathToFileURL(path.join(PKG_ROOT, 'dist', 'index.js')).href);
const { data, Tensor, createAlexNet, SGD, synchronize } = pkg;
if (a.device === 'cuda' && !pkg.cudaAvailable()) fail(`--device cuda: ${pkg.backendInfo().cudaReason}`);

/** Machine-wide busy CPU time (/proc/stat) and ours, to tell how much other processes took meanwhile. */
function cpuSnapshot() {
  try {
    const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
    const busy = user + nice + system + irq + softirq + steal;
    const u = process.cpuUsage();
    return { busy, total: busy + idle + iowait, self: (u.user + u.system) / 1e6 };
  } catch {
    return null;
  }
}
const otherShare = (s0, s1, childSeconds = 0) =>
  s0 && s1 && s1.total > s0.total ? Math.max(0, ((s1.busy - s0.busy) / 100 - (s1.self - s0.self) - childSeconds) / ((s1.total - s0.total) / 100)) : null;

const work = path.join(PKG_ROOT, 'bench', 'results', 'tmp');
mkdirSync(work, { recursive: true });
const photos = a.photos ?? path.join(work, `photos-${count}`);
const log = (m) => console.error(`bench:data: ${m}`);

let photoBytes = 0;
let photoFiles = 0;
if (!given) {
  log(`photos: ${photos}`);
  await makePhotoFolder(photos, { perClass: Math.ceil(count / 10), classes: 10 });
  for (const c of readdirSync(photos)) for (const f of readdirSync(path.join(photos, c))) {
    photoBytes += readFileSync(path.join(photos, c, f)).length; // also warms the page cache
    photoFiles++;
  }
}
const results = { machine: { cpu: `${os.cpus()[0]?.model ?? 'unknown'}`, cores, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, device: a.device }, settings: { count: photoFiles, batch, epochs, threads, store: given }, photos: given ? null : { files: photoFiles, meanKB: photoBytes / photoFiles / 1000 }, rows: {} };

// ---- pack ----------------------------------------------------------------------------------------
const store = given ?? path.join(work, `photos-${count}.axpk`);
if (!given) {
  rmSync(store, { force: true });
  const s0 = cpuSnapshot();
  const r = await data.pack(photos, store, { workers: cores });
  const s1 = cpuSnapshot();
  results.rows.pack = { rate: r.rate, perCore: r.rate / cores, seconds: r.seconds, records: r.count, storeMB: r.bytes / 1e6, meanRecordKB: r.bytes / r.count / 1000, otherCpuShare: otherShare(s0, s1) };
  log(`pack: ${r.rate.toFixed(0)} img/s with ${cores} processes (${(r.bytes / 1e6).toFixed(1)} MB, ${(r.bytes / r.count / 1000).toFixed(1)} KB a record)`);
}
readFileSync(store); // warm

// ---- the ceiling: bare decode on one core ----------------------------------------------------------
{
  const ds = await data.PackedDataset.open(store);
  ds.decodeAllForBenchmark(1); // warm
  const { images: done, seconds: secs, cpuSeconds: cpu } = ds.decodeAllForBenchmark(3);
  await ds.close();
  results.rows.ceiling = { rate: done / secs, perCore: done / cpu, what: 'whole-image decode of the stored JPEGs, one thread (libjpeg-turbo, checksum included)' };
  log(`ceiling: ${(done / secs).toFixed(0)} img/s on one core (${(done / cpu).toFixed(0)} per CPU-second)`);
}

/** One epoch of a PackedDataset consumed as train() consumes: one batch in flight — batch k's input is made
 * while batch k−1's is awaited (on the device, or the CPU stream), so the rate counts inputs ready, not
 * enqueued. Returns the images. */
async function loaderEpoch(ds, ep) {
  let n = 0;
  let prev = null;
  for await (const b of ds.batches({ batchSize: batch, shuffle: true, seed: 1, epoch: ep })) {
    n += b.n;
    if (prev) {
      await prev.ready();
      prev.dispose();
    }
    prev = b.input;
  }
  if (prev) {
    await prev.ready();
    prev.dispose();
  }
  return n;
}

// ---- the packed loader ---------------------------------------------------------------------------
{
  const ds = await data.PackedDataset.open(store, { train: true, size: 224, device: a.device, threads });
  const run = (ep) => loaderEpoch(ds, ep);
  await run(100); // warm-up epoch
  const st0 = ds.stats();
  const s0 = cpuSnapshot();
  const t0 = performance.now();
  let n = 0;
  for (let e = 0; e < epochs; e++) n += await run(e);
  const secs = (performance.now() - t0) / 1000;
  const s1 = cpuSnapshot();
  const st1 = ds.stats();
  await ds.close();
  const decodeCpu = st1.decodeCpuSeconds - st0.decodeCpuSeconds;
  const images = st1.images - st0.images;
  results.rows.packed = {
    rate: n / secs,
    perCore: n / secs / threads,
    decodePerCoreSecond: images / decodeCpu,
    processCpuSeconds: s1 && s0 ? s1.self - s0.self : null,
    perProcessCpuSecond: s1 && s0 ? n / (s1.self - s0.self) : null,
    threads,
    otherCpuShare: otherShare(s0, s1),
  };
  log(`packed loader: ${(n / secs).toFixed(0)} img/s (${(n / secs / threads).toFixed(0)} per core; the decode threads ${(images / decodeCpu).toFixed(0)} per CPU-second)`);
}

// ---- the packed loader with nvJPEG (GPU decoding) ----------------------------------------------------
const { loadNative } = await import(pathToFileURL(path.join(PKG_ROOT, 'dist', 'native.js')).href);
if (a.device === 'cuda' && loadNative().data.gpuDecode) {
  const ds = await data.PackedDataset.open(store, { train: true, size: 224, device: 'cuda', decode: 'gpu' });
  const run = (ep) => loaderEpoch(ds, ep);
  await run(100);
  const t0 = performance.now();
  let n = 0;
  for (let e = 0; e < epochs; e++) n += await run(e);
  const secs = (performance.now() - t0) / 1000;
  const st = ds.stats();
  await ds.close();
  results.rows.nvjpeg = { rate: n / secs, hostCpuPerImageMs: (st.decodeCpuSeconds / st.images) * 1000 };
  log(`packed loader, nvJPEG: ${(n / secs).toFixed(0)} img/s`);
}

// ---- torchvision -------------------------------------------------------------------------------------
const python = process.env.ALEXNET_PYTHON ?? '/usr/bin/python3';
if (!a['no-torch'] && !given) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LD_PRELOAD'));
  const s0 = cpuSnapshot();
  const r = spawnSync(python, [path.join(PKG_ROOT, 'bench', 'torchvision_data.py'), photos, '--workers', String(threads), '--batch', String(batch), '--epochs', String(Math.max(2, epochs))], { encoding: 'utf8', env, timeout: 1_800_000 });
  const s1 = cpuSnapshot();
  if (r.status === 0) {
    const j = JSON.parse(r.stdout.trim().split('\n').pop());
    results.rows.torchvision = { rate: j.rate, perCore: j.rate / threads, workers: threads, torch: j.torch, torchvision: j.torchvision };
    log(`torchvision DataLoader: ${j.rate.toFixed(0)} img/s with ${threads} workers`);
    void s0;
    void s1;
  } else {
    results.rows.torchvision = { error: (r.stderr || r.error?.message || '').trim().split('\n').pop() };
    log(`torchvision: ${results.rows.torchvision.error}`);
  }
}

// ---- our ImageFolder ---------------------------------------------------------------------------------
if (!given) {
  const f = await data.ImageFolder.open(photos, { train: true, size: 224, workers: threads });
  const run = async (ep) => {
    let n = 0;
    for await (const b of f.batches({ batchSize: batch, shuffle: true, seed: 1, epoch: ep })) n += b.n;
    return n;
  };
  await run(100);
  const t0 = performance.now();
  const n = await run(0);
  const secs = (performance.now() - t0) / 1000;
  await f.close();
  results.rows.imageFolder = { rate: n / secs, perCore: n / secs / threads, workers: threads };
  log(`ImageFolder: ${(n / secs).toFixed(0)} img/s with ${threads} workers`);
}

// ---- training: does the loader hold the step back? ----------------------------------------------------
if (!a['no-train']) {
  // small: 64×64 crops from a store packed at short side 73 (64 · 8/7); paper: 227×227 crops of the store
  const paper = a['train-arch'] === 'paper';
  const side = paper ? 227 : 64;
  // (with --store and the small arch: 64×64 windows of the store's own images — a throughput figure)
  const small = paper || given ? store : path.join(work, `photos-${count}-73.axpk`);
  if (!existsSync(small)) await data.pack(photos, small, { resize: 73, workers: cores });
  const steps = 12; // with the 3 warm-up steps, the 15 batches of 2,000 images at 128
  const model = createAlexNet({ arch: a['train-arch'], numClasses: 10, inChannels: 3, device: a.device, seed: 1 });
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const B = batch;
  // synthetic: one batch, reused
  const x = Tensor.from(new Float32Array(B * 3 * side * side).map((_, i) => Math.sin(i)), [B, 3, side, side], a.device);
  const y = Int32Array.from({ length: B }, (_, i) => i % 10);
  for (let w = 0; w < 3; w++) await model.step(x, y, opt); // warm-up: caches, thread pools, the allocator
  let t0 = performance.now();
  for (let s = 0; s < steps; s++) await model.step(x, y, opt);
  const synth = (steps * B) / ((performance.now() - t0) / 1000);
  x.dispose();
  const ds = await data.PackedDataset.open(small, { train: true, size: side, device: a.device, threads });
  let n = 0;
  let waited = 0;
  let inFlight = null;
  const it = ds.batches({ batchSize: B, shuffle: true, seed: 2, dropLast: true })[Symbol.asyncIterator]();
  for (let w = 0; w < 3; w++) {
    const { value: b } = await it.next(); // warm-up as above (and the loader's first batches)
    await model.step(b.input, b.labels, opt);
    b.input.dispose();
  }
  t0 = performance.now();
  for (let s = 0; s < steps; s++) {
    const w0 = performance.now();
    const { value: b, done } = await it.next();
    waited += performance.now() - w0;
    if (done) break;
    const p = model.step(b.input, b.labels, opt);
    b.input.dispose();
    if (inFlight) await inFlight;
    inFlight = p;
    n += b.n;
  }
  if (inFlight) await inFlight;
  await it.return?.();
  const loaded = n / ((performance.now() - t0) / 1000);
  await ds.close();
  opt.dispose();
  model.dispose();
  results.rows.training = { arch: a['train-arch'], input: `3×${side}×${side}`, batch: B, steps, synthetic: synth, withLoader: loaded, ratio: loaded / synth, waitedForBatchesMs: waited };
  log(`training (${a['train-arch']} arch, ${side}×${side}): ${loaded.toFixed(0)} img/s with the loader, ${synth.toFixed(0)} img/s on a synthetic batch; waited ${waited.toFixed(0)} ms for batches`);
}

// ---- report ------------------------------------------------------------------------------------------
const r = results.rows;
const f0 = (v) => (v === undefined || v === null ? '—' : Math.round(v).toLocaleString('en-US'));
const lines = [
  `# Data pipeline, ${new Date().toISOString().slice(0, 10)}`,
  '',
  `Machine: ${results.machine.cpu}, ${cores} cores, ${results.machine.memoryGiB} GiB, Node ${process.version}; device ${a.device}.`,
  given ? `Data: the packed data set ${given}; batch ${batch}; warm page cache.` : `Data: ${photoFiles} JPEGs of real photographs (bench/photos.mjs), 500×375 and 375×500, quality 90, ${results.photos.meanKB.toFixed(1)} KB on average; batch ${batch}; warm page cache.`,
  `Command: \`node bench/data.mjs ${process.argv.slice(2).join(' ')}\``,
  '',
  '| pipeline | images/s | per core | notes |',
  '|---|---|---|---|',
  ...[
    r.packed && `| packed loader (PackedDataset, train augmentation, into the input tensor on ${a.device}) | ${f0(r.packed.rate)} | ${f0(r.packed.perCore)} | ${threads} decode threads; the threads' own CPU time: ${f0(r.packed.decodePerCoreSecond)} images per CPU-second |`,
    r.nvjpeg && `| packed loader decoding on the GPU (nvJPEG batched), into the input tensor on cuda | ${f0(r.nvjpeg.rate)} | — | one host thread drives nvJPEG: ${r.nvjpeg.hostCpuPerImageMs.toFixed(3)} ms of its CPU time an image |`,
    r.torchvision && `| torchvision ImageFolder + DataLoader (PIL), original files | ${f0(r.torchvision.rate)} | ${f0(r.torchvision.perCore)} | ${r.torchvision.error ?? `${threads} workers, torch ${r.torchvision.torch}, torchvision ${r.torchvision.torchvision}`} |`,
    r.imageFolder && `| our ImageFolder (sharp), original files | ${f0(r.imageFolder.rate)} | ${f0(r.imageFolder.perCore)} | ${threads} workers |`,
    r.ceiling && `| ceiling: bare decode of the stored JPEGs, one core | ${f0(r.ceiling.rate)} | ${f0(r.ceiling.perCore)} | whole images, libjpeg-turbo; per core: per CPU-second |`,
    r.pack && `| pack (decode, resize 256, JPEG q90, write) | ${f0(r.pack.rate)} | ${f0(r.pack.perCore)} | ${cores} processes; ${r.pack.meanRecordKB.toFixed(1)} KB a record |`,
  ].filter(Boolean),
];
if (r.packed && r.torchvision?.rate) lines.push('', `Packed loader vs torchvision's DataLoader: ${(r.packed.rate / r.torchvision.rate).toFixed(1)}×.`);
if (r.training)
  lines.push('', `Training (${r.training.arch} arch, ${r.training.input}, batch ${batch}, ${r.training.steps} steps, ${a.device}): ${f0(r.training.withLoader)} img/s with the loader, ${f0(r.training.synthetic)} img/s on a synthetic batch (${(r.training.ratio * 100).toFixed(0)} %); ${r.training.waitedForBatchesMs.toFixed(0)} ms waiting for batches.`);
const share = r.packed?.otherCpuShare;
if (share !== null && share !== undefined) lines.push('', `Other processes used ${(share * 100).toFixed(0)} % of the machine's CPU time while the packed loader was measured.`);
const md = lines.join('\n') + '\n';
console.log(md);
if (a.json) writeFileSync(a.json, JSON.stringify(results, null, 2) + '\n');
if (a.md) writeFileSync(a.md, md);
