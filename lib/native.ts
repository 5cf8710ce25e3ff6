/** Loads the compiled addon (build/Release/alexnet_cuda.node). When it can't, throws one error that
 * lists every path tried with its error, and what to do about it (node-llama-cpp / sharp style). */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeStorage {
  readonly bytes: number;
  readonly device: number;
  readonly freed: boolean;
  write(view: ArrayBufferView, byteOffset?: number): void;
  readSync(view: ArrayBufferView): void;
  read(view: ArrayBufferView): Promise<void>;
  copyFrom(src: NativeStorage, bytes?: number, dstOffset?: number, srcOffset?: number): void;
  zero(): void;
  free(): void;
}

export interface BackendInfo {
  buildSystem: string;
  cudaBuilt: boolean;
  /** The CUDA device is the emulator of the test build (AXN_CUDA=EMU): kernels run on the CPU. */
  emulated: boolean;
  /** What the emulated build says about itself (thread order, seed), when emulated. */
  emulator?: string;
  /** 'cuBLAS', 'stub' (CI build without cuBLAS: GEMMs cannot run) or 'emulated'; with the CUDA backend. */
  cublas?: string;
  /** Sanitizers the emulated build was instrumented with (e.g. 'address,undefined'). */
  sanitize?: string;
  cuda: boolean;
  cudaReason: string;
  cudaRuntime?: number;
  cudaDriver?: number;
  cudaArchs?: string;
  blas: string;
  threads: number;
}

export interface CudaDeviceInfo {
  index: number;
  name: string;
  totalBytes: number;
  computeCapability: string;
  smCount: number;
}

export interface NativeMemoryStats {
  hostBytes: number;
  hostBuffers: number;
  /** Large freed host blocks kept for reuse, and all large host blocks mapped (in use + cached). */
  hostCachedBytes: number;
  hostMappedBytes: number;
  /** Freed small host blocks (< 64 KiB) kept for reuse. */
  hostSmallCachedBytes: number;
  /** The CPU stream (native/cpu_stream.h): CPU ops run in call order on a native worker thread. */
  cpuStream: {
    /** Tasks enqueued and not yet finished. */
    pendingTasks: number;
    tasksRun: number;
    /** Compute tasks skipped because an earlier one failed (its error not yet reported). */
    skippedAfterError: number;
    /** Bytes of disposed tensors whose memory returns once the tasks using it have run. */
    deferredFreeBytes: number;
    /** Host writes into a storage a pending task still used (copied, then written in order). */
    stagedWrites: number;
    /** Times the JS thread waited for the worker (dataSync, a cross-device copy, synchronize, a full queue). */
    waits: number;
  };
  cuda?: {
    inUseBytes: number;
    cachedBytes: number;
    peakInUseBytes: number;
    allocCalls: number;
    cacheHits: number;
    cudaMallocCalls: number;
    oomRetries: number;
    cudaFreeCalls: number;
    /** What the host asked of the device since the start (cumulative counters). */
    kernelLaunches: number;
    cublasCalls: number;
    /** Pinned staging blocks allocated (cudaMallocHost) and freed (emptyCache); idle ones cached. */
    pinnedAllocs: number;
    pinnedFrees: number;
    pinnedCachedBytes: number;
    /** Host waits for the device: stream/event synchronisations and blocking copies. */
    hostSyncs: number;
    /** Cross-stream waits enqueued (an event recorded on one stream, waited on by another): 0 on one stream. */
    streamWaits: number;
  };
}

export interface NativeAddon {
  Storage: new (device: number, bytes: number) => NativeStorage;
  backendInfo(): BackendInfo;
  cudaDevices(): CudaDeviceInfo[];
  memoryStats(): NativeMemoryStats;
  cudaSynchronize(): void;
  cudaEmptyCache(): void;
  resetPeakMemory(): void;
  setPoison(on: boolean): void;
  // Op bindings: raw pointers and sizes, validated in lib/ops before the call.
  ops: Record<string, (...args: any[]) => any>;
  /** The data loader's native half (native/data/): packed data sets, JPEG decoding threads. */
  data: NativeData;
}

