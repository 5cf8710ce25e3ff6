// The communicator across processes: mpirun starts 2 and 3 ranks of test/dist/collectives-rank.mjs on this
// machine (the flags of mpirunArgs, what the CLI's --nproc uses), on the CPU and on the CUDA device (on
// the emulated device: NCCL emulated over MPI). Each rank checks its results against the float32 sum in
// rank order (bit for bit) and a float64 sum, and the ranks compare checksums of every result.
// Also: a rank that exits without finalizeDistributed(), abortDistributed(), and a rank killed by SIGKILL
// while the other is in an all-reduce (mpirun must end the job, quickly).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { emulated, noCuda } from '../helpers/gpu.js';
import { mpiSkipReason, mpirunEnv, mpirunTestArgs } from '../helpers/mpi.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, 'collectives-rank.mjs');
const skipReason = mpiSkipReason;
if (skipReason) console.warn(`test/dist/collectives: skipped: ${skipReason}`);

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  end: number;
}

/** mpirun -np <np> node collectives-rank.mjs <mode> <device>. The ranks inherit this environment, except
 * LD_PRELOAD (the sanitizer runtime of the emulated build), which goes to the ranks only (-x). */
function launch(np: number, mode: string, device: string, timeoutMs = 100_000, extra: string[] = []): Promise<Run> {
  const env = mpirunEnv();
  const args = [...mpirunTestArgs(np), process.execPath, script, mode, device, ...extra];
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('mpirun', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mpirun ${args.join(' ')} did not end within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0, end: Date.now() });
    });
  });
}

function results(r: Run): any[] {
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('RESULT '))
    .map((l) => JSON.parse(l.slice(7)))
    .sort((a, b) => a.rank - b.rank);
}

async function check(np: number, device: 'cpu' | 'cuda', backend: 'mpi' | 'nccl', maxSum = 1e7, maxMean = 1e7) {
  const r = await launch(np, `check`, device, 100_000, [String(maxSum), String(maxMean)]);
  const out = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  expect(r.code, out).toBe(0);
  const res = results(r);
  expect(res.map((x) => x.rank), out).toEqual([...Array(np).keys()]);
  for (const x of res) {
    expect(x.failures, `rank ${x.rank}`).toEqual([]);
    expect(x.info).toEqual({ rank: x.rank, world: np, localRank: x.rank, localWorld: np, backend });
    // The same bits on every rank (rank 0 compared them too, through allGatherString).
    expect(x.checksums).toEqual(res[0].checksums);
  }
  expect(Object.keys(res[0].checksums).length).toBeGreaterThan(18);
  console.log(`${np} ranks on ${device}: ${(r.ms / 1000).toFixed(1)} s; rank 0 timings (ms): ${JSON.stringify(res[0].timings)}`);
  return res;
}

describe.skipIf(!!skipReason)('collectives across processes (mpirun, CPU tensors)', () => {
  it('all-reduce (sum, mean), broadcast, fused calls and host collectives on 2 ranks', async () => {
    await check(2, 'cpu', noCuda ? 'mpi' : 'nccl');
  });
  it('the same on 3 ranks (sizes not divisible by the rank count; the order of the additions matters), up to 65537 floats', async () => {
    await check(3, 'cpu', noCuda ? 'mpi' : 'nccl', 65537, 65537);
  });
  it('a rank that ends without finalizeDistributed() is finalized at exit, quietly', async () => {
    const r = await launch(2, 'nofinalize', 'cpu');
    expect(r.code, r.stderr).toBe(0);
    expect(results(r)).toHaveLength(2);
    expect(r.stderr).not.toMatch(/finali[sz]e|abort/i);
  });
  it('abortDistributed ends the whole job with its message', async () => {
    const r = await launch(2, 'abort', 'cpu', 60_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('rank 1: planned abort for the test');
    expect(r.stdout).not.toContain('RESULT');
  });
  it('a rank killed by SIGKILL during an all-reduce ends the job (mpirun)', async () => {
    const r = await launch(2, 'kill', 'cpu', 60_000);
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain('RESULT');
    const killed = Number(/KILLED (\d+)/.exec(r.stdout)?.[1]);
    const after = r.end - killed; // ms from the kill to mpirun's exit
    console.log(`SIGKILL of rank 1: mpirun ended the job ${Number.isFinite(after) ? after : '?'} ms later; it said:\n${r.stderr.trim()}`);
    expect(r.stderr).toMatch(/signal 9|Killed/);
  });
});

describe.skipIf(!!skipReason || noCuda)('collectives across processes on CUDA (NCCL; emulated over MPI on the emulated device)', () => {
  // The emulated device runs the mean's scaling kernel one CUDA thread at a time: 10^7 floats for the sum
  // and broadcast, 65537 for the mean.
  it('all-reduce (sum, mean), broadcast and fused calls on 2 ranks', async () => {
    await check(2, 'cuda', 'nccl', 1e7, emulated ? 65537 : 1e7);
  });
  it('the same on 3 ranks, up to 65537 floats', async () => {
    await check(3, 'cuda', 'nccl', 65537, 65537);
  });
  it('a rank that ends without finalizeDistributed() is finalized at exit (the NCCL communicator too), quietly', async () => {
    const r = await launch(2, 'nofinalize', 'cuda');
    expect(r.code, r.stderr).toBe(0);
    expect(results(r)).toHaveLength(2);
    expect(r.stderr).not.toMatch(/finali[sz]e|abort/i);
  });
  it('the NCCL watchdog ends the job when a collective does not complete within AXN_DIST_TIMEOUT_S', async () => {
    process.env.AXN_DIST_TIMEOUT_S = '2';
    let r: Run;
    try {
      r = await launch(2, 'hang', 'cuda', 60_000);
    } finally {
      delete process.env.AXN_DIST_TIMEOUT_S;
    }
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain('RESULT');
    expect(r.stderr).toMatch(/rank 0 of 2: NCCL allReduce #1 \(1000 floats\) did not complete within 2 s \(AXN_DIST_TIMEOUT_S\)/);
    expect(r.ms).toBeLessThan(30_000);
  });
  it.skipIf(!emulated)('the check catches a missing stream wait: without the compute stream\'s wait for the communication stream a read sees the unreduced data', async () => {
    const r = await launch(2, 'dropwait', 'cuda');
    expect(r.code, r.stderr).toBe(0);
    const res = results(r);
    expect(res).toHaveLength(2);
    for (const x of res) {
      expect(x.false, 'with the waits').toEqual({ early: 'sum', late: 'sum' });
      expect(x.intoCompute, 'wait 2 dropped').toEqual({ early: 'unreduced', late: 'sum' });
    }
  });
});
