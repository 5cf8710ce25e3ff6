import { relu, reluBackward } from '../ops/activation.js';
import type { Tensor } from '../tensor.js';
import { Module, keep, release } from './module.js';

/** ReLU; `inplace` overwrites its input (as torchvision's ReLU(inplace=True)). */
export class ReLU extends Module {
  #y: Tensor | null = null;
  constructor(readonly inplace = false) {
    super();
  }
  forward(x: Tensor): Tensor {
    const y = relu(x, { inplace: this.inplace });
    release(this.#y);
    this.#y = this.training ? keep(y) : null;
    return y;
  }
  backward(dy: Tensor): Tensor {
    if (!this.#y) throw new Error('ReLU.backward: no saved output; call forward in training mode first');
    const dx = reluBackward(dy, this.#y);
    this.releaseSaved();
    return dx;
  }
  /** For a fused Conv2d/Linear → ReLU (Sequential runs the pair as one op): keep y, the fused output,
   * as forward would have. */
  saveFusedOutput(y: Tensor): void {
    release(this.#y);
    this.#y = this.training ? keep(y) : null;
  }
  /** The output kept for backward (the fused pair's backward reads it). */
  savedOutput(): Tensor {
    if (!this.#y) throw new Error('ReLU.backward: no saved output; call forward in training mode first');
    return this.#y;
  }
  override releaseSaved(): void {
    release(this.#y);
    this.#y = null;
  }
  toString(): string {
    return `ReLU(${this.inplace ? 'inplace=True' : ''})`;
  }
}
