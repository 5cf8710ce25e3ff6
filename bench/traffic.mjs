#!/usr/bin/env node
// Traffic per training step at batch 128, counted on the emulated device (bench/README.md, "Traffic per
// step"). The emulator is far too slow to run AlexNet at batch 128, so:
//  1. bench/run.mjs --traffic-only counts one step at each of several small batches (--batches): every
//     kernel launch with the unique 4 KiB pages it read and wrote (measured), every cuBLAS call with its
//     arguments and the operand bytes they imply, every copy;
//  2. the same command under AXN_EMU_SKIP_KERNELS=1 at the target batch records the step's plan (every
//     launch's grid and block, every cuBLAS call's arguments, exact) without running any kernel;
//  3. the launch sequences must agree at every batch (same kernels, same cuBLAS calls, in the same order:
//     no workspace chunking that differs with the batch); each kernel's bytes are fitted by a line
//     through the two largest measured batches (weights constant, activations linear), checked at the
//     others, and extrapolated to the target; cuBLAS calls and copies take the plan's exact values.
// Writes OUT.json and OUT.md (the per-launch table, totals, the roofline floor at the H200's ceilings).
//
//   ALEXNET_CUDA_ADDON=$PWD/build-emu-plain/Release/alexnet_cuda.node \
//     node bench/traffic.mjs [--batches 2,4,8] [--target 128] [--filter REGEX] [--out PREFIX] [--work DIR] [--reuse]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CEILINGS, markdownTable } from './common.mjs';
import { PAGE_BYTES, floorOf, fmtGB, fmtGemm, fmtGrid, fmtMB, peakOf, totalsOf } from './traffic-lib.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = `Usage: ALEXNET_CUDA_ADDON=…/build-emu-plain/Release/alexnet_cuda.node node bench/traffic.mjs [options]
  --batches LIST   small batches to measure, comma-separated, at least 3 (default 2,4,8); the line goes
                   through the two largest, the others check it
  --target N       the batch to extrapolate to (default 128)
  --filter REGEX   training-step rows (default '^train\\.(g1|tv)\\.tf32$')
  --out PREFIX     write PREFIX.json and PREFIX.md (default bench/results/tmp/traffic)
  --work DIR       where the per-batch runs write their JSON and logs (default bench/results/tmp)
  --reuse          use a per-batch JSON already in --work instead of running it again
  --conv-path P    columns (default) or legacy: the convolution path counted (bench/run.mjs --conv-path)
  --lrn-path P     window (default) or legacy: the LRN kernels counted (bench/run.mjs --lrn-path)
  --bias-grad-path P  two-stage (default) or legacy: the conv bias gradient counted (bench/run.mjs --bias-grad-path)`;

function fail(msg) {
  console.error(`traffic: ${msg}`);
  process.exit(2);
}

let a;
try {
  a = parseArgs({
    options: {
      batches: { type: 'string', default: '2,4,8' },
      target: { type: 'string', default: '128' },
      filter: { type: 'string', default: '^train\\.(g1|tv)\\.tf32$' },
      out: { type: 'string', default: 'bench/results/tmp/traffic' },
      work: { type: 'string', default: 'bench/results/tmp' },
      reuse: { type: 'boolean', default: false },
      'conv-path': { type: 'string', default: 'columns' },
      'lrn-path': { type: 'string', default: 'window' },
      'bias-grad-path': { type: 'string', default: 'two-stage' },
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
const batches = a.batches.split(',').map((s) => Number(s.trim()));
if (batches.length < 3 || batches.some((b) => !Number.isInteger(b) || b < 1) || new Set(batches).size !== batches.length)
  fail(`--batches must list at least three different positive integers (two for the line, one or more to check it), got "${a.batches}"`);
batches.sort((x, y) => x - y);
const target = Number(a.target);
if (!Number.isInteger(target) || target <= batches.at(-1)) fail(`--target must be an integer above the largest batch, got "${a.target}"`);
if (!['columns', 'legacy'].includes(a['conv-path'])) fail(`--conv-path must be columns or legacy, got "${a['conv-path']}"`);
if (!['window', 'legacy'].includes(a['lrn-path'])) fail(`--lrn-path must be window or legacy, got "${a['lrn-path']}"`);
if (!['two-stage', 'legacy'].includes(a['bias-grad-path'])) fail(`--bias-grad-path must be two-stage or legacy, got "${a['bias-grad-path']}"`);
if (!process.env.ALEXNET_CUDA_ADDON) fail('set ALEXNET_CUDA_ADDON to the plain emulated build (AXN_CUDA=EMU AXN_BUILD_DIR=build-emu-plain node scripts/install.mjs)');
const work = resolve(a.work);
mkdirSync(work, { recursive: true });

// ---- 1 and 2: the runs ---------------------------------------------------------------------------------
const commands = [];
function runBatch(batch, plan) {
  const legacy = a['conv-path'] === 'legacy';
  const lrnLegacy = a['lrn-path'] === 'legacy', biasLegacy = a['bias-grad-path'] === 'legacy';
  const tag = `${legacy ? 'legacy-' : ''}${lrnLegacy ? 'lrn-legacy-' : ''}${biasLegacy ? 'bias-legacy-' : ''}`;
  const file = join(work, `traffic-${tag}${plan ? 'plan-' : ''}b${batch}.json`);
  const args = ['bench/run.mjs', '--device', 'cuda', '--batch', String(batch), '--check', 'none', '--traffic-only', '--filter', a.filter, '--json', relative(ROOT, file), ...(legacy ? ['--conv-path', 'legacy'] : []), ...(lrnLegacy ? ['--lrn-path', 'legacy'] : []), ...(biasLegacy ? ['--bias-grad-path', 'legacy'] : [])];
  const env = { ...process.env, ...(plan ? { AXN_EMU_SKIP_KERNELS: '1' } : {}) };
  delete env.AXN_EMU_ORDER; // counted launches run in forward order anyway; the plan has no order
  const shown = `${plan ? 'AXN_EMU_SKIP_KERNELS=1 ' : ''}ALEXNET_CUDA_ADDON=${relative(ROOT, process.env.ALEXNET_CUDA_ADDON)} node ${args.map((x) => (/[\\^$|()]/.test(x) ? `'${x}'` : x)).join(' ')}`;
  const reused = a.reuse && existsSync(file);
  commands.push(reused ? `${shown}    # run before; --reuse read its JSON` : shown);
  if (!reused) {
    console.log(`$ ${shown}`);
    const t0 = Date.now();
    const r = spawnSync(process.execPath, args, { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 1 << 26 });
    writeFileSync(file.replace(/\.json$/, '.log'), `${r.stdout}\n${r.stderr}`);
    if (r.status !== 0) fail(`batch ${batch}${plan ? ' (plan)' : ''} failed (exit ${r.status ?? r.signal}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
    console.log(`  batch ${batch}${plan ? ' (plan)' : ''}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } else {
    console.log(`reusing ${relative(ROOT, file)} (--reuse)`);
  }
  const j = JSON.parse(readFileSync(file, 'utf8'));
  if (j.meta.batch !== batch || !j.meta.traffic) fail(`${file} is not a --traffic-only run at batch ${batch}`);
  for (const r of j.results) if (r.error || !r.traffic) fail(`${file}: ${r.key}: ${r.error ?? 'no traffic counted'}`);
  return j;
}
const runs = batches.map((b) => runBatch(b, false));
const plan = runBatch(target, true);

