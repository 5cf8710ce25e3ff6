#!/usr/bin/env node
// The benchmark table from saved results: node bench/summary.mjs RUN.json [PEER.json]
//   RUN.json   written by bench/run.mjs --json (with --vs-pytorch it holds PyTorch's timings too)
//   PEER.json  written by bench/pytorch_peer.py --json (optional, for runs made separately; a missing file
//              is reported and skipped)
// Prints markdown (bench/table.mjs): op, shape, ours ms, rate, % of ceiling and target (GPU), PyTorch ms,
// speed-up (PyTorch ms / ours ms: above 1× we are faster), error vs PyTorch and vs the CPU oracle,
// tolerance, verdict. See bench/README.md for what each figure counts.
import { existsSync, readFileSync } from 'node:fs';
import { summaryMarkdown } from './table.mjs';

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
  console.error('Usage: node bench/summary.mjs RUN.json [PYTORCH.json]');
  process.exit(args.length ? 0 : 2);
}
const ours = readRun(args[0], 'our results');
if (ours.meta.tool !== 'alexnet-cuda') fail(`${args[0]} was written by ${ours.meta.tool}, expected bench/run.mjs (alexnet-cuda)`);
let peer = ours.peer ?? null;
const notes = [];
if (args[1]) {
  if (existsSync(args[1])) peer = readRun(args[1], 'PyTorch results');
  else notes.push(`No PyTorch results (${args[1]} does not exist).`);
}
console.log(summaryMarkdown(ours, peer, notes));
