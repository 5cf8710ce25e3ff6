import { localResponseNorm, localResponseNormBackward } from '../ops/lrn.js';
import type { Tensor } from '../tensor.js';
import { Module, keep, release } from './module.js';

/** Local response normalisation across channels (PyTorch/Caffe convention: alpha is divided by size).
 * The 2012 paper's: size 5, alpha 1e-4, beta 0.75, k 2. */
export class LocalResponseNorm extends Module {
  #saved: Tensor | null = null; // x: the backward recomputes the scale from it
  constructor(
    readonly size: number,
    readonly alpha = 1e-4,
    readonly beta = 0.75,
    readonly k = 1,
  ) {
    super();
  }
  #opts() {
    return { size: this.size, alpha: this.alpha, beta: this.beta, k: this.k };
  }
  forward(x: Tensor): Tensor {
    const y = localResponseNorm(x, this.#opts());
    this.releaseSaved();
    if (this.training) this.#saved = keep(x);
    return y;
  }
  backward(dy: Tensor): Tensor {
    const x = this.#saved;
    if (!x) throw new Error('LocalResponseNorm.backward: nothing saved; call forward in training mode first');
    const dx = localResponseNormBackward(dy, x, this.#opts());
    this.releaseSaved();
    return dx;
  }
  override releaseSaved(): void {
    if (this.#saved) release(this.#saved);
    this.#saved = null;
  }
  toString(): string {
    return `LocalResponseNorm(${this.size}, alpha=${this.alpha}, beta=${this.beta}, k=${this.k})`;
  }
}
