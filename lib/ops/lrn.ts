/** Local response normalisation across channels (AlexNet §3.3), PyTorch's nn.LocalResponseNorm / Caffe:
 *   scale_c = k + alpha/size · Σ_{c' = c − ⌊size/2⌋}^{c + ⌊(size−1)/2⌋} a_{c'}²   (clipped to [0, C)),
 *   b_c = a_c · scale_c^(−beta).
 * The paper's setting is { size: 5, alpha: 1e-4, beta: 0.75, k: 2 }; PyTorch's default k is 1.
 * Native: native/ops/lrn.*, native/bind/lrn.cc. */
import { describe } from '../errors.js';
import { Tensor } from '../tensor.js';
import { expectActivation, expectShape, expectTensor, formatShape, intOption, nativeOps, numberOption, sameDevice, st } from './util.js';

export interface LocalResponseNormOptions {
  /** Number of neighbouring channels summed over (n in the paper). */
  size: number;
  /** Default 1e-4. Must be ≥ 0 (with k > 0 this keeps scale positive). */
  alpha?: number;
  /** Default 0.75. */
  beta?: number;
  /** Default 1 (PyTorch); the paper uses 2. Must be > 0. */
  k?: number;
}

interface Parsed {
  size: number;
  alpha: number;
  beta: number;
  k: number;
}

function parseOptions(opts: unknown, op: string): Parsed {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts) || opts instanceof Tensor)
    throw new TypeError(`${op}: expected options { size, alpha?, beta?, k? }, got ${describe(opts)}`);
  const o = opts as Record<string, unknown>;
  if (o.size === undefined) throw new TypeError(`${op}: options.size is required (an integer ≥ 1)`);
  const size = intOption(o.size, op, 'size', 1);
  const alpha = o.alpha === undefined ? 1e-4 : numberOption(o.alpha, op, 'alpha', (v) => v >= 0, 'a finite number ≥ 0');
  const beta = o.beta === undefined ? 0.75 : numberOption(o.beta, op, 'beta');
  const k = o.k === undefined ? 1 : numberOption(o.k, op, 'k', (v) => v > 0, 'a finite number > 0');
  return { size, alpha, beta, k };
}

/** [N, C, S] sizes of an input of rank ≥ 3, S the product of the spatial dimensions. */
function dims(x: Tensor, op: string, name: string): [number, number, number] {
  if (x.shape.length < 3)
    throw new RangeError(`${op}: expected ${name} of shape [N, C, H, W] (or [N, C, ...] of rank ≥ 3), got ${formatShape(x.shape)}`);
  const [N, C, ...rest] = x.shape;
  return [N, C, rest.reduce((a, b) => a * b, 1)];
}

/**
 * Local response normalisation of x [N, C, H, W] (any rank ≥ 3: [N, C, ...]) across channels. Returns y.
 * The backward needs only x (it recomputes the scale; see native/ops/lrn.h). x may be bfloat16: y is then
 * bfloat16, the float32 result on x's values rounded once to nearest even.
 */
export function localResponseNorm(x: Tensor, opts: LocalResponseNormOptions): Tensor {
  const op = 'localResponseNorm';
  expectActivation(x, op, 'x');
  const [N, C, S] = dims(x, op, 'x');
  const p = parseOptions(opts, op);
  const y = Tensor.empty(x.shape, x.device, x.dtype);
  try {
    if (x.size > 0) nativeOps().lrn_forward(st(x, op), st(y, op), N, C, S, p.size, p.alpha, p.beta, p.k, x.dtype);
  } catch (e) {
    y.dispose();
    throw e;
  }
  return y;
}

/**
 * Gradient of localResponseNorm with respect to x, given dy and the forward's x (the same shape) and the
 * same options (Caffe's formula; the scale and y are recomputed from x, not stored). x may be bfloat16; dy
 * and dx are float32.
 */
export function localResponseNormBackward(dy: Tensor, x: Tensor, opts: LocalResponseNormOptions): Tensor {
  const op = 'localResponseNormBackward';
  if (arguments.length > 3)
    throw new TypeError(`${op}: expected (dy, x, options), got ${arguments.length} arguments; y and scale are no longer passed (the scale is recomputed from x)`);
  expectTensor(dy, op, 'dy');
  expectActivation(x, op, 'x');
  const [N, C, S] = dims(x, op, 'x');
  expectShape(dy, op, 'dy', x.shape);
  const device = sameDevice(op, { dy, x });
  const p = parseOptions(opts, op);
  const dx = Tensor.empty(x.shape, device);
  try {
    if (x.size > 0) nativeOps().lrn_backward(st(dy, op), st(x, op), st(dx, op), N, C, S, p.size, p.alpha, p.beta, p.k, x.dtype);
  } catch (e) {
    dx.dispose();
    throw e;
  }
  return dx;
}

