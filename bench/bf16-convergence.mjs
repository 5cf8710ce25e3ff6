#!/usr/bin/env node
// Does precision 'bf16' learn what fp32 learns? The small arch on real Fashion-MNIST, trained in fp32 and
// in bf16 from the same seeds (same initial weights, same batches), each scored on the whole test set.
//
// One pair says little: two fp32 runs whose GEMMs merely sum in another order (another CPU's kernels) end
// up a point apart after a few epochs, because training amplifies any difference in the last bit. So the
// criterion — bf16 within 0.5 points of fp32's test top-1 in the same epochs (issue 19) — is judged on the
// mean over several seeds, with its standard error, and the pair-to-pair spread is reported beside it.
//
//   node bench/bf16-convergence.mjs [--device cpu|cuda] [--seeds 1,2,3,4,5,6,7,8] [--limit 20000]
//                                   [--epochs 2] [--lr 0.03] [--batch 64] [--json FILE] [--md FILE]
//                                   [--activations bf16|float32] [--schedule none|cosine] [--warmup 0]
//   --activations float32: bf16 with float32 activations between layers (AlexNet.bf16Activations = false:
//   the GEMM inputs alone rounded), for comparing the two designs on the same seeds.
//   node bench/bf16-convergence.mjs --merge A.json,B.json,... [--json FILE] [--md FILE]
//       pools earlier runs' seeds (same settings, no seed twice) into one summary, training nothing.
//   --schedule cosine: a linear warm-up over --warmup steps, then a half cosine down to 0 over the run's steps
//   (train's schedule 'cosine'), set every step. The decay ends each run at a low rate, where its final
//   accuracy varies far less from seed to seed than at a constant one, so fewer seeds settle the question.
// --json is rewritten after every seed (with "partial": true until the last), so a run that is stopped
// keeps the seeds it finished.
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    seeds: { type: 'string', default: '1,2,3,4,5,6,7,8' },
    limit: { type: 'string', default: '20000' },
    epochs: { type: 'string', default: '2' },
    lr: { type: 'string', default: '0.03' },
    batch: { type: 'string', default: '64' },
    json: { type: 'string' },
    md: { type: 'string' },
    merge: { type: 'string' },
    activations: { type: 'string', default: 'bf16' },
    schedule: { type: 'string', default: 'none' },
    warmup: { type: 'string', default: '0' },
  },
});
const fail = (m) => {
  console.error(`bf16-convergence: ${m}`);
  process.exit(2);
};
const seeds = o.merge ? [] : o.seeds.split(',').map(Number);
if (!o.merge && !seeds.length || seeds.some((s) => !Number.isInteger(s) || s < 0)) fail(`--seeds: expected non-negative integers, got ${o.seeds}`);
const limit = Number(o.limit), epochs = Number(o.epochs), lr = Number(o.lr), batch = Number(o.batch);
for (const [k, v] of Object.entries({ limit, epochs, batch })) if (!Number.isInteger(v) || v < 1) fail(`--${k}: expected a positive integer, got ${o[k]}`);
if (!(lr > 0)) fail(`--lr: expected a positive number, got ${o.lr}`);
if (o.device !== 'cpu' && o.device !== 'cuda') fail(`--device: expected cpu or cuda, got ${o.device}`);
if (o.activations !== 'bf16' && o.activations !== 'float32') fail(`--activations: expected bf16 or float32, got ${o.activations}`);
if (o.schedule !== 'none' && o.schedule !== 'cosine') fail(`--schedule: expected none or cosine, got ${o.schedule}`);
const warmup = Number(o.warmup);
if (!Number.isInteger(warmup) || warmup < 0) fail(`--warmup: expected an integer ≥ 0, got ${o.warmup}`);
if (warmup > 0 && o.schedule !== 'cosine') fail('--warmup: only with --schedule cosine');

const pkg = await import(pathToFileURL(resolve(root, 'dist', 'index.js')).href);
const { createAlexNet, train, evaluate, data, backendInfo } = pkg;
const info = backendInfo();
if (o.device === 'cuda' && !info.cuda) fail(`--device cuda: CUDA is not available: ${info.cudaReason}`);

