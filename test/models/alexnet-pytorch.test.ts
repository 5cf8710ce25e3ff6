// Model level against PyTorch: same weights, same input → same logits, and the same weights after one
// SGD step (momentum 0.9, weight decay 5e-4), for torchvision's AlexNet (torchvision's own class) and the
// paper's (a PyTorch definition of the same network, test/reference/alexnet_ref.py). Dropout off.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SGD, Tensor, createAlexNet, memoryStats, readSafetensors, writeSafetensors, type Device } from '../../lib/index.js';
import { fixtureRandint, fixtureUniform, relError } from '../helpers/fixtures.js';
import { noCuda } from '../helpers/gpu.js';
import { hasTorch, runPython } from '../helpers/torch.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const REF = path.join(here, '..', 'reference', 'alexnet_ref.py');
const tmp = mkdtempSync(path.join(tmpdir(), 'axn-ref-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SGD_OPTS = { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 };

async function compareWithPyTorch(arch: 'torchvision' | 'paper', device: Device, groups: 1 | 2 = 1) {
  const numClasses = 10;
  const n = 2;
  const model = createAlexNet({ arch, numClasses, device, dropout: 0, seed: 7, groups });
  const side = model.config.inputSize;
  const xData = fixtureUniform(n * 3 * side * side, 11, 0, 1);
  const labels = fixtureRandint(n, 12, numClasses);
  const inFile = path.join(tmp, `${arch}-${device}-in.safetensors`);
  const outFile = path.join(tmp, `${arch}-${device}-out.safetensors`);
  const sd = await model.stateDict();
  const entries: [string, { shape: number[]; data: Float32Array | Int32Array }][] = [...sd.entries()];
  entries.push(['input.x', { shape: [n, 3, side, side], data: xData }], ['input.labels', { shape: [n], data: labels }]);
  writeSafetensors(inFile, entries, {
    arch,
    num_classes: String(numClasses),
    groups: String(groups),
    in_channels: '3',
    lr: String(SGD_OPTS.lr),
    momentum: String(SGD_OPTS.momentum),
    weight_decay: String(SGD_OPTS.weightDecay),
  });
  runPython([REF, inFile, outFile]);
  const ref = (await readSafetensors(outFile)).tensors;

  const x = Tensor.from(xData, [n, 3, side, side], device);
  model.train();
  const logits = model.forward(x);
  const got = await logits.toFloat32Array();
  logits.dispose();
  model.net.releaseSaved();
  expect(relError(got, ref.get('logits')!.data), `${arch} logits`).toBeLessThanOrEqual(1e-4);

  const opt = new SGD(model.parameters(), SGD_OPTS);
  const loss = await model.trainStep(x, labels, opt);
  expect(Math.abs(loss - ref.get('loss')!.data[0]) / Math.abs(ref.get('loss')!.data[0])).toBeLessThanOrEqual(1e-4);
  for (const [name, p] of model.namedParameters()) {
    const r = ref.get(name);
    expect(r, `reference has ${name}`).toBeDefined();
    expect(p.value.shape).toEqual(r!.shape);
    const after = await p.value.toFloat32Array();
    // Compare the update itself too (the step is small next to the weights, so the weights alone would hide errors).
    const before = sd.get(name)!.data;
    const dGot = after.map((v, i) => v - before[i]);
    const dRef = (r!.data as Float32Array).map((v, i) => v - before[i]);
    expect(relError(after, r!.data), `${arch} ${name} after one SGD step`).toBeLessThanOrEqual(1e-4);
    expect(relError(dGot, dRef), `${arch} ${name}: the SGD update`).toBeLessThanOrEqual(2e-3);
  }
  x.dispose();
  opt.dispose();
  model.dispose();
}

describe.skipIf(!hasTorch)('AlexNet against PyTorch on the CPU', () => {
  it('torchvision arch: logits and one SGD step', async () => {
    const before = memoryStats();
    await compareWithPyTorch('torchvision', 'cpu');
    const after = memoryStats();
    expect(after.tensors.cpu).toBe(before.tensors.cpu);
    expect(after.bytes.cpu).toBe(before.bytes.cpu);
  });
  it('paper arch (two-tower grouping): logits and one SGD step', async () => {
    await compareWithPyTorch('paper', 'cpu', 2);
  });
});

describe.skipIf(!hasTorch || noCuda)('AlexNet against PyTorch on the GPU (fp32)', () => {
  it('torchvision arch', async () => {
    await compareWithPyTorch('torchvision', 'cuda');
  });
  it('paper arch', async () => {
    await compareWithPyTorch('paper', 'cuda', 1);
  });
});
