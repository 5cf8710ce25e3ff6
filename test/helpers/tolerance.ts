/** Tolerances for comparing a CUDA result (cuBLAS, kernels) with the CPU oracle, derived from the problem
 * — reduction length K and precision — not from what passed. cuBLAS may legitimately sum in any order
 * (blocking, split-K), with or without fused multiply-adds, and under TF32 it cuts the inputs.
 *
 *  - float32: each evaluation of a length-K sum carries a random walk of K roundings of relative size up
 *    to u = 2^-24, so two evaluations in different orders differ by about u·√(K/3) relative (L2, random
 *    data); the bound is 4·u·√K, several times that spread, plus 2u for the final rounding(s).
 *  - TF32: each input keeps 10 explicit mantissa bits, cut by truncation or rounding — a relative error
 *    below 2^-10 per input, so below 2·2^-10 per product. No averaging over K is assumed (a 1×1×1
 *    product has none), on top of the float32 bound.
 * An indexing or synchronisation bug gives errors of order 1, far above either. */
// One derivation for the tests and the benchmarks' output checks (bench/check.mjs).
import { fp32Sum, U_FP32 as U32, U_TF32 as UTF } from '../../bench/check.mjs';

export const U_FP32: number = U32;
export const U_TF32: number = UTF;

export function fp32Tol(K: number): number {
  return fp32Sum(K);
}

export function tf32Tol(K: number): number {
  return 2 * U_TF32 + fp32Tol(K);
}

export function tolFor(precision: 'fp32' | 'tf32', K: number): number {
  return precision === 'tf32' ? tf32Tol(K) : fp32Tol(K);
}
