/** Loads PyTorch reference fixtures (test/fixtures/fixturelib.py documents the format), regenerates
 * their inputs bit-exactly, and compares our outputs against them. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { readSafetensorsSync, type SafeTensor } from '../../lib/io/safetensors.js';

export const FIXTURE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

function hash(seed: number, idx: number): number {
  let x = (idx + Math.imul(seed, 0x9e3779b9)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x21f0aaad) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x735a2d97) >>> 0;
  x ^= x >>> 15;
  return x >>> 0;
}

/** The fixture generator's uniform floats: lo + (hi - lo) * ((hash >> 8) / 2^24), rounded to float32. */
export function fixtureUniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * ((hash(seed, i) >>> 8) * (1 / 16777216));
  return out;
}

export function fixtureRandint(n: number, seed: number, classes: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = hash(seed, i) % classes;
  return out;
}

interface InputSpec {
  shape: number[];
  seed: number;
  lo?: number;
  hi?: number;
  classes?: number;
}
interface Stat {
  shape: number[];
  numel: number;
  sum: number;
  sumsq: number;
  absmax: number;
}

export interface Fixture {
  op: string;
  name: string;
  params: Record<string, any>;
  inputs: Record<string, { shape: number[]; data: Float32Array | Int32Array }>;
  stats: Record<string, Stat>;
  tensors: Map<string, SafeTensor>;
}

export function loadFixture(op: string, name: string): Fixture {
  const file = path.join(FIXTURE_DIR, op, `${name}.safetensors`);
  const f = readSafetensorsSync(file);
  const m = f.metadata;
  if (m.format !== 'alexnet-cuda-fixture' || m.version !== '1')
    throw new Error(`${file}: expected an alexnet-cuda-fixture version 1, got ${m.format} ${m.version}`);
  const specs = JSON.parse(m.inputs) as Record<string, InputSpec>;
  const inputs: Fixture['inputs'] = {};
  for (const [k, s] of Object.entries(specs)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    inputs[k] = {
      shape: s.shape,
      data: s.classes !== undefined ? fixtureRandint(n, s.seed, s.classes) : fixtureUniform(n, s.seed, s.lo, s.hi),
    };
  }
  return { op, name, params: JSON.parse(m.params), inputs, stats: JSON.parse(m.stats), tensors: f.tensors };
}

/** Every case name of an op (file names without extension). */
export async function fixtureCases(op: string): Promise<string[]> {
  const { readdirSync } = await import('node:fs');
  return readdirSync(path.join(FIXTURE_DIR, op))
    .filter((f) => f.endsWith('.safetensors'))
    .map((f) => f.slice(0, -'.safetensors'.length))
    .sort();
}

/** ‖a − b‖ / max(‖b‖, tiny). */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

export function hasNaN(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (Number.isNaN(a[i])) return true;
  return false;
}

/**
 * Checks `actual` against the fixture's tensor `name`: shape, then either every element (full tensors)
 * or the sampled positions plus sum and sum of squares (large tensors). `rtol` bounds the relative
 * L2 error ‖a − ref‖/‖ref‖ (default 1e-5: fp32 precision for these sizes), and no element may differ
 * by more than `atol + rtol * absmax` where absmax is the reference's largest magnitude.
 */
export function expectMatchesFixture(fx: Fixture, name: string, actual: Float32Array, shape: readonly number[], rtol = 1e-5, atol = 1e-6): void {
  const st = fx.stats[name];
  if (!st) throw new Error(`fixture ${fx.op}/${fx.name} has no tensor "${name}"`);
  expect([...shape], `${fx.op}/${fx.name}: shape of ${name}`).toEqual(st.shape);
  expect(actual.length).toBe(st.numel);
  expect(hasNaN(actual), `${fx.op}/${fx.name}: ${name} has NaN`).toBe(false);
  const full = fx.tensors.get(name);
  let ref: ArrayLike<number>;
  let got: ArrayLike<number>;
  if (full) {
    ref = full.data;
    got = actual;
  } else {
    const idx = fx.tensors.get(`${name}.idx`)!.data as Int32Array;
    ref = fx.tensors.get(`${name}.val`)!.data;
    got = Array.from(idx, (i) => actual[i]);
    let sum = 0;
    let sumsq = 0;
    for (let i = 0; i < actual.length; i++) {
      sum += actual[i];
      sumsq += actual[i] * actual[i];
    }
    const scale = Math.sqrt(st.sumsq * st.numel) + 1e-30; // bound on |sum| by Cauchy–Schwarz
    expect(Math.abs(sum - st.sum) / scale, `${fx.op}/${fx.name}: sum of ${name}`).toBeLessThan(rtol * 10);
    expect(Math.abs(sumsq - st.sumsq) / (st.sumsq + 1e-30), `${fx.op}/${fx.name}: sum of squares of ${name}`).toBeLessThan(rtol * 10);
  }
  const err = relError(got, ref);
  expect(err, `${fx.op}/${fx.name}: relative L2 error of ${name}`).toBeLessThanOrEqual(rtol);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  expect(worst, `${fx.op}/${fx.name}: largest difference in ${name} (at sample ${at})`).toBeLessThanOrEqual(atol + rtol * 10 * st.absmax);
}

/** Bit-for-bit equality of two float32 (or int32) arrays (any two NaNs are equal, as in toEqual), cheap for
 * tens of millions of elements (vitest's toEqual walks them into a diff and ran out of memory on 37M);
 * the message names the first difference. */
export function expectBitEqual(got: Float32Array | Int32Array, want: Float32Array | Int32Array, what = 'result'): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i])))
      expect(`${what}[${i}] = ${got[i]}`).toBe(`${what}[${i}] = ${want[i]}`);
  }
}
