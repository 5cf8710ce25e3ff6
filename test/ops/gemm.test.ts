import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tensor, setPoison } from '../../lib/tensor.js';
import { nativeOps, st } from '../../lib/ops/util.js';
import { matmul } from '../../lib/ops/linear.js';
import { hasNaN, relError } from '../helpers/fixtures.js';
import { mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, noCuda } from '../helpers/gpu.js';
import { fp32Tol, tf32Tol } from '../helpers/tolerance.js';

function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** A row-major GEMM problem with explicit leading dimensions (padding columns hold garbage). */
interface Problem {
  tA: boolean;
  tB: boolean;
  M: number;
  N: number;
  K: number;
  alpha: number;
  beta: number;
  lda: number;
  ldb: number;
  ldc: number;
}

function problem(M: number, N: number, K: number, tA: boolean, tB: boolean, alpha: number, beta: number, pad = 0): Problem {
  return { tA, tB, M, N, K, alpha, beta, lda: (tA ? M : K) + pad, ldb: (tB ? K : N) + pad, ldc: N + pad };
}

const rowsA = (p: Problem) => (p.tA ? p.K : p.M);
const rowsB = (p: Problem) => (p.tB ? p.N : p.K);
const sizeOf = (rows: number, ld: number) => Math.max(1, rows * ld);

/** C = alpha·op(A)·op(B) + beta·C in float64 (beta = 0 ignores C, as BLAS). */
function naive(p: Problem, A: Float32Array, B: Float32Array, C0: Float32Array): Float32Array {
  const C = Float32Array.from(C0);
  for (let i = 0; i < p.M; i++)
    for (let j = 0; j < p.N; j++) {
      let s = 0;
      for (let k = 0; k < p.K; k++) {
        const a = p.tA ? A[k * p.lda + i] : A[i * p.lda + k];
        const b = p.tB ? B[j * p.ldb + k] : B[k * p.ldb + j];
        s += a * b;
      }
      const c = C0[i * p.ldc + j];
      C[i * p.ldc + j] = p.alpha * s + (p.beta === 0 ? 0 : p.beta * c);
    }
  return C;
}

type Runner = (p: Problem, A: Tensor, B: Tensor, C: Tensor) => void;
const viaGemm =
  (tf32 = false): Runner =>
  (p, A, B, C) =>
    nativeOps().gemm(p.tA, p.tB, p.M, p.N, p.K, p.alpha, st(A, 't'), p.lda, st(B, 't'), p.ldb, p.beta, st(C, 't'), p.ldc, tf32 ? 1 : 0);
const viaBuiltin =
  (isa: string): Runner =>
  (p, A, B, C) =>
    nativeOps().gemm_builtin(p.tA, p.tB, p.M, p.N, p.K, p.alpha, st(A, 't'), p.lda, st(B, 't'), p.ldb, p.beta, st(C, 't'), p.ldc, isa);

/** Runs `run` on `device` with host data; returns C. */
function runOn(run: Runner, p: Problem, A: Float32Array, B: Float32Array, C0: Float32Array, device: 'cpu' | 'cuda' = 'cpu'): Float32Array {
  const tA = Tensor.from(A, [A.length], device);
  const tB = Tensor.from(B, [B.length], device);
  const tC = Tensor.from(C0, [C0.length], device);
  run(p, tA, tB, tC);
  const out = tC.dataSync() as Float32Array;
  [tA, tB, tC].forEach((t) => t.dispose());
  return out;
}

function data(p: Problem, seed: number, cFill?: number) {
  const A = random(sizeOf(rowsA(p), p.lda), seed);
  const B = random(sizeOf(rowsB(p), p.ldb), seed + 1);
  const C0 = cFill === undefined ? random(sizeOf(p.M, p.ldc), seed + 2) : new Float32Array(sizeOf(p.M, p.ldc)).fill(cFill);
  return { A, B, C0 };
}

// Sizes chosen around the built-in GEMM's blocking: MR ∈ {4, 6, 8}, NR ∈ {8, 16, 32}, MC = 16·MR,
// KC = 256, NB = 256, NC = 4096; odd sizes leave partial tiles everywhere.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [7, 33, 9],
  [17, 1, 300],
  [1, 70, 13],
  [150, 97, 261],
  [129, 257, 515],
  [3, 4100, 5],
];

const isas: string[] = nativeOps().gemm_builtin_isas();

