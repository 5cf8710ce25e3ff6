/** Data-parallel communication (DESIGN.md "Distributed"): MPI launches the ranks and reduces CPU tensors,
 * NCCL reduces CUDA tensors (loaded at run time; emulated over MPI on the emulated device). Native:
 * native/dist/ (see comm.h), native/bind/dist.cc.
 *
 * Rules:
 *  - Every rank makes the same collective calls (allReduce, broadcast, allReduceHost, allGatherString,
 *    barrier) in the same order, with the same tensor sizes in the same order. A rank that skips or
 *    reorders one leaves the others waiting (on CUDA the watchdog ends the job after AXN_DIST_TIMEOUT_S,
 *    default 300 s).
 *  - allReduce and broadcast are enqueued like every op: they return at once; reading a tensor (or the next
 *    op on it) comes after them. On the CPU they run on the CPU stream; on CUDA on a communication stream
 *    ordered with the compute stream by events.
 *  - On the CPU every MPI call runs on the CPU stream's worker thread, in call order: a collective holds the
 *    worker while it waits for the other ranks (CPU ops enqueued after it wait; no overlap of CPU compute
 *    and communication), and the host collectives run after the CPU ops enqueued before them.
 *  - Call initDistributed() before creating any CUDA tensor: it selects this rank's GPU.
 *  - allReduce sums in rank order 0..N-1 in float32 on the CPU and the emulated device: every rank gets the
 *    same bits, and the same inputs give the same bits on every run. NCCL (real GPUs) is deterministic for
 *    a fixed job shape and gives every rank the same bits, in its own order.
 */
import { describe } from './errors.js';
import { loadNative, type NativeStorage } from './native.js';
import { Tensor, type Device } from './tensor.js';

export interface DistributedSupport {
  /** This addon was built with MPI. */
  mpi: boolean;
  /** What is missing and how to install it, when `mpi` is false. */
  reason?: string;
  /** CUDA builds: true when NCCL (libnccl.so.2) loads, else why not and how to install it. */
  nccl?: boolean | string;
}

export interface DistInfo {
  rank: number;
  world: number;
  /** Rank among the ranks on this machine (this rank's GPU is localRank % deviceCount). */
  localRank: number;
  localWorld: number;
  /** 'nccl' when CUDA tensors go through NCCL; 'mpi' when only CPU tensors can be reduced. */
  backend: 'mpi' | 'nccl';
}

/** What {@link ncclSelfTest} ran. */
export interface NcclSelfTestReport {
  /** The NCCL library file that was loaded, or "the emulated NCCL (...)" on the emulated device. */
  library: string;
  /** ncclGetVersion: major × 10000 + minor × 100 + patch (× 1000 for the major before 2.9); 0 when emulated. */
  version: number;
  /** One line per check that passed, in order. */
  checks: string[];
}

interface NativeDist {
  support(): DistributedSupport;
  ncclSelfTest(): Promise<NcclSelfTestReport>;
  init(): DistInfo;
  initialised(): boolean;
  finalized(): boolean;
  allReduce?(storages: NativeStorage[], counts: number[], mean: boolean): void;
  broadcast?(storages: NativeStorage[], counts: number[], root: number): void;
  allReduceHost?(values: Float64Array, op: number): Promise<Float64Array>;
  allGatherString?(s: string): Promise<string[]>;
  barrier?(): Promise<void>;
  finalize?(): Promise<void>;
  finalizeSync?(): void;
  abort(code: number, message: string): never;
}

function native(): NativeDist {
  const d = (loadNative() as unknown as { dist?: NativeDist }).dist;
  if (!d) throw new Error('alexnet-cuda: this native addon predates distributed support; rebuild it (npm rebuild alexnet-cuda)');
  return d;
}

const INSTALL = 'install MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev), then rebuild the addon (npm rebuild alexnet-cuda)';

/** Whether this addon can run data-parallel: built with MPI, and (CUDA builds) whether NCCL loads. */
export function distributedSupport(): DistributedSupport {
  const s = native().support();
  const out: DistributedSupport = { mpi: s.mpi };
  if (!s.mpi) out.reason = /apt-get install openmpi-bin/.test(s.reason ?? '') ? s.reason : `${s.reason ?? 'built without MPI'}; ${INSTALL}`;
  if (s.nccl !== undefined) out.nccl = s.nccl;
  return out;
}

