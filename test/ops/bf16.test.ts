// precision 'bf16': the GEMM inputs rounded to bfloat16, float32 products and sums (native/ops/gemm.h GemmMath).
// The CPU is the oracle of that mode: it rounds every operand element to nearest even as it packs it, so a
// bf16 GEMM on the CPU is exactly a float32 GEMM of inputs rounded beforehand — checked bit for bit here for
// the GEMM and for every convolution and linear pass (whose GEMM operands are x, w and dy, copied). CUDA's
// columns-path convolutions and linear layers round their operands in our kernels, as the CPU does: they are
// held to the CPU to float32 summation order. Where cuBLAS converts (CUBLAS_COMPUTE_32F_FAST_16BF: matmul,
// the legacy convolution path; the emulated cuBLAS truncates there) the bound is the bf16 one derived in
// test/helpers/tolerance.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tensor, setPoison } from '../../lib/tensor.js';
import { nativeOps, st, setDefaultPrecision, getDefaultPrecision } from '../../lib/ops/util.js';
import { conv2d, conv2dBackward, conv2dForTraining, getConvolutionPath, setConvolutionPath } from '../../lib/ops/conv.js';
import { linear, linearBackward, linearForTraining, matmul } from '../../lib/ops/linear.js';
import { createAlexNet } from '../../lib/index.js';
import { relError } from '../helpers/fixtures.js';
import { mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, emulated, noCuda } from '../helpers/gpu.js';
import { bf16Tol, fp32Tol, U_BF16 } from '../helpers/tolerance.js';

/** v rounded to the nearest bfloat16 (ties to even), as a float32 — written from the format, not from the
 * native code: keep the top 16 bits of the float32 after adding half of the dropped part, ties to even. */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function roundBf16(v: number): number {
  f32[0] = v;
  const b = u32[0];
  if ((b & 0x7f800000) >>> 0 === 0x7f800000) return (b & 0x007fffff) !== 0 ? NaN : f32[0];
  u32[0] = ((b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f32[0];
}
/** The emulated cuBLAS's cut: truncation to bf16. */
function truncBf16(v: number): number {
  f32[0] = v;
  u32[0] = (u32[0] & 0xffff0000) >>> 0;
  return f32[0];
}
const rounded = (a: Float32Array) => Float32Array.from(a, roundBf16);

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

const BF16 = 2; // native GemmMath::Bf16
const isas: string[] = nativeOps().gemm_builtin_isas();

/** Row-major C (M×N) = op(A)·op(B) with tight leading dimensions, through `run` on `device`. */
type Run = (tA: boolean, tB: boolean, M: number, N: number, K: number, A: Tensor, B: Tensor, C: Tensor) => void;
const viaGemm =
  (math: number): Run =>
  (tA, tB, M, N, K, A, B, C) =>
    nativeOps().gemm(tA, tB, M, N, K, 1, st(A, 't'), tA ? M : K, st(B, 't'), tB ? K : N, 0, st(C, 't'), N, math);
const viaBuiltin =
  (isa: string): Run =>
  (tA, tB, M, N, K, A, B, C) =>
    nativeOps().gemm_builtin(tA, tB, M, N, K, 1, st(A, 't'), tA ? M : K, st(B, 't'), tB ? K : N, 0, st(C, 't'), N, isa, BF16);

function gemmOn(run: Run, tA: boolean, tB: boolean, M: number, N: number, K: number, A: Float32Array, B: Float32Array, device: 'cpu' | 'cuda' = 'cpu'): Float32Array {
  const a = Tensor.from(A, [A.length], device);
  const b = Tensor.from(B, [B.length], device);
  const c = Tensor.empty([M * N], device);
  run(tA, tB, M, N, K, a, b, c);
  const out = c.dataSync() as Float32Array;
  [a, b, c].forEach((t) => t.dispose());
  return out;
}

/** float64 C = op(A)·op(B) of the given (already rounded or not) inputs. */
function naive(tA: boolean, tB: boolean, M: number, N: number, K: number, A: ArrayLike<number>, B: ArrayLike<number>): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (tA ? A[k * M + i] : A[i * K + k]) * (tB ? B[j * K + k] : B[k * N + j]);
      C[i * N + j] = s;
    }
  return C;
}