const rows = [];
const t0 = Date.now();
let settings = { device: o.device, limit, epochs, lr, batch, activations: o.activations, schedule: o.schedule, warmup };
const sources = [];
if (o.merge) {
  for (const file of o.merge.split(',')) {
    let d;
    try {
      d = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      fail(`--merge: could not read ${file}: ${e.message}`);
    }
    if (!Array.isArray(d.rows)) fail(`--merge: ${file} has no rows (not a bf16-convergence JSON)`);
    // Files from before bf16 activations existed ran with float32 activations; before --schedule, none.
    const s = { device: d.device, limit: d.limit, epochs: d.epochs, lr: d.lr, batch: d.batch, activations: d.activations ?? 'float32', schedule: d.schedule ?? 'none', warmup: d.warmup ?? 0 };
    if (!sources.length) settings = s;
    else if (JSON.stringify(s) !== JSON.stringify(settings)) fail(`--merge: ${file} was run with ${JSON.stringify(s)}, the first file with ${JSON.stringify(settings)}`);
    for (const r of d.rows) {
      if (rows.some((x) => x.seed === r.seed)) fail(`--merge: seed ${r.seed} is in more than one file (${file})`);
      rows.push(r);
    }
    sources.push({ file, command: d.command, machine: d.machine, seeds: d.rows.map((r) => r.seed), partial: d.partial === true });
  }
  rows.sort((a, b) => a.seed - b.seed);
}
const testSet = o.merge ? null : data.loadFashionMnist({ split: 'test' });
for (const seed of seeds) {
  const row = { seed };
  for (const precision of ['fp32', 'bf16']) {
    const t = Date.now();
    const model = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed, dropout: 0, precision, device: o.device });
    model.bf16Activations = o.activations === 'bf16';
    const r = await train({ model, train: data.loadFashionMnist({ split: 'train', limit }), epochs, batchSize: batch, lr, seed, ...(o.schedule === 'cosine' ? { schedule: 'cosine', warmupSteps: warmup } : { schedule: 'none' }) });
    const e = await evaluate(model, testSet, { batchSize: 500 });
    row[precision] = { top1: e.top1 * 100, loss: e.loss, n: e.n, seconds: (Date.now() - t) / 1000 };
    r.optimizer.dispose();
    model.dispose();
  }
  row.diff = row.bf16.top1 - row.fp32.top1;
  rows.push(row);
  console.log(`seed ${seed}: fp32 ${row.fp32.top1.toFixed(2)} %, bf16 ${row.bf16.top1.toFixed(2)} % (${row.diff >= 0 ? '+' : ''}${row.diff.toFixed(2)}); test loss ${row.fp32.loss.toFixed(4)} / ${row.bf16.loss.toFixed(4)}`);
  if (o.json && rows.length < seeds.length) report(true);
}
report(false);

