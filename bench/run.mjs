#!/usr/bin/env node
// alexnet-cuda benchmarks: every op of the paper AlexNet at its shapes, the bare GEMM of each conv
// forward, and the end-to-end training step, timed with tinybench. See bench/README.md.
//
//   node bench/run.mjs [--device cpu|cuda] [--batch N] [--time MS] [--filter REGEX] [--json FILE] [--list]
//                      [--vs-pytorch] [--check auto|pytorch|cpu|all|none] [--python PATH]
//
// On CUDA each timed iteration enqueues `inner` calls, then synchronize()s, and records the time / inner,
// so every sample includes the GPU work; `inner` is chosen per op so one iteration lasts a few ms.
//
// Every row also checks what it computed: before timing, its outputs on the shared inputs are compared
// with PyTorch's (bench/pytorch_peer.py, run first in the same invocation, writes them) and, on CUDA,
// with the CPU oracle's; a row outside its tolerance is FAIL, its time is not reported, and the run exits
// non-zero. With --vs-pytorch the peer is also timed and the table puts the two side by side.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { CEILINGS, TARGETS, ceilingOf, fmtMs, fmtRate, loadGeometry, pct, rateOf } from './common.mjs';
import { compareOutputs, fmtErr } from './check.mjs';
import { buildTasks } from './ops.mjs';
import { summaryMarkdown } from './table.mjs';
import { PAGE_BYTES, entryOf, fmtGB, fmtGF, totalsOf, trafficCounter } from './traffic-lib.mjs';

// The package root from this script's own location (works from a checkout and from node_modules/alexnet-cuda).
const PKG_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const USAGE = `Usage: node bench/run.mjs [options]
  --device cpu|cuda   where to run (default: cuda when available, else cpu)
  --batch N           batch size (default: 128 on cuda, 8 on cpu)
  --time MS           tinybench time budget per row (default: 200 on cuda, 500 on cpu)
  --filter REGEX      only rows whose key matches (e.g. '^conv2\\.', 'fwd', 'train')
  --min-iters N       timed samples per row at least (default: 10 on cuda, 8 for training steps; 3 on cpu)
  --json FILE         write the results (read by bench/summary.mjs)
  --vs-pytorch        also time PyTorch (bench/pytorch_peer.py) on the same rows and device, side by side
  --check WHAT        what each row's outputs are compared with: auto (default: PyTorch's when python3
                      with torch is found, and the CPU oracle on CUDA), pytorch, cpu (CUDA only), all,
                      none (time only; every row is then "unchecked")
  --python PATH       the Python with torch (default: $ALEXNET_PYTHON, python3, /usr/bin/python3)
  --unfused           run the training steps' Conv2d/Linear → ReLU pairs as separate layers (an A/B
                      against the default fused pairs: the same values, two launches more per pair)
  --conv-path PATH    columns (default) or legacy: the convolution path (lib/ops/conv.ts
                      setConvolutionPath; an A/B of issue 19's data path, the same values to GEMM rounding)
  --lrn-path PATH     window (default) or legacy: the LRN kernels (lib/ops/lrn.ts setLrnPath; the lrn rows
                      and the training steps' LocalResponseNorm layers; an A/B of issue 19's lever 2)
  --bias-grad-path P  two-stage (default) or legacy: the conv bias gradient's reduction (lib/ops/conv.ts
                      setBiasGradientPath; an A/B of issue 19's lever 3)
  --traffic WHEN      count each training step's traffic on the emulated device (every launch and cuBLAS
                      call with the bytes it reads and writes, FLOPs; bench/README.md): auto (default: when
                      the loaded addon is the plain emulated build), on (fail where it cannot), off
  --traffic-only      training steps: one warm-up step and one counted step, not timed (bench/traffic.mjs)
  --list              print the row keys and exit
  -h, --help          this text
Env: ALEXNET_CUDA_ADDON=/path/alexnet_cuda.node uses that addon build; ALEXNET_PYTHON the Python with torch.`;

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
        'vs-pytorch': { type: 'boolean', default: false },
        check: { type: 'string', default: 'auto' },
        python: { type: 'string' },
        list: { type: 'boolean', default: false },
        unfused: { type: 'boolean', default: false },
        'conv-path': { type: 'string', default: 'columns' },
        'lrn-path': { type: 'string', default: 'window' },
        'bias-grad-path': { type: 'string', default: 'two-stage' },
        traffic: { type: 'string', default: 'auto' },
        'traffic-only': { type: 'boolean', default: false },
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
  const checks = ['auto', 'pytorch', 'cpu', 'all', 'none'];
  if (!checks.includes(a.check)) fail(`--check must be one of ${checks.join(', ')}, got "${a.check}"`);
  if (a['vs-pytorch'] && a.check === 'none') fail('--vs-pytorch compares with PyTorch; it cannot go with --check none');
  if (!['columns', 'legacy'].includes(a['conv-path'])) fail(`--conv-path must be columns or legacy, got "${a['conv-path']}"`);
  if (!['window', 'legacy'].includes(a['lrn-path'])) fail(`--lrn-path must be window or legacy, got "${a['lrn-path']}"`);
  if (!['two-stage', 'legacy'].includes(a['bias-grad-path'])) fail(`--bias-grad-path must be two-stage or legacy, got "${a['bias-grad-path']}"`);
  if (!['auto', 'on', 'off'].includes(a.traffic)) fail(`--traffic must be auto, on or off, got "${a.traffic}"`);
  if (a['traffic-only'] && a.traffic === 'off') fail('--traffic-only counts traffic; it cannot go with --traffic off');
  return {
    device: a.device,
    batch: posInt(a.batch, 'batch'),
    time: posInt(a.time, 'time'),
    minIters: posInt(a['min-iters'], 'min-iters'),
    filter,
    filterSource: a.filter,
    json: a.json,
    list: a.list,
    fuseRelu: !a.unfused,
    convPath: a['conv-path'],
    lrnPath: a['lrn-path'],
    biasGradPath: a['bias-grad-path'],
    vsPytorch: a['vs-pytorch'],
    check: a.check,
    python: a.python,
    traffic: a['traffic-only'] ? 'on' : a.traffic,
    trafficOnly: a['traffic-only'],
  };
}

