import { maxPool2d, maxPool2dBackward } from '../ops/pool.js';
import type { Tensor } from '../tensor.js';
import { Module, release } from './module.js';

export interface MaxPool2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  ceilMode?: boolean;
}

/** Max pooling; AlexNet's overlapping pooling is kernel 3, stride 2. */
export class MaxPool2d extends Module {
  #indices: Tensor | null = null;
  #inputShape: readonly number[] | null = null;
  constructor(
    readonly kernelSize: number | [number, number],
    readonly opts: MaxPool2dOptions = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    const { y, indices } = maxPool2d(x, { kernelSize: this.kernelSize, ...this.opts });
    release(this.#indices);
    if (this.training) {
      this.#indices = indices;
      this.#inputShape = x.shape;
    } else {
      indices.dispose();
      this.#indices = null;
    }
    return y;
  }
  backward(dy: Tensor): Tensor {
    if (!this.#indices || !this.#inputShape) throw new Error('MaxPool2d.backward: no saved indices; call forward in training mode first');
    const dx = maxPool2dBackward(dy, this.#indices, this.#inputShape);
    this.releaseSaved();
    return dx;
  }
  /** The argmax of the last training forward (int32 [N, C, Ho, Wo], maxPool2d's convention), kept for the
   * backward; null when none is kept. Owned by the layer: valid until its backward or next forward. */
  savedIndices(): Tensor | null {
    return this.#indices;
  }
  override releaseSaved(): void {
    release(this.#indices);
    this.#indices = null;
  }
  toString(): string {
    return `MaxPool2d(kernel_size=${this.kernelSize}, stride=${this.opts.stride ?? this.kernelSize}, padding=${this.opts.padding ?? 0}, ceil_mode=${this.opts.ceilMode ? 'True' : 'False'})`;
  }
}