beforeAll(() => setPoison(true));
afterAll(() => setPoison(false));

describe('round to bfloat16 (the test reference)', () => {
  it('rounds to nearest, ties to even; keeps infinities and NaN; overflows to infinity', () => {
    expect(roundBf16(1 + 2 ** -8)).toBe(1); // tie: down to the even 1.0000000
    expect(roundBf16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6); // tie: up to the even …0000010
    expect(roundBf16(1 + 2 ** -8 + 2 ** -20)).toBe(1 + 2 ** -7); // past the tie
    expect(roundBf16(-(1 + 2 ** -9))).toBe(-1);
    expect(roundBf16(Infinity)).toBe(Infinity);
    expect(roundBf16(-Infinity)).toBe(-Infinity);
    expect(roundBf16(NaN)).toBeNaN();
    expect(roundBf16(3.4028234663852886e38)).toBe(Infinity); // FLT_MAX is past bf16's largest
    expect(roundBf16(2 ** -130)).toBe(2 ** -130); // a denormal with few bits is exact
  });
});

describe("CPU GEMM in bf16 is a float32 GEMM of inputs rounded to bf16", () => {
  const runners: [string, Run][] = [['gemm (OpenBLAS or built-in)', viaGemm(BF16)], ...isas.map((i): [string, Run] => [`built-in ${i}`, viaBuiltin(i)])];
  for (const [name, run] of runners) {
    it(`${name}: K = 1 products are exactly round(a)·round(b), ties and specials included`, () => {
      // Each bf16 × bf16 product has at most 16 significant bits: exact in float32, so the whole GEMM is.
      const A = Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -9), 3.0000002, Infinity, 0.1, 1e-3, -7.123456]);
      const B = Float32Array.from([1 + 2 ** -8 + 2 ** -20, 0.3, -2.5e-5, 1 + 2 ** -7, 0.5, 65504.7, 1 / 3, 2]);
      for (const tA of [false, true])
        for (const tB of [false, true]) {
          const got = gemmOn(run, tA, tB, A.length, B.length, 1, A, B);
          for (let i = 0; i < A.length; i++)
            for (let j = 0; j < B.length; j++) expect(got[i * B.length + j], `${name} ${i},${j}`).toBe(Math.fround(roundBf16(A[i]) * roundBf16(B[j])));
        }
    });

    it(`${name}: odd shapes and every transpose, against float64 of the rounded inputs`, () => {
      let seed = 1;
      for (const [M, N, K] of [
        [3, 5, 7],
        [17, 33, 300],
        [129, 70, 515],
      ])
        for (const tA of [false, true])
          for (const tB of [false, true]) {
            const A = random(M * K, seed++);
            const B = random(K * N, seed++);
            const got = gemmOn(run, tA, tB, M, N, K, A, B);
            const label = `${name} ${M}×${N}×${K} tA=${tA} tB=${tB}`;
            // the same arithmetic as fp32 on rounded inputs: float32 accumulation over K ≤ 515 vs float64
            expect(relError(got, naive(tA, tB, M, N, K, rounded(A), rounded(B))), label).toBeLessThanOrEqual(1e-6);
            // and the rounding did happen: against the unrounded inputs the error is bf16's, not fp32's
            const e = relError(got, naive(tA, tB, M, N, K, A, B));
            expect(e, label).toBeGreaterThan(1e-4);
            expect(e, label).toBeLessThanOrEqual(2 * U_BF16);
          }
    });
  }

  it('strided-batched GEMM rounds too (the batch run side by side, or one by one)', () => {
    const [M, N, K, batch] = [6, 9, 11, 5];
    const A = random(M * K, 7);
    const B = random(K * N * batch, 8);
    const out = (math: number, a: Float32Array, b: Float32Array) => {
      const ta = Tensor.from(a, [a.length]);
      const tb = Tensor.from(b, [b.length]);
      const tc = Tensor.empty([M * N * batch]);
      nativeOps().gemm_strided_batched(false, false, M, N, K, 1, st(ta, 't'), K, 0, st(tb, 't'), N, K * N, 0, st(tc, 't'), N, M * N, batch, math);
      const r = tc.dataSync() as Float32Array;
      [ta, tb, tc].forEach((t) => t.dispose());
      return r;
    };
    expect(Array.from(out(BF16, A, B))).toEqual(Array.from(out(0, rounded(A), rounded(B))));
  });

  it('matmul takes precision "bf16"; a bad precision names the choices', () => {
    const a = Tensor.from(random(12 * 40, 3), [12, 40]);
    const b = Tensor.from(random(40 * 7, 4), [40, 7]);
    const ar = Tensor.from(rounded(a.dataSync() as Float32Array), [12, 40]);
    const br = Tensor.from(rounded(b.dataSync() as Float32Array), [40, 7]);
    const c = matmul(a, b, { precision: 'bf16' });
    const ref = matmul(ar, br, { precision: 'fp32' });
    expect(Array.from(c.dataSync())).toEqual(Array.from(ref.dataSync()));
    expect(() => matmul(a, b, { precision: 'fp16' as never })).toThrow(/precision must be "fp32", "tf32" or "bf16", got "fp16"/);
    expect(() => nativeOps().gemm(false, false, 1, 1, 1, 1, st(a, 't'), 1, st(b, 't'), 1, 0, st(c, 't'), 1, true)).toThrow(/GEMM precision as a number/);
    expect(() => nativeOps().gemm(false, false, 1, 1, 1, 1, st(a, 't'), 1, st(b, 't'), 1, 0, st(c, 't'), 1, 3)).toThrow(/0 \(fp32\), 1 \(tf32\) or 2 \(bf16\), got 3/);
    [a, b, ar, br, c, ref].forEach((t) => t.dispose());
  });

  it('setDefaultPrecision("bf16") applies to ops called without a precision', () => {
    const before = getDefaultPrecision();
    const a = Tensor.from(random(5 * 9, 5), [5, 9]);
    const b = Tensor.from(random(9 * 4, 6), [9, 4]);
    try {
      setDefaultPrecision('bf16');
      const c = matmul(a, b);
      setDefaultPrecision('fp32');
      const c32 = matmul(a, b);
      const cb = matmul(a, b, { precision: 'bf16' });
      expect(Array.from(c.dataSync())).toEqual(Array.from(cb.dataSync()));
      expect(Array.from(c.dataSync())).not.toEqual(Array.from(c32.dataSync()));
      [c, c32, cb].forEach((t) => t.dispose());
    } finally {
      setDefaultPrecision(before);
      [a, b].forEach((t) => t.dispose());
    }
  });
});

