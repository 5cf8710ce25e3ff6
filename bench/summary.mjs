#!/usr/bin/env node
// The benchmark table: node bench/summary.mjs OURS.json [PEER.json]
//   OURS.json  written by bench/run.mjs --json
//   PEER.json  written by bench/pytorch_peer.py --json (optional; a missing file is reported and skipped)
// Prints markdown: op, shape, ours ms, rate, % of ceiling, target, PyTorch ms, speed-up vs PyTorch
// (PyTorch ms / ours ms: above 1× we are faster). On the CPU the GPU's ceilings and targets don't apply:
// only ms and rates are shown. See bench/README.md for what each figure counts.
import { existsSync, readFileSync } from 'node:fs';
import { CEILINGS, TARGETS, ceilingOf, deriveBackwardRows, fmtBytes, fmtMs, fmtRate, markdownTable, pct, rateOf, targetOf } from './common.mjs';

function fail(msg) {
  console.error(`summary: ${msg}`);
  process.exit(2);
}

function readRun(file, what) {
  let j;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    fail(`cannot read ${what} ${file}: ${e.message}`);
  }
  if (!j || typeof j !== 'object' || !j.meta || !Array.isArray(j.results))
    fail(`${file} is not a benchmark result file (expected { meta, results: [...] }, as bench/run.mjs --json or bench/pytorch_peer.py --json write)`);
  return j;
}

const args = process.argv.slice(2);
if (args.length < 1 || args.length > 2 || args.includes('-h') || args.includes('--help')) {
  console.error('Usage: node bench/summary.mjs OURS.json [PYTORCH.json]');
  process.exit(args.length ? 0 : 2);
}
const ours = readRun(args[0], 'our results');
if (ours.meta.tool !== 'alexnet-cuda') fail(`${args[0]} was written by ${ours.meta.tool}, expected bench/run.mjs (alexnet-cuda)`);
let peer = null;
const notes = [];
if (args[1]) {
  if (existsSync(args[1])) {
    peer = readRun(args[1], 'PyTorch results');
    if (peer.meta.device !== ours.meta.device) notes.push(`PyTorch ran on ${peer.meta.device}, ours on ${ours.meta.device}: speed-ups are not comparable.`);
    if (peer.meta.batch !== ours.meta.batch) notes.push(`PyTorch ran batch ${peer.meta.batch}, ours batch ${ours.meta.batch}: speed-ups are not comparable.`);
  } else {
    notes.push(`No PyTorch results (${args[1]} does not exist).`);
  }
}

const gpu = ours.meta.device === 'cuda';
const okOurs = ours.results.filter((r) => !r.error && r.ms > 0);
const derivedOurs = deriveBackwardRows(okOurs);
const peerOk = peer ? peer.results.filter((r) => !r.error && r.ms > 0) : [];
const peerByKey = new Map([...peerOk, ...deriveBackwardRows(peerOk, okOurs)].map((r) => [r.key, r]));
const byKey = new Map(okOurs.map((r) => [r.key, r]));

// Our rows in run order, each layer's derived dx/db right after its measured backward rows.
const ordered = [];
for (const r of ours.results) {
  ordered.push(r);
  const m = /^(.*)\.bwd_all(\..*)?$/.exec(r.key);
  if (m) ordered.push(...derivedOurs.filter((d) => d.key.startsWith(`${m[1]}.bwd_d`) && d.key.endsWith(m[2] ?? '')));
}

const header = ['op', 'shape', 'ours ms', 'rate'];
if (gpu) header.push('% of ceiling', 'target');
if (peer) header.push('PyTorch ms', 'speed-up vs PyTorch');
let pass = 0;
let failN = 0;
const rows = ordered.map((r) => {
  const op = `${r.label}${r.precision ? ` · ${r.precision}` : ''}`;
  if (r.error) {
    const cells = [op, r.shape, 'ERROR', r.error.slice(0, 80)];
    if (gpu) cells.push('', 'FAIL');
    if (peer) cells.push('', '');
    failN += gpu ? 1 : 0;
    return cells;
  }
  // A derived part smaller than the noise of the two medians it comes from can come out ≤ 0.
  const noisy = r.derived && !(r.ms > 0);
  const cells = [op, r.shape, noisy ? '< noise' : fmtMs(r.ms), noisy ? '—' : fmtRate(r, ours.meta.batch)];
  if (gpu) {
    const t = targetOf(r, byKey);
    if (t.pass === true) pass++;
    if (t.pass === false) failN++;
    cells.push(noisy ? '—' : pct(rateOf(r) / ceilingOf(r)), t.text);
  }
  if (peer) {
    const p = peerByKey.get(r.key);
    const pNoisy = p && p.derived && !(p.ms > 0);
    cells.push(!p ? '—' : pNoisy ? '< noise' : fmtMs(p.ms), p && !pNoisy && !noisy ? `${(p.ms / r.ms).toFixed(2)}×` : '—');
  }
  return cells;
});

