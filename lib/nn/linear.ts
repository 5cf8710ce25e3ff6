import { linear, linearBackward, linearForTraining } from '../ops/linear.js';
import { Tensor, type Device } from '../tensor.js';
import { Module, Parameter, keep, release } from './module.js';
import type { ReLU } from './relu.js';
import { intOption, type Precision } from '../ops/util.js';

/** Fully connected layer: y = x·Wᵀ + b, weight [out, in] as PyTorch. Parameters start at zero. */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  precision: Precision = 'fp32';
  /** The output's dtype: 'float32', or 'bfloat16' (bfloat16 activations: a model in precision 'bf16' sets
   * it on every layer but the last, whose logits stay float32). The input may be either. */
  activationDtype: 'float32' | 'bfloat16' = 'float32';
  #x: Tensor | null = null;
  /** What linearForTraining kept for the backward (the weights' bf16 copy on CUDA in 'bf16'), or null. */
  #kept: Tensor | null = null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean; device?: Device } = {},
  ) {
    super();
    intOption(inFeatures, 'Linear', 'inFeatures');
    intOption(outFeatures, 'Linear', 'outFeatures');
    const dev = opts.device ?? 'cpu';
    this.weight = new Parameter(Tensor.zeros([outFeatures, inFeatures], dev));
    this.bias = opts.bias === false ? null : new Parameter(Tensor.zeros([outFeatures], dev));
  }

  override namedParameters(): [string, Parameter][] {
    return this.bias ? [['weight', this.weight], ['bias', this.bias]] : [['weight', this.weight]];
  }

  /** y for x; with `relu` (the ReLU after this layer: Sequential fuses the pair), y = max(·, 0) in the
   * same op, kept by `relu` for the backward as its own forward would. */
  forward(x: Tensor, relu: ReLU | null = null): Tensor {
    const o = { precision: this.precision, relu: relu !== null, dtype: this.activationDtype };
    this.releaseSaved();
    if (!this.training) {
      const y = linear(x, this.weight.value, this.bias?.value ?? null, o);
      relu?.saveFusedOutput(y);
      return y;
    }
    const { y, kept } = linearForTraining(x, this.weight.value, this.bias?.value ?? null, o);
    this.#kept = kept;
    this.#x = keep(x);
    relu?.saveFusedOutput(y);
    return y;
  }

  /** dx for dy (and the parameters' gradients). With `relu` (a fused forward), dy is the gradient at the
   * ReLU's output and the backward goes through both; `consumeDy` lets it overwrite dy (the caller has no
   * further use for it: no scratch buffer is needed). */
  backward(dy: Tensor, relu: ReLU | null = null, consumeDy = false): Tensor | null {
    try {
      if (!this.#x) throw new Error('Linear.backward: no saved input; call forward in training mode first');
      const { dx, dw, db } = linearBackward(dy, this.#x, this.weight.value, {
        precision: this.precision,
        needInputGrad: this.needInputGrad,
        needBiasGrad: this.bias !== null,
        ...(relu ? { reluOutput: relu.savedOutput(), reluInPlace: consumeDy } : {}),
        kept: this.#kept,
      });
      this.weight.setGrad(dw);
      if (this.bias && db) this.bias.setGrad(db);
      this.releaseSaved();
      return dx;
    } finally {
      relu?.releaseSaved();
    }
  }

  override releaseSaved(): void {
    release(this.#x);
    this.#x = null;
    this.#kept?.dispose();
    this.#kept = null;
  }

  toString(): string {
    return `Linear(in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias ? 'True' : 'False'})`;
  }
}
