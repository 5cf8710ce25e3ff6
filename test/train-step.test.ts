// The training step as the GPU runs it: enqueued whole, one read of the loss (its only host
// synchronisation), no allocation from the driver in steady state, one fused SGD launch, a non-finite loss
// changing no weight even with a step in flight. Counted on the CUDA device (the emulated one in CI) by
// the backend's own counters (memoryStats().native.cuda); the CPU runs the same logic.
import { describe, expect, it } from 'vitest';
import { DisposedError, SGD, Tensor, createAlexNet, memoryStats, type Device } from '../lib/index.js';
import { expectBitEqual } from './helpers/fixtures.js';
import { mulberry32 } from './helpers/gradcheck.js';
import { emulated, noCuda } from './helpers/gpu.js';

function batch(n: number, c: number, side: number, seed: number, device: Device) {
  const r = mulberry32(seed);
  const x = Tensor.from(Float32Array.from({ length: n * c * side * side }, () => r() * 2 - 1), [n, c, side, side], device);
  const y = Int32Array.from({ length: n }, (_, i) => (i * 7 + seed) % 10);
  return { x, y };
}

async function weights(model: ReturnType<typeof createAlexNet>): Promise<Float32Array[]> {
  return Promise.all(model.parameters().map((p) => p.value.toFloat32Array()));
}

const devices: Device[] = noCuda ? ['cpu'] : ['cpu', 'cuda'];

describe('a non-finite loss changes no weight', () => {
  const cases: [Device, string][] = devices.flatMap((d) => [[d, 'a NaN pixel'], ...(d === 'cuda' ? ([[d, 'a label outside the classes']] as [Device, string][]) : [])]);
  it.each(cases)('%s, %s: the step and the one in flight after it update nothing', async (device, what) => {
    const model = createAlexNet({ arch: 'small', numClasses: 10, device, dropout: 0, seed: 3 });
    const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
    const { x, y } = batch(4, 1, 28, 1, device);
    const before = await weights(model);
    // A NaN input makes the loss NaN; a labels tensor on the device is not checked on the host, and the
    // loss kernel reports an out-of-range label as NaN.
    const nanPixel = Float32Array.from(await x.toFloat32Array());
    nanPixel[100] = NaN;
    using xBad = Tensor.from(nanPixel, x.shape, device);
    using labBad = Tensor.from(what === 'a NaN pixel' ? y : Int32Array.from([1, 2, 99, 3]), [4], device);
    const first = model.step(what === 'a NaN pixel' ? xBad : x, labBad, opt); // first step: the momentum buffers are created here
    const second = model.step(x, y, opt); // enqueued before the first's loss is known
    await expect(first).rejects.toThrow(/AlexNet\.trainStep: the loss is NaN; no update was made/);
    await expect(second).rejects.toThrow(/no update was made: an earlier step still in flight had a non-finite loss/);
    const after = await weights(model);
    after.forEach((w, i) => expectBitEqual(w, before[i], `parameter ${i}`));
    expect(opt.stepCount).toBe(0);
    expect(opt.buffers.every((b) => b === null)).toBe(true); // the skipped first step's buffers are dropped
    // The flag is cleared: the next good step updates, as a first step (momentum buffers initialised).
    const ok = await model.step(x, y, opt);
    expect(Number.isFinite(ok.loss)).toBe(true);
    expect(opt.stepCount).toBe(1);
    const moved = await weights(model);
    expect(moved.some((w, i) => w.some((v, k) => v !== before[i][k]))).toBe(true);
    x.dispose();
    opt.dispose();
    model.dispose();
  });

  it.each(devices)('%s: steps enqueued back to back give the results of awaited ones, bit for bit', async (device) => {
    const run = async (inFlight: boolean) => {
      const model = createAlexNet({ arch: 'small', numClasses: 10, device, dropout: 0.5, seed: 5, precision: 'fp32' });
      const opt = new SGD(model.parameters(), { lr: 0.02, momentum: 0.9, weightDecay: 5e-4 });
      const bs = [1, 2, 3, 4].map((s) => batch(6, 1, 28, s, device));
      const losses: number[] = [];
      if (inFlight) {
        const ps = bs.map((b) => model.step(b.x, b.y, opt));
        for (const p of ps) losses.push((await p).loss);
      } else for (const b of bs) losses.push((await model.step(b.x, b.y, opt)).loss);
      const w = await weights(model);
      bs.forEach((b) => b.x.dispose());
      opt.dispose();
      model.dispose();
      return { losses, w };
    };
    const a = await run(false);
    const b = await run(true);
    expect(b.losses).toEqual(a.losses);
    b.w.forEach((w, i) => expectBitEqual(w, a.w[i], `parameter ${i}`));
  });
});

describe('calls racing a step', () => {
  it.each(devices)('%s: a state dict taken while a step is called is the weights before that step, whole', async (device) => {
    const model = createAlexNet({ arch: 'small', numClasses: 10, device, dropout: 0, seed: 9, precision: 'fp32' });
    const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
    const { x, y } = batch(4, 1, 28, 6, device);
    const before = await weights(model);
    const snapshot = model.stateDict(); // its reads are enqueued here
    const step = model.step(x, y, opt); // the update after them
    const [sd] = await Promise.all([snapshot, step]);
    [...sd.values()].forEach((t, i) => expectBitEqual(t.data, before[i], `parameter ${i}`));
    const after = await weights(model);
    expect(after.some((w, i) => w.some((v, k) => v !== before[i][k]))).toBe(true);
    x.dispose();
    opt.dispose();
    model.dispose();
  });
});

