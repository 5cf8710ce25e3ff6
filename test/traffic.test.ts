// The emulated device's traffic counter (native/cuda/emu/traffic.cc; bench/traffic.mjs uses it): on
// operations whose traffic is known exactly, the unique 4 KiB pages each launch reads and writes, a cuBLAS
// call's footprint from its arguments and from the pages, copies by their arguments, and a planted launch
// that writes nothing shows as one. Emulated device only; the page counter needs the plain emulated build
// (AXN_CUDA=EMU AXN_BUILD_DIR=build-emu-plain): under AddressSanitizer (npm run test:emu, build-emu) it
// refuses, and that refusal is what runs there. .ci/run runs this file against the plain build.
import { afterEach, describe, expect, it } from 'vitest';
import { Tensor, ops, synchronize } from '../lib/index.js';
import { loadNative } from '../lib/native.js';
import { emulated, withPlanted } from './helpers/gpu.js';

interface TrafficRecord {
  kind: 'kernel' | 'cublas' | 'copy' | 'memset';
  name: string;
  op?: string;
  grid?: number[];
  block?: number[];
  pagesValid?: boolean;
  readPages?: number;
  writePages?: number;
  m?: number;
  n?: number;
  k?: number;
  flops?: number;
  argReadBytes?: number;
  argWriteBytes?: number;
}
interface TrafficEmulator {
  countTraffic(on: boolean): void;
  trafficSupported(): { supported: boolean; reason: string; pageBytes: number };
  trafficRecords(): TrafficRecord[];
}
const emu = () => (loadNative() as unknown as { emulator: TrafficEmulator }).emulator;
const support = emulated ? emu().trafficSupported() : { supported: false, reason: 'not the emulated device', pageBytes: 4096 };
const PAGE = 4096;
const pages = (bytes: number) => Math.ceil(bytes / PAGE);

/** The records of what `fn` enqueues (read back inside it), counted. */
async function counted(fn: () => Promise<void>): Promise<TrafficRecord[]> {
  synchronize();
  emu().trafficRecords();
  emu().countTraffic(true);
  try {
    await fn();
    synchronize();
  } finally {
    emu().countTraffic(false);
  }
  return emu().trafficRecords();
}

const ramp = (n: number) => Float32Array.from({ length: n }, (_, i) => (i % 7) - 3);

describe.skipIf(!emulated)('the emulated device counts traffic per launch', () => {
  afterEach(() => {
    emu().countTraffic(false);
    emu().trafficRecords();
  });

  it('says whether this build can count, and refuses clearly where it cannot', () => {
    expect(support.pageBytes).toBe(PAGE);
    if (support.supported) {
      expect(support.reason).toBe('');
    } else {
      expect(support.reason).toMatch(/AddressSanitizer|x86-64/);
      expect(() => emu().countTraffic(true)).toThrow(/emulator\.countTraffic: traffic counting/);
    }
    expect(() => (emu().countTraffic as (v: unknown) => void)('yes')).toThrow(/expected true or false/);
  });

  it('records nothing unless asked (off by default)', async () => {
    emu().trafficRecords();
    using x = Tensor.from(ramp(100), [100], 'cuda');
    using y = ops.relu(x);
    await y.toFloat32Array();
    expect(emu().trafficRecords()).toEqual([]);
  });

  describe.skipIf(!support.supported)(`page counts (the plain emulated build; here: ${support.supported ? 'supported' : support.reason})`, () => {
    // 10,000 floats: 40,000 bytes, 9.77 pages: the last page counts whole
    const N = 10_000;

    it('a ReLU reads its input pages and writes its output pages; a page written first is not a read', async () => {
      using x = Tensor.from(ramp(N), [N], 'cuda');
      let y: Tensor | undefined;
      const recs = await counted(async () => {
        y = ops.relu(x);
        await y.toFloat32Array();
      });
      y!.dispose();
      const k = recs.filter((r) => r.kind === 'kernel');
      expect(k).toHaveLength(1);
      expect(k[0]).toMatchObject({ op: 'relu', pagesValid: true, readPages: pages(4 * N), writePages: pages(4 * N) });
      expect(k[0].grid![0] * k[0].block![0]).toBeGreaterThan(0);
      // the read back: a device-to-host copy of the output, by its arguments
      expect(recs.filter((r) => r.kind === 'copy')).toEqual([expect.objectContaining({ name: 'memcpy DtoH', argReadBytes: 4 * N, argWriteBytes: 0 })]);
    });

    it('in place, each page is read and then written: it counts in both', async () => {
      using x = Tensor.from(ramp(N), [N], 'cuda');
      const recs = await counted(async () => {
        ops.relu(x, { inplace: true });
        await x.toFloat32Array();
      });
      const k = recs.filter((r) => r.kind === 'kernel');
      expect(k).toHaveLength(1);
      expect(k[0]).toMatchObject({ readPages: pages(4 * N), writePages: pages(4 * N) });
    });

    it('a host-to-device copy counts the bytes it writes', async () => {
      let x: Tensor | undefined;
      const recs = await counted(async () => {
        x = Tensor.from(ramp(N), [N], 'cuda');
        await x.toFloat32Array();
      });
      x!.dispose();
      expect(recs.map((r) => [r.kind, r.name, r.argReadBytes, r.argWriteBytes])).toEqual([
        ['copy', 'memcpy HtoD', 0, 4 * N],
        ['copy', 'memcpy DtoH', 4 * N, 0],
      ]);
    });

    it("a GEMM's footprint from its arguments agrees with the pages it touched; FLOPs = 2·m·n·k", async () => {
      const M = 64;
      const K = 100;
      const Nn = 48; // A 25,600 B (6.25 pages), B 19,200 B (4.7), C 12,288 B (3 exactly)
      using a = Tensor.from(ramp(M * K), [M, K], 'cuda');
      using b = Tensor.from(ramp(K * Nn), [K, Nn], 'cuda');
      let c: Tensor | undefined;
      const recs = await counted(async () => {
        c = ops.matmul(a, b, { precision: 'fp32' });
        await c.toFloat32Array();
      });
      c!.dispose();
      const g = recs.filter((r) => r.kind === 'cublas');
      expect(g).toHaveLength(1);
      // row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: cuBLAS's m = Nn, n = M
      expect(g[0]).toMatchObject({ m: Nn, n: M, k: K, flops: 2 * M * Nn * K, argReadBytes: 4 * (M * K + K * Nn), argWriteBytes: 4 * M * Nn });
      expect(g[0]).toMatchObject({ pagesValid: true, readPages: pages(4 * M * K) + pages(4 * K * Nn), writePages: pages(4 * M * Nn) });
    });

    it('a planted launch that writes nothing shows as one', async () => {
      using x = Tensor.from(ramp(N), [N], 'cuda');
      let y: Tensor | undefined;
      const recs = await withPlanted('reluWritesNothing', () =>
        counted(async () => {
          y = ops.relu(x);
          await y.toFloat32Array();
        }),
      );
      y!.dispose();
      const k = recs.filter((r) => r.kind === 'kernel');
      expect(k).toHaveLength(1);
      expect(k[0].op).toBe('relu');
      expect(k[0].writePages).toBe(0);
      expect(k[0].writePages).not.toBe(pages(4 * N)); // what the test above requires of a correct ReLU
    });
  });
});
