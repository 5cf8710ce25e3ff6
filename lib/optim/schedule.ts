/** Learning-rate schedules: step decay, the 2012 paper's "divide by 10 when the validation error stops
 * improving" (ReduceLROnPlateau), and a linear warm-up into a cosine decay, set every step
 * (WarmupCosineLR). All are plain state machines, saved in checkpoints. */
import type { SGD } from './sgd.js';

export interface LRSchedule {
  /** Called once per epoch with that epoch's validation metric (lower is better, e.g. error). */
  epochEnd(metric?: number): void;
  /** Per-step schedules: called before each optimizer step with that step's number, counted from the
   * start of training (0, 1, …; a resumed run goes on counting where the checkpoint stopped). */
  beforeStep?(step: number): void;
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

/** A linear warm-up, then a half cosine down to `minLr`, over a run's planned steps; set before every step:
 *
 *   step s < warmup:  lr = base · (s + 1) / warmup
 *   otherwise:        lr = minLr + (base − minLr) · (1 + cos(π · (s − warmup) / (total − warmup))) / 2
 *
 * So the first step takes base / warmup (with no warm-up, base), the first step after the warm-up base, and
 * the rate falls to minLr where the run ends (the last step's is just above it). PyTorch spells it as
 * SequentialLR([LinearLR(start_factor = 1/warmup, total_iters = warmup − 1),
 * CosineAnnealingLR(T_max = total − warmup, eta_min)], milestones = [warmup]), stepped once per batch: the
 * same rates over the run's steps (test/schedule.test.ts); past them PyTorch's cosine climbs again, ours
 * stays at minLr. The warm-up keeps the first steps small, while the weights are far from anything
 * a large rate suits (a run at the edge of stability diverges there, not later); the decay ends the run
 * at a low rate, where its final accuracy varies least from seed to seed.
 *
 * The lr is a function of the step alone: a run resumed from a checkpoint (which holds the step) takes the
 * same rates as an uninterrupted one. The state is the schedule's shape, checked on loading: a resume with
 * another number of steps (other epochs or batch) or warm-up would not be the run that was checkpointed. */
export class WarmupCosineLR implements LRSchedule {
  readonly base: number;
  constructor(
    readonly opt: SGD,
    readonly totalSteps: number,
    readonly warmupSteps = 0,
    readonly minLr = 0,
  ) {
    if (!Number.isSafeInteger(totalSteps) || totalSteps < 1) throw new RangeError(`WarmupCosineLR: totalSteps must be an integer ≥ 1, got ${totalSteps}`);
    if (!Number.isSafeInteger(warmupSteps) || warmupSteps < 0 || warmupSteps >= totalSteps)
      throw new RangeError(`WarmupCosineLR: warmupSteps must be an integer in [0, totalSteps = ${totalSteps}), got ${warmupSteps}`);
    this.base = opt.lr;
    if (!(Number.isFinite(minLr) && minLr >= 0 && minLr <= this.base))
      throw new RangeError(`WarmupCosineLR: minLr must be a number in [0, lr = ${this.base}], got ${minLr}`);
  }
  /** The rate of step `step` (0-based); past the planned steps it stays at minLr. */
  lrAt(step: number): number {
    const { base, warmupSteps: w, totalSteps: t, minLr } = this;
    if (step < w) return (base * (step + 1)) / w;
    if (step >= t) return minLr;
    return minLr + ((base - minLr) * (1 + Math.cos((Math.PI * (step - w)) / (t - w)))) / 2;
  }
  beforeStep(step: number): void {
    this.opt.lr = this.lrAt(step);
  }
  epochEnd(): void {}
  state() {
    return { base: this.base, totalSteps: this.totalSteps, warmupSteps: this.warmupSteps, minLr: this.minLr };
  }
  load(s: Record<string, number>): void {
    if (typeof s !== 'object' || s === null || typeof s.totalSteps !== 'number') throw new Error(`WarmupCosineLR: saved state is not a cosine schedule's (${JSON.stringify(s)})`);
    for (const k of ['base', 'totalSteps', 'warmupSteps', 'minLr'] as const)
      if (s[k] !== this[k])
        throw new Error(
          `WarmupCosineLR: the checkpoint's schedule has ${k} ${s[k]}${k === 'base' ? ' (the lr it started from)' : ''}, this run's ${this[k]}` +
            (k === 'totalSteps' ? ' (its epochs or batches per epoch differ: the cosine would take another course)' : ''),
        );
  }
}
