/** Finite-difference gradient checks (Caffe's GradientChecker): for a scalar L = Σ r ⊙ f(x) with a
 * fixed random r, compare the analytic ∂L/∂x (backward(dy = r)) with central differences at sampled
 * positions. Works on CPU ops through plain Float32Arrays. */
import { expect } from 'vitest';

export interface GradCheckOptions {
  /** Input arrays; each is perturbed in place and restored. */
  inputs: Float32Array[];
  /** Input names for messages. */
  names?: string[];
  /** Which inputs to check (default all). */
  check?: number[];
  /** f(inputs) → output values (a fresh array each call). */
  forward: (inputs: Float32Array[]) => Float32Array;
  /** Analytic gradients of Σ dy ⊙ f(x) with respect to each checked input (same order as `check`). */
  backward: (inputs: Float32Array[], dy: Float32Array) => Float32Array[];
  /** Central-difference step (default 1e-2, as Caffe). */
  eps?: number;
  /** Positions sampled per input (default 40). */
  samples?: number;
  /** Tolerance: |num − ana| ≤ atol + rtol · max(|num|, |ana|) (defaults 1e-3, 1e-2). */
  atol?: number;
  rtol?: number;
  seed?: number;
}

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function gradcheck(o: GradCheckOptions): void {
  const rnd = mulberry32(o.seed ?? 1234);
  const eps = o.eps ?? 1e-2;
  const atol = o.atol ?? 1e-3;
  const rtol = o.rtol ?? 1e-2;
  const check = o.check ?? o.inputs.map((_, i) => i);
  const y0 = o.forward(o.inputs);
  const r = new Float32Array(y0.length);
  for (let i = 0; i < r.length; i++) r[i] = rnd() * 2 - 1;
  const loss = () => {
    const y = o.forward(o.inputs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += r[i] * y[i];
    return s;
  };
  const grads = o.backward(o.inputs, r);
  expect(grads.length).toBe(check.length);
  check.forEach((inp, gi) => {
    const x = o.inputs[inp];
    const g = grads[gi];
    const name = o.names?.[inp] ?? `input ${inp}`;
    expect(g.length, `gradient of ${name} has the input's size`).toBe(x.length);
    const n = Math.min(o.samples ?? 40, x.length);
    const positions = n === x.length ? [...Array(n).keys()] : Array.from({ length: n }, () => Math.floor(rnd() * x.length));
    for (const p of positions) {
      const keep = x[p];
      x[p] = keep + eps;
      const lp = loss();
      x[p] = keep - eps;
      const lm = loss();
      x[p] = keep;
      const num = (lp - lm) / (2 * eps);
      const ana = g[p];
      const tol = atol + rtol * Math.max(Math.abs(num), Math.abs(ana));
      if (!(Math.abs(num - ana) <= tol))
        expect.fail(`gradcheck ${name}[${p}]: analytic ${ana}, numeric ${num} (difference ${Math.abs(num - ana)} > ${tol})`);
    }
  });
}

export { mulberry32 };
