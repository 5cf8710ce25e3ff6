// GPU tests for the foundation: allocation, host<->device copies, allocator reuse, out-of-memory.
// They skip themselves without a GPU (and fail under AXN_REQUIRE_GPU=1, i.e. `npm run test:gpu`).
import { describe, expect, it } from 'vitest';
import { Tensor, memoryStats, synchronize } from '../lib/index.js';
import { expectBitEqual } from './helpers/fixtures.js';
import { noCuda } from './helpers/gpu.js';

function randomF32(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

describe.skipIf(noCuda)('CUDA memory', () => {
  it('allocates and round-trips float32 and int32 through the device', async () => {
    for (const n of [1, 7, 1000, 1 << 20, 3 * 227 * 227 + 1]) {
      const data = randomF32(n);
      const g = Tensor.from(data, [n], 'cuda');
      expect(g.device).toBe('cuda');
      expectBitEqual(await g.toFloat32Array(), data, `n = ${n}: to the device and back`);
      const back = g.to('cpu');
      expectBitEqual(back.dataSync() as Float32Array, data, `n = ${n}: .to('cpu')`);
      const g2 = back.to('cuda').clone();
      expectBitEqual(g2.dataSync() as Float32Array, data, `n = ${n}: .to('cuda').clone()`);
      [g, back, g2].forEach((t) => t.dispose());
    }
    const labels = Int32Array.from({ length: 1001 }, (_, i) => (i * 7919) % 1000);
    const gl = Tensor.from(labels, [1001], 'cuda');
    expect(await gl.toInt32Array()).toEqual(labels);
    gl.dispose();
  });

  it('zeros on the device are zero; reads do not block the event loop', async () => {
    const z = Tensor.zeros([4097], 'cuda');
    let ticked = false;
    const p = z.toFloat32Array();
    setImmediate(() => (ticked = true));
    const v = await p;
    expect(v.every((x) => x === 0)).toBe(true);
    expect(ticked || v.length > 0).toBe(true);
    z.dispose();
  });

  it('the caching allocator reuses freed blocks, and stats return to baseline', () => {
    synchronize();
    const before = memoryStats();
    for (let i = 0; i < 50; i++) Tensor.zeros([256, 1024], 'cuda').dispose();
    const after = memoryStats();
    const c0 = before.native.cuda!, c1 = after.native.cuda!;
    expect(c1.allocCalls - c0.allocCalls).toBe(50);
    expect(c1.cudaMallocCalls - c0.cudaMallocCalls).toBeLessThanOrEqual(1);
    expect(c1.cacheHits - c0.cacheHits).toBeGreaterThanOrEqual(49);
    expect(after.tensors.cuda).toBe(before.tensors.cuda);
    expect(after.bytes.cuda).toBe(before.bytes.cuda);
    expect(c1.inUseBytes).toBe(c0.inUseBytes);
  });

  it('an impossible allocation is a JS error and the process goes on', async () => {
    const before = memoryStats();
    expect(() => Tensor.empty([1 << 20, 1 << 20], 'cuda')).toThrow(/out of memory/); // 4 TiB
    const after = memoryStats();
    expect(after.native.cuda!.oomRetries).toBeGreaterThan(before.native.cuda!.oomRetries);
    expect(after.tensors.cuda).toBe(before.tensors.cuda);
    const t = Tensor.from([1, 2, 3], [3], 'cuda');
    expect(Array.from(await t.toFloat32Array())).toEqual([1, 2, 3]);
    t.dispose();
  });
});
