// lib/distributed.ts in one process: argument checks, the launcher helpers, and a world of one rank (MPI's
// singleton init) where every collective is the identity.
import { describe, expect, it } from 'vitest';

import {
  allGatherString, allReduce, allReduceHost, barrier, broadcast, distributedInfo, distributedSupport, finalizeDistributed,
  initDistributed, launchedByMpi, mpirunArgs,
} from '../../lib/distributed.js';
import { Tensor } from '../../lib/tensor.js';

const support = distributedSupport();

describe('distributed: helpers', () => {
  it('launchedByMpi reads the launchers\' environment only', () => {
    expect(launchedByMpi({})).toBe(false);
    expect(launchedByMpi({ OMPI_COMM_WORLD_SIZE: '2' })).toBe(true);
    expect(launchedByMpi({ PMI_SIZE: '4' })).toBe(true);
    expect(launchedByMpi({ PMIX_RANK: '0' })).toBe(true);
    expect(launchedByMpi({ SLURM_PROCID: '0' })).toBe(false); // srun without PMI: not an MPI launch
    expect(launchedByMpi({ SLURM_PROCID: '0', PMI_FD: '5' })).toBe(true);
  });
  it('mpirunArgs: the flags of a one-machine launch', () => {
    expect(mpirunArgs(3, { root: false })).toEqual(['-np', '3', '--oversubscribe', '--bind-to', 'none', '--mca', 'btl_vader_single_copy_mechanism', 'none']);
    expect(mpirunArgs(2, { root: true })).toContain('--allow-run-as-root');
    expect(() => mpirunArgs(0)).toThrow(/mpirunArgs: np must be an integer ≥ 1, got 0/);
  });
  it('distributedSupport says what is missing, or that MPI is there', () => {
    if (support.mpi) expect(support.reason).toBeUndefined();
    else expect(support.reason).toMatch(/apt-get install openmpi-bin libopenmpi-dev.*npm rebuild alexnet-cuda/);
  });
});

describe.skipIf(!support.mpi)('distributed: one rank (singleton MPI)', () => {
  it('refuses collectives before initDistributed, and bad arguments with clear messages', async () => {
    const t = Tensor.zeros([3]);
    if (!distributedInfo()) {
      expect(() => allReduce([t], 'sum')).toThrow(/allReduce: call initDistributed\(\) first/);
      await expect(barrier()).rejects.toThrow(/barrier: call initDistributed\(\) first/);
    }
    expect(() => allReduce(t as unknown as Tensor[], 'sum')).toThrow(/allReduce: expected an array of tensors, got Tensor instance/);
    expect(() => allReduce([t, 3 as unknown as Tensor], 'sum')).toThrow(/allReduce: expected float32 tensors on one device, got 3 at index 1/);
    const u = Tensor.zeros([2], 'cpu', 'uint8');
    expect(() => allReduce([u], 'mean')).toThrow(/allReduce: expected float32 tensors on one device, got uint8 at index 0/);
    const d = Tensor.zeros([1]);
    d.dispose();
    expect(() => allReduce([d], 'sum')).toThrow(/used after dispose/);
    await expect(allReduceHost([1, 2] as unknown as Float64Array, 'sum')).rejects.toThrow(/allReduceHost: expected a Float64Array, got \[1, 2\]/);
    await expect(allReduceHost(new Float64Array(1), 'avg' as 'sum')).rejects.toThrow(/allReduceHost: op must be "sum", "max" or "min", got "avg"/);
    t.dispose();
    u.dispose();
  });

  it('a world of one: every collective is the identity; finalize twice; nothing after it', async () => {
    const info = initDistributed();
    expect(initDistributed()).toBe(info); // idempotent
    expect(info).toMatchObject({ rank: 0, world: 1, localRank: 0, localWorld: 1 });
    const x = Tensor.from(new Float32Array([1.5, -2, 3]), [3]);
    allReduce([x], 'mean');
    broadcast([x], 0);
    expect([...(await x.toFloat32Array())]).toEqual([1.5, -2, 3]);
    expect(() => broadcast([x], 1)).toThrow(/broadcast: root must be an integer rank in \[0, 1\), got 1/);
    expect([...(await allReduceHost(Float64Array.from([1, 2]), 'max'))]).toEqual([1, 2]);
    expect(await allGatherString('only')).toEqual(['only']);
    await barrier();
    await finalizeDistributed();
    await finalizeDistributed();
    expect(() => allReduce([x], 'sum')).toThrow(/allReduce: finalizeDistributed\(\) was already called/);
    expect(() => initDistributed()).not.toThrow(); // the info of the run that was
    x.dispose();
  });
});
