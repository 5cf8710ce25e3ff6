// Shared by bench/run.mjs and bench/summary.mjs: the GPU's ceilings, the targets, the AlexNet geometry
// (bench/alexnet.json, also read by bench/pytorch_peer.py), what each row counts, and formatting.
import { readFileSync } from 'node:fs';

/** Measured on the lent H200 (../shared/gpu/README.md, 2026-11-30): SGEMM, TF32 GEMM, device copy. */
export const CEILINGS = Object.freeze({
  fp32: 51e12, // FLOP/s
  tf32: 402e12, // FLOP/s
  bytes: 4.24e12, // B/s, bytes read + written
  card: 'NVIDIA H200 (measured 2026-11-30)',
});

export const TARGETS = Object.freeze({
  /** Memory-bound kernels: at least this fraction of CEILINGS.bytes ... */
  memFraction: 0.7,
  /** ... for calls that move at least this many bytes. Below it a call is a few microseconds, dominated by
   * launch latency and tail effects, and its working set fits in the 50 MB L2 (repeated calls may be
   * served from it), so the DRAM target says nothing; such rows are marked n/a. */
  memMinBytes: 16 * 2 ** 20,
  /** Convolution forward: at least this fraction of the rate of the bare GEMM of the same M×N×K. */
  convVsGemm: 0.8,
});

export function loadGeometry() {
  return JSON.parse(readFileSync(new URL('./alexnet.json', import.meta.url), 'utf8'));
}

/** Output side of a convolution or pooling window. */
export const outSide = (H, k, s, p) => Math.floor((H + 2 * p - k) / s) + 1;

/** One conv layer at batch N with `groups`: shapes and the GEMM it amounts to. Per group the forward is
 * y_g [K/g, N·P] = w_g [K/g, C/g·k²] · col_g [C/g·k², N·P], so FLOPs = 2·K·(C/g)·k²·N·P summed over groups;
 * dx and dw are GEMMs of the same M·N·K (dx: w_gᵀ·dy_g, dw: dy_g·col_gᵀ). */
export function convDims(l, N, g) {
  const Ho = outSide(l.H, l.k, l.stride, l.pad);
  const P = Ho * Ho;
  const M = l.K / g; // GEMM rows per group
  const Kg = (l.C / g) * l.k * l.k; // GEMM inner dimension per group
  const Ng = N * P; // GEMM columns
  const flops = 2 * g * M * Kg * Ng;
  return {
    x: [N, l.C, l.H, l.H],
    w: [l.K, l.C / g, l.k, l.k],
    y: [N, l.K, Ho, Ho],
    Ho,
    P,
    M,
    Kg,
    Ng,
    flops,
    /** db reads dy once and writes K floats. */
    dbBytes: (N * l.K * P + l.K) * 4,
  };
}

/** The paper arch's parameter shapes (conv layers that allow groups 2 take `groups`). */
export function paramShapes(geo, groups) {
  const out = [];
  for (const l of geo.conv) {
    const g = l.groups.includes(groups) ? groups : 1;
    out.push([l.K, l.C / g, l.k, l.k], [l.K]);
  }
  for (const l of geo.fc) out.push([l.out, l.in], [l.out]);
  return out;
}

/** GEMM FLOPs of one training step of the paper arch: 3 × forward (forward, dx, dw) − conv1's dx,
 * which the model skips (nothing consumes it). Element-wise work is not counted. */
export function trainFlops(geo, N, groups) {
  let fwd = 0;
  let conv1 = 0;
  for (const l of geo.conv) {
    const g = l.groups.includes(groups) ? groups : 1;
    const f = convDims(l, N, g).flops;
    fwd += f;
    if (l.name === 'conv1') conv1 = f;
  }
  for (const l of geo.fc) fwd += 2 * N * l.in * l.out;
  return 3 * fwd - conv1;
}

/** Rows computed from measured ones: dx = (dw+dx) − dw, db = (dw+dx+db) − (dw+dx). The API computes dw
 * always, and dx and db only on request, so these two are differences of medians: indicative, noisy
 * where the part is small against dw (db especially). Works on any result list (ours or the peer's) that
 * has the three measured backward rows; counts come from `ref` (ours) when the list has none. */
export function deriveBackwardRows(results, ref = results) {
  const byKey = new Map(results.map((r) => [r.key, r]));
  const refByKey = new Map(ref.map((r) => [r.key, r]));
  const out = [];
  for (const r of results) {
    const m = /^(.*)\.bwd_all(\..*)?$/.exec(r.key);
    if (!m) continue;
    const [base, suffix = ''] = [m[1], m[2]];
    const dw = byKey.get(`${base}.bwd_dw${suffix}`);
    const dwdx = byKey.get(`${base}.bwd_dwdx${suffix}`);
    const refAll = refByKey.get(r.key);
    if (!dw || !dwdx || !refAll?.parts) continue;
    const common = { precision: refAll.precision, group: refAll.group, layer: refAll.layer, derived: true, p10: null, p90: null };
    out.push({
      ...common,
      key: `${base}.bwd_dx${suffix}`,
      label: `${refAll.layer} bwd dx (derived)`,
      shape: refAll.shape,
      ms: dwdx.ms - dw.ms,
      flops: refAll.parts.dx,
      kind: 'flops',
      note: '(dw+dx) − dw',
    });
    out.push({
      ...common,
      key: `${base}.bwd_db${suffix}`,
      label: `${refAll.layer} bwd db (derived)`,
      shape: refAll.shape,
      ms: r.ms - dwdx.ms,
      bytes: refAll.parts.dbBytes,
      kind: 'bytes',
      note: '(dw+dx+db) − (dw+dx); reads dy once',
    });
  }
  return out;
}