// ---- 3: match, fit, extrapolate ----------------------------------------------------------------------------
const same = (x, y) =>
  x.kind === y.kind && x.name === y.name && (x.op ?? '') === (y.op ?? '') && (!x.gemm || (x.gemm.transA === y.gemm.transA && x.gemm.transB === y.gemm.transB));
const idOf = (e) => `${e.kind} ${e.op ?? e.name}${e.gemm ? ` ${e.gemm.transA ? 'T' : 'N'}${e.gemm.transB ? 'T' : 'N'}` : ''}`;
const [b1, b2] = batches.slice(-2);
const s = (target - b2) / (b2 - b1); // extrapolation lever: v(target) = v2 + s·(v2 − v1)
// Page rounding: a measured value exceeds the true bytes by less than one page per tensor it touches in
// that direction; with up to 4 tensors per direction the fitted value at the target errs by at most
// (1 + 2s)·4 pages either way (v2 and v1 each off by up to 4 pages, v1 weighted by s, v2 by 1 + s).
const TENSORS = 4;
const boundPerDir = (1 + 2 * s) * TENSORS * PAGE_BYTES;
const affineTol = 2 * TENSORS * PAGE_BYTES; // a checked batch off the line by more than this is flagged

function phaseLabels(entries) {
  // forward until the loss's backward; labels for the comparison with the estimate (by position)
  const back = entries.findIndex((e) => e.op === 'softmaxCrossEntropyBackward');
  return entries.map((e, i) => {
    const bwd = back >= 0 && i > back;
    if (e.kind === 'cublas') {
      // the legacy path: per-image GEMMs, and the dw GEMM after the permute
      if (e.name === 'cublasSgemmStridedBatched' || e.name === 'cublasGemmStridedBatchedEx') return bwd ? 'conv dx GEMM' : 'conv GEMM (fwd)';
      if (bwd && entries[i - 1]?.op === 'conv2dBackward.permute') return 'conv dw GEMM';
      // the columns path: a layer's GEMMs end at its epilogue (forward), its col2im or the unpadding of dw
      const next = entries.slice(i + 1).find((x) => x.kind === 'kernel')?.op;
      if (!bwd && next === 'conv2d.epilogue') return 'conv GEMM (fwd)';
      // (the recorded operations are cuBLAS's, column-major: the row-major dw = dz · colᵀ is cuBLAS's T·N)
      if (bwd && (next === 'conv2dBackward.col2im' || next === 'conv2dBackward.unpadK')) return e.gemm?.transA ? 'conv dw GEMM' : 'conv dx GEMM';
      return 'fc GEMM';
    }
    if (e.kind !== 'kernel') return `${e.name}`;
    if (e.op === 'conv2d.im2col') return bwd ? 'im2col again (bwd, for dw)' : 'im2col (fwd)';
    if (e.op === 'conv2d.epilogue' || e.op === 'conv2d.biasRelu') return 'bias + ReLU (+ permute, columns path)';
    if (e.op === 'conv2d.padK' || e.op === 'conv2d.weightsBf16' || e.op === 'conv2dBackward.unpadK') return 'pad K (weights in, dw out)';
    if (e.op === 'conv2dBackward.reluBiasGrad' || e.op === 'linearBackward.reluBiasGrad' || e.op === 'linearBackward.biasGrad') return 'ReLU mask + bias gradient';
    if (/^(dropout|dropoutBackward|softmaxCrossEntropy|softmaxCrossEntropyBackward|topkCorrect|linear\.bias|linear\.biasRelu)$/.test(e.op)) return 'fc bias/ReLU, dropout, softmax, top-k';
    return e.op;
  });
}