async function loadPackage() {
  // ALEXNET_BENCH_PACKAGE: another module with the package's exports (the tests' planted-defect copy)
  if (process.env.ALEXNET_BENCH_PACKAGE) return import(pathToFileURL(resolve(process.env.ALEXNET_BENCH_PACKAGE)).href);
  const entry = resolve(PKG_ROOT, 'dist', 'index.js');
  if (!existsSync(entry)) fail(`${entry} is missing: build the TypeScript first (npm run build:ts, or npm run build)`);
  return import(pathToFileURL(entry).href);
}

async function loadTinybench() {
  try {
    return (await import('tinybench')).Bench;
  } catch (e) {
    fail(`tinybench is not installed (${e.code ?? e.message}); it is a dependency of alexnet-cuda: run npm install`);
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

/** The environment for Python: without a sanitizer runtime preloaded into node (npm run test:emu). */
const pythonEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LD_PRELOAD'));

/** The first Python that imports torch: { python, torch, cuda } or { reason } (why none did). */
function findTorch(explicit) {
  const candidates = explicit ? [explicit] : [process.env.ALEXNET_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean);
  const tried = [];
  for (const py of [...new Set(candidates)]) {
    const r = spawnSync(py, ['-c', 'import torch; print(torch.__version__, int(torch.cuda.is_available()))'], { encoding: 'utf8', timeout: 120_000, env: pythonEnv() });
    if (r.status === 0) {
      const [torch, cuda] = r.stdout.trim().split(/\s+/);
      return { python: py, torch, cuda: cuda === '1' };
    }
    tried.push(`${py}: ${r.error ? r.error.code ?? r.error.message : (r.stderr.trim().split('\n').pop() || `exit ${r.status}`)}`);
  }
  return { reason: `no Python with torch found (${tried.join('; ')})` };
}

/** Runs bench/pytorch_peer.py: it writes each row's outputs to `dir` (and, when `time`, times the rows
 * into `json`); its lines are shown prefixed. Resolves to its exit code. */
function runPeer(py, args) {
  return new Promise((resolvePeer) => {
    const child = spawn(py, [join(PKG_ROOT, 'bench', 'pytorch_peer.py'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: pythonEnv() });
    const relay = (stream, out) => {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          out.write(`  pytorch| ${buf.slice(0, i)}\n`);
          buf = buf.slice(i + 1);
        }
      });
      stream.on('end', () => buf && out.write(`  pytorch| ${buf}\n`));
    };
    relay(child.stdout, process.stdout);
    relay(child.stderr, process.stderr);
    child.on('error', (e) => {
      console.error(`bench: cannot run ${py}: ${e.message}`);
      resolvePeer(127);
    });
    child.on('close', (code, signal) => resolvePeer(code ?? (signal ? 128 : 1)));
  });
}

