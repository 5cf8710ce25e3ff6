// What makes a benchmark row trustworthy besides its time: the inputs both sides draw (a seeded generator
// that bench/pytorch_peer.py implements identically), the tolerance each output is held to (derived from
// its precision and reduction length), and the comparison of an output with a reference (PyTorch's, or
// the CPU oracle's for CUDA rows). See bench/README.md, "Checking the outputs".

// ---- the shared input generator ---------------------------------------------------------------------
// Value i of the stream named `name` is mix32(i XOR key(name)) mapped to [lo, hi), computed in float64 and
// rounded once to float32; key(name) = mix32(FNV-1a(name)). Counter-based, so numpy/torch vectorise it and
// the two sides agree bit for bit. Streams longer than 2^20 repeat their first 2^20 values (cyclic tiling:
// the GEMM operands reach 140 M values at batch 128; inputs only need to be ordinary floats, no zeros, NaN
// or denormals, not independent).

export const BLOCK = 1 << 20;

/** 32-bit FNV-1a of the UTF-8 bytes of `s`. */
export function fnv1a(s) {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(s, 'utf8')) {
    h ^= c;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A bijective 32-bit mixer (Wellons' "lowbias32"). */
export function mix32(x) {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** n float32 values, uniform in [lo, hi), of the stream `name`. */
export function uniformArray(n, name, lo = -1, hi = 1) {
  const a = new Float32Array(n);
  const key = mix32(fnv1a(name));
  const span = hi - lo;
  const m = Math.min(n, BLOCK);
  for (let i = 0; i < m; i++) a[i] = lo + span * (mix32((i ^ key) >>> 0) / 4294967296);
  for (let filled = m; filled < n; filled *= 2) a.copyWithin(filled, 0, Math.min(filled, n - filled));
  return a;
}

/** n int32 labels in [0, classes) of the stream `name` (no tiling: label vectors are short). */
export function labelArray(n, name, classes) {
  const a = new Int32Array(n);
  const key = mix32(fnv1a(name));
  for (let i = 0; i < n; i++) a[i] = mix32((i ^ key) >>> 0) % classes;
  return a;
}

// ---- tolerances -------------------------------------------------------------------------------------
// The same derivation as the tests' (test/helpers/tolerance.ts), for an output compared with a reference
// computed elsewhere (another library, another device, another summation order):
//  - a length-K float32 sum, evaluated in two orders, differs by about u·√(K/3) relative (L2, random
//    data; u = 2^-24); the bound is 4·u·√K plus 2u for the final roundings;
//  - each side that computes in TF32 adds 2·2^-10 (inputs cut to 10 mantissa bits, no averaging assumed);
//    each side in bf16 adds 2·2^-7 (inputs cut to 7 mantissa bits: 2^-7 bounds truncation, the larger of
//    the two errors hardware may make; rounding to nearest is 2^-8);
//  - elementwise transcendental functions (exp, log, pow) add a few ulps: `ulps`.
// Outputs that must match exactly (max pooling, ReLU, dropout, integer counts) have tolerance 0.

export const U_FP32 = 2 ** -24;
export const U_TF32 = 2 ** -10;
export const U_BF16 = 2 ** -7;

/** The per-product relative error a GEMM precision adds on one side: its inputs' cut, twice. */
export const cutOf = (precision) => (precision === 'tf32' ? 2 * U_TF32 : precision === 'bf16' ? 2 * U_BF16 : 0);

export const fp32Sum = (K) => 4 * U_FP32 * Math.sqrt(Math.max(1, K)) + 2 * U_FP32;

/**
 * The tolerance of one output. spec: { exact: true } | { K, ulps?, fp32?: true (no TF32 term: a plain
 * sum such as a bias gradient) }. `ours` and `ref` are the precisions the two sides computed in.
 */
export function toleranceOf(spec, ours, ref) {
  if (spec.exact) return 0;
  // A chain of reductions (one training step: every GEMM of forward and backward): to first order their
  // relative errors add, and each GEMM stage run in TF32 cuts its inputs again.
  const Ks = spec.chain ?? [spec.K];
  let t = Ks.reduce((a, K) => a + fp32Sum(K), 0) + (spec.ulps ?? 0) * U_FP32 + (spec.extra ?? 0);
  const tf = spec.fp32 ? 0 : cutOf(ours) + cutOf(ref);
  t += tf * (spec.tf32Stages ?? Ks.length);
  // ReLU and max pooling switch where a pre-activation, or the top two values of a window, lie within the
  // rounding error ε of one stage: a switched unit sends its whole gradient elsewhere, so a gradient's
  // relative L2 error grows like the square root of the switched fraction, about √(S·ε) for S such layers.
  if (spec.switches) t += Math.sqrt(spec.switches * (fp32Sum(spec.switchK) + tf));
  return t;
}

/** How a tolerance was made, for the table: "4u√K+2u, K 363" etc. */
export function describeTolerance(spec, ours, ref) {
  if (spec.exact) return 'exact';
  const parts = spec.how
    ? [spec.how]
    : spec.chain
    ? [`${spec.chain.length} reductions, K ≤ ${Math.max(...spec.chain).toLocaleString('en-US')}`]
    : [`K ${spec.K.toLocaleString('en-US')}`];
  if (spec.ulps) parts.push(`+${spec.ulps} ulp`);
  const cuts = spec.fp32 ? [] : [ours, ref].filter((p) => p === 'tf32' || p === 'bf16');
  const cutText = [...new Set(cuts)].map((p) => `${cuts.filter((c) => c === p).length}× ${p}`).join(' + ');
  if (cutText) parts.push(`${cutText}${spec.chain ? ` × ${spec.tf32Stages ?? spec.chain.length}` : ''}`);
  if (spec.switches) parts.push(`√(${spec.switches}·ε) for ReLU/max-pool switches`);
  if (spec.extraHow) parts.push(spec.extraHow);
  return parts.join(', ');
}

// ---- comparison -------------------------------------------------------------------------------------

/** ‖out − ref‖₂ / ‖ref − base‖₂ (float64 accumulation; base, when given, is what both sides started from:
 * the error of an update relative to the update), the max |out − ref|, and the count of positions where
 * either side is NaN or infinite (any such position fails the output). */
export function errorOf(out, ref, base = null) {
  if (out.length !== ref.length) return { rel: Infinity, maxAbs: Infinity, bad: Math.abs(out.length - ref.length), lengthMismatch: [out.length, ref.length] };
  let d2 = 0;
  let r2 = 0;
  let maxAbs = 0;
  let bad = 0;
  for (let i = 0; i < out.length; i++) {
    const o = out[i];
    const r = ref[i];
    // no row computes a NaN or an infinity legitimately: one on either side fails the output (also when
    // both sides agree on it — a bug shared by our CUDA kernel and our CPU oracle)
    if (!Number.isFinite(o) || !Number.isFinite(r)) {
      bad++;
      continue;
    }
    const d = o - r; // = (o − base) − (r − base)
    const rr = base ? r - base[i] : r;
    d2 += d * d;
    r2 += rr * rr;
    const a = Math.abs(d);
    if (a > maxAbs) maxAbs = a;
  }
  const rel = d2 === 0 ? 0 : r2 === 0 ? Infinity : Math.sqrt(d2 / r2);
  return { rel: bad ? Infinity : rel, maxAbs: bad ? Infinity : maxAbs, bad };
}

/**
 * Compares a row's outputs with a reference's. `ours`, `ref`: { name: typed array }; `specs`: { name:
 * tolerance spec } (every name in specs must be in both; a function spec is called with (ref, ours) and
 * returns a spec, for tolerances that depend on the data). A spec may also compare updates rather than
 * values (`base`: what both sides started from), add an absolute term (`extra`, with `extraHow`)
 * or sum several tolerances' K-terms (`Ks`: a chain of reductions, e.g. a whole training step). Returns { pass, outputs: [...], worst } where
 * worst is the output with the largest error / tolerance.
 */
export function compareOutputs(ours, ref, specs, { ours: po, ref: pr }) {
  const outputs = [];
  for (const [name, s] of Object.entries(specs)) {
    const spec = typeof s === 'function' ? s(ref, ours) : s;
    const o = ours[name];
    const r = ref[name];
    const tol = toleranceOf(spec, po, pr);
    if (!o || !r) {
      outputs.push({ name, rel: Infinity, maxAbs: Infinity, tol, pass: false, missing: !o ? 'ours' : 'reference' });
      continue;
    }
    const e = errorOf(o, r, spec.base ?? null);
    outputs.push({ name, ...e, tol, tolHow: describeTolerance(spec, po, pr), pass: e.rel <= tol });
  }
  const ratio = (x) => (x.tol === 0 ? (x.rel === 0 ? 0 : Infinity) : x.rel / x.tol);
  let worst = outputs[0] ?? null;
  for (const x of outputs) if (ratio(x) > ratio(worst) || (ratio(x) === ratio(worst) && x.rel > worst.rel)) worst = x;
  return { pass: outputs.length > 0 && outputs.every((x) => x.pass), outputs, worst };
}

/** "3.1e-7" / "0" / "∞". */
export function fmtErr(v) {
  if (v === 0) return '0';
  if (!Number.isFinite(v)) return '∞';
  return v.toExponential(1);
}
