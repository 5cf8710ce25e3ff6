/** The fused SGD update (native/ops/sgd.h): torch.optim.SGD's formulation, in place, one pass over a flat
 * buffer. */
import { describe } from '../errors.js';
import { Tensor } from '../tensor.js';
import { expectTensor, nativeOps, numberOption, sameDevice, st } from './util.js';

export interface SgdUpdateOptions {
  /** Learning rate, ≥ 0. */
  lr: number;
  /** Momentum factor, ≥ 0 (default 0: no buffer needed). */
  momentum?: number;
  /** L2 penalty added to the gradient, ≥ 0 (default 0). */
  weightDecay?: number;
  /** Dampening of the momentum (default 0). */
  dampening?: number;
  /** Nesterov momentum (default false); needs momentum > 0 and dampening 0, as PyTorch. */
  nesterov?: boolean;
  /** True on the first step for this buffer: the momentum buffer is set to the gradient (its contents are
   * ignored), as PyTorch does when its state has no momentum_buffer yet. */
  firstStep: boolean;
}

/**
 * One SGD step, in place on `param` (and `momentumBuffer`), exactly torch.optim.SGD's:
 *   g = grad + weightDecay · param
 *   if momentum ≠ 0: buf = firstStep ? g : momentum · buf + (1 − dampening) · g;  g = nesterov ? g + momentum · buf : buf
 *   param −= lr · g
 * param, grad and momentumBuffer are float32 tensors with the same number of elements (any shapes: flat
 * buffers usually) on one device. momentumBuffer is required when momentum ≠ 0, else may be null (it is
 * left untouched).
 */
export function sgdUpdate(param: Tensor, grad: Tensor, momentumBuffer: Tensor | null, opts: SgdUpdateOptions): void {
  const op = 'sgdUpdate';
  expectTensor(param, op, 'param');
  expectTensor(grad, op, 'grad');
  if (grad.size !== param.size)
    throw new RangeError(`${op}: expected grad with param's ${param.size} elements, got [${grad.shape.join(', ')}] (${grad.size} elements)`);
  if (grad === param) throw new TypeError(`${op}: grad and param must be different tensors`);
  if (opts === null || typeof opts !== 'object')
    throw new TypeError(`${op}: expected options { lr, momentum?, weightDecay?, dampening?, nesterov?, firstStep }, got ${describe(opts)}`);
  const nonNeg = (x: number) => x >= 0;
  const lr = numberOption(opts.lr, op, 'lr', nonNeg, 'a finite number ≥ 0');
  const momentum = opts.momentum === undefined ? 0 : numberOption(opts.momentum, op, 'momentum', nonNeg, 'a finite number ≥ 0');
  const weightDecay = opts.weightDecay === undefined ? 0 : numberOption(opts.weightDecay, op, 'weightDecay', nonNeg, 'a finite number ≥ 0');
  const dampening = opts.dampening === undefined ? 0 : numberOption(opts.dampening, op, 'dampening');
  if (opts.nesterov !== undefined && typeof opts.nesterov !== 'boolean')
    throw new TypeError(`${op}: nesterov must be a boolean, got ${describe(opts.nesterov)}`);
  const nesterov = opts.nesterov ?? false;
  if (typeof opts.firstStep !== 'boolean') throw new TypeError(`${op}: firstStep must be a boolean, got ${describe(opts.firstStep)}`);
  if (nesterov && (momentum <= 0 || dampening !== 0))
    throw new RangeError(`${op}: Nesterov momentum needs momentum > 0 and dampening 0, got momentum ${momentum}, dampening ${dampening}`);
  let buf: Tensor | null = null;
  if (momentum !== 0) {
    if (momentumBuffer === null || momentumBuffer === undefined)
      throw new TypeError(`${op}: momentum is ${momentum}, so a momentumBuffer tensor is required, got ${describe(momentumBuffer)}`);
    expectTensor(momentumBuffer, op, 'momentumBuffer');
    if (momentumBuffer.size !== param.size)
      throw new RangeError(`${op}: expected momentumBuffer with param's ${param.size} elements, got [${momentumBuffer.shape.join(', ')}] (${momentumBuffer.size} elements)`);
    if (momentumBuffer === param || momentumBuffer === grad)
      throw new TypeError(`${op}: momentumBuffer must be a tensor of its own, not param or grad`);
    buf = momentumBuffer;
  } else if (momentumBuffer !== null && momentumBuffer !== undefined) {
    expectTensor(momentumBuffer, op, 'momentumBuffer');
  }
  sameDevice(op, { param, grad, momentumBuffer: buf });
  nativeOps().sgd_update(st(param, op), st(grad, op), buf ? st(buf, op) : null, param.size, lr, momentum, dampening, weightDecay, nesterov, opts.firstStep);
}