const m = ours.meta;
const where = gpu ? `${m.gpu ?? 'GPU'}` : `CPU: ${m.cpu}, ${m.backend?.threads ?? '?'} threads, BLAS ${m.backend?.blas ?? '?'}`;
console.log(`### alexnet-cuda benchmarks — ${where}, batch ${m.batch} (${m.date?.slice(0, 10) ?? 'undated'})\n`);
if (peer) {
  const p = peer.meta;
  console.log(
    `PyTorch peer: torch ${p.torch}${p.cudnn ? ` + cuDNN ${p.cudnn}` : ''} on ${p.gpu ?? `the CPU (${p.threads} threads)`}, ` +
      `${p.layout ?? 'NCHW'}${p.device === 'cuda' ? ', cudnn.benchmark on, TF32 only in tf32 rows' : ''}.`,
  );
}
if (gpu)
  console.log(
    `Ceilings (${CEILINGS.card}): fp32 ${CEILINGS.fp32 / 1e12} TFLOP/s, tf32 ${CEILINGS.tf32 / 1e12} TFLOP/s, ${CEILINGS.bytes / 1e12} TB/s. ` +
      `Targets: memory-bound ≥ ${pct(TARGETS.memFraction)} of ${CEILINGS.bytes / 1e12} TB/s (calls moving ≥ ${fmtBytes(TARGETS.memMinBytes)}); ` +
      `conv forward ≥ ${pct(TARGETS.convVsGemm)} of the bare GEMM's rate at the same precision.`,
  );
else console.log("CPU run: the GPU's ceilings and targets don't apply.");
const share = (mm) => (typeof mm.otherCpuShare === 'number' ? mm.otherCpuShare : null);
if (!gpu && share(m) !== null) {
  const busy = share(m) > 0.1 || (peer && share(peer.meta) > 0.1);
  console.log(
    `Other processes used ${pct(share(m))} of the machine's CPU time during our run` +
      `${peer && share(peer.meta) !== null ? ` and ${pct(share(peer.meta))} during PyTorch's` : ''}` +
      `${busy ? ' — they competed for the cores, so timings are inflated (OpenMP teams wait for a descheduled thread)' : ''}.`,
  );
}
for (const n of notes) console.log(`Note: ${n}`);
console.log('');
console.log(markdownTable(header, rows));
console.log('');
const counted = ours.results.filter((r) => r.perStep);
if (counted.length) {
  console.log('What one training step asks of the device, in steady state (the backend\'s counters; the same at any batch):\n');
  console.log(
    markdownTable(
      ['step', 'kernel launches', 'cuBLAS calls', 'driver allocations', 'pinned allocations', 'host syncs'],
      counted.map((r) => [r.key, ...['launches', 'cublasCalls', 'driverAllocs', 'pinnedAllocs', 'hostSyncs'].map((k) => String(r.perStep[k]))]),
    ),
  );
  console.log('');
}
const extra = peerOk.filter((r) => !byKey.has(r.key));
if (extra.length) {
  console.log(`PyTorch-only rows: ${extra.map((r) => `${r.key} ${fmtMs(r.ms)} ms${r.note ? ` (${r.note})` : ''}`).join('; ')}.`);
}
const errs = ours.results.filter((r) => r.error).length;
const peerErrs = peer ? peer.results.filter((r) => r.error).length : 0;
const parts = [`${ours.results.length} rows measured`];
if (gpu) parts.push(`targets: ${pass} PASS, ${failN} FAIL`);
if (errs) parts.push(`${errs} of ours failed`);
if (peerErrs) parts.push(`${peerErrs} of PyTorch's failed`);
console.log(`${parts.join('; ')}.`);
