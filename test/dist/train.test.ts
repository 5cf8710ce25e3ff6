// Data-parallel training end to end, with the real MPI on loopback (several processes on this machine):
// N ranks compute what one process computes with the whole batch, every rank holds the same weights bit for
// bit, a rank killed mid-epoch ends the job with a message naming it and leaves an intact checkpoint that a
// resume finishes from as an uninterrupted run would, and bad launches get clear errors.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { mpirunArgs } from '../../lib/distributed.js';
import { readSafetensors } from '../../lib/io/safetensors.js';
import { readCheckpointMeta } from '../../lib/checkpoint.js';
import { emulated, noCuda } from '../helpers/gpu.js';
import { mpiSkipReason, mpirunEnv, mpirunTestArgs, sanitizerPreload } from '../helpers/mpi.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(root, 'dist', 'cli.js');
const RANK = path.join(root, 'test', 'dist', 'train-rank.mjs');
const tmp = mkdtempSync(path.join(tmpdir(), 'axn-dist-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const skip = mpiSkipReason;
// One OpenMP thread a rank: the ranks share this machine's cores.
const preload = sanitizerPreload;
const env = mpirunEnv({ OMP_NUM_THREADS: '1' });

function run(cmd: string, args: string[], timeout = 240_000) {
  // a node process itself gets the sanitizer runtime; mpirun passes it to its ranks
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout, cwd: tmp, env: cmd === process.execPath && preload ? { ...env, LD_PRELOAD: preload } : env });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

/** One process with the global batch against `world` ranks: the weights after `steps` steps (initial, one
 * process, each rank) and the losses. */
function trainBoth(world: number, batch: number, steps: number, device: string) {
  const one = path.join(tmp, `one-${device}-${world}`);
  const many = path.join(tmp, `many-${device}-${world}`);
  const a = run(process.execPath, [RANK, one, String(batch), String(steps), '0', device]);
  expect(a.code, a.err).toBe(0);
  const b = run('mpirun', [...mpirunTestArgs(world), process.execPath, RANK, many, String(batch), String(steps), '1', device]);
  expect(b.code, b.err + b.out).toBe(0);
  return {
    w0: f32(`${one}.init.bin`),
    w1: f32(`${one}.rank0.bin`),
    ranks: Array.from({ length: world }, (_, r) => f32(`${many}.rank${r}.bin`)),
    l1: JSON.parse(readFileSync(`${one}.rank0.json`, 'utf8')).losses as number[],
    lr: Array.from({ length: world }, (_, r) => JSON.parse(readFileSync(`${many}.rank${r}.json`, 'utf8')).losses as number[]),
    init: [readFileSync(`${one}.init.bin`), readFileSync(`${many}.init.bin`)],
  };
}

/** The ranks' weights bit for bit alike; against one process within the bound derived in the test. */
function expectEquivalent(r: ReturnType<typeof trainBoth>, steps: number, relWeights: number, relLoss: number) {
  const { w0, w1, ranks, l1, lr, init } = r;
  for (let k = 1; k < ranks.length; k++) expect(Buffer.compare(Buffer.from(ranks[k].buffer), Buffer.from(ranks[0].buffer)), `rank ${k} vs rank 0`).toBe(0);
  expect(Buffer.compare(init[0], init[1])).toBe(0);
  let maxChange = 0;
  let maxDiff = 0;
  for (let i = 0; i < w1.length; i++) {
    maxChange = Math.max(maxChange, Math.abs(w1[i] - w0[i]));
    maxDiff = Math.max(maxDiff, Math.abs(ranks[0][i] - w1[i]));
  }
  expect(maxChange).toBeGreaterThan(1e-3); // it trained
  expect(maxDiff, `max |Δw| ${maxDiff} against the largest change ${maxChange}`).toBeLessThanOrEqual(relWeights * maxChange);
  for (const losses of lr) {
    expect(losses.length).toBe(steps);
    expect(Math.abs(losses[0] - l1[0])).toBeLessThanOrEqual(1e-5 * l1[0]);
    for (let k = 0; k < losses.length; k++) expect(Math.abs(losses[k] - l1[k]), `loss ${k}`).toBeLessThanOrEqual(relLoss * l1[k]);
  }
}
const f32 = (file: string) => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

// The CPU path (skipped on the emulated device's build, where it would only repeat itself)
describe.skipIf(skip || emulated)(`data-parallel training over MPI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it.each([2, 3])('%i ranks equal one process with the global batch; the ranks’ weights are bit-identical', (world) => {
    // Against one process: the same images, augmentation and dropout masks; only the order of the sums in
    // the gradient (each rank's mean, then the mean of the ranks', against one mean over the batch) and in
    // the loss differs. Two float32 orders of a sum of m terms differ by at most 2·m·u·Σ|terms| (u = 2⁻²⁴);
    // the longest sums here are conv1's weight gradient, m = 24 images × 26² positions ≈ 1.6·10⁴, so
    // 2·m·u ≈ 2·10⁻³ of Σ|terms| per step, for 4 steps (momentum carries them along): the weights' changes
    // agree to 1 % of the largest change, and each loss to 0.2 % (its first one to float32's few ulps).
    // (Measured here: 2.5·10⁻⁷ of the largest change. Keying the dropout masks by the rank's own images
    // instead of their place in the global batch gives 0.57.)
    expectEquivalent(trainBoth(world, 24, 4, 'cpu'), 4, 1e-2, 2e-3);
  });

  const trainArgs = (out: string) => ['train', '--limit', '1536', '--test-limit', '200', '--epochs', '2', '--batch-size', '32', '--dropout', '0.5', '--out', out, '--no-progress', '--device', 'cpu', '--seed', '5'];
  const weightsOf = async (dir: string) => (await readSafetensors(path.join(dir, 'weights.safetensors'))).tensors;

  it('kill -9 of a rank ends the job naming it; the checkpoint is intact; --resume finishes as an uninterrupted run', async () => {
    const full = path.join(tmp, 'full');
    const u = run(process.execPath, [CLI, ...trainArgs(full), '--nproc', '2']);
    expect(u.code, u.err + u.out).toBe(0);
    expect(u.out).toMatch(/epoch 2: train loss [\d.]+, train acc [\d.]+%, test loss/);
    expect((u.out.match(/epoch 1:/g) ?? []).length, 'only rank 0 reports').toBe(1);

    // the same run, with checkpoints every 8 steps; rank 1 killed in its second epoch
    const cut = path.join(tmp, 'cut');
    const child = spawn(process.execPath, [CLI, ...trainArgs(cut), '--nproc', '2', '--checkpoint-every', '8'], { cwd: tmp, env });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const ended = new Promise<{ code: number | null; at: number }>((res) => child.on('exit', (code) => res({ code, at: Date.now() })));
    // wait for epoch 1's report, then kill rank 1
    const t0 = Date.now();
    while (!/epoch 1:/.test(out)) {
      if (Date.now() - t0 > 200_000) throw new Error(`no epoch finished: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const ranks = rankPids(child.pid!);
    expect(ranks.length, `rank processes under mpirun: ${JSON.stringify(ranks)}`).toBe(2);
    const victim = ranks.find((p) => p.rank === 1)!;
    const killedAt = Date.now();
    process.kill(victim.pid, 'SIGKILL');
    const { code, at } = await ended;
    expect(code).not.toBe(0);
    expect((at - killedAt) / 1000).toBeLessThan(60);
    expect(out).toMatch(/rank 1\b/);
    // intact, and resumable
    const ckpt = path.join(cut, 'checkpoint.safetensors');
    expect(existsSync(ckpt)).toBe(true);
    const r = run(process.execPath, [CLI, ...trainArgs(cut), '--nproc', '2', '--checkpoint-every', '8', '--resume']);
    expect(r.code, r.err + r.out).toBe(0);
    expect(r.out).toMatch(/resuming from .*checkpoint\.safetensors: epoch 2, batch \d+/);
    const a = await weightsOf(full);
    const b = await weightsOf(cut);
    for (const [name, t] of a) expect(Buffer.compare(Buffer.from(b.get(name)!.data.buffer), Buffer.from(t.data.buffer)), name).toBe(0);
  });

  it('a rank that hangs (SIGSTOP) ends the job after the watchdog’s limit, with a message; the checkpoint stays intact', async () => {
    const dir = path.join(tmp, 'hang');
    const child = spawn(process.execPath, [CLI, ...trainArgs(dir), '--nproc', '2', '--checkpoint-every', '8'], { cwd: tmp, env: { ...env, AXN_DIST_TIMEOUT_S: '15' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const ended = new Promise<{ code: number | null; at: number }>((res) => child.on('exit', (code) => res({ code, at: Date.now() })));
    const t0 = Date.now();
    let exited = false;
    void ended.then(() => (exited = true));
    while (!/epoch 1:/.test(out)) {
      if (Date.now() - t0 > 100_000 || exited) throw new Error(`no epoch finished: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const victim = rankPids(child.pid!).find((p) => p.rank === 1)!;
    const stoppedAt = Date.now();
    process.kill(victim.pid, 'SIGSTOP');
    const { code, at } = await ended;
    try {
      process.kill(victim.pid, 'SIGKILL'); // mpirun should have ended it already
    } catch {
      /* gone */
    }
    expect(code).not.toBe(0);
    const secs = (at - stoppedAt) / 1000;
    expect(secs).toBeGreaterThan(10); // not before the limit (less the step that rank 0 had done before)
    expect(secs).toBeLessThan(60);
    expect(out).toMatch(/rank 0: no progress for \d+ s \(the limit is 15 s\) after (step \d+ of epoch 2|writing the checkpoint)/);
    const meta = await readCheckpointMeta(path.join(dir, 'checkpoint.safetensors'));
    expect(meta.epoch).toBeGreaterThanOrEqual(1);
  });

  it('bad launches get clear errors: a batch the ranks do not divide, ranks with other settings', () => {
    const out = path.join(tmp, 'bad');
    const a = run(process.execPath, [CLI, ...trainArgs(out).map((v) => (v === '32' ? '31' : v)), '--nproc', '2'], 120_000);
    expect(a.code).not.toBe(0);
    expect(a.err + a.out).toMatch(/the batch size 31 is the global one and must be divisible by the 2 ranks/);
    const base = trainArgs(path.join(tmp, 'bad2'));
    const other = base.map((v) => (v === '5' ? '6' : v)); // --seed
    // two app contexts (MPMD): rank 0 and rank 1 started with other seeds
    const b = run('mpirun', [...mpirunArgs(1), process.execPath, CLI, ...base, ':', '-np', '1', process.execPath, CLI, ...other], 120_000);
    expect(b.code).not.toBe(0);
    expect(b.err + b.out).toMatch(/ranks were not started with the same settings \(rank 1 has model\.seed 6, rank 0 5; rank 1 has seed 6, rank 0 5\)/);
  });
});

/** The rank processes of the mpirun under `launcher` (found by OMPI_COMM_WORLD_RANK in their environment). */
function rankPids(launcher: number): { pid: number; rank: number }[] {
  const found: { pid: number; rank: number }[] = [];
  const walk = (pid: number) => {
    let kids: number[] = [];
    try {
      kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return;
    }
    for (const k of kids) {
      try {
        const e = readFileSync(`/proc/${k}/environ`, 'utf8').split('\0').find((l) => l.startsWith('OMPI_COMM_WORLD_RANK='));
        if (e) found.push({ pid: k, rank: Number(e.split('=')[1]) });
      } catch {
        /* gone */
      }
      walk(k);
    }
  };
  walk(launcher);
  return found;
}

// The CUDA path: gradients all-reduced through NCCL on the communication stream (on the emulated device, NCCL
// emulated over MPI): one emulated device per rank.
describe.skipIf(skip || noCuda)('data-parallel training on CUDA devices', () => {
  it('2 ranks equal one process with the global batch; the ranks’ weights are bit-identical', () => {
    // the bound of the CPU test, for 2 steps of 8 images (m = 8 × 26²)
    expectEquivalent(trainBoth(2, 8, 2, 'cuda'), 2, 1e-2, 2e-3);
  });
});
