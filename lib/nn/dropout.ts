import { dropout, dropoutBackward } from '../ops/dropout.js';
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

/** A counter-based random stream shared by a model's dropout layers: (seed, offset). Each dropout call
 * takes the next block of counters, so a run is reproducible, and resumable from (seed, offset). */
export class RandomStream {
  /** Data-parallel training: this process holds images [start, start + n) of a global batch of `total`
   * images. Each dropout call then reserves the counters of the whole global batch and draws the masks of
   * its own images only, so the masks are keyed by the image's index in the global batch: N processes
   * together draw the masks one process would draw for the global batch (train() sets it). */
  shard: { start: number; total: number } | null = null;
  constructor(
    public seed: bigint,
    public offset = 0,
  ) {}
  /** Reserves counters for n uniforms (Philox gives 4 per counter); returns the first counter. */
  take(n: number): number {
    const o = this.offset;
    this.offset += Math.ceil(n / 4);
    return o;
  }
}

/** Dropout with probability p at training (scaled by 1/(1−p)); identity at evaluation. */
export class Dropout extends Module {
  #call: { offset: number } | null = null;
  constructor(
    readonly p: number,
    readonly rng: RandomStream,
  ) {
    super();
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new RangeError(`Dropout: p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) {
      this.#call = null;
      return x.reshape(x.shape); // a view: the caller owns it like any output
    }
    let offset: number;
    const sh = this.rng.shard;
    if (sh) {
      const n = x.shape[0];
      const per = x.size / n;
      if (sh.start + n > sh.total)
        throw new RangeError(`Dropout: this process's images [${sh.start}, ${sh.start + n}) lie outside the global batch of ${sh.total} (RandomStream.shard)`);
      if ((sh.start * per) % 4 !== 0)
        throw new RangeError(`Dropout: data-parallel dropout needs this process's first element (image ${sh.start} × ${per} features) to start a Philox block of 4; make the per-process batch or the layer width (${per}) a multiple of 4`);
      offset = this.rng.take(sh.total * per) + (sh.start * per) / 4;
    } else offset = this.rng.take(x.size);
    this.#call = { offset };
    return dropout(x, { p: this.p, seed: this.rng.seed, offset, training: true });
  }
  backward(dy: Tensor): Tensor {
    if (!this.#call) return dy.reshape(dy.shape);
    const dx = dropoutBackward(dy, { p: this.p, seed: this.rng.seed, offset: this.#call.offset });
    this.#call = null;
    return dx;
  }
  toString(): string {
    return `Dropout(p=${this.p})`;
  }
}