const archs = [];
for (const row of plan.results) {
  const key = row.key;
  const seqs = runs.map((r) => {
    const x = r.results.find((y) => y.key === key);
    if (!x) fail(`${key} is missing from the batch-${r.meta.batch} run`);
    return x.traffic.entries;
  });
  const planEntries = row.traffic.entries;
  for (const [i, seq] of [...seqs, planEntries].entries()) {
    const b = i < batches.length ? batches[i] : target;
    if (seq.length !== planEntries.length)
      fail(`${key}: ${seq.length} operations at batch ${b}, ${planEntries.length} in the plan at ${target}: the step's launches change with the batch (chunking?)`);
    seq.forEach((e, k) => {
      if (!same(e, planEntries[k])) fail(`${key}: operation ${k + 1} is ${idOf(e)} at batch ${b} but ${idOf(planEntries[k])} at ${target}`);
    });
  }
  const labels = phaseLabels(planEntries);
  const entries = planEntries.map((p, k) => {
    const at = seqs.map((seq) => seq[k]);
    const e = { i: k + 1, kind: p.kind, name: p.name, op: p.op, label: labels[k], grid: p.grid, block: p.block, gemm: p.gemm, flops: p.flops };
    e.measured = Object.fromEntries(batches.map((b, j) => [b, { read: at[j].readBytes, write: at[j].writeBytes, ...(at[j].pages ? { pagesRead: at[j].pages.read, pagesWrite: at[j].pages.write } : {}) }]));
    if (p.kind === 'kernel') {
      // measured pages, fitted and extrapolated
      const fit = (dir) => {
        const v1 = at[batches.indexOf(b1)][dir];
        const v2 = at[batches.indexOf(b2)][dir];
        const slope = (v2 - v1) / (b2 - b1);
        const line = (b) => v2 + slope * (b - b2);
        const resid = batches.slice(0, -2).map((b, j) => at[j][dir] - line(b));
        return { value: Math.max(0, line(target)), perImage: slope, fixed: v2 - slope * b2, maxResid: Math.max(0, ...resid.map(Math.abs)) };
      };
      const r = fit('readBytes');
      const w = fit('writeBytes');
      Object.assign(e, { readBytes: r.value, writeBytes: w.value, bytesFrom: `pages, extrapolated from batches ${b1} and ${b2}` });
      e.fit = { read: { perImage: r.perImage, fixed: r.fixed, maxResid: r.maxResid }, write: { perImage: w.perImage, fixed: w.fixed, maxResid: w.maxResid } };
      e.affine = Math.max(r.maxResid, w.maxResid) <= affineTol;
    } else {
      // cuBLAS and copies: exact at the target, from the plan's arguments; the line through the small
      // batches must give the same (it is a check that the arguments scale as the fit assumes)
      Object.assign(e, { readBytes: p.readBytes, writeBytes: p.writeBytes, bytesFrom: 'arguments at the target (exact)' });
      const v = (j, dir) => at[j][dir];
      const j1 = batches.indexOf(b1);
      const j2 = batches.indexOf(b2);
      const extra = (dir) => v(j2, dir) + s * (v(j2, dir) - v(j1, dir));
      e.extrapolationGap = Math.max(Math.abs(extra('readBytes') - p.readBytes), Math.abs(extra('writeBytes') - p.writeBytes));
      if (p.kind === 'cublas') {
        const fl = at[j2].flops + s * (at[j2].flops - at[j1].flops);
        e.extrapolationGap = Math.max(e.extrapolationGap, Math.abs(fl - p.flops));
        e.pagesCheck = batches.map((b, j) => (at[j].pages ? { batch: b, read: at[j].pages.read * PAGE_BYTES - at[j].readBytes, write: at[j].pages.write * PAGE_BYTES - at[j].writeBytes } : null)).filter(Boolean);
      }
    }
    return e;
  });
  const precision = row.traffic.precision;
  const totals = totalsOf(entries, precision);
  const kernels = entries.filter((e) => e.kind === 'kernel');
  totals.roundingBound = kernels.length * 2 * boundPerDir;
  totals.notAffine = kernels.filter((e) => !e.affine).map((e) => ({ i: e.i, op: e.op, maxResid: Math.max(e.fit.read.maxResid, e.fit.write.maxResid) }));
  const cublas = entries.filter((e) => e.kind === 'cublas');
  const gaps = entries.filter((e) => e.extrapolationGap !== undefined).map((e) => e.extrapolationGap);
  totals.argumentExtrapolationGap = Math.max(0, ...gaps);
  const pc = cublas.flatMap((e) => e.pagesCheck ?? []);
  totals.cublasPagesMinusArgs = { min: Math.min(...pc.flatMap((x) => [x.read, x.write])), max: Math.max(...pc.flatMap((x) => [x.read, x.write])) };
  // per label, for the comparison with the estimate
  const byLabel = new Map();
  for (const e of entries) {
    const g = byLabel.get(e.label) ?? { label: e.label, n: 0, readBytes: 0, writeBytes: 0, flops: 0, floor: 0 };
    g.n++;
    g.readBytes += e.readBytes;
    g.writeBytes += e.writeBytes;
    g.flops += e.flops;
    g.floor += floorOf([e], peakOf(precision)).roofline;
    byLabel.set(e.label, g);
  }
  archs.push({ key, precision, label: row.label, shape: row.shape, entries, totals, byLabel: [...byLabel.values()], peakDeviceBytes: row.traffic.peakDeviceBytes ?? null });
}

