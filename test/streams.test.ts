// Several streams on the emulated CUDA device (AXN_CUDA=EMU; `npm run test:emu`): the work of different
// streams interleaves in an order chosen by the thread-order setting (forward, reverse, shuffle by seed),
// and only events and the legacy default stream order it. So a missing cross-stream wait reads stale
// data under some orders and seeds, reproducibly: each case below runs with its wait (right under every
// order tried) and without it, or with cuda::streamWait made a no-op (the planted defect), where it must
// go wrong under at least one of the same orders. The probes are in native/cuda/selftest.cu.
// Skipped unless the loaded addon is the emulated one.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backendInfo, memoryStats } from '../lib/index.js';
import { loadNative } from '../lib/native.js';
import { emulated } from './helpers/gpu.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

type OrderName = 'forward' | 'reverse' | 'shuffle';
interface Emulator {
  setOrder(order: OrderName, seed?: number): void;
  order(): { order: string; seed: number };
  counters(): Record<string, number>;
  selfTest(name: string, args?: number[]): { values: number[]; error: string };
  setDropStreamWaits(drop: boolean): void;
}
const emu = () => (loadNative() as unknown as { emulator: Emulator }).emulator;

// Every order a test tries: the two fixed ones and eight seeds of the shuffled one.
const ORDERS: [OrderName, number][] = [['forward', 0], ['reverse', 0], ...[1, 2, 3, 4, 5, 6, 7, 8].map((s) => ['shuffle', s] as [OrderName, number])];
const label = ([o, s]: [OrderName, number]) => (o === 'shuffle' ? `shuffle/${s}` : o);

const cudaErrorNotReady = 600;
const cudaErrorIllegalInstruction = 715;

function probe(name: string, args: number[], [order, seed]: [OrderName, number]) {
  emu().setOrder(order, seed);
  const r = emu().selfTest(name, args);
  expect(r.error, `${name} ${label([order, seed])}`).toBe('');
  return r.values;
}

const streamWaits = () => memoryStats().native.cuda!.streamWaits;

