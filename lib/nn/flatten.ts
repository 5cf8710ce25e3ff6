import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

/** [N, ...] → [N, prod(...)], a view sharing memory (torch.flatten(x, 1)). */
export class Flatten extends Module {
  #inputShape: readonly number[] | null = null;
  forward(x: Tensor): Tensor {
    if (x.shape.length < 1) throw new RangeError(`Flatten: expected a tensor with a batch dimension, got [${x.shape.join(', ')}]`);
    this.#inputShape = x.shape;
    return x.reshape([x.shape[0], -1]);
  }
  backward(dy: Tensor): Tensor {
    if (!this.#inputShape) throw new Error('Flatten.backward: call forward first');
    return dy.reshape(this.#inputShape);
  }
  toString(): string {
    return 'Flatten(start_dim=1, end_dim=-1)';
  }
}