/** The row's outputs (on the fresh state) against PyTorch's and, on CUDA, the CPU oracle's. */
async function checkRow(task, h, ctx) {
  const ours = await h.outputs();
  const prec = ctx.device === 'cuda' ? task.precision ?? 'fp32' : 'fp32';
  const out = {};
  if (ctx.peerDir) {
    const file = join(ctx.peerDir, `${task.key}.safetensors`);
    if (existsSync(file)) {
      const ref = Object.fromEntries([...ctx.pkg.parseSafetensors(readFileSync(file), file).tensors].map(([k, v]) => [k, v.data]));
      unlinkSync(file);
      out.pytorch = compareOutputs(ours, ref, task.check, { ours: prec, ref: ctx.peerPrecision ?? prec });
    } else {
      out.pytorch = { pass: false, noReference: true, missing: 'PyTorch wrote no outputs for this row (see its log above)' };
    }
  }
  if (ctx.oracle) {
    const o = task.make('cpu');
    let ref;
    try {
      ref = await o.outputs();
    } finally {
      o.dispose();
    }
    // the CPU computes tf32 requests in fp32, and bf16 ones as the GPU does (its inputs rounded to bf16)
    out.cpu = compareOutputs(ours, ref, task.check, { ours: prec, ref: prec === 'bf16' ? 'bf16' : 'fp32' });
  }
  return out;
}

/** PASS when every comparison made passed; FAIL when one failed; "no reference" when a reference that
 * should be there is missing (the peer failed: our output is not known to be wrong, nor right); unchecked
 * when no comparison was made. */
function verdictOf(check) {
  const cs = Object.values(check ?? {});
  if (!cs.length) return 'unchecked';
  if (cs.some((c) => !c.pass && !c.noReference)) return 'FAIL';
  if (cs.some((c) => c.noReference)) return 'no reference';
  return 'PASS';
}

