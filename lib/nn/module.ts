/** Layers: forward and backward by hand, parameters with their gradients. Ownership rules:
 * - `forward(x)` returns a tensor the caller owns (or `x` itself for in-place layers). A layer that needs
 *   something for backward keeps its own view of it (`Tensor.reshape` shares memory, counted), so the
 *   caller may dispose `x` at once; the view is released by `backward` or the next `forward`.
 * - `backward(dy)` returns dx (owned by the caller) or null when `needInputGrad` is false, and sets each
 *   parameter's `grad` (the previous gradient tensor is disposed). */
import { Tensor, type Device } from '../tensor.js';
import type { Precision } from '../ops/util.js';

export class Parameter {
  grad: Tensor | null = null;
  constructor(
    public value: Tensor,
    /** Whether weight decay applies (PyTorch applies it to every parameter; so do we by default). */
    public decay = true,
  ) {}
  setGrad(g: Tensor): void {
    if (this.grad && this.grad !== g) this.grad.dispose();
    this.grad = g;
  }
  dispose(): void {
    this.value.dispose();
    this.grad?.dispose();
    this.grad = null;
  }
}

export interface ForwardContext {
  /** GEMM precision for this pass. */
  precision: Precision;
}

export abstract class Module {
  training = true;
  /** Whether backward must produce dx (false for the first layer). */
  needInputGrad = true;

  abstract forward(x: Tensor): Tensor;
  abstract backward(dy: Tensor): Tensor | null;

  /** Own parameters by local name ("weight", "bias"). */
  namedParameters(): [string, Parameter][] {
    return [];
  }
  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }
  train(on = true): this {
    this.training = on;
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  /** Releases what forward saved for backward. */
  releaseSaved(): void {}
  /** Moves parameters to `device` (new tensors; the old ones are disposed). */
  to(device: Device): this {
    for (const [, p] of this.namedParameters()) {
      if (p.value.device === device) continue;
      const v = p.value.to(device);
      p.value.dispose();
      p.value = v;
      if (p.grad) {
        const g = p.grad.to(device);
        p.grad.dispose();
        p.grad = g;
      }
    }
    return this;
  }
  dispose(): void {
    this.releaseSaved();
    for (const [, p] of this.namedParameters()) p.dispose();
  }
  /** A short description, PyTorch's repr style. */
  abstract toString(): string;
}

/** Keeps a counted view of a tensor for backward; `null` releases it. */
export function keep(t: Tensor): Tensor {
  return t.reshape(t.shape);
}

export function release(...ts: (Tensor | null | undefined)[]): void {
  for (const t of ts) t?.dispose();
}
