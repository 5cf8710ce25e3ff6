/** A small, fast, seedable PRNG for the data pipeline: shuffling and augmentation must be reproducible
 * from a seed (and an epoch, and an image index) so that a resumed run sees exactly the batches an
 * uninterrupted one would have seen.
 *
 * The generator is sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, 128-bit state, passes
 * PractRand/BigCrush); its state is seeded by hashing the integer keys given to {@link Rng.from} with
 * MurmurHash3's 32-bit finaliser, so `Rng.from(seed, epoch)` and `Rng.from(seed, epoch + 1)` are
 * unrelated streams. */
import { describe } from '../errors.js';

const TWO_32 = 4294967296;

/** MurmurHash3's fmix32: a bijective avalanche of a 32-bit integer. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function checkKey(k: unknown, i: number): number {
  if (typeof k !== 'number' || !Number.isSafeInteger(k))
    throw new TypeError(`Rng.from: expected safe integer keys, got ${describe(k)} as key ${i}`);
  return k;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** A generator seeded from one integer (any safe integer, negative included). */
  constructor(seed: number) {
    const r = Rng.from(seed);
    this.a = r.a;
    this.b = r.b;
    this.c = r.c;
    this.d = r.d;
  }

  /** A generator seeded from several integers, e.g. `Rng.from(seed, epoch, imageIndex)`. The same keys
   * always give the same stream; different keys (or the same keys in another order) give unrelated ones. */
  static from(...keys: number[]): Rng {
    let h1 = 0x9e3779b9, h2 = 0x243f6a88, h3 = 0xb7e15162;
    keys.forEach((k, i) => {
      k = checkKey(k, i);
      const lo = k >>> 0;
      const hi = Math.floor(k / TWO_32) | 0;
      for (const w of [lo, hi]) {
        h1 = fmix32((h1 ^ w) + 0x6a09e667 + i);
        h2 = fmix32((h2 + Math.imul(w ^ 0x5bd1e995, 0xcc9e2d51)) ^ h1);
        h3 = fmix32(h3 ^ Math.imul(h2 + w, 0x1b873593));
      }
    });
    const r = Object.create(Rng.prototype) as Rng;
    r.a = fmix32(h1 ^ keys.length);
    r.b = fmix32(h2 ^ 0x85ebca6b);
    r.c = fmix32(h3 ^ 0xc2b2ae35);
    r.d = 1;
    for (let i = 0; i < 12; i++) r.uint32();
    return r;
  }

  /** An independent copy: it yields the same numbers this one would from here. */
  clone(): Rng {
    const r = Object.create(Rng.prototype) as Rng;
    r.a = this.a;
    r.b = this.b;
    r.c = this.c;
    r.d = this.d;
    return r;
  }

  /** A uniform 32-bit unsigned integer. */
  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.uint32() >>> 5; // 27 bits
    const lo = this.uint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform integer in [0, n), without modulo bias (1 ≤ n ≤ 2³²). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_32)
      throw new RangeError(`Rng.int: expected an integer n with 1 ≤ n ≤ 2^32, got ${describe(n)}`);
    const limit = TWO_32 - (TWO_32 % n);
    for (;;) {
      const x = this.uint32();
      if (x < limit) return x % n;
    }
  }

  /** A normal deviate N(mean, std²) (Box–Muller; uses two uniforms, keeps no spare). */
  normal(mean = 0, std = 1): number {
    const u1 = 1 - this.next(); // (0, 1]: log is finite
    const u2 = this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** true with probability p. */
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
}

/** A uniformly random permutation of 0..n-1 (Fisher–Yates, driven by `rng`). */
export function permutation(n: number, rng: Rng): Uint32Array {
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 32)
    throw new RangeError(`permutation: expected a non-negative integer length, got ${describe(n)}`);
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}
