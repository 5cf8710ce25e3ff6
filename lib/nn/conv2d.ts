import { conv2d, conv2dBackward, conv2dForTraining } from '../ops/conv.js';
import { Tensor, type Device } from '../tensor.js';
import { Module, Parameter, keep, release } from './module.js';
import type { ReLU } from './relu.js';
import type { Precision } from '../ops/util.js';
import { intOption, pairOption } from '../ops/util.js';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  groups?: number;
  bias?: boolean;
  device?: Device;
}

/** 2-D convolution (im2col + GEMM). weight [out, in/groups, kh, kw], bias [out]. Parameters start at
 * zero: models initialise them (createAlexNet). */
export class Conv2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly groups: number;
  precision: Precision = 'fp32';
  /** The output's dtype: 'float32', or 'bfloat16' (bfloat16 activations: a model in precision 'bf16' sets
   * it). The input may be either. */
  activationDtype: 'float32' | 'bfloat16' = 'float32';
  #x: Tensor | null = null;
  /** The forward's columns (conv2dForTraining), for the backward; null when it kept none. */
  #columns: Tensor | null = null;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: number | [number, number],
    opts: Conv2dOptions = {},
  ) {
    super();
    intOption(inChannels, 'Conv2d', 'inChannels');
    intOption(outChannels, 'Conv2d', 'outChannels');
    const [kh, kw] = pairOption(kernelSize, 'Conv2d', 'kernelSize');
    this.stride = pairOption(opts.stride ?? 1, 'Conv2d', 'stride');
    this.padding = pairOption(opts.padding ?? 0, 'Conv2d', 'padding', 0);
    this.groups = intOption(opts.groups ?? 1, 'Conv2d', 'groups');
    if (inChannels % this.groups || outChannels % this.groups)
      throw new RangeError(`Conv2d: inChannels ${inChannels} and outChannels ${outChannels} must be divisible by groups ${this.groups}`);
    const dev = opts.device ?? 'cpu';
    this.weight = new Parameter(Tensor.zeros([outChannels, inChannels / this.groups, kh, kw], dev));
    this.bias = opts.bias === false ? null : new Parameter(Tensor.zeros([outChannels], dev));
  }

  get kernelSize(): [number, number] {
    return [this.weight.value.shape[2], this.weight.value.shape[3]];
  }

  override namedParameters(): [string, Parameter][] {
    return this.bias ? [['weight', this.weight], ['bias', this.bias]] : [['weight', this.weight]];
  }

  #opts() {
    return { stride: this.stride, padding: this.padding, groups: this.groups, precision: this.precision };
  }

  /** y for x; with `relu` (the ReLU after this convolution: Sequential fuses the pair), y = max(·, 0) in the
   * same op, kept by `relu` for the backward as its own forward would. */
  forward(x: Tensor, relu: ReLU | null = null): Tensor {
    const o = { ...this.#opts(), relu: relu !== null, dtype: this.activationDtype };
    this.releaseSaved();
    if (!this.training) {
      const y = conv2d(x, this.weight.value, this.bias?.value ?? null, o);
      relu?.saveFusedOutput(y);
      return y;
    }
    const { y, columns } = conv2dForTraining(x, this.weight.value, this.bias?.value ?? null, o);
    this.#columns = columns;
    this.#x = keep(x);
    relu?.saveFusedOutput(y);
    return y;
  }

  /** dx for dy (and the parameters' gradients). With `relu` (a fused forward), dy is the gradient at the
   * ReLU's output and the backward goes through both; `consumeDy` lets it overwrite dy (the caller has no
   * further use for it: no scratch buffer is needed). */
  backward(dy: Tensor, relu: ReLU | null = null, consumeDy = false): Tensor | null {
    try {
      if (!this.#x) throw new Error('Conv2d.backward: no saved input; call forward in training mode first');
      const { dx, dw, db } = conv2dBackward(dy, this.#x, this.weight.value, {
        ...this.#opts(),
        needInputGrad: this.needInputGrad,
        needBiasGrad: this.bias !== null,
        ...(relu ? { reluOutput: relu.savedOutput(), reluInPlace: consumeDy } : {}),
        columns: this.#columns,
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
    this.#columns?.dispose();
    this.#columns = null;
  }

  toString(): string {
    const [kh, kw] = this.kernelSize;
    return `Conv2d(${this.inChannels}, ${this.outChannels}, kernel_size=(${kh}, ${kw}), stride=(${this.stride}), padding=(${this.padding})${this.groups > 1 ? `, groups=${this.groups}` : ''}${this.bias ? '' : ', bias=False'})`;
  }
}