/** Rate of a row in its unit (FLOP/s or B/s), or null. */
export function rateOf(r) {
  if (!(r.ms > 0)) return null;
  if (r.kind === 'bytes') return r.bytes / (r.ms * 1e-3);
  if (r.kind === 'flops' || r.kind === 'train') return r.flops > 0 ? r.flops / (r.ms * 1e-3) : null;
  return null;
}

/** The ceiling that applies to a row on the GPU, or null. */
export function ceilingOf(r) {
  if (r.kind === 'bytes') return CEILINGS.bytes;
  // bf16: about 2× TF32 on the H200 (the tensor cores' rate; not measured separately)
  if (r.kind === 'flops' || r.kind === 'train') return r.precision === 'tf32' ? CEILINGS.tf32 : r.precision === 'bf16' ? 2 * CEILINGS.tf32 : CEILINGS.fp32;
  return null;
}

/** Target verdict for a GPU row: { text, pass } (pass null when no target applies). `byKey` finds the
 * bare GEMM row of a conv forward. */
export function targetOf(r, byKey) {
  if (r.derived) return { text: '', pass: null };
  if (r.kind === 'bytes') {
    if (r.bytes < TARGETS.memMinBytes) return { text: `n/a (${fmtBytes(r.bytes)} < ${fmtBytes(TARGETS.memMinBytes)})`, pass: null };
    const f = rateOf(r) / CEILINGS.bytes;
    const pass = f >= TARGETS.memFraction;
    return { text: `${pass ? 'PASS' : 'FAIL'} (≥ ${pct(TARGETS.memFraction)} of peak)`, pass };
  }
  const m = /^(conv\d\.g\d)\.fwd\.(fp32|tf32)$/.exec(r.key);
  if (m) {
    const gemm = byKey.get(`${m[1]}.gemm.${m[2]}`);
    if (!gemm || !(gemm.ms > 0)) return { text: 'no GEMM row', pass: null };
    const f = gemm.ms / r.ms; // same FLOPs: rate ratio = time ratio
    const pass = f >= TARGETS.convVsGemm;
    return { text: `${pass ? 'PASS' : 'FAIL'} (${pct(f)} of GEMM)`, pass };
  }
  return { text: '', pass: null };
}

// ---- formatting -------------------------------------------------------------------------------------

export function fmtMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const a = Math.abs(ms);
  if (a >= 100) return ms.toFixed(1);
  if (a >= 10) return ms.toFixed(2);
  if (a >= 1) return ms.toFixed(3);
  if (a >= 0.1) return ms.toFixed(4);
  return ms.toFixed(5);
}

const sig3 = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

export function fmtBytes(b) {
  if (b >= 2 ** 30) return `${sig3(b / 2 ** 30)} GiB`;
  if (b >= 2 ** 20) return `${sig3(b / 2 ** 20)} MiB`;
  if (b >= 2 ** 10) return `${sig3(b / 2 ** 10)} KiB`;
  return `${b} B`;
}

/** A rate for humans: "12.3 TFLOP/s", "812 GB/s", "5,120 img/s (41.2 TFLOP/s)". */
export function fmtRate(r, batch) {
  const v = rateOf(r);
  if (v === null && r.kind === 'train' && r.ms > 0) return `${Math.round((r.batch ?? batch) / (r.ms * 1e-3)).toLocaleString('en-US')} img/s`;
  if (v === null) return '—';
  if (r.kind === 'bytes') return v >= 1e12 ? `${sig3(v / 1e12)} TB/s` : v >= 1e9 ? `${sig3(v / 1e9)} GB/s` : `${sig3(v / 1e6)} MB/s`;
  const fl = v >= 1e12 ? `${sig3(v / 1e12)} TFLOP/s` : `${sig3(v / 1e9)} GFLOP/s`;
  if (r.kind === 'train') {
    const imgs = (r.batch ?? batch) / (r.ms * 1e-3);
    return `${Math.round(imgs).toLocaleString('en-US')} img/s (${fl})`;
  }
  return fl;
}

export function pct(f) {
  if (f === null || f === undefined || !Number.isFinite(f)) return '—';
  return `${(100 * f).toFixed(f >= 0.1 ? 0 : 1)} %`;
}

/** A markdown table from a header and rows of cells. */
export function markdownTable(header, rows) {
  const esc = (c) => String(c ?? '').replace(/\|/g, '\\|');
  const lines = [`| ${header.map(esc).join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const row of rows) lines.push(`| ${row.map(esc).join(' | ')} |`);
  return lines.join('\n');
}
