/** The CPU stream (native/cpu_stream.h): CPU ops are enqueued on a native worker and return at once; the
 * JS thread reads, writes and frees in stream order; a kernel's error is reported at the next
 * synchronisation. Each test here failed (or could not be written) when CPU ops ran on the JS thread. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Tensor, memoryStats, synchronize } from '../lib/tensor.js';
import { conv2d } from '../lib/ops/conv.js';
import { relu } from '../lib/ops/activation.js';
import { maxPool2dBackward } from '../lib/ops/pool.js';
import { createAlexNet } from '../lib/models/alexnet.js';
import { SGD } from '../lib/optim/sgd.js';
import { mulberry32 } from './helpers/gradcheck.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;
const cpuStream = () => memoryStats().native.cpuStream;

function randomTensor(shape: number[], rand: () => number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(Float32Array.from({ length: n }, () => rand() * 2 - 1), shape);
}

/** A few hundred milliseconds of CPU work on the stream (conv1-sized convolutions), returned undisposed. */
function busyWork(rand: () => number, n = 4): Tensor[] {
  const x = randomTensor([8, 3, 227, 227], rand);
  const w = randomTensor([96, 3, 11, 11], rand);
  const ys = Array.from({ length: n }, () => conv2d(x, w, null, { stride: 4 }));
  x.dispose(); // freed after the convolutions that read it (stream order)
  w.dispose();
  return ys;
}