// ---- output ---------------------------------------------------------------------------------------------------
const date = new Date().toISOString();
const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'} × ${os.cpus().length} (${os.platform()} ${os.release()}); no GPU: the emulated CUDA device (AXN_CUDA=EMU, plain build)`;
const self = `ALEXNET_CUDA_ADDON=${relative(ROOT, process.env.ALEXNET_CUDA_ADDON)} node bench/traffic.mjs ${process.argv.slice(2).map((x) => (/[\\^$|()]/.test(x) ? `'${x}'` : x)).join(' ')}`;
const out = {
  meta: {
    tool: 'alexnet-cuda bench/traffic.mjs',
    date,
    machine,
    command: self,
    runs: commands,
    batches,
    target,
    convPath: a['conv-path'],
    lrnPath: a['lrn-path'],
    biasGradPath: a['bias-grad-path'],
    pageBytes: PAGE_BYTES,
    ceilings: CEILINGS,
    method: {
      kernels: `unique ${PAGE_BYTES}-byte pages read and written per launch (page protection on the emulated device), at batches ${batches.join(', ')}; a line through batches ${b1} and ${b2}, checked at the others, extrapolated to ${target}`,
      cublas: `operand bytes from the call's arguments at batch ${target} (AXN_EMU_SKIP_KERNELS=1 plan), exact; FLOPs = 2·m·n·k·batch`,
      copies: 'bytes from arguments at the target',
      floor: 'Σ over operations of max((read + written) / bandwidth, FLOPs / GEMM peak): a floor, not a time',
    },
  },
  archs,
};
const outPrefix = resolve(a.out);
mkdirSync(dirname(outPrefix), { recursive: true });
writeFileSync(`${outPrefix}.json`, `${JSON.stringify(out, null, 1)}\n`);

