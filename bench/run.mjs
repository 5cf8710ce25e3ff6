#!/usr/bin/env node
// alexnet-cuda benchmarks: every op of the paper AlexNet at its shapes, the bare GEMM of each conv
// forward, and the end-to-end training step, timed with tinybench. See bench/README.md.
//
//   node bench/run.mjs [--device cpu|cuda] [--batch N] [--time MS] [--filter REGEX] [--json FILE] [--list]
//
// On CUDA each timed iteration enqueues `inner` calls, then synchronize()s, and records the time / inner,
// so every sample includes the GPU work; `inner` is chosen per op so one iteration lasts a few ms.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { CEILINGS, TARGETS, ceilingOf, deriveBackwardRows, fmtMs, fmtRate, loadGeometry, markdownTable, pct, rateOf, targetOf } from './common.mjs';
import { buildTasks } from './ops.mjs';

// The package root from this script's own location (works from a checkout and from node_modules/alexnet-cuda).
const PKG_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const USAGE = `Usage: node bench/run.mjs [options]
  --device cpu|cuda   where to run (default: cuda when available, else cpu)
  --batch N           batch size (default: 128 on cuda, 8 on cpu)
  --time MS           tinybench time budget per row (default: 200 on cuda, 500 on cpu)
  --filter REGEX      only rows whose key matches (e.g. '^conv2\\.', 'fwd', 'train')
  --min-iters N       timed samples per row at least (default: 10 on cuda, 8 for training steps; 3 on cpu)
  --json FILE         write the results (read by bench/summary.mjs)
  --list              print the row keys and exit
  -h, --help          this text
Env: ALEXNET_CUDA_ADDON=/path/alexnet_cuda.node uses that addon build.`;