function quantile(sorted, q) {
  if (!sorted.length) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** One training step with the emulator counting: its traffic entries and totals (bench/traffic-lib.mjs). */
async function countStepTraffic(h, task, ctx) {
  const { emu } = ctx.traffic;
  ctx.pkg.synchronize();
  emu.trafficRecords(); // anything left from before: not this step's
  emu.countTraffic(true);
  try {
    await h.call();
    ctx.pkg.synchronize();
  } finally {
    emu.countTraffic(false);
  }
  const entries = emu.trafficRecords().map(entryOf);
  return { batch: task.batch, precision: task.precision, pageBytes: PAGE_BYTES, entries, totals: totalsOf(entries, task.precision) };
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
  // The row's own peak: from the memory in use before its model exists.
  if (device === 'cuda' && typeof pkg.resetPeakMemoryStats === 'function') pkg.resetPeakMemoryStats();
  try {
    h = task.make();
    if (ctx.checking) {
      row.check = await checkRow(task, h, ctx);
      row.verdict = verdictOf(row.check);
    }
    const once = h.async ? async () => void (await h.call()) : () => void h.call();
    const counted = task.kind === 'train' && device === 'cuda' && ctx.traffic;
    if (counted && ctx.trafficOnly) {
      // A warm-up step (first-call costs, the caching allocator fills), then the counted one: no timing.
      await once();
      sync();
      row.traffic = await countStepTraffic(h, task, ctx);
      // The allocator's peak for this row: the model, its optimizer state and two steps.
      row.traffic.peakDeviceBytes = pkg.memoryStats().native.cuda.peakInUseBytes;
    } else {
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
        // ... and, on the emulated device, what each of its launches reads and writes (one more step)
        if (counted) row.traffic = await countStepTraffic(h, task, ctx);
      }
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
  row.verdict ??= row.error ? 'ERROR' : 'unchecked';
  if (row.error && row.verdict === 'PASS') row.verdict = 'ERROR';
  // the time of a wrong op is not a result
  if (row.verdict === 'FAIL' && row.ms !== undefined) {
    row.msOfWrongOutput = row.ms;
    delete row.ms;
  }
  return row;
}

/** "✓ 3.1e-7 ≤ 1.2e-5" / "FAIL dx 2.0e+0 > 1.2e-5" for one comparison. */
function checkText(c, what) {
  if (!c) return '';
  if (c.missing) return ` ${what}: ${c.noReference ? 'no reference' : 'FAIL'} (${c.missing})`;
  const w = c.worst;
  const miss = c.outputs.find((o) => o.missing);
  if (miss) return ` ${what}: FAIL (${miss.name} missing in ${miss.missing})`;
  return ` ${what}: ${c.pass ? '✓' : 'FAIL'} ${c.outputs.length > 1 ? `${w.name} ` : ''}${fmtErr(w.rel)} ${c.pass ? '≤' : '>'} ${fmtErr(w.tol)}`;
}

function consoleLine(r, device) {
  const checks = `${checkText(r.check?.pytorch, 'vs PyTorch')}${checkText(r.check?.cpu, 'vs CPU')}`;
  if (r.error) return `  ${r.key.padEnd(28)} ERROR ${r.error}${checks}`;
  if (r.verdict === 'FAIL') return `  ${r.key.padEnd(28)} FAIL: wrong output, time not reported.${checks}`;
  const ceil = device === 'cuda' ? ceilingOf(r) : null;
  const frac = ceil ? ` ${pct(rateOf(r) / ceil).padStart(5)} of peak` : '';
  const spread = r.p10 !== null && r.p90 !== null ? ` [${fmtMs(r.p10)}–${fmtMs(r.p90)}]` : '';
  const leak = r.leakedTensors ? ` (${r.leakedTensors} tensors leaked!)` : '';
  const s = r.perStep;
  const per = s ? `  per step: ${s.launches} launches, ${s.cublasCalls} cuBLAS, ${s.driverAllocs} driver allocs, ${s.pinnedAllocs} pinned allocs, ${s.hostSyncs} host syncs` : '';
  const tt = r.traffic?.totals;
  const traffic = tt ? `  traffic at batch ${r.traffic.batch}: ${fmtGB(tt.readBytes)} read, ${fmtGB(tt.writeBytes)} written, ${fmtGF(tt.flops)} (${tt.kernels} launches, ${tt.cublas} cuBLAS, ${tt.copies} copies)` : '';
  if (r.ms === undefined && tt) return `  ${r.key.padEnd(28)} not timed (--traffic-only)${checks}${traffic}`;
  return `  ${r.key.padEnd(28)} ${fmtMs(r.ms).padStart(9)} ms${spread.padEnd(22)} ×${String(r.inner).padEnd(4)} ${fmtRate(r).padStart(14)}${frac}${leak}${checks}${per}${traffic}`;
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
  if (cli.convPath !== 'columns') {
    if (typeof pkg.ops.setConvolutionPath !== 'function') fail('--conv-path: this package has no ops.setConvolutionPath');
    pkg.ops.setConvolutionPath(cli.convPath);
  }
  if (cli.lrnPath !== 'window') {
    if (typeof pkg.ops.setLrnPath !== 'function') fail('--lrn-path: this package has no ops.setLrnPath');
    pkg.ops.setLrnPath(cli.lrnPath);
  }
  if (cli.biasGradPath !== 'two-stage') {
    if (typeof pkg.ops.setBiasGradientPath !== 'function') fail('--bias-grad-path: this package has no ops.setBiasGradientPath');
    pkg.ops.setBiasGradientPath(cli.biasGradPath);
  }
  const precisions = device === 'cuda' ? ['fp32', 'tf32'] : ['fp32'];
  // bf16 (GEMM inputs rounded to bf16, float32 sums) for the training steps on CUDA, beside PyTorch's
  // autocast step; the per-op rows stay fp32 and tf32 (the GPU check's time).
  // The legacy LRN kernels take float32 only (bf16 models store bfloat16 activations): no bf16 steps then.
  const trainPrecisions = device === 'cuda' && cli.lrnPath !== 'legacy' ? [...precisions, 'bf16'] : precisions;
  let tasks = buildTasks(pkg, geo, { device, batch, precisions, trainPrecisions, fuseRelu: cli.fuseRelu, lrnPath: cli.lrnPath });
  if (cli.filter) tasks = tasks.filter((t) => cli.filter.test(t.key));
  if (cli.list) {
    for (const t of tasks) console.log(t.key);
    return;
  }
  if (!tasks.length) fail(`--filter ${cli.filter} matches no row (see --list)`);
  if (cli.check === 'cpu' && device !== 'cuda') fail('--check cpu: the CPU oracle checks CUDA rows; on --device cpu compare with PyTorch (--check pytorch)');
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
    peerDir: null,
    oracle: device === 'cuda' && ['auto', 'cpu', 'all'].includes(cli.check),
  };

  // ---- the references: PyTorch's outputs (the peer runs first), the CPU oracle -------------------------
  const wantTorch = cli.vsPytorch || ['auto', 'pytorch', 'all'].includes(cli.check);
  const mustTorch = cli.vsPytorch || ['pytorch', 'all'].includes(cli.check);
  const notes = [];
  // Traffic per training step: counted on the emulated device only (its page-protection counter).
  ctx.traffic = null;
  ctx.trafficOnly = cli.trafficOnly;
  if (device === 'cuda' && cli.traffic !== 'off' && tasks.some((t) => t.kind === 'train')) {
    const t = info.emulated
      ? await trafficCounter(pathToFileURL(resolve(PKG_ROOT, 'dist', 'native.js')).href)
      : { reason: 'the CUDA device is a GPU; traffic is counted on the emulated device only' };
    if (t.reason) {
      if (cli.traffic === 'on') fail(`--traffic on: ${t.reason}`);
      if (info.emulated) notes.push(`Traffic not counted: ${t.reason}.`);
    } else {
      ctx.traffic = t;
    }
  }
  if (info.emulated && process.env.AXN_EMU_SKIP_KERNELS === '1') {
    if (cli.check !== 'none') fail('AXN_EMU_SKIP_KERNELS=1: the emulated device runs no kernel (a plan of the launches): use --check none');
    notes.push('AXN_EMU_SKIP_KERNELS=1: the emulated device checked and recorded every launch and GEMM but ran none (a plan): timings and outputs mean nothing, kernels have no measured bytes.');
  }
  if (cli.trafficOnly && !ctx.traffic) fail('--traffic-only: there are no training steps on the emulated device to count (--device cuda, a train row)');
  let torch = null;
  let peer = null;
  if (wantTorch) {
    torch = findTorch(cli.python);
    if (!torch.reason && device === 'cuda' && !torch.cuda) {
      // Outputs can still come from PyTorch on the CPU (in fp32); timings cannot.
      if (cli.vsPytorch) torch = { reason: `${torch.python} has torch ${torch.torch} without CUDA` };
      else {
        torch.cpuOnly = true;
        notes.push(`${torch.python} has torch ${torch.torch} without CUDA: PyTorch's reference outputs are computed on the CPU, in fp32.`);
      }
    }
    if (torch.reason) {
      if (mustTorch) fail(`${cli.vsPytorch ? '--vs-pytorch' : `--check ${cli.check}`}: ${torch.reason}`);
      notes.push(`Not checked against PyTorch: ${torch.reason}.${ctx.oracle ? ' CUDA rows are checked against the CPU oracle only.' : ' Rows are timed unchecked.'}`);
      torch = null;
    }
  }
  const tStart = performance.now();
  const cleanup = [];
  process.on('exit', () => cleanup.forEach((f) => f()));
  if (torch) {
    ctx.peerDir = mkdtempSync(join(os.tmpdir(), 'alexnet-bench-'));
    cleanup.push(() => rmSync(ctx.peerDir, { recursive: true, force: true }));
    // its outputs reach gigabytes at batch 128: removed also when the run is interrupted
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
      process.once(sig, () => {
        console.error(`bench: ${sig}: removing ${ctx.peerDir}`);
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
    const peerJson = join(ctx.peerDir, 'peer.json');
    // the exact rows (not the regex: Python's re and JavaScript's RegExp differ at the edges)
    const keysFile = join(ctx.peerDir, 'keys.txt');
    writeFileSync(keysFile, `${tasks.map((t) => t.key).join('\n')}\n`);
    const args = ['--device', torch.cpuOnly ? 'cpu' : device, '--batch', String(batch), '--outputs', ctx.peerDir, '--precisions', [...new Set(tasks.map((t) => t.precision).filter(Boolean))].join(','), '--keys-file', keysFile];
    ctx.peerPrecision = torch.cpuOnly ? 'fp32' : null;
    if (cli.vsPytorch) args.push('--time', String(ctx.timeMs), '--json', peerJson);
    else args.push('--no-time');
    console.log(`PyTorch (${torch.python}, torch ${torch.torch}) first: ${cli.vsPytorch ? 'timing its rows and writing' : 'writing'} their outputs on the same inputs`);
    const code = await runPeer(torch.python, args);
    if (code !== 0) notes.push(`The PyTorch peer exited with code ${code}; rows it has no outputs for FAIL.`);
    if (cli.vsPytorch) {
      try {
        peer = JSON.parse(readFileSync(peerJson, 'utf8'));
      } catch (e) {
        notes.push(`No PyTorch timings (${e.message}).`);
      }
    }
  }
  ctx.checking = !!ctx.peerDir || ctx.oracle;
  const peerSeconds = (performance.now() - tStart) / 1000;
  if (!ctx.checking && cli.check === 'none') notes.push('--check none: outputs are not checked.');

  const gpu = info.gpus?.[0];
  const meta = {
    tool: 'alexnet-cuda',
    date: new Date().toISOString(),
    device,
    batch,
    precisions,
    trainPrecisions,
    fuseRelu: cli.fuseRelu,
    convPath: cli.convPath,
    lrnPath: cli.lrnPath,
    biasGradPath: cli.biasGradPath,
    traffic: ctx.traffic ? { pageBytes: PAGE_BYTES, trafficOnly: cli.trafficOnly } : null,
    gpu: device === 'cuda' ? gpu?.name ?? null : null,
    cpu: `${os.cpus()[0]?.model ?? 'unknown'} × ${os.cpus().length}`,
    backend: info,
    node: process.version,
    timeMs: ctx.timeMs,
    iterMs: ctx.iterMs,
    ceilings: device === 'cuda' ? CEILINGS : null,
    targets: TARGETS,
    filter: cli.filter ? String(cli.filter) : null,
    references: { pytorch: torch ? { python: torch.python, torch: torch.torch, device: torch.cpuOnly ? 'cpu' : device } : null, cpuOracle: ctx.oracle },
    notes,
    command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`,
    // Other processes on the machine skew timings (on the CPU especially): kept so readers can tell.
    loadavgStart: os.loadavg(),
  };
  const refs = [torch && 'PyTorch', ctx.oracle && 'the CPU oracle'].filter(Boolean);
  console.log(`alexnet-cuda bench: ${device}${meta.gpu ? ` (${meta.gpu})` : ` (${meta.cpu}, ${info.threads} threads, BLAS ${info.blas})`}, batch ${batch}, ` +
    `${tasks.length} rows, ${ctx.timeMs} ms each; outputs checked against ${refs.length ? refs.join(' and ') : 'nothing'}`);
  for (const n of notes) console.log(`  note: ${n}`);
  console.log(`  ${'key'.padEnd(28)} ${'median'.padStart(12)} [p10–p90]             inner ${'rate'.padStart(12)}`);
  const results = [];
  const cpu0 = cpuSnapshot();
  const t0 = performance.now();
  const tty = process.stdout.isTTY;
  let group = null;
  for (const [i, task] of tasks.entries()) {
    if (task.group !== group) {
      group = task.group;
      if (device === 'cuda') pkg.emptyCache(); // big inputs of the last group: give them back
    }
    const at = `[${String(i + 1).padStart(String(tasks.length).length)}/${tasks.length}]`;
    if (tty) process.stdout.write(`  ${at} ${task.key} …\r`);
    const r = await measure(task, ctx);
    results.push(r);
    if (tty) process.stdout.write('\x1b[2K');
    console.log(`${consoleLine(r, device)}  ${at}`);
  }
  meta.wallSeconds = (performance.now() - t0) / 1000;
  meta.peerSeconds = torch ? peerSeconds : null;
  meta.loadavgEnd = os.loadavg();
  meta.otherCpuShare = otherCpuShare(cpu0, cpuSnapshot());
  const failed = results.filter((r) => r.error);
  const wrong = results.filter((r) => r.verdict === 'FAIL');
  const noRef = results.filter((r) => r.verdict === 'no reference');
  const leaked = results.filter((r) => r.leakedTensors);

  const run = { meta, results, ...(peer ? { peer } : {}) };
  console.log(`\n${summaryMarkdown(run, peer)}\n`);
  const others = meta.otherCpuShare === null ? '' : `; other processes used ${pct(meta.otherCpuShare)} of the CPUs meanwhile`;
  const checked = results.filter((r) => r.verdict === 'PASS').length;
  console.log(`${results.length} rows in ${meta.wallSeconds.toFixed(1)} s${torch ? ` (PyTorch before them: ${peerSeconds.toFixed(1)} s)` : ''}${others}; outputs: ${checked} PASS` +
    `${wrong.length ? `, ${wrong.length} FAIL (${wrong.map((r) => r.key).join(', ')})` : ''}` +
    `${noRef.length ? `, ${noRef.length} without PyTorch's reference (${noRef.map((r) => r.key).join(', ')})` : ''}` +
    `${results.length - checked - wrong.length - noRef.length ? `, ${results.length - checked - wrong.length - noRef.length} not checked` : ''}` +
    `${failed.length ? `; ${failed.length} ERROR` : ''}${leaked.length ? `; ${leaked.length} leaked tensors` : ''}`);

  if (cli.json) {
    const file = resolve(cli.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(run, null, 1)}\n`);
    console.log(`wrote ${file}`);
  }
  if (failed.length || wrong.length || noRef.length || leaked.length) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e?.stack ?? e);
  process.exit(1);
});
