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

/** One tensor of {@link sgdUpdateMany}: its own weight decay and first-step flag. */
export interface SgdEntry {
  param: Tensor;
  grad: Tensor;
  /** Required when momentum ≠ 0. */
  momentumBuffer: Tensor | null;
  weightDecay: number;
  firstStep: boolean;
}

/**
 * {@link sgdUpdate} over many tensors at once — on CUDA one kernel launch for all of them (up to 32 per
 * launch), bit-identical to one sgdUpdate per tensor. With `guard` (a one-element float32 tensor on the
 * same device, e.g. the step's loss) not finite, or `halt` (a one-element float32 flag, read and written)
 * non-zero, nothing is updated and halt becomes 1 — decided on the device, with no host synchronisation:
 * a diverged step changes no weight, and neither do the steps enqueued after it until halt is zeroed.
 */
export function sgdUpdateMany(entries: readonly SgdEntry[], opts: Omit<SgdUpdateOptions, 'firstStep' | 'weightDecay'>, guard: Tensor | null = null, halt: Tensor | null = null): void {
  const op = 'sgdUpdate';
  if (!Array.isArray(entries)) throw new TypeError(`${op}: expected an array of { param, grad, momentumBuffer, weightDecay, firstStep }, got ${describe(entries)}`);
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected options { lr, momentum?, dampening?, nesterov? }, got ${describe(opts)}`);
  const nonNeg = (x: number) => x >= 0;
  const lr = numberOption(opts.lr, op, 'lr', nonNeg, 'a finite number ≥ 0');
  const momentum = opts.momentum === undefined ? 0 : numberOption(opts.momentum, op, 'momentum', nonNeg, 'a finite number ≥ 0');
  const dampening = opts.dampening === undefined ? 0 : numberOption(opts.dampening, op, 'dampening');
  const nesterov = opts.nesterov ?? false;
  if (typeof nesterov !== 'boolean') throw new TypeError(`${op}: nesterov must be a boolean, got ${describe(opts.nesterov)}`);
  if (nesterov && (momentum <= 0 || dampening !== 0))
    throw new RangeError(`${op}: Nesterov momentum needs momentum > 0 and dampening 0, got momentum ${momentum}, dampening ${dampening}`);
  const devices: Record<string, Tensor | null> = {};
  entries.forEach((e, i) => {
    expectTensor(e.param, op, `entries[${i}].param`);
    expectTensor(e.grad, op, `entries[${i}].grad`);
    if (e.grad.size !== e.param.size) throw new RangeError(`${op}: entries[${i}]: grad has ${e.grad.size} elements, param ${e.param.size}`);
    if (e.grad === e.param) throw new TypeError(`${op}: entries[${i}]: grad and param must be different tensors`);
    numberOption(e.weightDecay, op, `entries[${i}].weightDecay`, nonNeg, 'a finite number ≥ 0');
    if (typeof e.firstStep !== 'boolean') throw new TypeError(`${op}: entries[${i}].firstStep must be a boolean, got ${describe(e.firstStep)}`);
    if (momentum !== 0) {
      if (!e.momentumBuffer) throw new TypeError(`${op}: momentum is ${momentum}, so entries[${i}] needs a momentumBuffer, got ${describe(e.momentumBuffer)}`);
      expectTensor(e.momentumBuffer, op, `entries[${i}].momentumBuffer`);
      if (e.momentumBuffer.size !== e.param.size) throw new RangeError(`${op}: entries[${i}].momentumBuffer has ${e.momentumBuffer.size} elements, param ${e.param.size}`);
    }
    devices[`entries[${i}].param`] = e.param;
    devices[`entries[${i}].grad`] = e.grad;
    if (momentum !== 0) devices[`entries[${i}].momentumBuffer`] = e.momentumBuffer;
  });
  for (const [name, t] of [['guard', guard], ['halt', halt]] as const) {
    if (t === null) continue;
    expectTensor(t, op, name);
    if (t.size < 1) throw new RangeError(`${op}: ${name} must hold one value, got [${t.shape.join(', ')}]`);
    devices[name] = t;
  }
  sameDevice(op, devices);
  nativeOps().sgd_update_multi(
    entries.map((e) => st(e.param, op)),
    entries.map((e) => st(e.grad, op)),
    entries.map((e) => (momentum !== 0 && e.momentumBuffer ? st(e.momentumBuffer, op) : null)),
    entries.map((e) => e.param.size),
    entries.map((e) => e.weightDecay),
    entries.map((e) => e.firstStep),
    lr, momentum, dampening, nesterov,
    guard ? st(guard, op) : null,
    halt ? st(halt, op) : null,
  );
}