describe(`the CPU stream (seed ${seed})`, () => {
  it('ops return before their work is done, and the event loop turns while it runs', async () => {
    const rand = mulberry32(seed);
    const before = cpuStream().tasksRun;
    const ys = busyWork(rand, 6);
    expect(cpuStream().pendingTasks).toBeGreaterThan(0); // enqueued, not run
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      await Promise.all(ys.map((y) => y.toFloat32Array()));
    } finally {
      clearInterval(timer);
      for (const y of ys) y.dispose();
    }
    expect(ticks).toBeGreaterThan(0); // 0 when the convolutions ran on the JS thread
    expect(cpuStream().tasksRun).toBeGreaterThan(before);
  });

  it('a training step enqueues without waiting on the stream (labels checked, nothing blocks)', async () => {
    const model = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: seed % 1000 });
    const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
    const x = randomTensor([16, 1, 28, 28], mulberry32(seed + 1));
    const labels = Int32Array.from({ length: 16 }, (_, i) => i % 10);
    try {
      await model.step(x, labels, opt); // warm-up
      const waits = cpuStream().waits;
      const steps = [model.step(x, labels, opt), model.step(x, labels, opt), model.step(x, labels, opt)];
      const losses = await Promise.all(steps);
      for (const r of losses) expect(Number.isFinite(r.loss)).toBe(true);
      // Reading the labels while pending kernels only read them does not wait (it did: 60 ms a step).
      expect(cpuStream().waits - waits).toBe(0);
    } finally {
      x.dispose();
      opt.dispose();
      model.dispose();
    }
  });

  it('a write into a storage a pending op reads lands after that op (staged), and reads see it', async () => {
    const rand = mulberry32(seed + 2);
    const a = Float32Array.from({ length: 1000 }, () => rand() * 2 - 1);
    const b = Float32Array.from({ length: 1000 }, () => rand() * 2 - 1);
    const ys = busyWork(rand);
    const x = Tensor.from(a, [1000]);
    const staged = cpuStream().stagedWrites;
    const y = relu(x); // pending behind the convolutions
    const bAtWrite = b.slice();
    Tensor.storageOf(x, 'test').write(b);
    b.fill(7); // the caller's array may change once write() returns
    expect(cpuStream().stagedWrites).toBe(staged + 1);
    const got = await y.toFloat32Array();
    expect(Array.from(got)).toEqual(Array.from(a, (v) => Math.max(0, v))); // relu of the old data
    expect(await x.toFloat32Array()).toEqual(bAtWrite); // the new data, as it was when written
    for (const t of [...ys, x, y]) t.dispose();
  });

  it('tensors disposed while a pending op uses them are freed after it (results unchanged)', async () => {
    const rand = mulberry32(seed + 3);
    const xs = Float32Array.from({ length: 2 * 3 * 31 * 29 }, () => rand() * 2 - 1);
    const ws = Float32Array.from({ length: 5 * 3 * 3 * 3 }, () => rand() * 2 - 1);
    const reference = async () => {
      using x = Tensor.from(xs, [2, 3, 31, 29]);
      using w = Tensor.from(ws, [5, 3, 3, 3]);
      using y = conv2d(x, w, null, { padding: 1 });
      return y.toFloat32Array();
    };
    const want = await reference();
    const ys = busyWork(rand);
    const x = Tensor.from(xs, [2, 3, 31, 29]);
    const w = Tensor.from(ws, [5, 3, 3, 3]);
    const y = conv2d(x, w, null, { padding: 1 });
    const liveBefore = memoryStats().native.hostBytes;
    x.dispose();
    w.dispose();
    expect(memoryStats().native.hostBytes).toBe(liveBefore - xs.length * 4 - ws.length * 4); // counted freed now
    expect(cpuStream().deferredFreeBytes).toBeGreaterThan(0); // returned after the pending conv
    // Allocations meanwhile (which could reuse those blocks if they were freed at once) do not disturb it.
    const noise = Array.from({ length: 4 }, () => Tensor.from(new Float32Array(xs.length).fill(NaN), [xs.length]));
    expect(Array.from(await y.toFloat32Array())).toEqual(Array.from(want));
    for (const t of [...ys, ...noise, y]) t.dispose();
    synchronize();
    expect(cpuStream().deferredFreeBytes).toBe(0);
  });

  it("a kernel's error is reported at the next read, later compute is skipped until then, then all works", async () => {
    using dy = Tensor.from([1, 2, 3, 4], [1, 1, 2, 2]);
    using bad = Tensor.from(Int32Array.from([0, 3, 9, 2]), [1, 1, 2, 2]);
    const skipped = cpuStream().skippedAfterError;
    using dx = maxPool2dBackward(dy, bad, [1, 1, 3, 3]); // returns: the index is found bad on the worker
    using after = relu(dy); // enqueued after the failure: skipped
    await expect(after.toFloat32Array()).rejects.toThrow(/indices\[2\] = 9 is outside the input plane \[0, 9\)/);
    expect(cpuStream().skippedAfterError).toBe(skipped + 1);
    // reported once; the stream works again
    using ok = Tensor.from(Int32Array.from([0, 3, 3, 8]), [1, 1, 2, 2]);
    using dx2 = maxPool2dBackward(dy, ok, [1, 1, 3, 3]);
    expect(Array.from(await dx2.toFloat32Array())).toEqual([1, 0, 0, 5, 0, 0, 0, 0, 4]);
    // synchronize() and dataSync() report too
    using dx3 = maxPool2dBackward(dy, bad, [1, 1, 3, 3]);
    expect(() => synchronize()).toThrow(/outside the input plane/);
    using dx4 = maxPool2dBackward(dy, bad, [1, 1, 3, 3]);
    expect(() => dx4.dataSync()).toThrow(/outside the input plane/);
    expect(Array.from(dx2.dataSync())).toEqual([1, 0, 0, 5, 0, 0, 0, 0, 4]);
    void dx;
    void dx3;
  });

  it('many reads in flight resolve with their own data, in any order awaited', async () => {
    const rand = mulberry32(seed + 4);
    const ys = busyWork(rand, 2);
    const datas = Array.from({ length: 40 }, (_, i) => Float32Array.from({ length: 17 + i * 1000 }, () => rand()));
    const ts = datas.map((d) => relu(Tensor.from(d, [d.length])));
    const reads = ts.map((t) => t.toFloat32Array());
    for (const t of ts) t.dispose(); // the reads are enqueued: disposing now is safe
    const got = await Promise.all(reads.reverse());
    got.reverse().forEach((g, i) => expect(g).toEqual(datas[i]));
    for (const y of ys) y.dispose();
  });

  it('a process keeps running until a pending read settles, and exits cleanly with work still queued', () => {
    const dist = path.join(root, 'dist', 'index.js');
    const prog = (tail: string) => `
      const { Tensor, ops } = await import(${JSON.stringify(dist)});
      const x = Tensor.from(new Float32Array(8 * 3 * 227 * 227).fill(0.5), [8, 3, 227, 227]);
      const w = Tensor.from(new Float32Array(96 * 3 * 11 * 11).fill(0.01), [96, 3, 11, 11]);
      const ys = [0, 1, 2].map(() => ops.conv2d(x, w, null, { stride: 4 }));
      ${tail}`;
    const run = (src: string) => spawnSync(process.execPath, ['--input-type=module', '-e', src], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    // not awaited: only the pending read keeps the loop alive
    const a = run(prog(`ys[2].toFloat32Array().then((v) => console.log('read', v.length, v[0].toFixed(4)));`));
    expect(a.status, a.stderr).toBe(0);
    expect(a.stdout).toContain(`read ${8 * 96 * 55 * 55} ${(0.5 * 0.01 * 363).toFixed(4)}`);
    // exit while the convolutions are queued or running: no crash, no hang
    const b = run(prog(`process.exit(0);`));
    expect(b.status, b.stderr).toBe(0);
    const c = run(prog(`/* the loop ends with work queued and nothing awaiting it */`));
    expect(c.status, c.stderr).toBe(0);
  });
});