export interface NativeLoaderInfo {
  count: number;
  labels: Int32Array;
  widths: Int32Array;
  heights: Int32Array;
  channels: Uint8Array;
  formats: Uint8Array;
  fileBytes: number;
  meta: string;
  crc32c: string;
  jpeg: boolean;
  jpegReason: string;
  jpegVersion: string;
  threads: number;
  gpuDecode: boolean;
  gpuDecodeReason: string;
}

export interface NativeLoaderStats {
  images: number;
  batches: number;
  failed: number;
  bytesIn: number;
  /** Wall time the decode threads spent on images (summed over threads). */
  decodeSeconds: number;
  /** CPU time they spent (thread CPU clocks): images / decodeCpuSeconds is the rate per core. */
  decodeCpuSeconds: number;
  stagingWaitSeconds: number;
  inFlight: number;
}

/** native/data/loader.cc */
export interface NativeLoader {
  info(): NativeLoaderInfo;
  names(): string;
  setStaging(count: number, bytes: number): void;
  decode(slot: number, jobs: Int32Array, H: number, W: number, C: number, dst?: NativeStorage): Promise<void>;
  upload(slot: number, bytes: number, dst: NativeStorage): void;
  stats(): NativeLoaderStats;
  recordBytes(i: number): Buffer;
  decodeRecord(i: number): Buffer;
  decodeAll(passes: number): { images: number; seconds: number; cpuSeconds: number };
  decodeGpu(jobs: Int32Array, H: number, W: number, C: number, dst: NativeStorage): Promise<void>;
  close(): void;
}

export interface NativeData {
  Loader: new (path: string, threads: number, cuda: boolean, gpuDecode?: boolean) => NativeLoader;
  crc32c(data: ArrayBufferView, crc?: number): number;
  crc32cImpl: string;
  jpeg: boolean;
  jpegReason: string;
  jpegVersion: string;
  gpuDecode: boolean;
  gpuDecodeReason: string;
}

/** The package root: the nearest folder above this file whose package.json is alexnet-cuda's. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'alexnet-cuda') return dir;
      } catch {
        /* keep looking */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('alexnet-cuda: could not find the package root (package.json) above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  // OpenMP threads that spin after each parallel region steal the cores from the next region's threads
  // (and from other processes): with two processes on two cores a training step ran 20× slower. Passive
  // waiting costs little here (each region is milliseconds long). libgomp reads this when it loads,
  // i.e. with the addon just below; a value the user set wins.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  const root = packageRoot();
  const require = createRequire(path.join(root, 'package.json'));
  const candidates = [
    process.env.ALEXNET_CUDA_ADDON,
    path.join(root, 'build', 'Release', 'alexnet_cuda.node'),
    path.join(root, 'build', 'Debug', 'alexnet_cuda.node'),
  ].filter((p): p is string => !!p);
  const tried: string[] = [];
  for (const p of candidates) {
    if (!existsSync(p)) {
      tried.push(`  - ${p}: not found`);
      continue;
    }
    try {
      cached = require(p) as NativeAddon;
      return cached;
    } catch (e) {
      tried.push(`  - ${p}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(
    [
      'alexnet-cuda: could not load the native addon.',
      'Tried:',
      ...tried,
      'Possible solutions:',
      '  - Build it: `npm rebuild alexnet-cuda` (in this package\'s own clone: `npm run build`), and read its output.',
      '  - The build needs a C++17 compiler (g++ or clang) and either cmake (for cmake-js; CUDA backend when',
      '    nvcc and cuBLAS are found) or Python 3 for node-gyp (CPU-only). Debian: apt-get install g++ cmake.',
      '  - If the install ran with --ignore-scripts or AXN_SKIP_BUILD=1, the addon was never built.',
      `  - Node.js ${process.version} on ${process.platform}-${process.arch}; Node.js 20.17 or newer is required.`,
    ].join('\n'),
  );
}
