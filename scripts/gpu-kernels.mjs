#!/usr/bin/env node
// Every CUDA kernel of the package once, forward and backward, at small shapes: what compute-sanitizer
// (memcheck, racecheck, synccheck) runs over in the GPU check (scripts/gpu-check.sh), where sanitizing
// the test suite at full size would not finish in a device call. Each op's CUDA result is compared with
// the CPU oracle (loosely: correctness is the tests' job; this catches a kernel that wrote garbage under
// the sanitizer). Exit 0 when every op ran and matched; prints one line per op.
//
//   node scripts/gpu-kernels.mjs [--device cuda]       (ALEXNET_CUDA_ADDON picks another addon build)
// On the emulated device (AXN_CUDA=EMU) it is a quick smoke test of the same list.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const m = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
const { Tensor, ops, synchronize, backendInfo } = m;

const info = backendInfo();
if (!info.cuda) {
  console.error(`gpu-kernels: no CUDA device: ${info.cudaReason}`);
  process.exit(1);
}

let seed = 1;
function rand(n, lo = -1, hi = 1) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    a[i] = lo + (hi - lo) * (seed / 2 ** 32);
  }
  return a;
}
const numel = (s) => s.reduce((a, b) => a * b, 1);
const both = (data, shape) => [Tensor.from(data, shape, 'cpu'), Tensor.from(data, shape, 'cuda')];
function relErr(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

let failed = 0;
const live = [];
const keep = (...ts) => {
  live.push(...ts.filter(Boolean));
  return ts;
};
async function check(name, pairs, tol = 1e-3) {
  // pairs: [[cpuTensor, cudaTensor], ...]
  let worst = 0;
  for (const [c, g] of pairs) {
    const [a, b] = [await g.toFloat32Array(), await c.toFloat32Array()];
    const e = a.some((v) => Number.isNaN(v)) && !b.some((v) => Number.isNaN(v)) ? Infinity : relErr(a, b);
    worst = Math.max(worst, e);
  }
  const ok = worst <= tol;
  if (!ok) failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name.padEnd(34)} ‖Δ‖/‖ref‖ ${worst.toExponential(2)}`);
}
async function run(name, fn) {
  try {
    await fn();
  } catch (e) {
    failed++;
    console.log(`FAIL ${name.padEnd(34)} ${e.message.split('\n')[0]}`);
  }
}

// bf16: the columns path's bf16 storage kernels (im2col, col2im, weights copy, dz) and cuBLAS on bf16 operands
for (const precision of ['fp32', 'tf32', 'bf16']) {
  await run(`conv2d (groups 2) ${precision}`, async () => {
    const xs = [2, 8, 9, 9], ws = [6, 4, 3, 3], o = { stride: 2, padding: 1, groups: 2, precision };
    const [xc, xg] = keep(...both(rand(numel(xs)), xs));
    const [wc, wg] = keep(...both(rand(numel(ws)), ws));
    const [bc, bg] = keep(...both(rand(6), [6]));
    const yc = ops.conv2d(xc, wc, bc, o), yg = ops.conv2d(xg, wg, bg, o);
    const dys = yc.shape;
    const [dc, dg] = keep(...both(rand(numel(dys)), dys));
    const gc = ops.conv2dBackward(dc, xc, wc, o), gg = ops.conv2dBackward(dg, xg, wg, o);
    keep(yc, yg, gc.dx, gg.dx, gc.dw, gg.dw, gc.db, gg.db);
    await check(`conv2d + backward ${precision}`, [[yc, yg], [gc.dx, gg.dx], [gc.dw, gg.dw], [gc.db, gg.db]], precision === 'tf32' ? 5e-3 : precision === 'bf16' ? 3e-2 : 1e-5);
  });
  await run(`linear ${precision}`, async () => {
    const [xc, xg] = keep(...both(rand(3 * 20), [3, 20]));
    const [wc, wg] = keep(...both(rand(7 * 20), [7, 20]));
    const [bc, bg] = keep(...both(rand(7), [7]));
    const yc = ops.linear(xc, wc, bc, { precision }), yg = ops.linear(xg, wg, bg, { precision });
    const [dc, dg] = keep(...both(rand(21), [3, 7]));
    const gc = ops.linearBackward(dc, xc, wc, { precision }), gg = ops.linearBackward(dg, xg, wg, { precision });
    keep(yc, yg, gc.dx, gg.dx, gc.dw, gg.dw, gc.db, gg.db);
    await check(`linear + backward ${precision}`, [[yc, yg], [gc.dx, gg.dx], [gc.dw, gg.dw], [gc.db, gg.db]], precision === 'tf32' ? 5e-3 : precision === 'bf16' ? 3e-2 : 1e-5);
  });
}
// Conv2d/Linear → ReLU fused (Sequential's default): the bias + ReLU epilogue and the ReLU mask in the
// bias gradient's pass. Both backwards take the CPU's output as the mask (a pre-activation within rounding
// of 0 may land on either side).
await run('conv2d + ReLU fused', async () => {
  const xs = [2, 8, 9, 9], ws = [6, 4, 3, 3], o = { stride: 2, padding: 1, groups: 2, precision: 'fp32' };
  const [xc, xg] = keep(...both(rand(numel(xs)), xs));
  const [wc, wg] = keep(...both(rand(numel(ws)), ws));
  const [bc, bg] = keep(...both(rand(6), [6]));
  const yc = ops.conv2d(xc, wc, bc, { ...o, relu: true }), yg = ops.conv2d(xg, wg, bg, { ...o, relu: true });
  const [, mg] = keep(...both(await yc.toFloat32Array(), yc.shape));
  const [dc, dg] = keep(...both(rand(yc.size), yc.shape));
  const gc = ops.conv2dBackward(dc, xc, wc, { ...o, reluOutput: yc }), gg = ops.conv2dBackward(dg, xg, wg, { ...o, reluOutput: mg });
  keep(yc, yg, gc.dx, gg.dx, gc.dw, gg.dw, gc.db, gg.db);
  await check('conv2d + ReLU fused, + backward', [[yc, yg], [gc.dx, gg.dx], [gc.dw, gg.dw], [gc.db, gg.db]], 1e-5);
});
await run('linear + ReLU fused', async () => {
  const [xc, xg] = keep(...both(rand(3 * 20), [3, 20]));
  const [wc, wg] = keep(...both(rand(7 * 20), [7, 20]));
  const [bc, bg] = keep(...both(rand(7), [7]));
  const o = { precision: 'fp32', relu: true };
  const yc = ops.linear(xc, wc, bc, o), yg = ops.linear(xg, wg, bg, o);
  const [, mg] = keep(...both(await yc.toFloat32Array(), yc.shape));
  const [dc, dg] = keep(...both(rand(21), [3, 7]));
  const gc = ops.linearBackward(dc, xc, wc, { precision: 'fp32', reluOutput: yc }), gg = ops.linearBackward(dg, xg, wg, { precision: 'fp32', reluOutput: mg });
  keep(yc, yg, gc.dx, gg.dx, gc.dw, gg.dw, gc.db, gg.db);
  await check('linear + ReLU fused, + backward', [[yc, yg], [gc.dx, gg.dx], [gc.dw, gg.dw], [gc.db, gg.db]], 1e-5);
});
await run('maxPool2d', async () => {
  const s = [2, 3, 11, 11], o = { kernelSize: 3, stride: 2 };
  const [xc, xg] = keep(...both(rand(numel(s)), s));
  const yc = ops.maxPool2d(xc, o), yg = ops.maxPool2d(xg, o);
  const [dc, dg] = keep(...both(rand(yc.y.size), yc.y.shape));
  const bc = ops.maxPool2dBackward(dc, yc.indices, s, o), bg = ops.maxPool2dBackward(dg, yg.indices, s, o);
  keep(yc.y, yg.y, yc.indices, yg.indices, bc, bg);
  await check('maxPool2d + backward', [[yc.y, yg.y], [bc, bg]], 1e-6);
});
await run('adaptiveAvgPool2d', async () => {
  const s = [2, 3, 13, 13];
  const [xc, xg] = keep(...both(rand(numel(s)), s));
  const yc = ops.adaptiveAvgPool2d(xc, [6, 6]), yg = ops.adaptiveAvgPool2d(xg, [6, 6]);
  const [dc, dg] = keep(...both(rand(yc.size), yc.shape));
  const bc = ops.adaptiveAvgPool2dBackward(dc, s), bg = ops.adaptiveAvgPool2dBackward(dg, s);
  keep(yc, yg, bc, bg);
  await check('adaptiveAvgPool2d + backward', [[yc, yg], [bc, bg]], 1e-6);
});
await run('localResponseNorm', async () => {
  const s = [2, 7, 5, 5], o = { size: 5, alpha: 1e-2, beta: 0.75, k: 2 };
  const [xc, xg] = keep(...both(rand(numel(s)), s));
  const yc = ops.localResponseNorm(xc, o), yg = ops.localResponseNorm(xg, o);
  const [dc, dg] = keep(...both(rand(numel(s)), s));
  const bc = ops.localResponseNormBackward(dc, xc, o), bg = ops.localResponseNormBackward(dg, xg, o);
  keep(yc, yg, bc, bg);
  await check('localResponseNorm + backward', [[yc, yg], [bc, bg]], 1e-5);
});
// The legacy kernels kept for issue 19's A/B (the GPU check's call 2 times them): LRN's, and the bias
// gradient's one-block-per-channel reduction on both convolution paths, plain and with the ReLU mask (dz
// in (K, N, P), in NCHW scratch and over dy).
await run('localResponseNorm legacy', async () => {
  const s = [2, 7, 5, 5], o = { size: 5, alpha: 1e-2, beta: 0.75, k: 2 };
  const [xc, xg] = keep(...both(rand(numel(s)), s));
  const fc = ops.localResponseNormLegacy(xc, o), fg = ops.localResponseNormLegacy(xg, o);
  const [dc, dg] = keep(...both(rand(numel(s)), s));
  const bc = ops.localResponseNormLegacyBackward(dc, xc, fc.y, fc.scale, o), bg = ops.localResponseNormLegacyBackward(dg, xg, fg.y, fg.scale, o);
  keep(fc.y, fg.y, fc.scale, fg.scale, bc, bg);
  await check('localResponseNorm legacy + backward', [[fc.y, fg.y], [fc.scale, fg.scale], [bc, bg]], 1e-5);
});
await run('conv2d bias gradient legacy', async () => {
  const prev = ops.setBiasGradientPath('legacy');
  try {
    const xs = [2, 8, 9, 9], ws = [6, 4, 3, 3], o = { stride: 2, padding: 1, groups: 2, precision: 'fp32' };
    const [xc, xg] = keep(...both(rand(numel(xs)), xs));
    const [wc, wg] = keep(...both(rand(numel(ws)), ws));
    const [bc, bg] = keep(...both(rand(6), [6]));
    // the ReLU's output as the mask (the CPU's, on both devices)
    const yc = ops.conv2d(xc, wc, bc, { ...o, relu: true });
    keep(yc);
    const [, mg] = keep(...both(await yc.toFloat32Array(), yc.shape));
    const pairs = [];
    // plain (dz in (K, N, P) on the columns path, none on the legacy one), and with the ReLU mask (dz in
    // (K, N, P), or NCHW into scratch and over dy)
    for (const [path, relu, inPlace] of [['columns', false, false], ['legacy', false, false], ['columns', true, false], ['legacy', true, false], ['legacy', true, true]]) {
      const was = ops.setConvolutionPath(path);
      try {
        const [dc, dg] = keep(...both(rand(yc.size), yc.shape));
        const r = (m) => (relu ? { reluOutput: m, reluInPlace: inPlace } : {});
        const gc = ops.conv2dBackward(dc, xc, wc, { ...o, ...r(yc) }), gg = ops.conv2dBackward(dg, xg, wg, { ...o, ...r(mg) });
        keep(gc.dx, gg.dx, gc.dw, gg.dw, gc.db, gg.db);
        pairs.push([gc.db, gg.db], [gc.dw, gg.dw]);
        if (inPlace) pairs.push([dc, dg]);
      } finally {
        ops.setConvolutionPath(was);
      }
    }
    await check('conv2d legacy bias grad (both paths, ReLU)', pairs, 1e-5);
  } finally {
    ops.setBiasGradientPath(prev);
  }
});
await run('relu', async () => {
  const [xc, xg] = keep(...both(rand(1001), [1001]));
  const yc = ops.relu(xc), yg = ops.relu(xg);
  const [dc, dg] = keep(...both(rand(1001), [1001]));
  const bc = ops.reluBackward(dc, yc), bg = ops.reluBackward(dg, yg);
  keep(yc, yg, bc, bg);
  await check('relu + backward', [[yc, yg], [bc, bg]], 0);
});
await run('dropout', async () => {
  const o = { p: 0.5, seed: 7, offset: 3 };
  const [xc, xg] = keep(...both(rand(1001), [1001]));
  const yc = ops.dropout(xc, o), yg = ops.dropout(xg, o);
  const bc = ops.dropoutBackward(xc, o), bg = ops.dropoutBackward(xg, o);
  keep(yc, yg, bc, bg);
  await check('dropout + backward', [[yc, yg], [bc, bg]], 0);
});
await run('softmaxCrossEntropy, topkCorrect', async () => {
  const labels = Int32Array.from([0, 3, 36, 7, 11]);
  // rows 0 and 2: the label holds the largest logit (top-1 and top-5 count them)
  const lv = rand(5 * 37, -4, 4);
  lv[0 * 37 + 0] = 9;
  lv[2 * 37 + 36] = 9;
  const [lc, lg] = keep(...both(lv, [5, 37]));
  const [yc, yg] = keep(Tensor.from(labels, [5], 'cpu'), Tensor.from(labels, [5], 'cuda'));
  const fc = ops.softmaxCrossEntropy(lc, yc), fg = ops.softmaxCrossEntropy(lg, yg);
  const bc = ops.softmaxCrossEntropyBackward(fc.probs, yc), bg = ops.softmaxCrossEntropyBackward(fg.probs, yg);
  const kc = ops.topkCorrect(lc, yc, [1, 5]), kg = ops.topkCorrect(lg, yg, [1, 5]);
  keep(fc.loss, fg.loss, fc.probs, fg.probs, bc, bg, kc, kg);
  await check('softmaxCrossEntropy + backward', [[fc.loss, fg.loss], [fc.probs, fg.probs], [bc, bg]], 1e-5);
  const [a, b] = [await kg.toInt32Array(), await kc.toInt32Array()];
  const same = a.every((v, i) => v === b[i]);
  if (!same) failed++;
  console.log(`${same ? 'ok  ' : 'FAIL'} ${'topkCorrect'.padEnd(34)} ${Array.from(a).join(', ')}`);
});
await run('sgdUpdate', async () => {
  const o = { lr: 0.01, momentum: 0.9, weightDecay: 5e-4, firstStep: false };
  const p0 = rand(1001), g0 = rand(1001), m0 = rand(1001);
  const [pc, pg] = keep(...both(p0, [1001]));
  const [gc, gg] = keep(...both(g0, [1001]));
  const [mc, mg] = keep(...both(m0, [1001]));
  ops.sgdUpdate(pc, gc, mc, o);
  ops.sgdUpdate(pg, gg, mg, o);
  await check('sgdUpdate', [[pc, pg], [mc, mg]], 1e-6);
});
await run('resizeBilinear', async () => {
  const s = [2, 1, 7, 9];
  const [xc, xg] = keep(...both(rand(numel(s)), s));
  const yc = ops.resizeBilinear(xc, [15, 13]), yg = ops.resizeBilinear(xg, [15, 13]);
  const [dc, dg] = keep(...both(rand(yc.size), yc.shape));
  const bc = ops.resizeBilinearBackward(dc, s), bg = ops.resizeBilinearBackward(dg, s);
  keep(yc, yg, bc, bg);
  await check('resizeBilinear + backward', [[yc, yg], [bc, bg]], 1e-6);
});
await run('element-wise', async () => {
  const [xc, xg] = keep(...both(rand(1003), [1003]));
  const [yc, yg] = keep(...both(rand(1003), [1003]));
  const zc = ops.add(xc, yc), zg = ops.add(xg, yg);
  ops.axpy_(yc, xc, 0.5);
  ops.axpy_(yg, xg, 0.5);
  ops.scale_(xc, 3);
  ops.scale_(xg, 3);
  const sc = ops.sumSquares(xc), sg = ops.sumSquares(xg);
  keep(zc, zg, sc, sg);
  await check('add, axpy_, scale_, sumSquares', [[zc, zg], [yc, yg], [xc, xg], [sc, sg]], 1e-6);
});

synchronize();
for (const t of live) t.dispose();
console.log(failed ? `gpu-kernels: ${failed} FAILED` : 'gpu-kernels: every kernel ran and matched the CPU');
process.exit(failed ? 1 : 0);
