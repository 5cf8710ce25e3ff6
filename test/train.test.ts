// Training end to end on the CPU: the loss falls on real Fashion-MNIST; an interrupted run resumed from
// its checkpoint ends with exactly the weights of an uninterrupted one; an image folder of JPEG/PNG files
// with corrupt ones among them trains and reports what it skipped; checkpoints and weights are validated.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAlexNet, memoryStats, synchronize, train, evaluate, readCheckpointMeta, data } from '../lib/index.js';
import { makeImageTree } from './data/helpers/image-tree.js';
import { emulated } from './helpers/gpu.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'axn-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('training on the CPU', () => {
  it('the loss falls and accuracy rises on real Fashion-MNIST (small arch)', async () => {
    // Dropout off: this checks that learning works; dropout's own correctness is tested in test/ops.
    const model = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 3, dropout: 0 });
    const source = data.loadFashionMnist({ split: 'train', limit: 2560 });
    const losses: number[] = [];
    const result = await train({ model, train: source, epochs: 1, batchSize: 32, lr: 0.02, seed: 3, schedule: 'none', onProgress: (p) => losses.push(p.loss) });
    expect(losses.length).toBe(80);
    const first = losses.slice(0, 10).reduce((a, b) => a + b) / 10;
    const last = losses.slice(-10).reduce((a, b) => a + b) / 10;
    expect(first).toBeGreaterThan(1.8); // ≈ ln 10 at the start
    expect(last).toBeLessThan(first * 0.6);
    const test = await evaluate(model, data.loadFashionMnist({ split: 'test', limit: 1000 }), { batchSize: 200 });
    expect(test.n).toBe(1000);
    expect(test.top1).toBeGreaterThan(0.6); // chance is 0.1
    expect(test.top5).toBeGreaterThan(test.top1);
    result.optimizer.dispose();
    model.dispose();
  });

  // precision 'bf16' learns what fp32 learns: the small arch on 20,000 real Fashion-MNIST images for 2 epochs
  // from the same seed (SGD lr 0.03, a 60-step warm-up, then the cosine to 0: the study's recipe), scored on
  // the whole test set. One pair is noisy — training amplifies any change in the last bit, so two fp32 runs
  // that merely sum in another order (another CPU's kernels) end apart — so the criterion (within
  // 0.5 points) is judged on the mean over seeds by bench/bf16-convergence.mjs. Measured on 2-core AMD EPYC
  // VMs with this recipe (bench/results/bf16-convergence-2026-12-05-cosine-seeds1-32.md): over 32 seeds, bf16
  // (with bf16 activations) − fp32 was −0.03 ± 0.08, the pair differences had a standard deviation of 0.44
  // points (from −1.15 to +0.72; this seed, 7: 87.18 % fp32, 87.39 % bf16), and single runs ended between
  // 86.0 and 88.1 %. (Without the schedule, the spread was 1.67 points, and runs ended between 78.7 and
  // 86.4 %: the cosine ends every run at a low rate, where its accuracy varies least.) So this test guards
  // one side with room for another machine's trajectory: bf16 no more than 2 points below fp32 (4.5 of those
  // standard deviations below their mean; the worst of 32 was 1.15 below), both above 84 % (chance is 10 %).
  // About 45–115 s a run on the 2-core VMs.
  // Left out of the emulated suite, which reruns the CPU tests under AddressSanitizer
  // (test/ops/bf16.test.ts checks the same arithmetic there, bit for bit).
  it.skipIf(emulated)("bf16 trains to fp32's test accuracy in the same epochs (small arch, Fashion-MNIST; one seed)", async () => {
    const top1: Record<string, number> = {};
    for (const precision of ['fp32', 'bf16'] as const) {
      const model = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 7, dropout: 0, precision });
      const r = await train({ model, train: data.loadFashionMnist({ split: 'train', limit: 20000 }), epochs: 2, batchSize: 64, lr: 0.03, seed: 7, schedule: 'cosine', warmupSteps: 60 });
      const t = await evaluate(model, data.loadFashionMnist({ split: 'test' }), { batchSize: 500 });
      top1[precision] = t.top1 * 100;
      expect(t.n).toBeGreaterThan(9900);
      r.optimizer.dispose();
      model.dispose();
    }
    expect(top1.fp32).toBeGreaterThan(84); // learned (chance is 10 %)
    expect(top1.bf16).toBeGreaterThan(84);
    expect(top1.bf16, `fp32 ${top1.fp32.toFixed(2)} %, bf16 ${top1.bf16.toFixed(2)} %`).toBeGreaterThanOrEqual(top1.fp32 - 2.0);
  }, 600_000);

  it('an interrupted run resumed from its checkpoint ends with the same weights as an uninterrupted one', async () => {
    const before = memoryStats();
    const opts = { epochs: 2, batchSize: 32, lr: 0.02, seed: 5, schedule: 'step' as const, stepSize: 1 };
    const source = () => data.loadFashionMnist({ split: 'train', limit: 192 }); // 6 batches an epoch
    const test = data.loadFashionMnist({ split: 'test', limit: 64 });
    const mk = () => createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 9, dropout: 0.5 });

    const a = mk();
    const ra = await train({ model: a, train: source(), test, ...opts });
    const wa = await a.stateDict();

    const ckpt = path.join(tmp, 'resume.safetensors');
    const b1 = mk();
    const r1 = await train({ model: b1, train: source(), test, ...opts, checkpoint: ckpt, stopAfterBatches: 8 });
    expect(r1.interrupted).toBe(true);
    const meta = await readCheckpointMeta(ckpt);
    expect(meta).toMatchObject({ epoch: 1, batchInEpoch: 2, step: 8 });
    r1.optimizer.dispose();
    b1.dispose();

    // A fresh process would build a fresh model with another seed: the checkpoint restores everything.
    const b2 = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 1234, dropout: 0.5 });
    const rb = await train({ model: b2, train: source(), test, ...opts, checkpoint: ckpt, resume: ckpt });
    expect(rb.interrupted).toBe(false);
    const wb = await b2.stateDict();
    for (const [name, t] of wa) expect(wb.get(name)!.data, `${name} after resuming`).toEqual(t.data);
    expect(rb.history.map((h) => h.trainLoss)).toEqual(ra.history.map((h) => h.trainLoss));
    expect(rb.history.map((h) => h.test?.top1)).toEqual(ra.history.map((h) => h.test?.top1));
    expect(rb.history.map((h) => h.lr)).toEqual([0.02, 0.002]);
    [ra.optimizer, rb.optimizer].forEach((o) => o.dispose());
    a.dispose();
    b2.dispose();
    const after = memoryStats();
    expect(after.tensors).toEqual(before.tensors);
    expect(after.bytes).toEqual(before.bytes);
  });

  it('a long training loop does not grow the process (host blocks are reused, not leaked)', async () => {
    const { Tensor, SGD } = await import('../lib/index.js');
    const model = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 4 });
    const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
    const x = Tensor.from(new Float32Array(64 * 28 * 28).map((_, i) => (i % 97) / 97), [64, 1, 28, 28]);
    const labels = Int32Array.from({ length: 64 }, (_, i) => i % 10);
    for (let i = 0; i < 5; i++) await model.step(x, labels, opt);
    const rss0 = process.memoryUsage().rss;
    const mapped0 = memoryStats().native.hostMappedBytes;
    for (let i = 0; i < 40; i++) await model.step(x, labels, opt);
    // Before the fix each step leaked its ~30 MB of activations and workspaces (1.2 GB over 40 steps).
    expect(process.memoryUsage().rss - rss0).toBeLessThan(150e6);
    expect(memoryStats().native.hostMappedBytes).toBe(mapped0);
    // Small blocks too, and the C heap ([heap] in smaps: glibc's, where small blocks and Node's own
    // allocations live) over hundreds of steps of a small batch: flat after warm-up (it measured +16 KB
    // a step before small blocks were cached; a per-step leak of a tensor's storage would be ≥ 30 KB).
    const cHeap = () => {
      const s = readFileSync('/proc/self/smaps', 'utf8');
      const at = s.indexOf('[heap]');
      return at < 0 ? 0 : Number(/Rss:\s+(\d+) kB/.exec(s.slice(at))![1]) * 1024;
    };
    using xs = Tensor.from(new Float32Array(8 * 28 * 28).map((_, i) => (i % 89) / 89), [8, 1, 28, 28]);
    const ls = labels.subarray(0, 8);
    for (let i = 0; i < 20; i++) await model.step(xs, ls, opt);
    synchronize(); // frees queued behind the step's read (CPU stream order) land before the counts
    const heap0 = cHeap();
    const n0 = memoryStats().native;
    for (let i = 0; i < 300; i++) await model.step(xs, ls, opt);
    synchronize();
    const n1 = memoryStats().native;
    expect(cHeap() - heap0, 'C heap growth over 300 steps').toBeLessThan(8e6);
    // Nothing held is leaked: the same live buffers and bytes.
    expect(n1.hostBuffers).toBe(n0.hostBuffers);
    expect(n1.hostBytes).toBe(n0.hostBytes);
    // Freed small blocks are reused: the cache may still rise by a few blocks (its high-water mark
    // depends on whether a free queued behind a step's read lands before the next step allocates, which
    // is timing), but a step whose blocks were not reused would add its ~100 small blocks every step.
    expect(n1.hostSmallCachedBytes - n0.hostSmallCachedBytes).toBeLessThan(64 * 1024);
    x.dispose();
    opt.dispose();
    model.dispose();
  });

  it('trains on an image folder of JPEG/PNG files and reports the corrupt ones', async () => {
    const tree = await makeImageTree({ perClass: 24, width: 40, height: 36, corrupt: true });
    const skipped: string[] = [];
    const folder = await data.ImageFolder.open(tree.root, { train: true, size: 32, resize: 36, channels: 3, workers: 2, onSkip: (s) => skipped.push(s.path) });
    expect(folder.classes.length).toBe(3);
    const model = createAlexNet({ arch: 'small', numClasses: 3, inChannels: 3, seed: 2 });
    const r = await train({ model, train: folder, epochs: 2, batchSize: 16, lr: 0.01, seed: 1, schedule: 'none' });
    expect(r.history.length).toBe(2);
    expect(r.history.every((h) => Number.isFinite(h.trainLoss))).toBe(true);
    expect(new Set(skipped)).toEqual(new Set(tree.corrupt));
    expect(folder.skipped.map((s) => s.path).sort()).toEqual([...tree.corrupt].sort());
    r.optimizer.dispose();
    model.dispose();
    await folder.close();
  });
});

