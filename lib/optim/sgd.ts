/** SGD with momentum and weight decay, PyTorch's torch.optim.SGD formulation, every parameter in one
 * fused update (lib/ops/optim.ts, one kernel launch on CUDA): g = grad + wd·p; buf = g (first step) or
 * momentum·buf + (1−dampening)·g; g = nesterov ? g + momentum·buf : buf; p −= lr·g. */
import { DisposedError, describe } from '../errors.js';
import { sgdUpdateMany, type SgdEntry } from '../ops/optim.js';
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
  /** A one-element flag on the parameters' device, set by the update kernel when a guarded step was
   * skipped (its guard not finite); while set, every later guarded step is skipped too (see step). */
  #halt: Tensor | null = null;
  /** Momentum buffers created by the step numbered `step` (they hold nothing if that step was skipped). */
  #fresh: { step: number; indices: number[] } | null = null;
  #disposed = false;

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

  /** Applies one update to every parameter that has a gradient, in one fused call. With `guard` (a
   * one-element tensor on the parameters' device, e.g. the step's loss), the device skips the update when
   * the guard is not finite — and every guarded update after it, until {@link stepSkipped} is called —
   * so a diverged step changes no weight even while the host has not yet read its loss. Returns the
   * step's number (for stepSkipped). */
  step(opts: { guard?: Tensor | null } = {}): number {
    // dispose() dropped the momentum buffers: stepping on would restart momentum without a word.
    if (this.#disposed) throw new DisposedError('SGD');
    const entries: SgdEntry[] = [];
    const fresh: number[] = [];
    let device: Tensor['device'] | undefined;
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      device ??= p.value.device;
      let buf = this.buffers[i];
      const first = this.momentum !== 0 && buf === null;
      if (first) {
        buf = this.buffers[i] = Tensor.empty(p.value.shape, p.value.device);
        fresh.push(i);
      }
      entries.push({ param: p.value, grad: p.grad, momentumBuffer: buf, weightDecay: p.decay ? this.weightDecay : 0, firstStep: first });
    });
    const guard = opts.guard ?? null;
    if (guard && device && !this.#halt) this.#halt = Tensor.zeros([1], device);
    try {
      sgdUpdateMany(entries, { lr: this.lr, momentum: this.momentum, dampening: this.dampening, nesterov: this.nesterov }, guard, guard ? this.#halt : null);
    } catch (e) {
      this.#dropFresh(fresh); // the new buffers hold no momentum yet: never let a later step read them as if they did
      throw e;
    }
    if (fresh.length) this.#fresh = { step: this.stepCount, indices: fresh };
    return this.stepCount++;
  }

  /** @internal The halt flag of guarded steps (null before the first): 1 while updates are skipped. */
  get haltFlag(): Tensor | null {
    return this.#halt;
  }

  /** Says that the guarded step numbered `step` (and any enqueued after it) was skipped on the device: its
   * count is taken back, momentum buffers it created are dropped, and the halt flag is cleared so the
   * next guarded step updates again. */
  stepSkipped(step: number): void {
    if (this.#fresh && this.#fresh.step >= step) {
      this.#dropFresh(this.#fresh.indices);
      this.#fresh = null;
    }
    this.stepCount = Math.min(this.stepCount, step);
    this.#halt?.zero_();
  }

  #dropFresh(indices: number[]): void {
    for (const i of indices) {
      this.buffers[i]?.dispose();
      this.buffers[i] = null;
    }
  }

  /** Drops every gradient (disposing it). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Whether dispose() was called (a disposed optimizer refuses to step). */
  get disposed(): boolean {
    return this.#disposed;
  }

  dispose(): void {
    this.#disposed = true;
    this.buffers.forEach((b, i) => {
      b?.dispose();
      this.buffers[i] = null;
    });
    this.#halt?.dispose();
    this.#halt = null;
  }
}
