import type { Tensor } from '../tensor.js';
import { Module, type Parameter } from './module.js';

/** Runs children in order. Children are named ("0", "1", … by default, or given), and parameter names
 * are dotted paths ("features.0.weight"), as in PyTorch's state_dict. Intermediate activations and
 * gradients are disposed as soon as the next layer has consumed them. */
export class Sequential extends Module {
  readonly children: [string, Module][];

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

  forward(x: Tensor): Tensor {
    let cur = x;
    for (const [, m] of this.children) {
      let next: Tensor;
      try {
        next = m.forward(cur);
      } catch (e) {
        if (cur !== x) cur.dispose();
        throw e;
      }
      if (cur !== x && next !== cur) cur.dispose();
      cur = next;
    }
    return cur;
  }

  backward(dy: Tensor): Tensor | null {
    let cur: Tensor | null = dy;
    for (let i = this.children.length - 1; i >= 0; i--) {
      if (!cur) throw new Error(`Sequential.backward: layer ${this.children[i + 1]?.[0]} returned no gradient for layer ${this.children[i][0]}`);
      let next: Tensor | null;
      try {
        next = this.children[i][1].backward(cur);
      } catch (e) {
        if (cur !== dy) cur.dispose();
        throw e;
      }
      if (cur !== dy && next !== cur) cur.dispose();
      cur = next;
    }
    return cur;
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
