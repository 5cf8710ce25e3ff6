import { adaptiveAvgPool2d, adaptiveAvgPool2dBackward } from '../ops/pool.js';
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

/** Adaptive average pooling to a fixed output size (torchvision AlexNet's 6×6). */
export class AdaptiveAvgPool2d extends Module {
  #inputShape: readonly number[] | null = null;
  constructor(readonly outputSize: number | [number, number]) {
    super();
  }
  forward(x: Tensor): Tensor {
    this.#inputShape = x.shape;
    return adaptiveAvgPool2d(x, this.outputSize);
  }
  backward(dy: Tensor): Tensor {
    if (!this.#inputShape) throw new Error('AdaptiveAvgPool2d.backward: call forward first');
    return adaptiveAvgPool2dBackward(dy, this.#inputShape);
  }
  toString(): string {
    const s = Array.isArray(this.outputSize) ? this.outputSize : [this.outputSize, this.outputSize];
    return `AdaptiveAvgPool2d(output_size=(${s.join(', ')}))`;
  }
}
