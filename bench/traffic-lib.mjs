// Traffic per training step on the emulated device: the records of emulator.trafficRecords() (see
// native/cuda/emu/runtime.h and traffic.cc) as table entries, their totals, and the floor they imply at
// the H200's measured ceilings. Used by bench/run.mjs (one step, at the run's batch), bench/table.mjs
// (the summary) and bench/traffic.mjs (several batches, extrapolated to 128).
//
// Bytes per entry:
//  - kernels: measured. The unique 4 KiB pages of device memory the launch read and wrote (page
//    protection), × 4096: the DRAM traffic of an ideal cache within the launch, a floor; each tensor's
//    last page rounds up (at most 4 KiB per tensor and direction).
//  - cuBLAS calls: from their arguments (m, n, k, lda/ldb/ldc, batch strides: each operand element once;
//    C read too when beta ≠ 0), exact to the byte; the pages the counter measured for the call are kept
//    beside them as a cross-check. FLOPs = 2·m·n·k·batch.
//  - copies and memsets: the device bytes their arguments name.
import { CEILINGS } from './common.mjs';

export const PAGE_BYTES = 4096;

/** The emulator's export, or null with a reason: { emu } | { reason }. `pkgRoot` holds dist/native.js. */
export async function trafficCounter(nativeModuleUrl) {
  let native;
  try {
    native = await import(nativeModuleUrl);
  } catch (e) {
    return { reason: `cannot load ${nativeModuleUrl}: ${e.message}` };
  }
  const emu = native.loadNative().emulator;
  if (!emu?.countTraffic) return { reason: 'the loaded addon is not the emulated device (traffic is counted on the emulated device only)' };
  const s = emu.trafficSupported();
  if (!s.supported) return { reason: s.reason };
  return { emu };
}

/** One record as a table entry: { kind, name, op, grid, block, readBytes, writeBytes, flops, bytesFrom,
 * pages?: { read, write }, args?: { read, write }, gemm? }. */
export function entryOf(r) {
  const e = { kind: r.kind, name: r.name };
  if (r.kind === 'kernel') {
    Object.assign(e, { op: r.op, grid: r.grid, block: r.block, readBytes: r.readBytes, writeBytes: r.writeBytes, flops: 0, bytesFrom: 'pages' });
    e.pages = { read: r.readPages, write: r.writePages };
    // not run (AXN_EMU_SKIP_KERNELS=1, a plan): no bytes measured
    if (!r.pagesValid) Object.assign(e, { readBytes: null, writeBytes: null, pages: null, bytesFrom: 'not run' });
  } else if (r.kind === 'cublas') {
    Object.assign(e, { readBytes: r.argReadBytes, writeBytes: r.argWriteBytes, flops: r.flops, bytesFrom: 'args' });
    e.pages = r.pagesValid ? { read: r.readPages, write: r.writePages } : null;
    e.gemm = {
      transA: r.transA, transB: r.transB, m: r.m, n: r.n, k: r.k, lda: r.lda, ldb: r.ldb, ldc: r.ldc,
      batch: r.batch, strideA: r.strideA, strideB: r.strideB, strideC: r.strideC, beta: r.beta, tf32: r.tf32,
      overlap: r.overlap,
    };
  } else {
    Object.assign(e, { readBytes: r.argReadBytes, writeBytes: r.argWriteBytes, flops: 0, bytesFrom: 'args' });
  }
  return e;
}

/** The GEMM peak for a precision (bf16: about 2× TF32 on the H200, not measured separately). */
export function peakOf(precision) {
  if (precision === 'tf32') return CEILINGS.tf32;
  if (precision === 'bf16') return 2 * CEILINGS.tf32;
  return CEILINGS.fp32;
}

/** Roofline floor of a list of entries, in seconds: Σ over entries of max(bytes / BW, FLOPs / peak) — each
 * launch waits for the slower of its memory and its arithmetic; launches run one after another. Also the
 * two sums alone. Not a time: no launch reaches either ceiling. */
export function floorOf(entries, peak, bw = CEILINGS.bytes) {
  let roofline = 0;
  let mem = 0;
  let math = 0;
  for (const e of entries) {
    const tm = (e.readBytes + e.writeBytes) / bw;
    const tc = e.flops / peak;
    roofline += Math.max(tm, tc);
    mem += tm;
    math += tc;
  }
  return { roofline, memory: mem, compute: math, bw, peak };
}

/** Totals of a list of entries. */
export function totalsOf(entries, precision) {
  const t = { readBytes: 0, writeBytes: 0, flops: 0, kernels: 0, cublas: 0, copies: 0 };
  for (const e of entries) {
    if (e.readBytes === null) t.unmeasured = (t.unmeasured ?? 0) + 1;
    t.readBytes += e.readBytes ?? 0;
    t.writeBytes += e.writeBytes ?? 0;
    t.flops += e.flops;
    if (e.kind === 'kernel') t.kernels++;
    else if (e.kind === 'cublas') t.cublas++;
    else t.copies++;
  }
  t.floor = floorOf(entries, peakOf(precision));
  t.floorBf16Peak = floorOf(entries, peakOf('bf16'));
  return t;
}

/** The largest gap between the pages the counter measured for a cuBLAS call and its argument bytes, as
 * { under, over } in bytes over all calls (pages × 4096 − argument bytes, read and write separately). */
export function cublasCrossCheck(entries) {
  let under = 0;
  let over = 0;
  for (const e of entries) {
    if (e.kind !== 'cublas' || !e.pages) continue;
    for (const [p, a] of [[e.pages.read * PAGE_BYTES, e.readBytes], [e.pages.write * PAGE_BYTES, e.writeBytes]]) {
      under = Math.min(under, p - a);
      over = Math.max(over, p - a);
    }
  }
  return { under, over };
}

export const fmtGB = (b) => `${(b / 1e9).toFixed(b >= 1e10 ? 1 : 3)} GB`;
export const fmtMB = (b) => `${(b / 1e6).toFixed(b >= 1e8 ? 0 : b >= 1e6 ? 1 : 3)} MB`;
export const fmtGF = (f) => `${(f / 1e9).toFixed(f >= 1e11 ? 0 : 2)} GFLOP`;
export const fmtUs = (s) => `${(s * 1e6).toFixed(s >= 1e-3 ? 0 : 1)} µs`;
export const fmtMsFloor = (s) => `${(s * 1e3).toFixed(2)} ms`;

/** "(55,1,1)×(256,1,1)" */
export const fmtGrid = (e) => (e.grid ? `(${e.grid.join(',')})×(${e.block.join(',')})` : '');

/** "N T m=… n=… k=… ld=…/…/… ×batch β=1" for a cuBLAS entry. */
export function fmtGemm(g) {
  const strides = g.batch > 1 ? ` ×${g.batch} (strides ${g.strideA}/${g.strideB}/${g.strideC})` : '';
  return `${g.transA ? 'T' : 'N'}${g.transB ? 'T' : 'N'} m=${g.m} n=${g.n} k=${g.k} ld=${g.lda}/${g.ldb}/${g.ldc}${strides}${g.beta !== 0 ? ` β=${g.beta}` : ''}`;
}
