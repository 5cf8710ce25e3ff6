/** Option checks shared by the data sources' constructors (PackedDataset, pack): unknown keys and
 * out-of-range values are errors that name the option, what was expected and what came. */
import { describe } from '../errors.js';

/** Throws unless `o` is an options object (or undefined) with only `keys`; returns it (or {}). */
export function optionsObject<T extends object>(o: T | undefined, keys: readonly string[], where: string): T {
  const v = o ?? ({} as T);
  if (typeof v !== 'object' || v === null) throw new TypeError(`${where}: expected an options object, got ${describe(o)}`);
  for (const k of Object.keys(v)) if (!keys.includes(k)) throw new TypeError(`${where}: unknown option ${JSON.stringify(k)} (expected one of ${keys.join(', ')})`);
  return v;
}

/** An integer option in [lo, hi], or `dflt` when undefined. */
export function intOption(v: unknown, name: string, lo: number, hi: number, dflt: number, where: string): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new TypeError(`${where}: expected ${name} to be an integer from ${lo} to ${hi}, got ${describe(v)}`);
  return v;
}

/** A boolean option, or `dflt` when undefined. */
export function boolOption(v: unknown, name: string, dflt: boolean, where: string): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new TypeError(`${where}: expected ${name} to be a boolean, got ${describe(v)}`);
  return v;
}

/** One of `allowed`, or `dflt` when undefined. */
export function oneOfOption<T extends string>(v: unknown, name: string, allowed: readonly T[], dflt: T, where: string): T {
  if (v === undefined) return dflt;
  if (!allowed.includes(v as T)) throw new TypeError(`${where}: expected ${name} to be ${allowed.map((a) => JSON.stringify(a)).join(' or ')}, got ${describe(v)}`);
  return v as T;
}