function report(partial) {
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
// A run that ends near chance (10 classes: 10 %) did not learn: it diverged early (its loss jumped and its
// ReLUs died). Counted apart, per precision, and the statistics are given with and without those pairs.
const LEARNED = 50;
const failed = (p) => rows.filter((r) => r[p].top1 < LEARNED).map((r) => r.seed);
const learnedRows = rows.filter((r) => r.fp32.top1 >= LEARNED && r.bf16.top1 >= LEARNED);
const stats = (rs) => {
  const d = rs.map((r) => r.diff);
  const m = mean(d);
  const sdv = d.length > 1 ? Math.sqrt(d.reduce((s2, x) => s2 + (x - m) ** 2, 0) / (d.length - 1)) : NaN;
  const sev = sdv / Math.sqrt(d.length);
  return { n: d.length, meanDiff: m, pairSd: sdv, se: sev, interval: [m - 2 * sev, m + 2 * sev] };
};
const diffs = rows.map((r) => r.diff);
const md = mean(diffs);
const sd = diffs.length > 1 ? Math.sqrt(diffs.reduce((s, d) => s + (d - md) ** 2, 0) / (diffs.length - 1)) : NaN;
const se = sd / Math.sqrt(diffs.length);
const lo = md - 2 * se, hi = md + 2 * se;
const settled = lo >= -0.5 && hi <= 0.5;
// The one-sided reading: bf16 no worse than fp32 by more than 0.5 points (the lower end alone).
const noWorse = lo >= -0.5;
const summary = {
  fp32: mean(rows.map((r) => r.fp32.top1)),
  bf16: mean(rows.map((r) => r.bf16.top1)),
  meanDiff: md,
  pairSd: sd,
  se,
  within: Math.abs(md) <= 0.5,
  interval: [lo, hi],
  settled,
  noWorse,
  didNotLearn: { fp32: failed('fp32'), bf16: failed('bf16') },
  learnedPairs: stats(learnedRows),
};
const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'} × ${os.cpus().length}`;
const cmd = `node bench/bf16-convergence.mjs ${process.argv.slice(2).join(' ')}`.trim();
const { device, limit: lim, epochs: ep, lr: rate, batch: bs, activations, schedule, warmup: wu } = settings;
const scheduleText = schedule === 'cosine' ? `${wu ? `linear warm-up over ${wu} steps, then ` : ''}a half cosine to 0 over the run, set every step` : 'no schedule';
const lines = [
  `# bf16 vs fp32: test top-1 of the small arch on Fashion-MNIST, same seeds`,
  '',
  ...(sources.length
    ? [`Pooled ${new Date().toISOString().slice(0, 10)} by \`${cmd}\` from:`, '', ...sources.map((x) => `- ${x.file}: seeds ${x.seeds.join(', ')}${x.partial ? ' (a run stopped before its last seed)' : ''}, made on ${x.machine} by \`${x.command}\``), '']
    : [`Made ${new Date().toISOString().slice(0, 10)} on ${machine} (${device === 'cuda' ? info.gpus?.[0]?.name ?? 'CUDA' : `the CPU, ${info.blas} GEMM`}), by \`${cmd}\` in ${((Date.now() - t0) / 60000).toFixed(1)} min${partial ? ` (partial: ${rows.length} of ${seeds.length} seeds so far)` : ''}.`]),
  `Each run: ${lim.toLocaleString('en-US')} training images, ${ep} epochs, batch ${bs}, SGD lr ${rate} (momentum 0.9, weight decay 5e-4, ${scheduleText}), dropout off; bf16 with ${activations === 'bf16' ? 'bf16 activations between layers' : 'float32 activations (the GEMM inputs alone rounded)'}; scored on the ${rows[0]?.fp32.n.toLocaleString('en-US')} test images.`,
  '',
  '| seed | fp32 top-1 | bf16 top-1 | bf16 − fp32 | test loss fp32 / bf16 |',
  '|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.seed} | ${r.fp32.top1.toFixed(2)} % | ${r.bf16.top1.toFixed(2)} % | ${r.diff >= 0 ? '+' : ''}${r.diff.toFixed(2)} | ${r.fp32.loss.toFixed(4)} / ${r.bf16.loss.toFixed(4)} |`),
  `| **mean** | **${summary.fp32.toFixed(2)} %** | **${summary.bf16.toFixed(2)} %** | **${md >= 0 ? '+' : ''}${md.toFixed(2)}**${rows.length > 1 ? ` ± ${se.toFixed(2)} (standard error)` : ''} | |`,
  '',
  ...(rows.length < 2
    ? ['One seed: no spread to judge by, and nothing settled about the 0.5-point criterion (run several: --seeds).']
    : [
      `Pair-to-pair spread of the difference: ${sd.toFixed(2)} points (sample standard deviation over ${rows.length} seeds). ` +
        `Criterion (issue 19): bf16 within 0.5 points of fp32. The mean difference is ${md >= 0 ? '+' : ''}${md.toFixed(2)}, ` +
        `${summary.within ? 'within' : 'outside'} 0.5; its interval of ±2 standard errors, [${lo >= 0 ? '+' : ''}${lo.toFixed(2)}, ${hi >= 0 ? '+' : ''}${hi.toFixed(2)}], ` +
        (settled ? `lies inside ±0.5: settled at ${rows.length} seeds.` : `does not lie inside ±0.5: ${rows.length} seeds cannot settle a 0.5-point question at this spread (about ${Math.ceil((4 * sd / 0.5) ** 2)} would).`),
      '',
      `Read one-sided — bf16 no worse than fp32 by more than 0.5 points — the interval's lower end, ${lo >= 0 ? '+' : ''}${lo.toFixed(2)}, ` +
        (noWorse ? 'lies above −0.5: bf16 is no worse by more than half a point (about 97.7 % one-sided confidence, normal approximation).' : 'does not lie above −0.5: not shown.'),
      '',
      `Runs that did not learn (test top-1 below ${LEARNED} %: diverged early): fp32 ${summary.didNotLearn.fp32.length ? `seeds ${summary.didNotLearn.fp32.join(', ')}` : 'none'}; bf16 ${summary.didNotLearn.bf16.length ? `seeds ${summary.didNotLearn.bf16.join(', ')}` : 'none'}, of ${rows.length} each.` +
        (learnedRows.length < rows.length && learnedRows.length > 1
          ? ` Over the ${learnedRows.length} pairs where both learned: mean difference ${summary.learnedPairs.meanDiff >= 0 ? '+' : ''}${summary.learnedPairs.meanDiff.toFixed(2)} ± ${summary.learnedPairs.se.toFixed(2)}, pair spread ${summary.learnedPairs.pairSd.toFixed(2)}, ±2 SE interval [${summary.learnedPairs.interval.map((v) => `${v >= 0 ? '+' : ''}${v.toFixed(2)}`).join(', ')}].`
          : ''),
      ]),
  '',
];
if (!partial) console.log(`\n${lines.join('\n')}`);
if (o.md) writeFileSync(o.md, lines.join('\n'));
if (o.json) writeFileSync(o.json, `${JSON.stringify({ command: cmd, machine: sources.length ? sources.map((x) => x.machine).join('; ') : machine, device, limit: lim, epochs: ep, lr: rate, batch: bs, activations, schedule, warmup: wu, ...(partial ? { partial: true } : {}), ...(sources.length ? { merged: sources } : {}), rows, summary }, null, 2)}\n`);
}