/**
 * A diagnostic of the NCCL layer on one GPU, without MPI (CUDA builds, with or without MPI; the GPU check
 * runs it): loads NCCL as initDistributed() would (AXN_NCCL_LIB, else libnccl.so.2 on the loader's path,
 * else in the folders of AXN_NCCL_DIRS, ':'-separated), reads its version, creates a communicator of one
 * rank on this process's device, runs ncclAllReduce (sum, float32) and ncclBroadcast out of place on 1, 7
 * and 1,000,003 floats on the communication stream, ordered with the compute stream as the training
 * collectives are, then allReduce and broadcast's own code path (tensor fusion, waits, watchdog) in place,
 * checks every result bit for bit (a world of one: the result is the input) and that nothing was written
 * past the receive buffers, polls ncclCommGetAsyncError, and destroys the communicator. Rejects with the
 * check that failed, or with every library name tried when NCCL cannot be loaded. It does not cover
 * several ranks or several GPUs (with one rank the reduction itself is not observable). It creates the
 * CUDA context: in a data-parallel process call it after initDistributed(). On the emulated device it runs
 * against the emulated NCCL.
 */
export function ncclSelfTest(): Promise<NcclSelfTestReport> {
  try {
    const d = native();
    if (typeof d.ncclSelfTest !== 'function') throw new Error('ncclSelfTest: this native addon predates it; rebuild it (npm rebuild alexnet-cuda)');
    return d.ncclSelfTest();
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Whether this process was started by an MPI launcher (mpirun/mpiexec, srun with PMI/PMIx), from the
 * environment only: no MPI call. */
export function launchedByMpi(env: NodeJS.ProcessEnv = process.env): boolean {
  const set = (k: string) => env[k] !== undefined && env[k] !== '';
  return (
    set('OMPI_COMM_WORLD_SIZE') || // Open MPI
    set('PMI_SIZE') || set('PMI_RANK') || // MPICH / Intel MPI (Hydra), Slurm with PMI-1/2
    set('PMIX_RANK') || // PMIx (Open MPI 5, Slurm --mpi=pmix)
    set('MV2_COMM_WORLD_SIZE') || // MVAPICH2
    (set('SLURM_PROCID') && (set('PMI_FD') || set('PMIX_NAMESPACE') || set('SLURM_MPI_TYPE')))
  );
}

let info: DistInfo | undefined;
let exitHook = false;

function requireMpi(op: string): NativeDist {
  const d = native();
  const s = d.support();
  if (!s.mpi) throw new Error(`${op}: this alexnet-cuda addon was built without MPI: ${distributedSupport().reason}`);
  return d;
}

function requireInit(op: string): NativeDist {
  const d = requireMpi(op);
  if (d.finalized()) throw new Error(`${op}: finalizeDistributed() was already called`);
  if (!info) throw new Error(`${op}: call initDistributed() first`);
  return d;
}

/**
 * Initialises MPI (MPI_Init_thread) and, on a CUDA build with a device, selects this rank's GPU
 * (localRank % deviceCount: call this before creating any CUDA tensor) and creates the NCCL communicator.
 * Idempotent: later calls return the same info. A process that ends normally without
 * finalizeDistributed() is finalized at exit; one that ends with a non-zero exit code aborts the job
 * (MPI_Abort), so the other ranks do not wait for it.
 */
export function initDistributed(): DistInfo {
  if (info) return info;
  const d = requireMpi('initDistributed');
  if (d.finalized()) throw new Error('initDistributed: finalizeDistributed() was already called; MPI cannot be initialised again');
  info = Object.freeze({ ...d.init() });
  if (!exitHook) {
    exitHook = true;
    process.on('exit', (code) => {
      if (d.finalized()) return;
      if (code === 0) {
        try {
          d.finalizeSync!();
        } catch (e) {
          process.stderr.write(`alexnet-cuda: rank ${info!.rank}: finalizing MPI at exit failed: ${(e as Error).message}\n`);
        }
      } else {
        d.abort(code, `alexnet-cuda: rank ${info!.rank} of ${info!.world} is exiting with code ${code} before finalizeDistributed(); aborting the job`);
      }
    });
  }
  return info;
}

/** The info of initDistributed(), or undefined before it. */
export function distributedInfo(): DistInfo | undefined {
  return info;
}

const REDUCE_OPS = { sum: 0, max: 1, min: 2 } as const;

function tensorList(tensors: unknown, op: string): { storages: NativeStorage[]; counts: number[] } {
  if (!Array.isArray(tensors)) throw new TypeError(`${op}: expected an array of tensors, got ${describe(tensors)}`);
  let device: Device | undefined;
  const storages: NativeStorage[] = [];
  const counts: number[] = [];
  tensors.forEach((t, i) => {
    if (!(t instanceof Tensor)) throw new TypeError(`${op}: expected float32 tensors on one device, got ${describe(t)} at index ${i}`);
    const storage = Tensor.storageOf(t, `${op}: tensors[${i}]`); // throws DisposedError
    if (t.dtype !== 'float32') throw new TypeError(`${op}: expected float32 tensors on one device, got ${t.dtype} at index ${i}`);
    if (device === undefined) device = t.device;
    else if (t.device !== device)
      throw new Error(`${op}: expected float32 tensors on one device, got ${device} (tensors[0]) and ${t.device} (tensors[${i}])`);
    storages.push(storage);
    counts.push(t.size);
  });
  return { storages, counts };
}

/**
 * Reduces `tensors` (float32, all on one device) across the ranks, in place: their elementwise sum, or
 * the sum × (1/world) for 'mean'. Enqueued: returns at once. Several tensors are fused into one buffer
 * and one collective (Horovod's tensor fusion).
 */
export function allReduce(tensors: Tensor[], op: 'sum' | 'mean'): void {
  const name = 'allReduce';
  if (op !== 'sum' && op !== 'mean') throw new TypeError(`${name}: op must be "sum" or "mean", got ${describe(op)}`);
  const { storages, counts } = tensorList(tensors, name);
  const d = requireInit(name);
  if (storages.length === 0) return;
  d.allReduce!(storages, counts, op === 'mean');
}

/** Copies `tensors` of rank `root` into the same tensors of every other rank, in place. Enqueued. */
export function broadcast(tensors: Tensor[], root: number): void {
  const name = 'broadcast';
  const { storages, counts } = tensorList(tensors, name);
  const d = requireInit(name);
  if (typeof root !== 'number' || !Number.isInteger(root) || root < 0 || root >= info!.world)
    throw new RangeError(`${name}: root must be an integer rank in [0, ${info!.world}), got ${describe(root)}`);
  if (storages.length === 0) return;
  d.broadcast!(storages, counts, root);
}

/** Reduces a small host array across the ranks (eval counts, step checks), off the JS thread; resolves
 * with the result (the same on every rank; sums in rank order). `values` is not modified. */
export function allReduceHost(values: Float64Array, op: 'sum' | 'max' | 'min'): Promise<Float64Array> {
  const name = 'allReduceHost';
  if (!(values instanceof Float64Array)) return Promise.reject(new TypeError(`${name}: expected a Float64Array, got ${describe(values)}`));
  if (!(op in REDUCE_OPS)) return Promise.reject(new TypeError(`${name}: op must be "sum", "max" or "min", got ${describe(op)}`));
  try {
    return requireInit(name).allReduceHost!(values, REDUCE_OPS[op]);
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Every rank's string, index = rank (settings checks between ranks). */
export function allGatherString(s: string): Promise<string[]> {
  const name = 'allGatherString';
  if (typeof s !== 'string') return Promise.reject(new TypeError(`${name}: expected a string, got ${describe(s)}`));
  try {
    return requireInit(name).allGatherString!(s);
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Resolves once every rank has called barrier() (and this rank's CPU stream has run what came before). */
export function barrier(): Promise<void> {
  try {
    return requireInit('barrier').barrier!();
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Prints `message` to stderr and ends the whole job (ncclCommAbort, then MPI_Abort with `code`). Without
 * MPI (or before initDistributed) it ends this process with `code`. */
export function abortDistributed(code: number, message: string): never {
  const c = typeof code === 'number' && Number.isInteger(code) && code > 0 && code < 256 ? code : 1;
  return native().abort(c, String(message));
}

/** Waits for the streams, destroys the NCCL communicator and finalizes MPI. Safe to call twice, and
 * without initDistributed (then it does nothing). */
export async function finalizeDistributed(): Promise<void> {
  const d = native();
  if (!d.support().mpi || !info || d.finalized()) return;
  await d.finalize!();
}

/**
 * The arguments of `mpirun` (Open MPI) for `np` ranks on this machine, before the program and its
 * arguments — what the CLI's `--nproc` and the tests use:
 *  - `--oversubscribe`: more ranks than cores (or slots) is allowed (tests on 2 cores, CPU training);
 *  - `--bind-to none`: Open MPI binds each rank to one core by default, which would leave a rank's OpenMP
 *    threads on that core;
 *  - `--mca btl_vader_single_copy_mechanism none`: the shared-memory transport's single copy (CMA,
 *    process_vm_readv) is refused in containers without CAP_SYS_PTRACE ("Read -1, expected ..."); the
 *    copy through its shared buffers works everywhere (measured here: 10^7 floats all-reduced over 3
 *    ranks in ~0.4 s with CMA, ~0.75 s without, on 2 shared cores);
 *  - `--allow-run-as-root` when running as root (containers, CI).
 * Ranks inherit the environment of mpirun on this machine.
 */
export function mpirunArgs(np: number, opts: { root?: boolean } = {}): string[] {
  if (typeof np !== 'number' || !Number.isInteger(np) || np < 1) throw new RangeError(`mpirunArgs: np must be an integer ≥ 1, got ${describe(np)}`);
  const root = opts.root ?? (typeof process.getuid === 'function' && process.getuid() === 0);
  return [
    '-np', String(np),
    '--oversubscribe',
    '--bind-to', 'none',
    '--mca', 'btl_vader_single_copy_mechanism', 'none',
    ...(root ? ['--allow-run-as-root'] : []),
  ];
}
