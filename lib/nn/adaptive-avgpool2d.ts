import { adaptiveAvgPool2d, adaptiveAvgPool2dBackward } from '../ops/pool.js';
import { cast } from '../ops/elementwise.js';
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

/** Adaptive average pooling to a fixed output size (torchvision AlexNet's 6×6). A bfloat16 x (bfloat16
 * activations) is pooled in float32 and rounded once; where the output size is x's own (torchvision's arch
 * at 224 × 224), each output is one input element and the pool is a copy, in either dtype. */
export class AdaptiveAvgPool2d extends Module {
  #inputShape: readonly number[] | null = null;
  constructor(readonly outputSize: number | [number, number]) {
    super();
  }
  forward(x: Tensor): Tensor {
    this.#inputShape = x.shape;
    if (x.dtype !== 'bfloat16') return adaptiveAvgPool2d(x, this.outputSize);
    const [oh, ow] = Array.isArray(this.outputSize) ? this.outputSize : [this.outputSize, this.outputSize];
    if (x.shape.length === 4 && x.shape[2] === oh && x.shape[3] === ow) return x.clone();
    using xf = cast(x, 'float32');
    using yf = adaptiveAvgPool2d(xf, this.outputSize);
    return cast(yf, 'bfloat16');
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
