/** SGD with momentum and weight decay, PyTorch's torch.optim.SGD formulation, one fused kernel per
 * parameter (lib/ops/optim.ts): g = grad + wd·p; buf = g (first step) or momentum·buf + (1−dampening)·g;
 * g = nesterov ? g + momentum·buf : buf; p −= lr·g. */
import { describe } from '../errors.js';
import { sgdUpdate } from '../ops/optim.js';
import type { Parameter } from '../nn/module.js';
import { Tensor } from '../tensor.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  dampening?: number;
  nesterov?: boolean;
}

export class SGD {
  readonly params: Parameter[];
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  /** Momentum buffers, one per parameter (null until the first step, or when momentum is 0). */
  readonly buffers: (Tensor | null)[];
  /** Steps taken. */
  stepCount = 0;

  constructor(params: Iterable<Parameter>, opts: SGDOptions) {
    this.params = [...params];
    if (this.params.length === 0) throw new RangeError('SGD: expected at least one parameter, got none');
    if (!opts || typeof opts !== 'object') throw new TypeError(`SGD: expected options { lr, momentum?, weightDecay? }, got ${describe(opts)}`);
    const num = (v: unknown, name: string, ok: (x: number) => boolean, want: string) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new RangeError(`SGD: ${name} must be ${want}, got ${describe(v)}`);
      return v;
    };
    this.lr = num(opts.lr, 'lr', (x) => x >= 0, 'a number ≥ 0');
    this.momentum = num(opts.momentum ?? 0, 'momentum', (x) => x >= 0, 'a number ≥ 0');
    this.weightDecay = num(opts.weightDecay ?? 0, 'weightDecay', (x) => x >= 0, 'a number ≥ 0');
    this.dampening = num(opts.dampening ?? 0, 'dampening', (x) => x >= 0 && x <= 1, 'in [0, 1]');
    this.nesterov = !!opts.nesterov;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0))
      throw new RangeError('SGD: nesterov needs momentum > 0 and dampening 0 (as PyTorch)');
    this.buffers = this.params.map(() => null);
  }

  /** Applies one update to every parameter that has a gradient. */
  step(): void {
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      let buf = this.buffers[i];
      const first = this.momentum !== 0 && buf === null;
      if (this.momentum !== 0 && !buf) buf = this.buffers[i] = Tensor.empty(p.value.shape, p.value.device);
      try {
        sgdUpdate(p.value, p.grad, buf, {
        lr: this.lr,
        momentum: this.momentum,
        weightDecay: p.decay ? this.weightDecay : 0,
        dampening: this.dampening,
        nesterov: this.nesterov,
        firstStep: first,
        });
      } catch (e) {
        if (first) {
          // the new buffer holds no momentum yet: never let a later step read it as if it did
          buf?.dispose();
          this.buffers[i] = null;
        }
        throw e;
      }
    });
    this.stepCount++;
  }

  /** Drops every gradient (disposing it). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  dispose(): void {
    this.buffers.forEach((b, i) => {
      b?.dispose();
      this.buffers[i] = null;
    });
  }
}
