/** Learning-rate schedules: step decay, and the 2012 paper's "divide by 10 when the validation error
 * stops improving" (ReduceLROnPlateau). Both are plain state machines, saved in checkpoints. */
import type { SGD } from './sgd.js';

export interface LRSchedule {
  /** Called once per epoch with that epoch's validation metric (lower is better, e.g. error). */
  epochEnd(metric?: number): void;
  state(): Record<string, number>;
  load(state: Record<string, number>): void;
}

/** lr = base · gamma^floor(epoch / stepSize). */
export class StepLR implements LRSchedule {
  epoch = 0;
  readonly base: number;
  constructor(
    readonly opt: SGD,
    readonly stepSize: number,
    readonly gamma = 0.1,
  ) {
    if (!Number.isInteger(stepSize) || stepSize < 1) throw new RangeError(`StepLR: stepSize must be an integer ≥ 1, got ${stepSize}`);
    this.base = opt.lr;
  }
  epochEnd(): void {
    this.epoch++;
    this.opt.lr = this.base * this.gamma ** Math.floor(this.epoch / this.stepSize);
  }
  state() {
    return { epoch: this.epoch, base: this.base };
  }
  load(s: Record<string, number>): void {
    if (!Number.isSafeInteger(s?.epoch) || s.epoch < 0) throw new Error(`StepLR: saved state has no valid epoch (${JSON.stringify(s)})`);
    this.epoch = s.epoch;
    this.opt.lr = this.base * this.gamma ** Math.floor(this.epoch / this.stepSize);
  }
}

/** lr ·= factor after `patience` epochs without an improvement of the metric by more than `threshold`
 * (relative), never below minLr. The paper: factor 0.1, three times in its training. */
export class ReduceLROnPlateau implements LRSchedule {
  best = Infinity;
  bad = 0;
  reductions = 0;
  constructor(
    readonly opt: SGD,
    readonly factor = 0.1,
    readonly patience = 1,
    readonly threshold = 1e-3,
    readonly minLr = 0,
  ) {}
  epochEnd(metric?: number): void {
    if (metric === undefined || Number.isNaN(metric)) return;
    if (metric < this.best * (1 - this.threshold)) {
      this.best = metric;
      this.bad = 0;
      return;
    }
    if (++this.bad > this.patience) {
      this.opt.lr = Math.max(this.minLr, this.opt.lr * this.factor);
      this.reductions++;
      this.bad = 0;
    }
  }
  state() {
    return { best: this.best, bad: this.bad, reductions: this.reductions, lr: this.opt.lr };
  }
  load(s: Record<string, number>): void {
    if (typeof s !== 'object' || s === null || !Number.isInteger(s.bad)) throw new Error(`ReduceLROnPlateau: saved state is not a plateau schedule's (${JSON.stringify(s)})`);
    this.best = s.best ?? Infinity;
    this.bad = s.bad ?? 0;
    this.reductions = s.reductions ?? 0;
    if (typeof s.lr === 'number') this.opt.lr = s.lr;
  }
}