describe.skipIf(noCuda)('a training step on CUDA never waits on the host', () => {
  // The counts do not depend on the batch. On the emulated device (sanitized, in CI) the small arch; the
  // paper and torchvision archs' counts are checked there by the benchmark step of .ci/run instead.
  const archs = [
    ['small', 1, 28, 4],
    ...(emulated ? [] : ([['paper', 3, 227, 8], ['torchvision', 3, 224, 8]] as const)),
  ] as const;
  it.each(archs)('%s: after warm-up, no allocation from the driver, no pinned allocation, one host sync and one SGD launch a step', async (arch, c, side, n) => {
    const model = createAlexNet({ arch, numClasses: 10, device: 'cuda', inChannels: c, seed: 1 });
    expect(model.precision).toBe('tf32'); // the default on CUDA
    const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
    const b = batch(n, c, side, 2, 'cuda');
    const small = batch(Math.max(1, n - 1), c, side, 3, 'cuda'); // the last, smaller batch of an epoch
    // Warm-up as the steady state runs: two steps in flight (two reads, so two pinned staging blocks).
    await Promise.all([model.step(b.x, b.y, opt), model.step(b.x, b.y, opt)]);
    // The first smaller batch is served from the larger batch's cached blocks (best fit, at most 2×):
    // few new blocks, where an exact-size cache would allocate every activation anew.
    const w0 = memoryStats().native.cuda!;
    await model.step(small.x, small.y, opt);
    const w1 = memoryStats().native.cuda!;
    expect(w1.cudaMallocCalls - w0.cudaMallocCalls, 'driver allocations for the first smaller batch').toBeLessThanOrEqual(Math.ceil((w1.allocCalls - w0.allocCalls) / 10));
    // The last warm-up: a big and a small step in flight together, as the steady state runs them. (On the
    // columns convolution path each Conv2d keeps its columns from its forward to its backward, sized by the
    // batch; the first time a big and a small step overlap, the cache may need one block more: measured,
    // once, never again.)
    await Promise.all([model.step(b.x, b.y, opt), model.step(small.x, small.y, opt)]);
    // Steady state, big and small batches alternating, steps kept in flight.
    const s0 = memoryStats().native.cuda!;
    const steps = 2;
    const results = [];
    for (let i = 0; i < steps; i++) results.push(model.step(i % 2 ? small.x : b.x, i % 2 ? small.y : b.y, opt));
    await Promise.all(results);
    const s1 = memoryStats().native.cuda!;
    const d = (k: keyof typeof s1) => s1[k] - s0[k];
    expect(d('cudaMallocCalls'), 'driver allocations').toBe(0);
    expect(d('pinnedAllocs'), 'pinned allocations').toBe(0);
    expect(d('pinnedFrees'), 'pinned frees').toBe(0);
    expect(d('hostSyncs'), 'host synchronisations').toBeLessThanOrEqual(steps);
    // Per step: the layers' kernels and GEMMs, and one SGD launch for all 16 parameter tensors.
    const launches = d('kernelLaunches') / steps;
    expect(Number.isInteger(launches), `${d('kernelLaunches')} launches in ${steps} steps`).toBe(true);
    console.log(`${arch}: ${launches} kernel launches, ${d('cublasCalls') / steps} cuBLAS calls, ${d('hostSyncs') / steps} host syncs per step`);
    [b.x, small.x].forEach((t) => t.dispose());
    opt.dispose();
    model.dispose();
  });
});

describe('an optimizer that does not fit the step is refused before anything runs', () => {
  it('a disposed SGD refuses to step (DisposedError): it would step with its momentum silently reset', async () => {
    const model = createAlexNet({ arch: 'small', numClasses: 10, dropout: 0, seed: 3 });
    const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    const { x, y } = batch(2, 1, 28, 1, 'cpu');
    await model.step(x, y, opt); // momentum buffers now hold something
    opt.dispose();
    const before = await weights(model);
    await expect(model.step(x, y, opt)).rejects.toMatchObject({ name: 'DisposedError', message: expect.stringMatching(/SGD.*used after dispose\(\)/) });
    expect(() => opt.step()).toThrow(DisposedError);
    const after = await weights(model);
    after.forEach((w, i) => expectBitEqual(w, before[i], `parameter ${i}`));
    opt.dispose(); // still idempotent
    x.dispose();
    model.dispose();
  });

  it("an SGD built for another model's parameters gets an error that says so", async () => {
    const model = createAlexNet({ arch: 'small', numClasses: 10, dropout: 0, seed: 3 });
    const other = createAlexNet({ arch: 'small', numClasses: 10, dropout: 0, seed: 4 });
    const opt = new SGD(other.parameters(), { lr: 0.05, momentum: 0.9 });
    const { x, y } = batch(2, 1, 28, 1, 'cpu');
    const before = await weights(model);
    await expect(model.step(x, y, opt)).rejects.toThrow(
      /AlexNet\.trainStep: the optimizer was built for other parameters than this model's: its parameter 0 \(\[32, 1, 5, 5\]\) is not one of the model's/,
    );
    const after = await weights(model);
    after.forEach((w, i) => expectBitEqual(w, before[i], `parameter ${i}`));
    // A subset of the model's own parameters (fine-tuning the classifier) is fine.
    const head = new SGD(model.namedParameters().filter(([n]) => n.startsWith('classifier.')).map(([, p]) => p), { lr: 0.05 });
    await expect(model.step(x, y, head)).resolves.toMatchObject({ loss: expect.any(Number) });
    [opt, head].forEach((o) => o.dispose());
    x.dispose();
    model.dispose();
    other.dispose();
  });
});