beforeAll(() => setPoison(true));
afterAll(() => setPoison(false));

describe('CPU GEMM against a naive float64 triple loop', () => {
  it('offers the portable micro-kernel and reports which ISAs it runs', () => {
    expect(isas).toContain('generic');
    expect(isas.every((i) => ['generic', 'avx2', 'avx512'].includes(i))).toBe(true);
  });

  const runners: [string, Runner][] = [['gemm (OpenBLAS or built-in)', viaGemm()], ...isas.map((i): [string, Runner] => [`built-in ${i}`, viaBuiltin(i)]), ['built-in auto', viaBuiltin('auto')]];
  for (const [name, run] of runners) {
    it(`${name}: every transpose, odd sizes, alpha/beta, padded leading dimensions`, () => {
      let seed = 1;
      for (const [M, N, K] of SHAPES)
        for (const tA of [false, true])
          for (const tB of [false, true]) {
            const big = M * N * K > 1e6;
            // big shapes once per transpose pair; small ones with every alpha/beta and padding
            const variants: [number, number, number][] = big ? [[1, 0, 0]] : [[1, 0, 0], [0.5, 2, 3], [-1.5, 1, 1]];
            for (const [alpha, beta, pad] of variants) {
              const p = problem(M, N, K, tA, tB, alpha, beta, pad);
              const { A, B, C0 } = data(p, seed++);
              const got = runOn(run, p, A, B, C0);
              const ref = naive(p, A, B, C0);
              const label = `${name} ${M}×${N}×${K} tA=${tA} tB=${tB} alpha=${alpha} beta=${beta} pad=${pad}`;
              expect(hasNaN(got), label).toBe(false);
              // float32 accumulation over K ≤ 515 terms vs float64
              expect(relError(got, ref), label).toBeLessThanOrEqual(1e-6);
              // padding columns of C are never written
              for (let i = 0; i < p.M; i++) for (let j = p.N; j < p.ldc; j++) expect(got[i * p.ldc + j]).toBe(C0[i * p.ldc + j]);
            }
          }
    });

    it(`${name}: beta = 0 overwrites C — NaN in C does not propagate`, () => {
      for (const [M, N, K] of [
        [5, 7, 3],
        [70, 90, 300],
      ]) {
        const p = problem(M, N, K, false, true, 1, 0);
        const { A, B, C0 } = data(p, 9, NaN);
        const got = runOn(run, p, A, B, C0);
        expect(hasNaN(got)).toBe(false);
        expect(relError(got, naive(p, A, B, new Float32Array(C0.length)))).toBeLessThanOrEqual(1e-6);
      }
    });

    it(`${name}: K = 0 and alpha = 0 give beta·C without reading A or B`, () => {
      const p0 = { ...problem(4, 6, 0, false, false, 1, 0.5), lda: 1 };
      const { B, C0 } = data(p0, 3);
      const A = new Float32Array(1).fill(NaN);
      expect(Array.from(runOn(run, p0, A, B, C0))).toEqual(Array.from(C0, (c) => Math.fround(0.5 * c)));
      const pz = problem(4, 6, 5, true, false, 0, 0);
      const d = data(pz, 4, NaN);
      d.A.fill(NaN);
      expect(Array.from(runOn(run, pz, d.A, d.B, d.C0))).toEqual(new Array(d.C0.length).fill(0));
    });
  }

  it('the built-in GEMM threads a large product correctly (one call across several blocks of every loop)', () => {
    const p = problem(300, 4200, 520, false, true, 1, 0);
    const { A, B, C0 } = data(p, 77);
    const got = runOn(viaBuiltin('auto'), p, A, B, C0);
    // check a sample of rows against float64 dot products
    const r = mulberry32(5);
    for (let s = 0; s < 200; s++) {
      const i = Math.floor(r() * p.M);
      const j = Math.floor(r() * p.N);
      let ref = 0;
      for (let k = 0; k < p.K; k++) ref += A[i * p.lda + k] * B[j * p.ldb + k];
      expect(Math.abs(got[i * p.ldc + j] - ref)).toBeLessThanOrEqual(2e-5 * Math.sqrt(p.K));
    }
  });

  it('rejects leading dimensions that are too small, and CUDA tensors for the built-in GEMM', () => {
    const p = problem(4, 5, 6, false, false, 1, 0);
    const { A, B, C0 } = data(p, 1);
    expect(() => runOn(viaGemm(), { ...p, lda: 5 }, A, B, C0)).toThrow(/gemm: lda 5 < 6/);
    expect(() => runOn(viaGemm(), { ...p, ldc: 4 }, A, B, C0)).toThrow(/gemm: ldc 4 < 5/);
    expect(() => runOn(viaBuiltin('auto'), { ...p, ldb: 2 }, A, B, C0)).toThrow(/gemm_builtin: ldb 2 < 5/);
    expect(() => runOn(viaBuiltin('sse9'), p, A, B, C0)).toThrow("isa must be 'auto', 'generic', 'avx2' or 'avx512', got 'sse9'");
    // a buffer too small for the shapes
    expect(() => runOn(viaGemm(), p, A.subarray(0, 10), B, C0)).toThrow(/gemm: A holds 40 bytes, needs 96/);
  });
});

