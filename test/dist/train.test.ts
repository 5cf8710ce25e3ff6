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
import { distributedSupport, mpirunArgs } from '../../lib/distributed.js';
import { readSafetensors } from '../../lib/io/safetensors.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(root, 'dist', 'cli.js');
const RANK = path.join(root, 'test', 'dist', 'train-rank.mjs');
const tmp = mkdtempSync(path.join(tmpdir(), 'axn-dist-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const support = distributedSupport();
const mpirun = spawnSync('mpirun', ['--version']).error === undefined;
const skip = !support.mpi ? `the addon has no MPI (${support.reason})` : !mpirun ? 'mpirun is not on the PATH' : '';
// one OpenMP thread a rank: the ranks share this machine's cores
const env = { ...process.env, OMP_NUM_THREADS: '1' };

function run(cmd: string, args: string[], timeout = 240_000) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout, cwd: tmp, env });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}
const f32 = (file: string) => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

describe.skipIf(skip)(`data-parallel training over MPI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it.each([2, 3])('%i ranks equal one process with the global batch; the ranks’ weights are bit-identical', (world) => {
    const batch = '24';
    const steps = '4';
    const one = path.join(tmp, `one-${world}`);
    const many = path.join(tmp, `many-${world}`);
    const a = run(process.execPath, [RANK, one, batch, steps, '0']);
    expect(a.code, a.err).toBe(0);
    const b = run('mpirun', [...mpirunArgs(world), process.execPath, RANK, many, batch, steps, '1']);
    expect(b.code, b.err + b.out).toBe(0);
    const w0 = f32(`${one}.init.bin`);
    const w1 = f32(`${one}.rank0.bin`);
    const ranks = Array.from({ length: world }, (_, r) => f32(`${many}.rank${r}.bin`));
    // every rank: the same bits
    for (let r = 1; r < world; r++) expect(Buffer.compare(Buffer.from(ranks[r].buffer), Buffer.from(ranks[0].buffer)), `rank ${r} vs rank 0`).toBe(0);
    expect(Buffer.compare(readFileSync(`${many}.init.bin`), readFileSync(`${one}.init.bin`))).toBe(0);
    // against one process: the same images, augmentation and dropout masks; only the order of the sums in
    // the gradient (each rank's mean, then the mean of the ranks', against one mean over the batch) and in
    // the loss differs. Two float32 orders of a sum of m terms differ by at most 2·m·u·Σ|terms| (u = 2⁻²⁴);
    // the longest sums here are conv1's weight gradient, m = 24 images × 26² positions ≈ 1.6·10⁴, so
    // 2·m·u ≈ 2·10⁻³ of Σ|terms| per step, for 4 steps (momentum carries them along): the weights' changes
    // agree to 1 % of the largest change, and each loss to 0.2 % (its first one to float32's few ulps).
    let maxChange = 0;
    let maxDiff = 0;
    for (let i = 0; i < w1.length; i++) {
      maxChange = Math.max(maxChange, Math.abs(w1[i] - w0[i]));
      maxDiff = Math.max(maxDiff, Math.abs(ranks[0][i] - w1[i]));
    }
    expect(maxChange).toBeGreaterThan(1e-3); // it trained
    expect(maxDiff, `max |Δw| ${maxDiff} against the largest change ${maxChange}`).toBeLessThanOrEqual(1e-2 * maxChange);
    const l1 = JSON.parse(readFileSync(`${one}.rank0.json`, 'utf8')).losses as number[];
    for (let r = 0; r < world; r++) {
      const lr = JSON.parse(readFileSync(`${many}.rank${r}.json`, 'utf8')).losses as number[];
      expect(lr.length).toBe(Number(steps));
      expect(Math.abs(lr[0] - l1[0])).toBeLessThanOrEqual(1e-5 * l1[0]);
      for (let k = 0; k < lr.length; k++) expect(Math.abs(lr[k] - l1[k]), `loss ${k}`).toBeLessThanOrEqual(2e-3 * l1[k]);
    }
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
