import { Tensor } from '../tensor.js';
import { Conv2d } from './conv2d.js';
import { Linear } from './linear.js';
import { Module, type Parameter } from './module.js';
import { ReLU } from './relu.js';

/** A Conv2d or Linear (exactly, not a subclass) followed by a plain ReLU, both in the same mode. */
function fusable(m: Module, after: Module): boolean {
  const layer = Object.getPrototypeOf(m) === Conv2d.prototype || Object.getPrototypeOf(m) === Linear.prototype;
  return layer && Object.getPrototypeOf(after) === ReLU.prototype && after.training === m.training;
}

/** Runs children in order. Children are named ("0", "1", … by default, or given), and parameter names
 * are dotted paths ("features.0.weight"), as in PyTorch's state_dict. Intermediate activations and
 * gradients are disposed as soon as the next layer has consumed them.
 *
 * A Conv2d or Linear followed by a ReLU runs as one fused op (`fuseRelu`, on by default; exactly these
 * classes, not subclasses, which may have their own forward): on CUDA the bias and the ReLU in one kernel
 * after the GEMMs, and in the backward the ReLU's mask in the bias gradient's pass, written over the
 * incoming gradient when this Sequential owns it — with a bias, two kernel launches fewer per pair and
 * step, and no more memory. The values are the unfused ones bit for bit on the CPU and on the emulated
 * device (tested); on a GPU they agree to GEMM rounding (cuBLAS may pick another kernel when the bias is
 * added after the GEMM instead of accumulated into it, and a pre-activation within rounding of 0 may
 * then take the other side of the ReLU). */
export class Sequential extends Module {
  readonly children: [string, Module][];
  /** Run Conv2d/Linear → ReLU pairs as one fused op (see the class comment). */
  fuseRelu = true;
  /** Called during backward as soon as a layer's parameters hold their gradients (that layer's own
   * parameters; a Sequential inside reports its own layers): data-parallel training starts reducing them
   * while the layers before them are still running backward. Set on every Sequential inside by
   * setGradientHook. */
  gradientHook: ((params: Parameter[]) => void) | null = null;
  /** Indices i where the last forward ran children i and i + 1 fused (read by backward). */
  #fusedAt = new Set<number>();

  constructor(children: Module[] | [string, Module][]) {
    super();
    this.children = children.map((c, i) => (Array.isArray(c) ? c : [String(i), c]));
    this.setFirstLayer();
  }

  /** Only the first child's backward may skip dx (nothing consumes it). Call after changing `needInputGrad`. */
  setFirstLayer(): void {
    this.children.forEach(([, m], i) => {
      m.needInputGrad = i === 0 ? this.needInputGrad : true;
      if (m instanceof Sequential) m.setFirstLayer();
    });
  }

  override train(on = true): this {
    super.train(on);
    for (const [, m] of this.children) m.train(on);
    return this;
  }

  /** Sets `gradientHook` on this Sequential and every one inside it (null: none). */
  setGradientHook(hook: ((params: Parameter[]) => void) | null): this {
    this.gradientHook = hook;
    for (const [, m] of this.children) if (m instanceof Sequential) m.setGradientHook(hook);
    return this;
  }

  /** Applies `fuseRelu` to this Sequential and every one inside it. */
  setFuseRelu(on: boolean): this {
    this.fuseRelu = on;
    for (const [, m] of this.children) if (m instanceof Sequential) m.setFuseRelu(on);
    return this;
  }

  forward(x: Tensor): Tensor {
    let cur = x;
    this.#fusedAt.clear();
    for (let i = 0; i < this.children.length; i++) {
      const m = this.children[i][1];
      const after = this.children[i + 1]?.[1];
      const fuse = this.fuseRelu && after !== undefined && fusable(m, after);
      let next: Tensor;
      try {
        next = fuse ? (m as Conv2d | Linear).forward(cur, after as ReLU) : m.forward(cur);
      } catch (e) {
        if (cur !== x) cur.dispose();
        throw e;
      }
      if (fuse) this.#fusedAt.add(i++);
      if (cur !== x && next !== cur) cur.dispose();
      cur = next;
    }
    return cur;
  }

  backward(dy: Tensor): Tensor | null {
    let cur: Tensor | null = dy;
    for (let i = this.children.length - 1; i >= 0; i--) {
      if (!cur) throw new Error(`Sequential.backward: layer ${this.children[i + 1]?.[0]} returned no gradient for layer ${this.children[i][0]}`);
      // A pair the forward fused: the layer before this ReLU runs the backward of both.
      const fused = i > 0 && this.#fusedAt.has(i - 1);
      let next: Tensor | null;
      try {
        next = fused
          ? (this.children[i - 1][1] as Conv2d | Linear).backward(cur, this.children[i][1] as ReLU, this.#owns(cur, dy))
          : this.children[i][1].backward(cur);
      } catch (e) {
        if (cur !== dy) cur.dispose();
        throw e;
      }
      if (this.gradientHook) {
        const done = fused ? [this.children[i - 1][1], this.children[i][1]] : [this.children[i][1]];
        const params = done.filter((m) => !(m instanceof Sequential)).flatMap((m) => m.parameters());
        if (params.length) this.gradientHook(params);
      }
      if (fused) i--;
      if (cur !== dy && next !== cur) cur.dispose();
      cur = next;
    }
    return cur;
  }

  /** Whether `g` is a gradient this Sequential made (not the caller's dy, nor a view of it): a fused
   * backward may then overwrite it. */
  #owns(g: Tensor, dy: Tensor): boolean {
    return g !== dy && Tensor.storageOf(g, 'Sequential.backward') !== Tensor.storageOf(dy, 'Sequential.backward');
  }

  override namedParameters(): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [name, m] of this.children) for (const [pn, p] of m.namedParameters()) out.push([`${name}.${pn}`, p]);
    return out;
  }

  override releaseSaved(): void {
    for (const [, m] of this.children) m.releaseSaved();
  }

  override to(device: import('../tensor.js').Device): this {
    for (const [, m] of this.children) m.to(device);
    return this;
  }

  override dispose(): void {
    for (const [, m] of this.children) m.dispose();
  }

  /** A child by dotted path ("features.0"). */
  get(path: string): Module {
    let m: Module = this;
    for (const part of path.split('.')) {
      if (!(m instanceof Sequential)) throw new Error(`Sequential.get: "${path}" goes through a layer that has no children`);
      const c = m.children.find(([n]) => n === part);
      if (!c) throw new Error(`Sequential.get: no child "${part}" in "${path}"`);
      m = c[1];
    }
    return m;
  }

  toString(): string {
    const lines = this.children.map(([n, m]) => `  (${n}): ${m.toString().replace(/\n/g, '\n  ')}`);
    return `Sequential(\n${lines.join('\n')}\n)`;
  }
}