const MB = (b) => (b / 1e6).toFixed(b < 1e6 ? 3 : 1);
const us = (sec) => (sec * 1e6).toFixed(1);
const md = [];
md.push(`# Traffic per training step at batch ${target}, counted on the emulated device`, '');
md.push(`Made ${date.slice(0, 10)} on ${machine}, by:`, '', '```', self, '```', '');
md.push('which ran:', '', '```', ...commands, '```', '');
md.push(
  'How (bench/README.md, "Traffic per step"):',
  '',
  `- **Kernels: measured.** Each launch ran with every device allocation protected; the emulator's page-fault handler recorded the first read and the first write of each ${PAGE_BYTES}-byte page. A launch's bytes are the unique pages it read and wrote × ${PAGE_BYTES}: what an ideal cache within the launch would move from and to DRAM, and nothing cached across launches (the H200's 50 MB L2 does keep some small tensors between launches). So it is a floor per launch, rounded up to pages: each tensor's last page counts whole.`,
  `- **Scaling.** Measured at batches ${batches.join(', ')}; each kernel's bytes are fitted by a line through batches ${b1} and ${b2} (weights a constant, activations per image), checked at the other batches (a kernel off the line by more than ${affineTol / 1024} KiB is flagged below) and extrapolated to ${target}. Page rounding moves each extrapolated kernel value by at most ±${MB(boundPerDir)} MB per direction if a launch touches at most ${TENSORS} tensors in a direction (each rounded up by less than a page at each measured batch, times the lever ${(1 + 2 * s).toFixed(0)} of the extrapolation: v(${target}) = v(${b2}) + ${s}·(v(${b2}) − v(${b1}))); the bound per step (every kernel, both directions) is in the totals.`,
  `- **The sequence at ${target}.** The same command at batch ${target} with AXN_EMU_SKIP_KERNELS=1 checked and recorded every launch and GEMM without running them: the launches, their order and every cuBLAS call match the small batches one for one (checked), so no convolution is cut into workspace chunks at ${target} that is not at the small batches. Grids and blocks below are the ones at ${target}.`,
  `- **cuBLAS calls: from their arguments** at batch ${target} (m, n, k, lda/ldb/ldc, batch strides; each operand element once, C read as well when β ≠ 0), exact. FLOPs = 2·m·n·k per matrix. At the measured batches the page counter saw the same bytes to within ${MB(Math.max(...archs.map((x) => Math.max(Math.abs(x.totals.cublasPagesMinusArgs.min), Math.abs(x.totals.cublasPagesMinusArgs.max)))))} MB per call (cross-check), and the line through batches ${b1} and ${b2} reproduces the exact values at ${target} to within ${Math.max(...archs.map((x) => x.totals.argumentExtrapolationGap))} bytes/FLOPs.`,
  `- **Convolution path: ${a['conv-path']}** (lib/ops/conv.ts, setConvolutionPath; bench/run.mjs --conv-path); **LRN path: ${a['lrn-path']}** (lib/ops/lrn.ts, setLrnPath); **bias gradient: ${a['bias-grad-path']}** (setBiasGradientPath).`,
  `- **Peak device memory**: the caching allocator's peak in-use bytes in the batch-${target} plan, from before the row's model existed (resetPeakMemoryStats) through the model, the SGD state, a warm-up step and the counted one (memoryStats().native.cuda.peakInUseBytes): what a GPU's allocator would hold at its peak, without cuBLAS's workspace and the CUDA context.`,
  `- **Floor, not a time**: Σ over operations of max((read + written) / ${CEILINGS.bytes / 1e12} TB/s, FLOPs / peak), peak the GEMM ceiling of the row's precision on the ${CEILINGS.card}: TF32 ${CEILINGS.tf32 / 1e12} TFLOP/s (measured), bf16 twice that (not measured); the "bf16 peak" column keeps the row's bytes at the bf16 peak (a tf32 row's bytes: its columns are float32; a bf16 row's are already bf16). No kernel reaches either ceiling, launches do not overlap here, and nothing about speed is claimed before a GPU runs it.`,
  '',
);
md.push('## Totals', '');
md.push(
  markdownTable(
    ['step', 'operations (kernels / cuBLAS / copies)', 'bytes read', 'bytes written', 'read + written', 'FLOPs', 'floor (not a time)', 'floor at bf16 peak (same bytes)', 'page-rounding bound', `peak device memory at ${target}`],
    archs.map((x) => {
      const t = x.totals;
      return [
        `${x.key} (${x.label})`,
        `${t.kernels} / ${t.cublas} / ${t.copies}`,
        fmtGB(t.readBytes),
        fmtGB(t.writeBytes),
        fmtGB(t.readBytes + t.writeBytes),
        `${(t.flops / 1e9).toFixed(1)} GFLOP`,
        `${(t.floor.roofline * 1e3).toFixed(2)} ms (memory alone ${(t.floor.memory * 1e3).toFixed(2)}, GEMM math alone ${(t.floor.compute * 1e3).toFixed(2)})`,
        `${(t.floorBf16Peak.roofline * 1e3).toFixed(2)} ms`,
        `±${fmtMB(t.roundingBound)}`,
        x.peakDeviceBytes == null ? '—' : `${(x.peakDeviceBytes / 2 ** 30).toFixed(2)} GiB`,
      ];
    }),
  ),
  '',
);
for (const x of archs) {
  const na = x.totals.notAffine;
  md.push(`${x.key}: ${na.length ? `kernels off the line at the checked batches (more than ${affineTol / 1024} KiB): ${na.map((n) => `#${n.i} ${n.op} (${MB(n.maxResid)} MB)`).join(', ')}.` : `every kernel is on its line at the checked batches (within ${affineTol / 1024} KiB).`}`, '');
}
for (const x of archs) {
  const tot = x.totals.readBytes + x.totals.writeBytes;
  md.push(`## ${x.key}: ${x.label}, ${x.shape}, ${x.precision}`, '');
  md.push('By kind of operation (labels by position in the step, for the comparison with the estimate):', '');
  md.push(
    markdownTable(
      ['operation', 'count', 'read', 'written', 'share of bytes', 'GFLOP', 'floor µs'],
      [...x.byLabel].sort((p, q) => q.readBytes + q.writeBytes - (p.readBytes + p.writeBytes)).map((g) => [g.label, String(g.n), fmtGB(g.readBytes), fmtGB(g.writeBytes), `${(((g.readBytes + g.writeBytes) / tot) * 100).toFixed(1)} %`, (g.flops / 1e9).toFixed(1), us(g.floor)]),
    ),
    '',
  );
  md.push('Top 10 operations by bytes (read + written):', '');
  md.push(
    markdownTable(
      ['#', 'operation', 'label', 'read MB', 'written MB', 'GFLOP', 'floor µs'],
      [...x.entries].sort((p, q) => q.readBytes + q.writeBytes - (p.readBytes + p.writeBytes)).slice(0, 10).map((e) => [String(e.i), e.kind === 'kernel' ? `${e.op} (${e.name})` : e.name, e.label, MB(e.readBytes), MB(e.writeBytes), (e.flops / 1e9).toFixed(1), us(floorOf([e], peakOf(x.precision)).roofline)]),
    ),
    '',
  );
  md.push(`Every operation, in order (bytes at batch ${target}: kernels extrapolated from measured pages, cuBLAS and copies from arguments; "measured" shows read + written at the small batches):`, '');
  md.push(
    markdownTable(
      ['#', 'kind', 'operation', `grid×block / GEMM at ${target}`, 'read MB', 'written MB', 'GFLOP', 'floor µs', `measured MB at ${batches.join('/')}`, 'on its line'],
      x.entries.map((e) => [
        String(e.i),
        e.kind,
        e.kind === 'kernel' ? `${e.op} (${e.name})` : e.name,
        e.kind === 'kernel' ? fmtGrid(e) : e.gemm ? fmtGemm(e.gemm) : '',
        MB(e.readBytes),
        MB(e.writeBytes),
        e.flops ? (e.flops / 1e9).toFixed(2) : '',
        us(floorOf([e], peakOf(x.precision)).roofline),
        batches.map((b) => MB(e.measured[b].read + e.measured[b].write)).join(' / '),
        e.kind === 'kernel' ? (e.affine ? 'yes' : `no (off by ${MB(Math.max(e.fit.read.maxResid, e.fit.write.maxResid))} MB)`) : 'exact',
      ]),
    ),
    '',
  );
}
writeFileSync(`${outPrefix}.md`, `${md.join('\n')}\n`);
console.log(`wrote ${relative(ROOT, outPrefix)}.json and .md`);
for (const x of archs) {
  const t = x.totals;
  console.log(
    `  ${x.key} at batch ${target}: ${fmtGB(t.readBytes)} read, ${fmtGB(t.writeBytes)} written (${fmtGB(t.readBytes + t.writeBytes)}), ${(t.flops / 1e9).toFixed(1)} GFLOP; ` +
      `floor (not a time) ${(t.floor.roofline * 1e3).toFixed(2)} ms at ${peakOf(x.precision) / 1e12} TFLOP/s and ${CEILINGS.bytes / 1e12} TB/s`,
  );
}