describe('strided-batched GEMM (CPU)', () => {
  it('shares A across the batch with stride 0 and matches per-item products', () => {
    const p = problem(6, 11, 9, true, false, 1, 0);
    const batch = 4;
    const sA = 0;
    const sB = rowsB(p) * p.ldb + 3;
    const sC = p.M * p.ldc + 2;
    const A = random(rowsA(p) * p.lda, 1);
    const B = random(sB * batch, 2);
    const C = new Float32Array(sC * batch).fill(7);
    const tA = Tensor.from(A, [A.length]);
    const tB = Tensor.from(B, [B.length]);
    const tC = Tensor.from(C, [C.length]);
    nativeOps().gemm_strided_batched(p.tA, p.tB, p.M, p.N, p.K, 1, st(tA, 't'), p.lda, sA, st(tB, 't'), p.ldb, sB, 0, st(tC, 't'), p.ldc, sC, batch, 0);
    const got = tC.dataSync() as Float32Array;
    for (let b = 0; b < batch; b++) {
      const ref = naive(p, A, B.subarray(b * sB, b * sB + rowsB(p) * p.ldb), new Float32Array(p.M * p.ldc));
      expect(relError(got.subarray(b * sC, b * sC + p.M * p.ldc), ref)).toBeLessThanOrEqual(1e-6);
      // the gap between outputs is untouched
      expect(Array.from(got.subarray(b * sC + p.M * p.ldc, (b + 1) * sC))).toEqual([7, 7]);
    }
    [tA, tB, tC].forEach((t) => t.dispose());
  });
});

