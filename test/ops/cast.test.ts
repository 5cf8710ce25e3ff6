// The bfloat16 dtype and ops.cast: rounding to nearest even checked against PyTorch's (c10's
// round_to_nearest_even) bit for bit, the widening checked on all 65,536 bit patterns, the JS rounding
// (Tensor.from, write) against the native one, and the CUDA kernels against the CPU loops.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisposedError } from '../../lib/errors.js';
import { Tensor, bf16Bits, bf16Value, memoryStats, roundBf16, setPoison } from '../../lib/tensor.js';
import { cast } from '../../lib/ops/elementwise.js';
import { mulberry32 } from '../helpers/gradcheck.js';
import { cudaBatch, emulated, noCuda } from '../helpers/gpu.js';
import { hasTorch, runPython } from '../helpers/torch.js';

const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** float32 values (as their bits) that exercise every case of the rounding: random magnitudes over the
 * whole exponent range, both signs; exact ties (low half 0x8000) with even and odd kept bits; one below and
 * one above each tie; the largest finite values (which round to infinity past bf16's largest); subnormals;
 * zeros, infinities and NaNs. */
function hardValues(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const u = new Uint32Array(n);
  const special = [0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff,
    0x7f7fffff, 0xff7fffff, 0x7f7f7fff, 0x7f7f8000, 0x7f7f8001, 0x7f7effff, 0x7f7e8000, 0x00000001, 0x00007fff,
    0x00008000, 0x00018000, 0x0000ffff, 0x007fffff, 0x00800000, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001,
    0xbf808000, 0xbf818000, 0x3f7fffff, 0x3f7f8000, 0x3fffffff];
  special.forEach((b, i) => (u[i] = b));
  for (let i = special.length; i < n; i++) {
    const hi = Math.floor(r() * 0x10000); // sign, exponent, 7 mantissa bits: every bf16 value is reachable
    const kind = i % 4;
    const lo = kind === 0 ? 0x8000 : kind === 1 ? 0x8000 + (r() < 0.5 ? -1 : 1) : Math.floor(r() * 0x10000);
    u[i] = ((hi << 16) | lo) >>> 0;
  }
  return new Float32Array(u.buffer);
}

describe('the bfloat16 dtype', () => {
  it('takes numbers rounded to nearest even, or raw bits; reads back widened; two bytes an element', async () => {
    // 1 + 2^-8 is a tie between 1 and 1 + 2^-7 (to the even 1); 1 + 3·2^-8 a tie to the even 1 + 2^-6.
    const vals = [1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -Math.PI, 0, -0, Infinity, 3.4e38, 1e-40];
    using t = Tensor.from(vals, [3, 3], 'cpu', 'bfloat16');
    expect(t.dtype).toBe('bfloat16');
    expect(t.bytes).toBe(18);
    const want = Float32Array.from([1, 1, 1 + 2 ** -6, -3.140625, 0, -0, Infinity, Infinity, bf16Value(1)]);
    expect(await t.toFloat32Array()).toEqual(want);
    expect(t.dataSync()).toEqual(want);
    expect(await t.data()).toEqual(want);
    expect(Array.from(await t.toBfloat16Bits())).toEqual([0x3f80, 0x3f80, 0x3f82, 0xc049, 0, 0x8000, 0x7f80, 0x7f80, 1]);
    using bits = Tensor.from(Uint16Array.from([0x3f80, 0x7fc1, 0xff80]), [3], 'cpu', 'bfloat16');
    const b = await bits.toFloat32Array();
    expect(b[0]).toBe(1);
    expect(bitsOf(b)[1]).toBe(0x7fc10000); // bits pass as they are: a NaN keeps its payload
    expect(b[2]).toBe(-Infinity);
    using v = t.reshape([9]);
    expect(v.dtype).toBe('bfloat16');
    bits.write(Float32Array.from([2.5, 1 + 2 ** -9, -1e39]));
    expect(await bits.toFloat32Array()).toEqual(Float32Array.from([2.5, 1, -Infinity]));
    bits.write(Uint16Array.from([0x4000, 0x4040, 0x0000]));
    expect(await bits.toFloat32Array()).toEqual(Float32Array.from([2, 3, 0]));
    using z = Tensor.zeros([4], 'cpu', 'bfloat16');
    expect(await z.toFloat32Array()).toEqual(new Float32Array(4));
  });

  it('the JS rounding is the native one, bit for bit (Tensor.from against ops.cast)', async () => {
    const x = hardValues(20011, 1);
    using xf = Tensor.from(x, [x.length]);
    using viaNative = cast(xf, 'bfloat16');
    using viaJs = Tensor.from(x, [x.length], 'cpu', 'bfloat16');
    const a = await viaNative.toBfloat16Bits();
    const b = await viaJs.toBfloat16Bits();
    expect(b).toEqual(a);
    for (let i = 0; i < 200; i++) expect(bf16Bits(x[i])).toBe(a[i]);
    expect(roundBf16(1 + 2 ** -8 + 2 ** -20)).toBe(1 + 2 ** -7);
  });

  it('refuses what it cannot hold, saying what came', () => {
    expect(() => Tensor.from(new Uint16Array(2), [2])).toThrow(/Uint16Array is taken as raw bfloat16 bits: pass dtype "bfloat16"/);
    expect(() => Tensor.from(new Uint16Array(2), [2], 'cpu', 'int32')).toThrow(/pass dtype "bfloat16", not "int32"/);
    expect(() => Tensor.from(new Int32Array(2), [2], 'cpu', 'bfloat16')).toThrow(/got a Int32Array for dtype "bfloat16"/);
    expect(() => Tensor.from(['a', 1] as unknown as number[], [2], 'cpu', 'bfloat16')).toThrow(/needs numbers, got "a" at index 0/);
    expect(() => Tensor.from([1, 2, 3], [2], 'cpu', 'bfloat16')).toThrow(/needs 2 elements, got 3/);
    expect(() => Tensor.empty([2], 'cpu', 'float16' as never)).toThrow(/expected "float32", "bfloat16", "int32" or "uint8", got "float16"/);
    using t = Tensor.zeros([2], 'cpu', 'bfloat16');
    expect(() => t.write(new Int32Array(2) as never)).toThrow(/expected Float32Array\(2\) or Uint16Array\(2\) of bfloat16 bits/);
    expect(() => t.write(new Float32Array(3))).toThrow(/expected Float32Array\(2\)/);
    using f = Tensor.zeros([2]);
    expect(() => f.copyFrom(t)).toThrow(/expected 2 float32 elements, got \[2\] bfloat16/);
    return expect(f.toBfloat16Bits()).rejects.toThrow(/tensor is float32; use toFloat32Array/);
  });
});

describe('ops.cast on the CPU', () => {
  it.skipIf(!hasTorch)("float32 → bfloat16 rounds as PyTorch's x.to(torch.bfloat16), bit for bit", async () => {
    const x = hardValues(40009, 2);
    using xf = Tensor.from(x, [x.length]);
    using y = cast(xf, 'bfloat16');
    const ours = await y.toBfloat16Bits();
    const dir = mkdtempSync(join(tmpdir(), 'axn-cast-'));
    const file = join(dir, 'x.f32');
    writeFileSync(file, Buffer.from(x.buffer, x.byteOffset, x.byteLength));
    let out: string;
    try {
      out = runPython(['-c', `
import sys, torch
x = torch.frombuffer(bytearray(open(sys.argv[1], 'rb').read()), dtype=torch.float32)
print(x.to(torch.bfloat16).view(torch.int16).to(torch.int32).bitwise_and(0xffff).numpy().tobytes().hex())`, file]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const theirs = new Uint32Array(Buffer.from(out.trim(), 'hex').buffer.slice(0));
    expect(theirs.length).toBe(x.length);
    let nans = 0;
    for (let i = 0; i < x.length; i++) {
      if (Number.isNaN(x[i])) {
        // PyTorch makes every NaN 0x7FC0; ours keeps the sign and upper payload, quieted: NaN either way.
        nans++;
        expect((ours[i] & 0x7f80) === 0x7f80 && (ours[i] & 0x7f) !== 0, `NaN at ${i}`).toBe(true);
        continue;
      }
      if (ours[i] !== theirs[i]) expect.fail(`x[${i}] = ${x[i]} (0x${bitsOf(x)[i].toString(16)}): ours 0x${ours[i].toString(16)}, PyTorch's 0x${theirs[i].toString(16)}`);
    }
    expect(nans).toBeGreaterThan(0);
  });

  it('bfloat16 → float32 is exact on all 65,536 bit patterns; float32 → bfloat16 → float32 keeps bf16 values', async () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    using b = Tensor.from(all, [256, 256], 'cpu', 'bfloat16');
    using f = cast(b, 'float32');
    expect(f.dtype).toBe('float32');
    expect(f.shape).toEqual([256, 256]);
    const u = bitsOf(await f.toFloat32Array());
    for (let i = 0; i < 65536; i++) if (u[i] !== i << 16 >>> 0) expect.fail(`bits 0x${i.toString(16)} widened to 0x${u[i].toString(16)}`);
    // Every bf16 value is its own rounding (a signalling NaN comes back quieted, as a conversion does).
    using back = cast(f, 'bfloat16');
    const r = await back.toBfloat16Bits();
    for (let i = 0; i < 65536; i++) {
      const nan = (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
      if (r[i] !== (nan ? i | 0x40 : i)) expect.fail(`0x${i.toString(16)} came back as 0x${r[i].toString(16)}`);
    }
  });

  it('the same dtype gives a copy; an empty tensor casts to an empty one; memory is freed', async () => {
    using x = Tensor.from([1.5, -2], [2], 'cpu', 'bfloat16');
    using c = cast(x, 'bfloat16');
    expect(c).not.toBe(x);
    expect(await c.toFloat32Array()).toEqual(Float32Array.from([1.5, -2]));
    using e = Tensor.zeros([0, 3]);
    using eb = cast(e, 'bfloat16');
    expect(eb.shape).toEqual([0, 3]);
    expect(eb.dtype).toBe('bfloat16');
    const before = memoryStats();
    for (let i = 0; i < 5; i++) {
      using y = cast(c, 'float32');
      using z = cast(y, 'bfloat16');
    }
    expect(memoryStats().bytes).toEqual(before.bytes);
  });

  it('refuses other dtypes and disposed tensors', () => {
    using i = Tensor.from(new Int32Array([1, 2]), [2]);
    using u = Tensor.from(new Uint8Array([1, 2]), [2]);
    using f = Tensor.from([1, 2], [2]);
    expect(() => cast(i, 'bfloat16')).toThrow(/cast: converts between float32 and bfloat16, got int32 → bfloat16/);
    expect(() => cast(f, 'uint8')).toThrow(/got float32 → uint8/);
    expect(() => cast(f, 'half' as never)).toThrow(/cast: dtype: expected "float32", "bfloat16", "int32" or "uint8", got "half"/);
    expect(() => cast({} as Tensor, 'float32')).toThrow(/cast: expected x to be a Tensor/);
    const d = Tensor.from([1], [1]);
    d.dispose();
    expect(() => cast(d, 'bfloat16')).toThrow(DisposedError);
    expect(u.dtype).toBe('uint8');
  });
});

describe.skipIf(noCuda)('ops.cast on CUDA matches the CPU bit for bit', () => {
  beforeAll(() => setPoison(true));
  afterAll(() => setPoison(false));
  // fc6's activations at batch 128 on a GPU; odd sizes for the grid-stride tails; more than one grid's
  // worth on the emulator too (it caps nothing below 2^20 blocks, so 65,543 elements take 257 blocks).
  const sizes = [cudaBatch(128) * 4096, emulated ? 65543 : 4096 * 9216, 1, 3, 1001];
  it.each(sizes)('n = %i', async (n) => {
    const x = hardValues(n, n + 7);
    using xc = Tensor.from(x, [n]);
    using xg = xc.to('cuda');
    using yc = cast(xc, 'bfloat16');
    using yg = cast(xg, 'bfloat16');
    expect(yg.device).toBe('cuda');
    expect(await yg.toBfloat16Bits()).toEqual(await yc.toBfloat16Bits());
    using zc = cast(yc, 'float32');
    using zg = cast(yg, 'float32');
    expect(bitsOf(await zg.toFloat32Array())).toEqual(bitsOf(await zc.toFloat32Array()));
    // A bfloat16 tensor crosses devices as it is.
    using back = yg.to('cpu');
    expect(back.dtype).toBe('bfloat16');
    expect(await back.toBfloat16Bits()).toEqual(await yc.toBfloat16Bits());
  });

  it('an empty tensor, and all 65,536 bit patterns widened on the device', async () => {
    using e = Tensor.zeros([0], 'cuda', 'bfloat16');
    using ef = cast(e, 'float32');
    expect(ef.size).toBe(0);
    using b = Tensor.from(Uint16Array.from({ length: 65536 }, (_, i) => i), [65536], 'cuda', 'bfloat16');
    using f = cast(b, 'float32');
    const u = bitsOf(await f.toFloat32Array());
    for (let i = 0; i < 65536; i++) if (u[i] !== i << 16 >>> 0) expect.fail(`bits 0x${i.toString(16)} widened to 0x${u[i].toString(16)}`);
  });

});
