// Model level against PyTorch: same weights, same input → same logits, and the same weights after one
// SGD step (momentum 0.9, weight decay 5e-4), for torchvision's AlexNet (torchvision's own class) and the
// paper's (a PyTorch definition of the same network, test/reference/alexnet_ref.py). Dropout off.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SGD, Tensor, createAlexNet, memoryStats, ops, readSafetensors, writeSafetensors, type Device } from '../../lib/index.js';
import { MaxPool2d } from '../../lib/nn/maxpool2d.js';
import type { Module } from '../../lib/nn/module.js';
import { Sequential } from '../../lib/nn/sequential.js';
import { fixtureRandint, fixtureUniform, relError } from '../helpers/fixtures.js';
import { noCuda } from '../helpers/gpu.js';
import { hasTorch, runPython } from '../helpers/torch.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const REF = path.join(here, '..', 'reference', 'alexnet_ref.py');
const tmp = mkdtempSync(path.join(tmpdir(), 'axn-ref-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SGD_OPTS = { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 };

async function compareWithPyTorch(arch: 'torchvision' | 'paper', device: Device, groups: 1 | 2 = 1, strict = false) {
  const numClasses = 10;
  const n = 2;
  const model = createAlexNet({ arch, numClasses, device, precision: 'fp32', dropout: 0, seed: 7, groups });
  if (strict) {
    // Re-initialise with He-normal weights so no layer's gradient is ill-conditioned: then every tensor
    // must be within 1e-4 of the float64 truth.
    const { Rng } = await import('../../lib/data/rng.js');
    const rng = new Rng(3);
    for (const [, p] of model.namedParameters()) {
      const fanIn = p.value.size / p.value.shape[0];
      const d = new Float32Array(p.value.size).map(() => rng.normal(0, p.value.shape.length > 1 ? Math.sqrt(2 / fanIn) : 0.1));
      p.value.write(d);
    }
  }
  const side = model.config.inputSize;
  const xData = fixtureUniform(n * 3 * side * side, 11, 0, 1);
  const labels = fixtureRandint(n, 12, numClasses);
  const inFile = path.join(tmp, `${arch}-${device}-in.safetensors`);
  const outFile = path.join(tmp, `${arch}-${device}-out.safetensors`);
  const sd = await model.stateDict();
  const entries: [string, { shape: number[]; data: Float32Array | Int32Array }][] = [...sd.entries()];
  entries.push(['input.x', { shape: [n, 3, side, side], data: xData }], ['input.labels', { shape: [n], data: labels }]);
  // Our forward first: the references take its max-pooling argmax (test/reference/alexnet_ref.py checks
  // that each is a window maximum in its own arithmetic). Where two values of a window lie within float32
  // rounding of each other, either choice is right, and a different one moves a whole gradient: the
  // paper arch's pool2 has such windows for this input (found when the LRN's rounding changed).
  const x = Tensor.from(xData, [n, 3, side, side], device);
  const lab = Tensor.from(labels, [n], device);
  model.train();
  const logits = model.forward(x);
  const pools = maxPools(model.net);
  expect(pools.length, 'max poolings found in the model').toBe(3);
  for (const [k, pool] of pools.entries()) {
    const idx = pool.savedIndices()!;
    entries.push([`input.pool.${k}`, { shape: [...idx.shape], data: await idx.toInt32Array() }]);
  }
  const settings = {
    arch,
    num_classes: String(numClasses),
    groups: String(groups),
    in_channels: '3',
    lr: String(SGD_OPTS.lr),
    momentum: String(SGD_OPTS.momentum),
    weight_decay: String(SGD_OPTS.weightDecay),
  };
  // Two references: PyTorch in float32 (what a user compares with) and the same computation in float64
  // (the truth both float32 implementations approximate).
  const refs: Map<string, { data: Float32Array | Int32Array; shape: number[] }>[] = [];
  for (const dtype of ['float32', 'float64']) {
    writeSafetensors(inFile, entries, { ...settings, dtype });
    runPython([REF, inFile, outFile]);
    const out = await readSafetensors(outFile);
    refs.push(out.tensors);
    console.log(`${arch} on ${device}, ${dtype} reference: windows per max pooling whose argmax is ours, not the reference's: ${out.metadata.pool_choices}`);
  }
  const [ref, truth] = refs;
  /** Well-conditioned (strict): within 1e-4 of the float64 truth — not of PyTorch fp32, whose CPU kernels
   * differ by machine (on an AMD EPYC without AVX-512, its conv1 weight gradient is 2.0e-3 from float64
   * while ours is 5.7e-7). 1e-4 is about 5× the float32 bound of the longest reduction (conv1's dW,
   * 2·55·55 terms: 4·2^-24·√6050 ≈ 1.9e-5), allowing for its growth through the layers.
   * Otherwise: match PyTorch fp32 to 1e-4, or — where the float32 computation itself is that
   * ill-conditioned (the paper's N(0, 0.01) initialisation makes early-layer gradients nearly cancel;
   * PyTorch fp32 is then up to 3e-2 away from float64) — be about as close to the float64 truth as PyTorch
   * fp32 is: within 3× its error (e.g. conv2's bias gradient: ours 9.7e-4, PyTorch 5.0e-4). */
  const expectClose = (got: Float32Array, name: string, what: string) => {
    const vsTorch = relError(got, ref.get(name)!.data);
    if (strict) {
      const ours = relError(got, truth.get(name)!.data);
      const torch32 = relError(ref.get(name)!.data, truth.get(name)!.data);
      expect(ours, `${arch} ${what} vs float64 (PyTorch fp32: ${torch32.toExponential(2)}; ours vs PyTorch fp32: ${vsTorch.toExponential(2)})`).toBeLessThanOrEqual(1e-4);
      return;
    }
    if (vsTorch <= 1e-4) return;
    const ours = relError(got, truth.get(name)!.data);
    const torch32 = relError(ref.get(name)!.data, truth.get(name)!.data);
    expect(ours, `${arch} ${what}: ours is ${vsTorch.toExponential(2)} from PyTorch fp32; vs float64, ours ${ours.toExponential(2)}, PyTorch fp32 ${torch32.toExponential(2)}`).toBeLessThanOrEqual(Math.max(1e-4, 3 * torch32));
  };

  expect(relError(await logits.toFloat32Array(), ref.get('logits')!.data), `${arch} logits`).toBeLessThanOrEqual(1e-4);
  expect(relError(await logits.toFloat32Array(), truth.get('logits')!.data), `${arch} logits vs float64`).toBeLessThanOrEqual(1e-5);
  const { loss, probs } = ops.softmaxCrossEntropy(logits, lab);
  const l = (await loss.toFloat32Array())[0];
  const lref = ref.get('loss')!.data[0];
  expect(Math.abs(l - lref) / Math.abs(lref), `${arch} loss`).toBeLessThanOrEqual(1e-5);
  const dlogits = ops.softmaxCrossEntropyBackward(probs, lab);
  model.backward(dlogits);
  [logits, loss, probs, dlogits, lab].forEach((t) => t.dispose());
  // Gradients directly: with the paper's N(0, 0.01) initialisation the update of a weight is far below
  // its float32 resolution, so comparing weights before and after would measure rounding, not the step.
  for (const [name, p] of model.namedParameters()) {
    const g = ref.get(`grad.${name}`);
    expect(g, `reference has grad.${name}`).toBeDefined();
    expect(p.grad, `${name} has a gradient`).not.toBeNull();
    expectClose(await p.grad!.toFloat32Array(), `grad.${name}`, `gradient of ${name}`);
  }
  const opt = new SGD(model.parameters(), SGD_OPTS);
  opt.step();
  for (const [name, p] of model.namedParameters()) {
    const r = ref.get(name);
    expect(r, `reference has ${name}`).toBeDefined();
    expect(p.value.shape).toEqual(r!.shape);
    expectClose(await p.value.toFloat32Array(), name, `${name} after one SGD step`);
  }
  opt.zeroGrad();
  // trainStep on the same batch runs (the second step: momentum buffers in use) and stays finite.
  const l2 = await model.trainStep(x, labels, opt);
  expect(Number.isFinite(l2)).toBe(true);
  x.dispose();
  opt.dispose();
  model.dispose();
}

/** The MaxPool2d layers of a model, in forward order. */
function maxPools(m: Module): MaxPool2d[] {
  if (m instanceof MaxPool2d) return [m];
  if (m instanceof Sequential) return m.children.flatMap(([, c]) => maxPools(c));
  return [];
}

describe.skipIf(!hasTorch)('AlexNet against PyTorch on the CPU', () => {
  it('torchvision arch: logits and one SGD step', async () => {
    const before = memoryStats();
    await compareWithPyTorch('torchvision', 'cpu');
    const after = memoryStats();
    expect(after.tensors.cpu).toBe(before.tensors.cpu);
    expect(after.bytes.cpu).toBe(before.bytes.cpu);
  });
  it('paper arch (two-tower grouping): logits, gradients and one SGD step', async () => {
    await compareWithPyTorch('paper', 'cpu', 2);
  });
  it('paper arch with He initialisation (well-conditioned): every gradient within 1e-4 of float64', async () => {
    await compareWithPyTorch('paper', 'cpu', 1, true);
  });
});

describe.skipIf(!hasTorch || noCuda)('AlexNet against PyTorch on the GPU (fp32)', () => {
  it('torchvision arch', async () => {
    await compareWithPyTorch('torchvision', 'cuda');
  });
  // The well-conditioned paper arch: with N(0, 0.01) weights the gradients' float32 error depends on the
  // summation order (the CPU tests above cover that case against PyTorch fp32's own error).
  // Its own timeout: on the emulated device under the sanitizers it took 93–120 s on a shared 2-core VM.
  it('paper arch with He initialisation: every gradient within 1e-4 of float64', async () => {
    await compareWithPyTorch('paper', 'cuda', 1, true);
  }, 300_000);
});