describe('matmul', () => {
  it('computes op(a)·op(b) for every transpose', () => {
    const [M, N, K] = [5, 3, 4];
    for (const transA of [false, true])
      for (const transB of [false, true]) {
        const a = random(M * K, 1);
        const b = random(K * N, 2);
        const ta = Tensor.from(a, transA ? [K, M] : [M, K]);
        const tb = Tensor.from(b, transB ? [N, K] : [K, N]);
        const c = matmul(ta, tb, { transA, transB });
        expect(c.shape).toEqual([M, N]);
        const p = problem(M, N, K, transA, transB, 1, 0);
        expect(relError(c.dataSync(), naive(p, a, b, new Float32Array(M * N)))).toBeLessThanOrEqual(1e-6);
        [ta, tb, c].forEach((t) => t.dispose());
      }
  });

  it('handles empty dimensions', () => {
    const a = Tensor.zeros([3, 0]);
    const b = Tensor.zeros([0, 2]);
    const c = matmul(a, b);
    expect(c.shape).toEqual([3, 2]);
    expect(Array.from(c.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
    const e = matmul(Tensor.zeros([0, 4]), Tensor.zeros([4, 2]));
    expect(e.shape).toEqual([0, 2]);
    [a, b, c, e].forEach((t) => t.dispose());
  });

  it('rejects mismatched shapes and bad options', () => {
    const a = Tensor.zeros([2, 3]);
    const b = Tensor.zeros([4, 5]);
    expect(() => matmul(a, b)).toThrow('matmul: inner dimensions differ: op(a) is [2, 3] (a is [2, 3]) but op(b) is [4, 5] (b is [4, 5])');
    expect(() => matmul(a, b, { transA: true })).toThrow('op(a) is [3, 2] (a is [2, 3], transposed)');
    const v = Tensor.zeros([3]);
    expect(() => matmul(v, b)).toThrow('matmul: expected a of shape [M, K], got [3]');
    expect(() => matmul(a, b, { transB: 'yes' as unknown as boolean })).toThrow('matmul: transB must be a boolean, got "yes"');
    expect(() => matmul(a, a, { transB: true, precision: 'half' as 'fp32' })).toThrow('matmul: precision must be "fp32", "tf32" or "bf16", got "half"');
    [a, b, v].forEach((t) => t.dispose());
  });
});

describe.skipIf(noCuda)('cuBLAS GEMM matches the CPU', () => {
  const cases: [number, number, number][] = [
    [1, 1, 1],
    [7, 33, 9],
    [150, 97, 261],
    [cudaBatch(128, 8), 4096, 9216], // fc6's input gradient (batch 8 on the emulated device)
    [256, 729, 1200],
  ];
  it.each(cases)('%i×%i×%i, every transpose, fp32 and tf32 within their bounds for K', (M, N, K) => {
    let seed = 100;
    for (const tA of [false, true])
      for (const tB of [false, true])
        for (const [alpha, beta, pad] of [
          [1, 0, 0],
          [0.5, 2, 3],
        ]) {
          const p = problem(M, N, K, tA, tB, alpha, beta, pad);
          const { A, B, C0 } = data(p, seed++, beta === 0 ? NaN : undefined);
          const ref = runOn(viaGemm(), p, A, B, C0);
          for (const [tf32, tol] of [
            [false, fp32Tol(K)],
            [true, tf32Tol(K)],
          ] as const) {
            const got = runOn(viaGemm(tf32), p, A, B, C0, 'cuda');
            expect(hasNaN(got)).toBe(false);
            expect(relError(got, ref), `${M}×${N}×${K} tA=${tA} tB=${tB} tf32=${tf32}`).toBeLessThanOrEqual(tol);
          }
        }
  });

  it('K = 0 and alpha = 0 on CUDA give beta·C', () => {
    const p0 = { ...problem(4, 6, 0, false, false, 1, 0.5), lda: 1 };
    const { B, C0 } = data(p0, 3);
    expect(Array.from(runOn(viaGemm(), p0, new Float32Array(1), B, C0, 'cuda'))).toEqual(Array.from(C0, (c) => Math.fround(0.5 * c)));
    const pz = problem(4, 6, 5, true, false, 0, 0);
    const d = data(pz, 4, NaN);
    expect(Array.from(runOn(viaGemm(), pz, d.A, d.B, d.C0, 'cuda'))).toEqual(new Array(d.C0.length).fill(0));
  });

  it('strided-batched on CUDA matches the CPU (weights shared with stride 0)', () => {
    const p = problem(96, 3025, 363, false, false, 1, 0);
    const batch = 3;
    const sB = p.K * p.N;
    const sC = p.M * p.N;
    const A = random(p.M * p.K, 1);
    const B = random(sB * batch, 2);
    const out: Float32Array[] = [];
    for (const [device, tf32] of [
      ['cpu', false],
      ['cuda', false],
      ['cuda', true],
    ] as const) {
      const tA = Tensor.from(A, [A.length], device);
      const tB = Tensor.from(B, [B.length], device);
      const tC = Tensor.empty([sC * batch], device);
      nativeOps().gemm_strided_batched(false, false, p.M, p.N, p.K, 1, st(tA, 't'), p.lda, 0, st(tB, 't'), p.ldb, sB, 0, st(tC, 't'), p.ldc, sC, batch, tf32 ? 1 : 0);
      out.push(tC.dataSync() as Float32Array);
      [tA, tB, tC].forEach((t) => t.dispose());
    }
    expect(relError(out[1], out[0])).toBeLessThanOrEqual(fp32Tol(p.K));
    expect(relError(out[2], out[0])).toBeLessThanOrEqual(tf32Tol(p.K));
  });

  it('matmul on CUDA', () => {
    const a = Tensor.from(random(64 * 48, 1), [64, 48], 'cuda');
    const b = Tensor.from(random(48 * 80, 2), [80, 48], 'cuda');
    const c = matmul(a, b, { transB: true });
    expect(c.device).toBe('cuda');
    const ca = a.to('cpu');
    const cb = b.to('cpu');
    const ref = matmul(ca, cb, { transB: true });
    expect(relError(c.dataSync(), ref.dataSync())).toBeLessThanOrEqual(fp32Tol(48));
    [a, b, c, ca, cb, ref].forEach((t) => t.dispose());
  });
});