/** How the LocalResponseNorm layer runs (native/ops/lrn.h says both in full):
 * - 'window' (the default): one thread per element sums its own window (float, 5 channels), the backward
 *   recomputes the scale from x, so the layer keeps only x;
 * - 'legacy': the kernels before it — one thread per (n, pixel) column walks the channels with a running
 *   double sum, the forward stores the scale, the layer keeps x, y and the scale — kept for A/B comparisons
 *   (bench/run.mjs --lrn-path legacy; the GPU check). float32 only.
 * The ops localResponseNorm / localResponseNormBackward always take the window path; the legacy ones are
 * localResponseNormLegacy / localResponseNormLegacyBackward. */
export type LrnPath = 'window' | 'legacy';
let lrnPath: LrnPath = 'window';

/** Sets the path later LocalResponseNorm forwards take (process-wide; a backward follows its forward's).
 * Returns the previous one. */
export function setLrnPath(path: LrnPath): LrnPath {
  if (path !== 'window' && path !== 'legacy') throw new TypeError(`setLrnPath: expected 'window' or 'legacy', got ${describe(path)}`);
  const prev = lrnPath;
  lrnPath = path;
  return prev;
}

/** The path later LocalResponseNorm forwards take. */
export function getLrnPath(): LrnPath {
  return lrnPath;
}

/** Before expectTensor (whose message would not name the window path). */
function float32Only(x: unknown, op: string, name: string): void {
  if (x instanceof Tensor && !x.isDisposed && x.dtype !== 'float32')
    throw new TypeError(`${op}: ${name} is ${x.dtype}; the legacy LRN path takes float32 only (bfloat16 activations take the window path: setLrnPath('window'))`);
}

/**
 * The legacy LRN forward (see LrnPath): y and the scale (k + alpha/size · Σ a², x's shape), which
 * localResponseNormLegacyBackward reads. x float32. The same function as localResponseNorm, another
 * arithmetic (a double running sum, powf): y agrees to a few float32 ulps.
 */
export function localResponseNormLegacy(x: Tensor, opts: LocalResponseNormOptions): { y: Tensor; scale: Tensor } {
  const op = 'localResponseNormLegacy';
  float32Only(x, op, 'x');
  expectTensor(x, op, 'x');
  const [N, C, S] = dims(x, op, 'x');
  const p = parseOptions(opts, op);
  const y = Tensor.empty(x.shape, x.device);
  let scale: Tensor | null = null;
  try {
    scale = Tensor.empty(x.shape, x.device);
    if (x.size > 0) nativeOps().lrn_forward_legacy(st(x, op), st(y, op), st(scale, op), N, C, S, p.size, p.alpha, p.beta, p.k);
  } catch (e) {
    y.dispose();
    scale?.dispose();
    throw e;
  }
  return { y, scale };
}

/** The legacy LRN backward: dx from dy and the legacy forward's x, y and scale (all float32, one shape). */
export function localResponseNormLegacyBackward(dy: Tensor, x: Tensor, y: Tensor, scale: Tensor, opts: LocalResponseNormOptions): Tensor {
  const op = 'localResponseNormLegacyBackward';
  const all = { dy, x, y, scale };
  for (const [name, t] of Object.entries(all)) {
    float32Only(t, op, name);
    expectTensor(t, op, name);
  }
  const [N, C, S] = dims(x, op, 'x');
  for (const [name, t] of Object.entries(all)) if (t !== x) expectShape(t, op, name, x.shape);
  const device = sameDevice(op, all);
  const p = parseOptions(opts, op);
  const dx = Tensor.empty(x.shape, device);
  try {
    if (x.size > 0)
      nativeOps().lrn_backward_legacy(st(dy, op), st(x, op), st(y, op), st(scale, op), st(dx, op), N, C, S, p.size, p.alpha, p.beta, p.k);
  } catch (e) {
    dx.dispose();
    throw e;
  }
  return dx;
}