// The layer shapes: conv1-like (odd K = 3·11·11 padded to 364 on the columns path, 368 in bf16 storage), a
// grouped conv with padding, and an odd small one. Each pass in bf16 must equal the fp32 pass of the
// rounded operands — but dx on the columns path, whose dcol' the GPU stores in bf16 (see below).
const CONVS = [
  { N: 2, C: 3, H: 31, W: 29, K: 8, R: 11, S: 11, stride: 4, pad: 2, groups: 1 },
  { N: 3, C: 6, H: 9, W: 11, K: 4, R: 5, S: 5, stride: 1, pad: 2, groups: 2 },
  { N: 5, C: 2, H: 7, W: 6, K: 3, R: 3, S: 2, stride: 2, pad: 1, groups: 1 },
];

function convCase(c: (typeof CONVS)[number], seed: number, device: 'cpu' | 'cuda' = 'cpu') {
  const xs = random(c.N * c.C * c.H * c.W, seed);
  const ws = random(c.K * (c.C / c.groups) * c.R * c.S, seed + 1, -0.3, 0.3);
  const bs = random(c.K, seed + 2);
  const x = Tensor.from(xs, [c.N, c.C, c.H, c.W], device);
  const w = Tensor.from(ws, [c.K, c.C / c.groups, c.R, c.S], device);
  const b = Tensor.from(bs, [c.K], device);
  const xr = Tensor.from(rounded(xs), x.shape, device);
  const wr = Tensor.from(rounded(ws), w.shape, device);
  return { x, w, b, xr, wr, opts: { stride: c.stride, padding: c.pad, groups: c.groups } };
}

