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
import { fp32Sum, U_BF16 as UBF, U_FP32 as U32, U_TF32 as UTF } from '../../bench/check.mjs';

export const U_FP32: number = U32;
export const U_TF32: number = UTF;
/** bf16 keeps 7 explicit mantissa bits: 2^-7 bounds the truncation of an input, 2^-8 its rounding. */
export const U_BF16: number = UBF;

export function fp32Tol(K: number): number {
  return fp32Sum(K);
}

export function tf32Tol(K: number): number {
  return 2 * U_TF32 + fp32Tol(K);
}

/** One side in bf16 (inputs cut to bf16 by truncation or rounding, float32 sums) against a float32 or
 * differently-rounded reference: 2·2^-7 per product, no averaging assumed, on top of the float32 bound. */
export function bf16Tol(K: number): number {
  return 2 * U_BF16 + fp32Tol(K);
}

export function tolFor(precision: 'fp32' | 'tf32' | 'bf16', K: number): number {
  return precision === 'tf32' ? tf32Tol(K) : precision === 'bf16' ? bf16Tol(K) : fp32Tol(K);
}