function fail(msg) {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

function parseCli() {
  let a;
  try {
    a = parseArgs({
      options: {
        device: { type: 'string' },
        batch: { type: 'string' },
        time: { type: 'string' },
        filter: { type: 'string' },
        'min-iters': { type: 'string' },
        json: { type: 'string' },
        list: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    fail(`${e.message}\n${USAGE}`);
  }
  if (a.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const posInt = (v, name) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || Number(v) < 1) fail(`--${name} must be a positive integer, got "${v}"`);
    return Number(v);
  };
  if (a.device !== undefined && a.device !== 'cpu' && a.device !== 'cuda') fail(`--device must be "cpu" or "cuda", got "${a.device}"`);
  let filter = null;
  if (a.filter !== undefined) {
    try {
      filter = new RegExp(a.filter);
    } catch (e) {
      fail(`--filter is not a valid regular expression: ${e.message}`);
    }
  }
  return { device: a.device, batch: posInt(a.batch, 'batch'), time: posInt(a.time, 'time'), minIters: posInt(a['min-iters'], 'min-iters'), filter, json: a.json, list: a.list };
}

async function loadPackage() {
  const entry = resolve(PKG_ROOT, 'dist', 'index.js');
  if (!existsSync(entry)) fail(`${entry} is missing: build the TypeScript first (npm run build:ts, or npm run build)`);
  return import(pathToFileURL(entry).href);
}

async function loadTinybench() {
  try {
    return (await import('tinybench')).Bench;
  } catch (e) {
    fail(`tinybench is not installed (${e.code ?? e.message}); it is a devDependency: run npm install (or npm i -D tinybench)`);
  }
}

/** Machine-wide busy CPU time (/proc/stat, Linux) and this process's own, to tell afterwards how much
 * of the machine other processes took while we measured. null where /proc/stat is missing. */
function cpuSnapshot() {
  try {
    const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
    const busy = user + nice + system + irq + softirq + steal; // steal: taken by the hypervisor
    const u = process.cpuUsage();
    return { busy, total: busy + idle + iowait, selfSeconds: (u.user + u.system) / 1e6 };
  } catch {
    return null;
  }
}

/** Share of all CPUs' time that other processes used between two snapshots (USER_HZ = 100). */
function otherCpuShare(a, b) {
  if (!a || !b || b.total <= a.total) return null;
  const others = (b.busy - a.busy) / 100 - (b.selfSeconds - a.selfSeconds);
  return Math.min(1, Math.max(0, others / ((b.total - a.total) / 100)));
}

function quantile(sorted, q) {
  if (!sorted.length) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Times one task; returns its result row (or one with `error`). */
async function measure(task, ctx) {
  const { pkg, Bench, device, timeMs } = ctx;
  const sync = () => pkg.synchronize();
  const liveBefore = pkg.memoryStats().tensors[device];
  const row = {
    key: task.key,
    group: task.group,
    layer: task.layer,
    label: task.label,
    shape: task.shape,
    precision: task.precision,
    kind: task.kind,
    flops: task.flops,
    bytes: task.bytes,
    parts: task.parts,
    batch: task.batch,
    note: task.note,
  };
  let h;
  try {
    h = task.make();
    const once = h.async ? async () => void (await h.call()) : () => void h.call();
    // Warm-up: the first call pays one-time costs (module loading, cuBLAS heuristics, allocator misses).
    await once();
    sync();
    // Calibrate (and warm up once more): enough calls per timed iteration that the sync and timer
    // costs vanish.
    const t0 = performance.now();
    await once();
    sync();
    const est = Math.max(performance.now() - t0, 1e-4);
    const inner = Math.max(1, Math.min(ctx.maxInner, Math.round(ctx.iterMs / est)));
    const minIters = task.kind === 'train' ? ctx.minItersTrain : ctx.minIters;
    const bench = new Bench({
      time: timeMs,
      iterations: minIters,
      warmup: true,
      warmupIterations: 1,
      warmupTime: 0,
      retainSamples: true,
      throws: true,
    });
    const body = h.async
      ? async () => {
          const s = bench.now();
          for (let i = 0; i < inner; i++) await h.call();
          sync();
          const dt = bench.now() - s;
          return { overriddenDuration: dt / inner, overriddenIterationCost: dt };
        }
      : () => {
          const s = bench.now();
          for (let i = 0; i < inner; i++) h.call();
          sync();
          const dt = bench.now() - s;
          return { overriddenDuration: dt / inner, overriddenIterationCost: dt };
        };
    bench.add(task.key, body, { async: !!h.async });
    await bench.run();
    const res = bench.tasks[0].result;
    if (res.state !== 'completed') throw res.error ?? new Error(`tinybench state ${res.state}`);
    const samples = [...(res.latency.samples ?? [])].sort((a, b) => a - b);
    Object.assign(row, {
      ms: res.latency.p50,
      p10: quantile(samples, 0.1),
      p90: quantile(samples, 0.9),
      mean: res.latency.mean,
      samples: res.latency.samplesCount,
      inner,
    });
    // Training steps on CUDA: what one step asks of the device in steady state (the backend's counters
    // over a few more steps): launches, cuBLAS calls, driver and pinned allocations, host waits.
    if (task.kind === 'train' && device === 'cuda') {
      const c0 = pkg.memoryStats().native.cuda;
      const k = 3;
      for (let i = 0; i < k; i++) await h.call();
      sync();
      const c1 = pkg.memoryStats().native.cuda;
      const d = (name) => (c1[name] - c0[name]) / k;
      // the closing synchronize() is the benchmark's own, not the step's
      row.perStep = { launches: d('kernelLaunches'), cublasCalls: d('cublasCalls'), driverAllocs: d('cudaMallocCalls'), pinnedAllocs: d('pinnedAllocs'), hostSyncs: (c1.hostSyncs - c0.hostSyncs - 1) / k };
    }
  } catch (e) {
    row.error = String(e?.message ?? e).split('\n')[0];
  } finally {
    try {
      h?.dispose();
    } catch (e) {
      row.error ??= `dispose: ${e.message}`;
    }
  }
  const leaked = pkg.memoryStats().tensors[device] - liveBefore;
  if (leaked !== 0) row.leakedTensors = leaked;
  return row;
}

function consoleLine(r, device) {
  if (r.error) return `  ${r.key.padEnd(28)} ERROR ${r.error}`;
  const ceil = device === 'cuda' ? ceilingOf(r) : null;
  const frac = ceil ? ` ${pct(rateOf(r) / ceil).padStart(5)} of peak` : '';
  const spread = r.p10 !== null && r.p90 !== null ? ` [${fmtMs(r.p10)}–${fmtMs(r.p90)}]` : '';
  const leak = r.leakedTensors ? ` (${r.leakedTensors} tensors leaked!)` : '';
  const s = r.perStep;
  const per = s ? `  per step: ${s.launches} launches, ${s.cublasCalls} cuBLAS, ${s.driverAllocs} driver allocs, ${s.pinnedAllocs} pinned allocs, ${s.hostSyncs} host syncs` : '';
  return `  ${r.key.padEnd(28)} ${fmtMs(r.ms).padStart(9)} ms${spread.padEnd(22)} ×${String(r.inner).padEnd(4)} ${fmtRate(r).padStart(14)}${frac}${leak}${per}`;
}

async function main() {
  const cli = parseCli();
  const geo = loadGeometry();
  if (cli.list && !cli.device) cli.device = 'cpu'; // listing needs no GPU
  const pkg = await loadPackage();
  const info = pkg.backendInfo();
  const device = cli.device ?? (info.cuda ? 'cuda' : 'cpu');
  if (device === 'cuda' && !info.cuda && !cli.list) fail(`--device cuda: CUDA is not available: ${info.cudaReason}`);
  const batch = cli.batch ?? (device === 'cuda' ? 128 : 8);
  const precisions = device === 'cuda' ? ['fp32', 'tf32'] : ['fp32'];
  let tasks = buildTasks(pkg, geo, { device, batch, precisions });
  if (cli.filter) tasks = tasks.filter((t) => cli.filter.test(t.key));
  if (cli.list) {
    for (const t of tasks) console.log(t.key);
    return;
  }
  if (!tasks.length) fail(`--filter ${cli.filter} matches no row (see --list)`);
  const Bench = await loadTinybench();
  const ctx = {
    pkg,
    Bench,
    device,
    timeMs: cli.time ?? (device === 'cuda' ? 200 : 500),
    // One timed iteration lasts about this long (inner calls + one sync).
    iterMs: device === 'cuda' ? 4 : 20,
    maxInner: device === 'cuda' ? 1000 : 200,
    minIters: cli.minIters ?? (device === 'cuda' ? 10 : 3),
    minItersTrain: cli.minIters ?? (device === 'cuda' ? 8 : 3),
  };
  const gpu = info.gpus?.[0];
  const meta = {
    tool: 'alexnet-cuda',
    date: new Date().toISOString(),
    device,
    batch,
    precisions,
    gpu: device === 'cuda' ? gpu?.name ?? null : null,
    cpu: `${os.cpus()[0]?.model ?? 'unknown'} × ${os.cpus().length}`,
    backend: info,
    node: process.version,
    timeMs: ctx.timeMs,
    iterMs: ctx.iterMs,
    ceilings: device === 'cuda' ? CEILINGS : null,
    targets: TARGETS,
    filter: cli.filter ? String(cli.filter) : null,
    // Other processes on the machine skew timings (on the CPU especially): kept so readers can tell.
    loadavgStart: os.loadavg(),
  };
  console.log(`alexnet-cuda bench: ${device}${meta.gpu ? ` (${meta.gpu})` : ` (${meta.cpu}, ${info.threads} threads, BLAS ${info.blas})`}, batch ${batch}, ` +
    `${tasks.length} rows, ${ctx.timeMs} ms each`);
  console.log(`  ${'key'.padEnd(28)} ${'median'.padStart(12)} [p10–p90]             inner ${'rate'.padStart(12)}`);
  const results = [];
  const cpu0 = cpuSnapshot();
  const t0 = performance.now();
  let group = null;
  for (const task of tasks) {
    if (task.group !== group) {
      group = task.group;
      if (device === 'cuda') pkg.emptyCache(); // big inputs of the last group: give them back
    }
    const r = await measure(task, ctx);
    results.push(r);
    console.log(consoleLine(r, device));
  }
  meta.wallSeconds = (performance.now() - t0) / 1000;
  meta.loadavgEnd = os.loadavg();
  meta.otherCpuShare = otherCpuShare(cpu0, cpuSnapshot());
  const failed = results.filter((r) => r.error);
  const leaked = results.filter((r) => r.leakedTensors);

  // The markdown table of this run alone (summary.mjs adds the PyTorch columns).
  const byKey = new Map(results.map((r) => [r.key, r]));
  const derived = deriveBackwardRows(results.filter((r) => !r.error));
  const rows = [...results.filter((r) => !r.error), ...derived].map((r) => {
    const cells = [r.key, r.shape, fmtMs(r.ms), fmtRate(r, batch)];
    if (device === 'cuda') cells.push(pct(rateOf(r) / ceilingOf(r)), targetOf(r, byKey).text);
    return cells;
  });
  const header = ['row', 'shape', 'ms', 'rate'];
  if (device === 'cuda') header.push('% of peak', 'target');
  console.log(`\n${markdownTable(header, rows)}\n`);
  const others = meta.otherCpuShare === null ? '' : `; other processes used ${pct(meta.otherCpuShare)} of the CPUs meanwhile`;
  console.log(`${results.length} rows in ${meta.wallSeconds.toFixed(1)} s${others}${failed.length ? `, ${failed.length} FAILED` : ''}` +
    `${leaked.length ? `, ${leaked.length} leaked tensors` : ''}`);

  if (cli.json) {
    const file = resolve(cli.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify({ meta, results }, null, 1)}\n`);
    console.log(`wrote ${file}`);
  }
  if (failed.length || leaked.length) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e?.stack ?? e);
  process.exit(1);
});