describe('convolution and linear layers in bf16 on the CPU: the fp32 passes of the rounded operands, bit for bit (dcol\' rounded too)', () => {
  const path0 = getConvolutionPath();
  afterAll(() => setConvolutionPath(path0));
  for (const path of ['columns', 'legacy'] as const)
    it.each(CONVS.map((c, i) => [i, c] as const))(`conv2d forward and backward, ${path} path, case %i`, (i, c) => {
      setConvolutionPath(path);
      const { x, w, b, xr, wr, opts } = convCase(c, 10 * i + 1);
      for (const relu of [false, true]) {
        const y = conv2d(x, w, b, { ...opts, precision: 'bf16', relu });
        const yr = conv2d(xr, wr, b, { ...opts, precision: 'fp32', relu });
        expect(Array.from(y.dataSync()), `forward relu=${relu}`).toEqual(Array.from(yr.dataSync()));
        const dys = random(y.size, 99 + i);
        const dy = Tensor.from(dys, y.shape);
        const dyr = Tensor.from(rounded(dys), y.shape);
        const reluOut = relu ? { reluOutput: y } : {};
        const g = conv2dBackward(dy, x, w, { ...opts, precision: 'bf16', ...reluOut });
        const gr = conv2dBackward(dyr, xr, wr, { ...opts, precision: 'fp32', ...(relu ? { reluOutput: yr } : {}) });
        const g32 = conv2dBackward(dy, x, w, { ...opts, precision: 'fp32', ...reluOut });
        if (path === 'legacy') {
          expect(Array.from(g.dx!.dataSync()), `dx relu=${relu}`).toEqual(Array.from(gr.dx!.dataSync()));
        } else {
          // The columns path stores dcol' = wᵀ·dz in bf16 on the GPU, so the CPU rounds it too before col2im:
          // each summed entry moves by at most 2^-8 of itself. (Against the legacy path's float32 dcol'.)
          setConvolutionPath('legacy');
          const gl = conv2dBackward(dy, x, w, { ...opts, precision: 'bf16', ...reluOut });
          setConvolutionPath(path);
          const e = relError(g.dx!.dataSync(), gl.dx!.dataSync());
          expect(e, `dx relu=${relu}`).toBeLessThanOrEqual(U_BF16 / 2 + fp32Tol(c.K * c.R * c.S));
          expect(e, `dx relu=${relu}: dcol' was rounded`).toBeGreaterThan(0);
          [gl.dx!, gl.dw, gl.db!].forEach((t) => t.dispose());
        }
        expect(Array.from(g.dw.dataSync()), `dw relu=${relu}`).toEqual(Array.from(gr.dw.dataSync()));
        // the bias gradient is a float32 sum of dy itself: no GEMM, nothing rounded
        expect(Array.from(g.db!.dataSync()), `db relu=${relu}`).toEqual(Array.from(g32.db!.dataSync()));
        [y, yr, dy, dyr, g.dx!, g.dw, g.db!, gr.dx!, gr.dw, gr.db!, g32.dx!, g32.dw, g32.db!].forEach((t) => t.dispose());
      }
      [x, w, b, xr, wr].forEach((t) => t.dispose());
    });

  it('conv2dForTraining\'s kept columns give the backward that recomputed ones give', () => {
    setConvolutionPath('columns');
    const c = CONVS[0];
    const { x, w, b, xr, wr, opts } = convCase(c, 5);
    const { y, columns } = conv2dForTraining(x, w, b, { ...opts, precision: 'bf16' });
    const dy = Tensor.from(random(y.size, 6), y.shape);
    const kept = conv2dBackward(dy, x, w, { ...opts, precision: 'bf16', columns });
    const again = conv2dBackward(dy, x, w, { ...opts, precision: 'bf16' });
    expect(Array.from(kept.dw.dataSync())).toEqual(Array.from(again.dw.dataSync()));
    expect(Array.from(kept.dx!.dataSync())).toEqual(Array.from(again.dx!.dataSync()));
    [x, w, b, xr, wr, y, columns, dy, kept.dx!, kept.dw, kept.db!, again.dx!, again.dw, again.db!].forEach((t) => t?.dispose());
  });

  it('linear forward and backward (with and without the fused ReLU)', () => {
    const [N, inF, out] = [7, 37, 13];
    const xs = random(N * inF, 41);
    const ws = random(out * inF, 42, -0.3, 0.3);
    const x = Tensor.from(xs, [N, inF]);
    const w = Tensor.from(ws, [out, inF]);
    const b = Tensor.from(random(out, 43), [out]);
    const xr = Tensor.from(rounded(xs), [N, inF]);
    const wr = Tensor.from(rounded(ws), [out, inF]);
    for (const relu of [false, true]) {
      const y = linear(x, w, b, { precision: 'bf16', relu });
      const yr = linear(xr, wr, b, { precision: 'fp32', relu });
      expect(Array.from(y.dataSync())).toEqual(Array.from(yr.dataSync()));
      const dys = random(N * out, 44);
      const dy = Tensor.from(dys, [N, out]);
      const dyr = Tensor.from(rounded(dys), [N, out]);
      const g = linearBackward(dy, x, w, { precision: 'bf16', ...(relu ? { reluOutput: y } : {}) });
      const gr = linearBackward(dyr, xr, wr, { precision: 'fp32', ...(relu ? { reluOutput: yr } : {}) });
      const g32 = linearBackward(dy, x, w, { precision: 'fp32', ...(relu ? { reluOutput: y } : {}) });
      expect(Array.from(g.dx!.dataSync())).toEqual(Array.from(gr.dx!.dataSync()));
      expect(Array.from(g.dw.dataSync())).toEqual(Array.from(gr.dw.dataSync()));
      expect(Array.from(g.db!.dataSync())).toEqual(Array.from(g32.db!.dataSync()));
      [y, yr, dy, dyr, g.dx!, g.dw, g.db!, gr.dx!, gr.dw, gr.db!, g32.dx!, g32.dw, g32.db!].forEach((t) => t.dispose());
    }
    [x, w, b, xr, wr].forEach((t) => t.dispose());
  });

  it('AlexNet takes precision "bf16" and passes it to every convolution and linear layer', () => {
    const m = createAlexNet({ arch: 'small', numClasses: 10, inChannels: 1, seed: 1, precision: 'bf16' });
    expect(m.precision).toBe('bf16');
    expect(m.toString()).toMatch(/bf16/);
    m.precision = 'fp32';
    expect(m.precision).toBe('fp32');
    expect(() => (m.precision = 'half' as never)).toThrow(/AlexNet\.precision: precision must be "fp32", "tf32" or "bf16", got "half"/);
    m.dispose();
  });
});