describe('weights and checkpoints are validated', () => {
  it('a truncated or mismatched file gives an error naming the tensor and the expected shape', async () => {
    const m = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1 });
    const file = path.join(tmp, 'w.safetensors');
    await m.saveWeights(file, { classes: ['a'] });
    const bytes = readFileSync(file);
    const cut = path.join(tmp, 'cut.safetensors');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
    await expect(m.loadWeights(cut)).rejects.toThrow(/ends at byte \d+ of the data section, which holds only \d+ bytes \(truncated\?\)/);
    writeFileSync(cut, bytes.subarray(0, 5));
    await expect(m.loadWeights(cut)).rejects.toThrow(/shorter than the 8-byte header length/);
    const other = createAlexNet({ arch: 'small', numClasses: 7, inChannels: 1 });
    await expect(other.loadWeights(file)).rejects.toThrow('tensor "classifier.6.weight" has shape [10, 512], expected [7, 512] (small arch, 7 classes)');
    const tv = createAlexNet({ arch: 'torchvision', numClasses: 10 });
    await expect(tv.loadWeights(file)).rejects.toThrow(/tensor "features.0.weight" has shape \[32, 1, 5, 5\], expected \[64, 3, 11, 11\]/);
    await expect(m.loadWeights(path.join(tmp, 'missing.safetensors'))).rejects.toThrow(/could not read .*missing.safetensors/);
    // a round trip restores the weights exactly
    const m2 = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 99 });
    await m2.loadWeights(file);
    const [a, b] = [await m.stateDict(), await m2.stateDict()];
    for (const [k, v] of a) expect(b.get(k)!.data).toEqual(v.data);
    [m, m2, other, tv].forEach((x) => x.dispose());
  });

  it('a bad checkpoint or a resume with other settings is refused before anything changes', async () => {
    const { SGD, saveCheckpoint, loadCheckpoint, writeSafetensors, readSafetensors, parseSafetensors } = await import('../lib/index.js');
    const m = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 5 });
    const opt = new SGD(m.parameters(), { lr: 0.1, momentum: 0.9 });
    const file = path.join(tmp, 'ck.safetensors');
    const settings = { batchSize: 32, momentum: 0.9, weightDecay: 5e-4, schedule: 'plateau' };
    await saveCheckpoint(file, m, opt, { epoch: 0, batchInEpoch: 0, step: 0 }, { schedule: null, history: [], dataSeed: 1, settings });
    const f = await readSafetensors(file);
    const broken = path.join(tmp, 'ck-broken.safetensors');
    const before = await m.stateDict();
    for (const [meta, msg] of [
      ['{not json', /checkpoint metadata is not valid JSON/],
      [JSON.stringify({ ...JSON.parse(f.metadata.meta), rngSeed: undefined }), /rngSeed must be a 64-bit unsigned integer/],
      [JSON.stringify({ ...JSON.parse(f.metadata.meta), lr: -1 }), /lr must be a finite number ≥ 0, got -1/],
      // history entries: each an epoch record, in order, one per finished epoch
      [JSON.stringify({ ...JSON.parse(f.metadata.meta), epoch: 2, history: [null, 5] }), /history\[0\] must be an epoch record, got null/],
      [JSON.stringify({ ...JSON.parse(f.metadata.meta), epoch: 1, history: [{ epoch: 3, trainLoss: 1, trainAcc: 0.5, lr: 0.1, seconds: 1, imagesPerSecond: 5 }] }), /history\[0\]\.epoch must be 0, got 3/],
      [JSON.stringify({ ...JSON.parse(f.metadata.meta), epoch: 2 }), /history holds 0 epochs, but the checkpoint is in epoch 2/],
      // after steps with momentum, every momentum buffer must be there
      [JSON.stringify({ ...JSON.parse(f.metadata.meta), step: 3 }), /after 3 steps with momentum the checkpoint lacks the momentum buffer of "features\.0\.weight"/],
    ] as const) {
      writeSafetensors(broken, f.tensors, { ...f.metadata, meta });
      await expect(loadCheckpoint(broken, m, opt)).rejects.toThrow(msg);
    }
    const after = await m.stateDict();
    for (const [k, v] of before) expect(after.get(k)!.data).toEqual(v.data);
    expect(opt.lr).toBe(0.1);
    // resuming with another batch size would not reproduce the run: refused
    await expect(train({ model: m, train: data.loadFashionMnist({ split: 'train', limit: 64 }), epochs: 2, batchSize: 16, lr: 0.1, seed: 1, resume: file })).rejects.toThrow(
      /checkpoint was trained with batchSize 32, this run uses 16/,
    );
    // ... and so would another set of training images (--limit)
    await saveCheckpoint(file, m, opt, { epoch: 0, batchInEpoch: 0, step: 0 }, { schedule: null, history: [], dataSeed: 1, settings: { ...settings, schedule: 'none', trainImages: 128 } });
    await expect(train({ model: m, train: data.loadFashionMnist({ split: 'train', limit: 64 }), epochs: 2, batchSize: 32, lr: 0.1, seed: 1, schedule: 'none', resume: file })).rejects.toThrow(
      /checkpoint was trained with trainImages 128, this run uses 64/,
    );
    // ... and so would other steps per epoch (maxBatchesPerEpoch), even where epochs × batches is the same
    await saveCheckpoint(file, m, opt, { epoch: 0, batchInEpoch: 1, step: 1 }, { schedule: null, history: [], dataSeed: 1, settings: { ...settings, schedule: 'none', trainImages: 64, batchesPerEpoch: 2 } });
    await expect(train({ model: m, train: data.loadFashionMnist({ split: 'train', limit: 64 }), epochs: 2, batchSize: 32, lr: 0.1, seed: 1, schedule: 'none', maxBatchesPerEpoch: 1, resume: file })).rejects.toThrow(
      /checkpoint was trained with batchesPerEpoch 2, this run uses 1 \(maxBatchesPerEpoch caps it\)/,
    );
    // a checkpoint of an earlier version, without batchesPerEpoch, is not held to it
    await saveCheckpoint(file, m, opt, { epoch: 2, batchInEpoch: 0, step: 0 }, { schedule: null, history: [0, 1].map((epoch) => ({ epoch, trainLoss: 1, trainAcc: 0.5, lr: 0.1, seconds: 1, imagesPerSecond: 5 })), dataSeed: 1, settings: { ...settings, schedule: 'none', trainImages: 64 } });
    await expect(train({ model: m, train: data.loadFashionMnist({ split: 'train', limit: 64 }), epochs: 2, batchSize: 32, lr: 0.1, seed: 1, schedule: 'none', maxBatchesPerEpoch: 1, resume: file })).resolves.toMatchObject({ interrupted: false });
    // a plateau schedule's state that is not one: refused before the weights change
    await saveCheckpoint(file, m, opt, { epoch: 0, batchInEpoch: 0, step: 0 }, { schedule: { best: 1 }, history: [], dataSeed: 1, settings: { ...settings, trainImages: 64 } });
    await expect(train({ model: m, train: data.loadFashionMnist({ split: 'train', limit: 64 }), epochs: 2, batchSize: 32, lr: 0.1, seed: 1, resume: file })).rejects.toThrow(/ReduceLROnPlateau: saved state is not a plateau schedule's/);
    for (const [k, v] of before) expect((await m.stateDict()).get(k)!.data).toEqual(v.data);
    expect(() => parseSafetensors(Buffer.concat([Buffer.from([11, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"a": null}')]))).toThrow(/tensor "a" is not an object/);
    opt.dispose();
    m.dispose();
  });

  it('a batch larger than the training set is an error, not an epoch of nothing reported as NaN', async () => {
    const m = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 2 });
    await expect(train({ model: m, train: data.loadFashionMnist({ split: 'train', limit: 10 }), epochs: 1, batchSize: 64, lr: 0.1 })).rejects.toThrow(
      'train: the batch size 64 is larger than the training set (10 images): no full batch to train on; lower the batch size or use more images',
    );
    m.dispose();
  });

  it('a checkpoint that cannot be written is found before the first step, not after an epoch', async () => {
    const m = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 2 });
    const file = path.join(tmp, 'a-file');
    writeFileSync(file, 'x');
    let steps = 0;
    const run = (checkpoint: string) =>
      train({ model: m, train: data.loadFashionMnist({ split: 'train', limit: 128 }), epochs: 1, batchSize: 64, lr: 0.01, checkpoint, onProgress: () => steps++ });
    await expect(run(path.join(file, 'run', 'checkpoint.safetensors'))).rejects.toThrow(
      `train: checkpoint: cannot create the folder ${path.join(file, 'run')}: ${file} is a file, not a folder`,
    );
    const dir = path.join(tmp, 'a-folder');
    mkdirSync(dir);
    await expect(run(dir)).rejects.toThrow(`train: checkpoint: expected ${dir} to be a file path, got a folder`);
    expect(steps).toBe(0);
    // a folder that does not exist yet is made
    await run(path.join(tmp, 'new', 'deeper', 'checkpoint.safetensors'));
    expect(steps).toBe(2);
    await expect(readCheckpointMeta(path.join(tmp, 'new', 'deeper', 'checkpoint.safetensors'))).resolves.toMatchObject({ epoch: 1 });
    m.dispose();
  });

  it('evaluation restores the train/eval mode, and large seeds work', async () => {
    const m = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 2 ** 52 });
    m.eval();
    await evaluate(m, data.loadFashionMnist({ split: 'test', limit: 32 }), { batchSize: 32 });
    expect(m.training).toBe(false);
    m.train();
    await evaluate(m, data.loadFashionMnist({ split: 'test', limit: 32 }), { batchSize: 32 });
    expect(m.training).toBe(true);
    m.dispose();
  });

  it('checkpoints are written atomically: no temporary file is left, a failed write keeps the old file', async () => {
    const { writeFileAtomic } = await import('../lib/io/safetensors.js');
    const { readdirSync } = await import('node:fs');
    const file = path.join(tmp, 'atomic.bin');
    // The temporary files of writers killed mid-write (pids that no longer exist) go at the next write.
    const { spawnSync } = await import('node:child_process');
    const gone = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim();
    writeFileSync(path.join(tmp, `.atomic.bin.${gone}.1700000000000.tmp`), Buffer.alloc(1000));
    writeFileSync(path.join(tmp, `.atomic.bin.${process.ppid}.1700000000001.tmp`), 'a live writer');
    writeFileAtomic(file, Buffer.from('old'));
    expect(readdirSync(tmp).filter((n) => n.startsWith('.atomic.bin.'))).toEqual([`.atomic.bin.${process.ppid}.1700000000001.tmp`]);
    rmSync(path.join(tmp, `.atomic.bin.${process.ppid}.1700000000001.tmp`));
    expect(() => writeFileAtomic(path.join(tmp, 'no-such-dir', 'x.bin'), Buffer.from('x'))).toThrow(/could not write/);
    writeFileAtomic(file, Buffer.from('new'));
    expect(readFileSync(file, 'utf8')).toBe('new');
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