describe.skipIf(!emulated)('the emulated CUDA device: several streams', () => {
  let initial: { order: string; seed: number };
  beforeAll(() => {
    initial = emu().order();
  });
  afterEach(() => {
    emu().setDropStreamWaits(false);
    emu().setOrder(initial.order as OrderName, initial.seed);
  });

  // [case, title, what the reader must see, what a missing wait lets it see, streamWait calls per run]
  const asan = backendInfo().sanitize?.includes('address') ?? false;
  it.each([
    [0, 'a kernel on the compute stream writes, a copy on the copy stream reads', 7, -1, 1],
    [1, 'the copy stream uploads, a kernel on the compute stream reads', 7, -1, 2],
    [2, 'a block freed on the compute stream and handed out again is uploaded to on the copy stream', -1, 7, 2],
  ] as const)('case %i, %s: right with cuda::streamWait under every order; without it, or with the waits dropped, wrong under some', (which, _title, right, wrong, waits) => {
    for (const order of ORDERS) {
      const before = streamWaits();
      expect(probe('crossStream', [which, 1], order), `with the waits, ${label(order)}`).toEqual([right, 1]);
      expect(streamWaits() - before, 'streamWait calls counted').toBe(waits);
    }
    // Without the waits: forward (one FIFO, as the device was before streams) hides the race; reverse
    // runs the later of two unordered operations first and always shows it; the seeds show both.
    // Case 2 under AddressSanitizer: a shuffled order may run the upload between the free's poisoning of
    // the block and the allocation's unpoisoning (stream-ordered on the compute stream), and ASan then
    // aborts the process on a use-after-poison; forward and reverse stay clear of that window.
    const orders = which === 2 && asan ? ORDERS.filter(([o]) => o !== 'shuffle') : ORDERS;
    const without = orders.map((o) => probe('crossStream', [which, 0], o)[0]);
    expect(without[0], 'forward, no wait').toBe(right);
    expect(without[1], 'reverse, no wait').toBe(wrong);
    if (orders.length > 2) {
      const seeds = without.slice(2);
      expect(seeds, 'some seeds go wrong without the waits').toContain(wrong);
      expect(seeds, 'and some do not: both orders occur').toContain(right);
    }
    // The planted defect: the code has its waits, cuda::streamWait drops them. The same orders go wrong.
    emu().setDropStreamWaits(true);
    const before = streamWaits();
    const dropped = orders.map((o) => probe('crossStream', [which, 1], o)[0]);
    expect(streamWaits() - before, 'dropped waits are not counted').toBe(0);
    expect(dropped).toEqual(without);
  });

  it('case 2 checks what it means to: the block handed out again is the one freed', () => {
    expect(probe('crossStream', [2, 1], ['forward', 0])[1]).toBe(1);
  });

  it('the legacy default stream waits for blocking streams and they for it; non-blocking streams do neither', () => {
    for (const direction of [0, 1]) {
      // 0: a kernel on the stream writes, a blocking cudaMemcpy reads; 1: an async copy on the legacy
      // stream writes, a kernel on the stream reads.
      for (const order of ORDERS) expect(probe('legacyStream', [1, direction], order)[0], `blocking, ${direction}, ${label(order)}`).toBe(7);
      const nonBlocking = ORDERS.map((o) => probe('legacyStream', [0, direction], o)[0]);
      expect(nonBlocking[1], `non-blocking, ${direction}, reverse`).toBe(-1);
      expect(nonBlocking, `non-blocking, ${direction}`).toContain(7);
    }
  });

  it('queries, event and stream synchronisation: a wait for one stream runs only what it needs', () => {
    const N = cudaErrorNotReady;
    // See the probe "streamQueries" (selftest.cu) for each step.
    const expected = [N, N, 0, N, 0, 0, N, 0, 0, 1, N, 0, 0, 0, 0, N, 0, 0, N, 0, 0, 0, 7, 5, 6];
    for (const order of ORDERS) expect(probe('streamQueries', [], order), label(order)).toEqual(expected);
  });

  it('cudaStreamWaitEvent captures the record at the call: recording the event again does not move the wait', () => {
    // B's copy enqueued before A's second write and record: it reads A's first write under every order,
    // and the host's wait for B leaves the second record pending.
    for (const order of ORDERS) expect(probe('eventCapture', [1], order), label(order)).toEqual([1, cudaErrorNotReady]);
    // B's copy enqueued after them: were the wait for the event's latest record, the copy would always
    // read 2; it waits for the first record, so some interleavings read 1.
    const racy = ORDERS.map((o) => probe('eventCapture', [0], o)[0]);
    for (const v of racy) expect([1, 2]).toContain(v);
    expect(racy[0], 'forward').toBe(2);
    expect(racy, 'some interleaving runs the copy before the second write').toContain(1);
  });

  it('the device chooses between streams only where several can run: one stream makes no choice', () => {
    emu().setOrder('shuffle', 1);
    const c0 = emu().counters();
    expect(emu().selfTest('reduce', [256, 0]).error).toBe('');
    expect(emu().counters().streamChoices - c0.streamChoices).toBe(0);
    probe('crossStream', [0, 0], ['shuffle', 1]);
    const c1 = emu().counters();
    expect(c1.streamChoices - c0.streamChoices).toBeGreaterThan(0);
    probe('eventCapture', [0], ['shuffle', 1]);
    expect(emu().counters().eventWaits - c1.eventWaits).toBe(1);
  });

  it('a fault on the copy stream is sticky on every stream', () => {
    const script = `
      import { loadNative } from ${JSON.stringify(path.join(root, 'dist', 'native.js'))};
      console.log(JSON.stringify(loadNative().emulator.selfTest('streamSticky', [])));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as { values: number[]; error: string };
    // cudaStreamSynchronize(copy), cudaStreamSynchronize(compute), cudaStreamQuery, cudaEventRecord,
    // cudaStreamWaitEvent, cudaEventQuery, cudaMemcpyAsync, cudaDeviceSynchronize
    expect(out.values).toEqual(Array(8).fill(cudaErrorIllegalInstruction));
    expect(out.error).toMatch(/^cuda\.streamWait: cudaErrorIllegalInstruction: an illegal instruction was encountered \[emulated device: barrier_divergence_kernel, block \(0,0,0\): __syncthreads at selftest\.cu:\d+ is not reached by every thread/);
  });
});