describe.skipIf(noCuda)('bf16 on CUDA matches the CPU oracle within the bf16 bound', () => {
  it('GEMM, every transpose, odd and AlexNet-like shapes', () => {
    let seed = 200;
    for (const [M, N, K] of [
      [1, 1, 1],
      [7, 33, 9],
      [96, 61, 364],
      [150, 97, 261],
    ])
      for (const tA of [false, true])
        for (const tB of [false, true]) {
          const A = random(M * K, seed++);
          const B = random(K * N, seed++);
          const cpu = gemmOn(viaGemm(BF16), tA, tB, M, N, K, A, B);
          const gpu = gemmOn(viaGemm(BF16), tA, tB, M, N, K, A, B, 'cuda');
          const label = `${M}×${N}×${K} tA=${tA} tB=${tB}`;
          // each side cuts its inputs (the CPU rounds, cuBLAS rounds or truncates): 2·2^-7 per product each
          expect(relError(gpu, cpu), label).toBeLessThanOrEqual(2 * U_BF16 + bf16Tol(K));
          expect(relError(gpu, naive(tA, tB, M, N, K, A, B)), label).toBeLessThanOrEqual(bf16Tol(K));
        }
  });

  it.skipIf(!emulated)('the emulated cuBLAS truncates to bf16 (the larger error): K = 1 products are exactly trunc(a)·trunc(b)', () => {
    const A = Float32Array.from([1 + 2 ** -8 + 2 ** -20, -0.3, 7.77]);
    const B = Float32Array.from([1 + 3 * 2 ** -8, 0.1, -1e-3, 2]);
    const got = gemmOn(viaGemm(BF16), false, false, 3, 4, 1, A, B, 'cuda');
    for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) expect(got[i * 4 + j]).toBe(Math.fround(truncBf16(A[i]) * truncBf16(B[j])));
  });

  it('strided-batched GEMM (a convolution\'s shared weights, stride 0)', () => {
    const [M, N, K, batch] = [16, 45, 75, 3];
    const A = random(M * K, 11);
    const B = random(K * N * batch, 12);
    const outs = (['cpu', 'cuda'] as const).map((device) => {
      const ta = Tensor.from(A, [A.length], device);
      const tb = Tensor.from(B, [B.length], device);
      const tc = Tensor.empty([M * N * batch], device);
      nativeOps().gemm_strided_batched(false, false, M, N, K, 1, st(ta, 't'), K, 0, st(tb, 't'), N, K * N, 0, st(tc, 't'), N, M * N, batch, BF16);
      const r = tc.dataSync() as Float32Array;
      [ta, tb, tc].forEach((t) => t.dispose());
      return r;
    });
    expect(relError(outs[1], outs[0])).toBeLessThanOrEqual(2 * U_BF16 + bf16Tol(K));
  });

  it('the columns path stores its columns, dz and weight copy in bf16: half the kept bytes', () => {
    const d = [128, 96, 27, 27, 256, 5, 5, 1, 1, 2, 2, 2]; // conv2 of the paper arch (g2) at batch 128
    const ws = 1.5 * 2 ** 30; // over the CPU's default cap (256 MiB), so that it keeps them too
    const f = nativeOps().conv2d_columns_floats(...d, ws, true, 0);
    const b = nativeOps().conv2d_columns_floats(...d, ws, true, 2);
    expect(f).toBeGreaterThan(0);
    expect(b / f).toBeGreaterThan(0.49);
    expect(b / f).toBeLessThanOrEqual(0.51);
    expect(nativeOps().conv2d_columns_floats(...d, ws, false, 2)).toBe(f); // the CPU keeps float32 columns
    // a bf16 forward keeps a column set that fits where a float32 one would not
    const wsTight = (f * 4) * 0.75;
    expect(nativeOps().conv2d_columns_floats(...d, wsTight, true, 0)).toBe(0);
    expect(nativeOps().conv2d_columns_floats(...d, wsTight, true, 2)).toBe(b);
  });

  it('columns path: y and dw are the CPU oracle\'s to float32 summation order (the same bf16 roundings), dx to dcol\'s rounding', () => {
    const path0 = getConvolutionPath();
    setConvolutionPath('columns');
    try {
      for (const [i, c] of CONVS.entries()) {
        const cpu = convCase(c, 500 + 10 * i);
        const gpu = convCase(c, 500 + 10 * i, 'cuda');
        const Kred = (c.C / c.groups) * c.R * c.S;
        for (const relu of [false, true]) {
          const { y, columns } = conv2dForTraining(cpu.x, cpu.w, cpu.b, { ...cpu.opts, precision: 'bf16', relu });
          const k = conv2dForTraining(gpu.x, gpu.w, gpu.b, { ...gpu.opts, precision: 'bf16', relu });
          expect(relError(k.y.dataSync(), y.dataSync()), `conv ${i} y`).toBeLessThanOrEqual(fp32Tol(Kred));
          const dys = random(y.size, 600 + i);
          const dy = Tensor.from(dys, y.shape);
          const dyg = Tensor.from(dys, y.shape, 'cuda');
          const g = conv2dBackward(dy, cpu.x, cpu.w, { ...cpu.opts, precision: 'bf16', columns, ...(relu ? { reluOutput: y } : {}) });
          const gg = conv2dBackward(dyg, gpu.x, gpu.w, { ...gpu.opts, precision: 'bf16', columns: k.columns, ...(relu ? { reluOutput: k.y } : {}) });
          const P = y.shape[2] * y.shape[3];
          expect(relError(gg.dw.dataSync(), g.dw.dataSync()), `conv ${i} dw`).toBeLessThanOrEqual(fp32Tol(c.N * P));
          // dcol' rounded on both sides (the CPU to nearest, cuBLAS — or the emulator, by truncation — its own way)
          expect(relError(gg.dx!.dataSync(), g.dx!.dataSync()), `conv ${i} dx`).toBeLessThanOrEqual(U_BF16 + fp32Tol(c.K));
          expect(Array.from(gg.db!.dataSync()), `conv ${i} db`).toEqual(Array.from(g.db!.dataSync()));
          [y, columns, k.y, k.columns, dy, dyg, g.dx!, g.dw, g.db!, gg.dx!, gg.dw, gg.db!].forEach((t) => t?.dispose());
        }
        for (const s of [cpu, gpu]) [s.x, s.w, s.b, s.xr, s.wr].forEach((t) => t.dispose());
      }
    } finally {
      setConvolutionPath(path0);
    }
  });

  it('conv2d and linear forward and backward', () => {
    for (const [i, c] of CONVS.entries()) {
      const cpu = convCase(c, 300 + 10 * i);
      const gpu = convCase(c, 300 + 10 * i, 'cuda');
      const Kred = (c.C / c.groups) * c.R * c.S;
      const y = conv2d(cpu.x, cpu.w, cpu.b, { ...cpu.opts, precision: 'bf16' });
      const yg = conv2d(gpu.x, gpu.w, gpu.b, { ...gpu.opts, precision: 'bf16' });
      expect(relError(yg.dataSync(), y.dataSync()), `conv ${i} y`).toBeLessThanOrEqual(2 * U_BF16 + bf16Tol(Kred));
      const dys = random(y.size, 400 + i);
      const dy = Tensor.from(dys, y.shape);
      const dyg = Tensor.from(dys, y.shape, 'cuda');
      const g = conv2dBackward(dy, cpu.x, cpu.w, { ...cpu.opts, precision: 'bf16' });
      const gg = conv2dBackward(dyg, gpu.x, gpu.w, { ...gpu.opts, precision: 'bf16' });
      const P = y.shape[2] * y.shape[3];
      expect(relError(gg.dw.dataSync(), g.dw.dataSync()), `conv ${i} dw`).toBeLessThanOrEqual(2 * U_BF16 + bf16Tol(c.N * P));
      expect(relError(gg.dx!.dataSync(), g.dx!.dataSync()), `conv ${i} dx`).toBeLessThanOrEqual(2 * U_BF16 + bf16Tol(c.K / c.groups) + fp32Tol(c.R * c.S));
      expect(relError(gg.db!.dataSync(), g.db!.dataSync()), `conv ${i} db`).toBeLessThanOrEqual(fp32Tol(c.N * P));
      [y, yg, dy, dyg, g.dx!, g.dw, g.db!, gg.dx!, gg.dw, gg.db!].forEach((t) => t.dispose());
      for (const s of [cpu, gpu]) [s.x, s.w, s.b, s.xr, s.wr].forEach((t) => t.dispose());
    }
  });

  it.each([
    [7, 37, 13, true],
    [6, 300, 20, false],
    [3, 4096, 10, true],
    [cudaBatch(16, 4), 576, 512, true],
    [1, 9, 1, false],
  ] as const)('linear (batch %i, %i → %i, bias %s): bf16 operands rounded by our kernels, so y, dx and dw are the CPU oracle\'s to float32 summation order, db bit for bit', (N, inF, out, bias) => {
    const xs = random(N * inF, 51 + N);
    const ws = random(out * inF, 52 + inF, -0.1, 0.1);
    const bs = bias ? random(out, 53) : null;
    const dys = random(N * out, 54 + out);
    for (const relu of [false, true]) {
      const res = (['cpu', 'cuda'] as const).map((d) => {
        const x = Tensor.from(xs, [N, inF], d);
        const w = Tensor.from(ws, [out, inF], d);
        const b = bs ? Tensor.from(bs, [out], d) : null;
        const dy = Tensor.from(dys, [N, out], d);
        const { y, kept } = linearForTraining(x, w, b, { precision: 'bf16', relu });
        // CUDA keeps the weights' bf16 copy (out·in values, two to a float); the CPU keeps nothing.
        expect(kept?.shape ?? null).toEqual(d === 'cuda' ? [Math.ceil((out * inF) / 2)] : null);
        const g = linearBackward(dy, x, w, { precision: 'bf16', needBiasGrad: !!b, kept, ...(relu ? { reluOutput: y } : {}) });
        // Without the kept copy the backward rounds w again: the same bits.
        const again = linearBackward(dy, x, w, { precision: 'bf16', needBiasGrad: !!b, ...(relu ? { reluOutput: y } : {}) });
        for (const k of ['dx', 'dw', 'db'] as const) if (g[k]) expect(Array.from(again[k]!.dataSync()), `${d} ${k} kept vs again`).toEqual(Array.from(g[k]!.dataSync()));
        const r = { y: y.dataSync() as Float32Array, dx: g.dx!.dataSync() as Float32Array, dw: g.dw.dataSync() as Float32Array, db: g.db ? (g.db.dataSync() as Float32Array) : null };
        [x, w, b, dy, y, kept, g.dx, g.dw, g.db, again.dx, again.dw, again.db].forEach((t) => t?.dispose());
        return r;
      });
      const [cpu, gpu] = res;
      expect(relError(gpu.y, cpu.y), `relu ${relu} y`).toBeLessThanOrEqual(fp32Tol(inF));
      expect(relError(gpu.dx, cpu.dx), `relu ${relu} dx`).toBeLessThanOrEqual(fp32Tol(out));
      expect(relError(gpu.dw, cpu.dw), `relu ${relu} dw`).toBeLessThanOrEqual(fp32Tol(N));
      if (bias) expect(Array.from(gpu.db!), `relu ${relu} db`).toEqual(Array.from(cpu.db!));
    }
  });

  it('linear in bf16: an empty batch gives zero dw and db; a kept copy from the CPU or in another precision is refused', () => {
    const w = Tensor.from(random(5 * 9, 61), [5, 9], 'cuda');
    const x0 = Tensor.zeros([0, 9], 'cuda');
    const dy0 = Tensor.zeros([0, 5], 'cuda');
    const { y, kept } = linearForTraining(x0, w, null, { precision: 'bf16' });
    expect(y.shape).toEqual([0, 5]);
    expect(kept).toBeNull();
    const g = linearBackward(dy0, x0, w, { precision: 'bf16' });
    expect(Array.from(g.dw.dataSync()).every((v) => v === 0)).toBe(true);
    expect(Array.from(g.db!.dataSync()).every((v) => v === 0)).toBe(true);
    const x = Tensor.from(random(2 * 9, 62), [2, 9], 'cuda');
    const dy = Tensor.from(random(2 * 5, 63), [2, 5], 'cuda');
    const t = linearForTraining(x, w, null, { precision: 'bf16' });
    expect(() => linearBackward(dy, x, w, { precision: 'tf32', kept: t.kept })).toThrow('linearBackward: expected kept of shape [0] (what linearForTraining keeps for w [5, 9] in this precision: nothing), got [23]');
    const cpuKept = Tensor.zeros([23]);
    expect(() => linearBackward(dy, x, w, { precision: 'bf16', kept: cpuKept })).toThrow(/linearBackward: .*(device|cpu)/);
    [w, x0, dy0, y, g.dx, g.dw, g.db, x, dy, t.y, t.kept, cpuKept].forEach((v) => v?.dispose());
  });
});
