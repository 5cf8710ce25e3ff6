/** GPU test gating: GPU tests skip themselves without a usable CUDA device — unless AXN_REQUIRE_GPU=1
 * (`npm run test:gpu`, `npm run test:emu`), where a missing device is a failure, so a GPU run can't pass
 * by skipping. The device may be the emulated one (AXN_CUDA=EMU, scripts/test-emu.mjs). */
import { backendInfo } from '../../lib/index.js';

const info = backendInfo();
export const hasCuda = info.cuda;
export const requireGpu = process.env.AXN_REQUIRE_GPU === '1';
if (requireGpu && !hasCuda) {
  throw new Error(`AXN_REQUIRE_GPU=1 but CUDA is not usable: ${info.cudaReason}`);
}
/** `describe.skipIf(!hasCuda)` reads as `describeGpu`. */
export const noCuda = !hasCuda;
/** The CUDA device is the emulator (every CUDA thread runs on the CPU, one at a time). */
export const emulated = info.emulated === true;
/** A batch size for CUDA tests at AlexNet's layer shapes: `n` on a GPU, at most `small` on the emulator,
 * where each CUDA thread costs about 100 ns (the layer shapes stay; only the batch shrinks). */
export function cudaBatch(n: number, small = 2): number {
  return emulated ? Math.min(n, small) : n;
}

/** Runs `fn` with a defect planted in the real kernels (`emulator.setPlanted`, the emulated device only; see
 * cuda::Planted in native/cuda/context.h), to prove a test catches it. The kernels read the flag when they
 * run, so `fn` must wait for their results (read them back) before it returns. */
export async function withPlanted<T>(defect: 'lrnShortWindow' | 'biasGradDropLastChunk' | 'reluWritesNothing' | 'convUnpaddedK', fn: () => T | Promise<T>): Promise<T> {
  if (!emulated) throw new Error('withPlanted: defects are planted on the emulated device only');
  const { loadNative } = await import('../../lib/native.js');
  const e = (loadNative() as unknown as { emulator: { setPlanted(d: string | null): void } }).emulator;
  e.setPlanted(defect);
  try {
    return await fn();
  } finally {
    e.setPlanted(null);
  }
}
