#!/usr/bin/env node
// A/B of the two convolution paths (issue 19 item 1; native/ops/conv2d.h) in one process: one model,
// one batch, and training steps in alternating blocks on the columns and the legacy path
// (ops.setConvolutionPath), so that machine noise that drifts over seconds falls on both alike.
//
//   node bench/conv-path.mjs [--arch small|paper|torchvision] [--batch N] [--device cpu|cuda]
//                            [--blocks 12] [--steps 3]
// Prints, per path, the median step time over its blocks (each block: one untimed step on the path just
// switched to, then --steps timed steps, awaited one by one).
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    arch: { type: 'string', default: 'paper' },
    batch: { type: 'string' },
    device: { type: 'string', default: 'cpu' },
    blocks: { type: 'string', default: '12' },
    steps: { type: 'string', default: '3' },
  },
  strict: true,
});
const fail = (m) => {
  console.error(`conv-path: ${m}`);
  process.exit(2);
};
if (!['small', 'paper', 'torchvision'].includes(a.arch)) fail(`--arch must be small, paper or torchvision, got "${a.arch}"`);
if (!['cpu', 'cuda'].includes(a.device)) fail(`--device must be cpu or cuda, got "${a.device}"`);
const small = a.arch === 'small';
const N = Number(a.batch ?? (small ? 64 : 8));
const blocks = Number(a.blocks);
const steps = Number(a.steps);
for (const [k, v] of [['batch', N], ['blocks', blocks], ['steps', steps]]) if (!Number.isInteger(v) || v < 1) fail(`--${k} must be a positive integer, got "${a[k]}"`);
if (blocks % 2) fail('--blocks must be even (the paths alternate)');

const pkg = await import(pathToFileURL(resolve(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'index.js')).href);
const device = a.device;
const model = pkg.createAlexNet({ arch: a.arch, numClasses: small ? 10 : 1000, seed: 1, device, ...(small ? { inChannels: 1 } : {}) });
const S = small ? 28 : a.arch === 'torchvision' ? 224 : 227;
const C = small ? 1 : 3;
const x = pkg.Tensor.from(Float32Array.from({ length: N * C * S * S }, (_, i) => Math.sin(i)), [N, C, S, S], device);
const y = pkg.Tensor.from(Int32Array.from({ length: N }, (_, i) => i % 10), [N], device, 'int32');
const opt = new pkg.SGD(model.parameters(), { lr: 0.001, momentum: 0.9 });
const times = { columns: [], legacy: [] };
for (let r = 0; r < blocks; r++) {
  const p = r % 2 ? 'legacy' : 'columns';
  pkg.ops.setConvolutionPath(p);
  await model.step(x, y, opt);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await model.step(x, y, opt);
  times[p].push((performance.now() - t0) / steps);
}
pkg.ops.setConvolutionPath('columns');
const med = (v) => [...v].sort((p, q) => p - q)[v.length >> 1];
const info = pkg.backendInfo();
console.log(`${a.arch} arch, batch ${N}, ${device}${device === 'cuda' && info.emulated ? ' (emulated)' : ''}: columns ${med(times.columns).toFixed(1)} ms/step, legacy ${med(times.legacy).toFixed(1)} ms/step (medians of ${blocks / 2} blocks of ${steps} steps each, alternating); legacy / columns = ${(med(times.legacy) / med(times.columns)).toFixed(2)}`);
console.log(`  blocks (ms/step): ${JSON.stringify(Object.fromEntries(Object.entries(times).map(([k, v]) => [k, v.map((t) => Math.round(t * 10) / 10)])))}`);
[x, y].forEach((t) => t.dispose());
model.dispose?.();
