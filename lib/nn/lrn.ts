import { getLrnPath, localResponseNorm, localResponseNormBackward, localResponseNormLegacy, localResponseNormLegacyBackward } from '../ops/lrn.js';
import type { Tensor } from '../tensor.js';
import { Module, keep, release } from './module.js';

/** Local response normalisation across channels (PyTorch/Caffe convention: alpha is divided by size).
 * The 2012 paper's: size 5, alpha 1e-4, beta 0.75, k 2. */
export class LocalResponseNorm extends Module {
  // x: the backward recomputes the scale from it; on the legacy path (setLrnPath) also y and the scale
  #saved: { x: Tensor; legacy: { y: Tensor; scale: Tensor } | null } | null = null;
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
    if (getLrnPath() === 'legacy') {
      const { y, scale } = localResponseNormLegacy(x, this.#opts());
      this.releaseSaved();
      if (this.training) this.#saved = { x: keep(x), legacy: { y: keep(y), scale } };
      else scale.dispose();
      return y;
    }
    const y = localResponseNorm(x, this.#opts());
    this.releaseSaved();
    if (this.training) this.#saved = { x: keep(x), legacy: null };
    return y;
  }
  backward(dy: Tensor): Tensor {
    const s = this.#saved;
    if (!s) throw new Error('LocalResponseNorm.backward: nothing saved; call forward in training mode first');
    const dx = s.legacy
      ? localResponseNormLegacyBackward(dy, s.x, s.legacy.y, s.legacy.scale, this.#opts())
      : localResponseNormBackward(dy, s.x, this.#opts());
    this.releaseSaved();
    return dx;
  }
  override releaseSaved(): void {
    const s = this.#saved;
    if (s) {
      release(s.x);
      if (s.legacy) release(s.legacy.y, s.legacy.scale);
    }
    this.#saved = null;
  }
  toString(): string {
    return `LocalResponseNorm(${this.size}, alpha=${this.alpha}, beta=${this.beta}, k=${this.k})`;
  }
}
