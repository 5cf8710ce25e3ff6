// The safetensors reader refuses what the format's own reader refuses: tensors that overlap (one reading
// another's bytes), gaps, and bytes after the last tensor — besides the truncations tested elsewhere.
import { describe, expect, it } from 'vitest';
import { parseSafetensors, serializeSafetensors } from '../lib/io/safetensors.js';

/** A file with a hand-written header over `data` bytes. */
function file(header: Record<string, unknown>, dataBytes: number): Buffer {
  let h = JSON.stringify(header);
  while ((8 + h.length) % 8) h += ' ';
  const out = Buffer.alloc(8 + h.length + dataBytes);
  out.writeBigUInt64LE(BigInt(h.length), 0);
  out.write(h, 8, 'utf8');
  return out;
}

describe('safetensors data offsets', () => {
  it('reads what it writes', () => {
    const buf = serializeSafetensors([
      ['w', { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
      ['empty', { shape: [0], data: new Float32Array(0) }],
      ['b', { shape: [2], data: new Float32Array([7, 8]) }],
    ]);
    const f = parseSafetensors(buf);
    expect(Array.from(f.tensors.get('b')!.data)).toEqual([7, 8]);
    expect(f.tensors.get('empty')!.data.length).toBe(0);
  });
  it('refuses overlapping tensors (a bias pointed at a weight\'s bytes)', () => {
    const buf = file({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, 16);
    expect(() => parseSafetensors(buf, 'x.safetensors')).toThrow(/tensor "b" \(bytes 8–16\) overlaps tensor "w" \(which ends at 16\)/);
  });
  it('refuses gaps and trailing bytes', () => {
    const gap = file({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] } }, 20);
    expect(() => parseSafetensors(gap)).toThrow(/4 bytes before tensor "b" \(from 8 to 12\) belong to no tensor/);
    const tail = file({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 12);
    expect(() => parseSafetensors(tail)).toThrow(/4 bytes after the last tensor \(from 8\) belong to no tensor/);
  });
});
