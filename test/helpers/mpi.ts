/** Launching ranks with mpirun from the tests (test/dist/): whether they can run here, and the command. */
import { spawnSync } from 'node:child_process';
import { distributedSupport, mpirunArgs } from '../../lib/distributed.js';

const support = distributedSupport();
const probe = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
/** Why the MPI tests cannot run here ('' when they can). */
export const mpiSkipReason = !support.mpi
  ? `the addon was built without MPI: ${support.reason}`
  : probe.error || probe.status !== 0
    ? 'mpirun is not on PATH (Debian: apt-get install openmpi-bin)'
    : '';

/** The sanitizer runtime of the emulated device's build (LD_PRELOAD, npm run test:emu): a node process
 * gets it, mpirun itself does not (it is not instrumented); mpirun passes it on to its ranks (-x). */
export const sanitizerPreload = process.env.LD_PRELOAD;

/** This environment without LD_PRELOAD, plus `extra`: mpirun's environment. */
export function mpirunEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const { LD_PRELOAD: _drop, ...rest } = process.env;
  return { ...rest, ...extra };
}

/** mpirun's arguments for `np` ranks on this machine (mpirunArgs), with the sanitizer runtime sent to
 * the ranks. */
export function mpirunTestArgs(np: number): string[] {
  return [...mpirunArgs(np), ...(sanitizerPreload ? ['-x', `LD_PRELOAD=${sanitizerPreload}`] : [])];
}
