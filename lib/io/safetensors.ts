/** safetensors (https://huggingface.co/docs/safetensors) read/write for F32 and I32 tensors.
 * Layout: u64 little-endian header length N, N bytes of JSON header
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: { key: string } }`, then the data.
 * No maintained npm package exists for it (the one named `safetensors` is a 0.0.1 placeholder), and the
 * format is small; this implementation validates every field and writes files atomically. */
import { readdirSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export type SafeDType = 'F32' | 'I32';

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface SafeFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

const MAX_HEADER = 100 * 1024 * 1024;

/** Parses a safetensors buffer. `source` names it in errors (a path). */
export function parseSafetensors(buf: Uint8Array, source = 'safetensors data'): SafeFile {
  const bad = (msg: string): never => {
    throw new Error(`${source}: not a valid safetensors file: ${msg}`);
  };
  if (buf.byteLength < 8) bad(`${buf.byteLength} bytes is shorter than the 8-byte header length (truncated?)`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = Number(dv.getBigUint64(0, true));
  if (hlen > MAX_HEADER || 8 + hlen > buf.byteLength)
    bad(`header length ${hlen} runs past the end of the ${buf.byteLength}-byte file (truncated?)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + hlen)));
  } catch (e) {
    return bad(`header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) bad('header is not a JSON object');
  const dataStart = 8 + hlen;
  const dataLen = buf.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafeTensor>();
  const ranges: { b: number; end: number; name: string }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null) bad('__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry as object)) {
        if (typeof v !== 'string') bad(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) bad(`tensor "${name}" is not an object`);
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e.dtype !== 'F32' && e.dtype !== 'I32')
      bad(`tensor "${name}" has dtype ${JSON.stringify(e.dtype)}; only F32 and I32 are supported`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0))
      bad(`tensor "${name}" has an invalid shape ${JSON.stringify(e.shape)}`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[1] < offs[0])
      bad(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offs)}`);
    const [b, end] = offs as [number, number];
    const shape = e.shape as number[];
    const n = shape.reduce((a, c) => a * c, 1);
    if (end - b !== n * 4) bad(`tensor "${name}" of shape [${shape.join(', ')}] needs ${n * 4} bytes, its offsets span ${end - b}`);
    if (end > dataLen)
      bad(`tensor "${name}" ends at byte ${end} of the data section, which holds only ${dataLen} bytes (truncated?)`);
    ranges.push({ b, end, name });
    // Copy out (the data section need not be 4-byte aligned in the buffer). Buffer#slice is a view, so
    // use Uint8Array's slice, which copies.
    const bytes = Uint8Array.prototype.slice.call(buf, dataStart + b, dataStart + end);
    const data = e.dtype === 'F32' ? new Float32Array(bytes.buffer, 0, n) : new Int32Array(bytes.buffer, 0, n);
    tensors.set(name, { dtype: e.dtype as SafeDType, shape: [...shape], data });
  }
  // As the format's own reader does: the tensors tile the data section exactly — no overlap (a tensor
  // reading another's bytes), no gap, nothing after the last.
  ranges.sort((x, y) => x.b - y.b || x.end - y.end);
  let pos = 0;
  let prev = '';
  for (const r of ranges) {
    if (r.b < pos) bad(`tensor "${r.name}" (bytes ${r.b}–${r.end}) overlaps tensor "${prev}" (which ends at ${pos})`);
    if (r.b > pos) bad(`${r.b - pos} bytes before tensor "${r.name}" (from ${pos} to ${r.b}) belong to no tensor`);
    pos = r.end;
    prev = r.name;
  }
  if (pos !== dataLen) bad(`${dataLen - pos} bytes after the last tensor (from ${pos}) belong to no tensor`);
  return { tensors, metadata };
}

/** A whole file, or an error that names it. */
export async function readFileNamed(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    throw new Error(`could not read ${file}: ${(e as Error).message}`);
  }
}

export async function readSafetensors(file: string): Promise<SafeFile> {
  return parseSafetensors(await readFileNamed(file), file);
}

export function readSafetensorsSync(file: string): SafeFile {
  return parseSafetensors(readFileSync(file), file);
}

/** Serialises tensors (in the given order) into a safetensors buffer. */
export function serializeSafetensors(
  tensors: Iterable<[string, { shape: readonly number[]; data: Float32Array | Int32Array }]>,
  metadata: Record<string, string> = {},
): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const parts: { data: Float32Array | Int32Array }[] = [];
  let off = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new Error('safetensors: "__metadata__" is not a valid tensor name');
    if (name in header) throw new Error(`safetensors: duplicate tensor name "${name}"`);
    const n = t.shape.reduce((a, c) => a * c, 1);
    if (n !== t.data.length) throw new Error(`safetensors: tensor "${name}" has shape [${t.shape.join(', ')}] but ${t.data.length} values`);
    const dtype = t.data instanceof Int32Array ? 'I32' : 'F32';
    header[name] = { dtype, shape: [...t.shape], data_offsets: [off, off + n * 4] };
    parts.push({ data: t.data });
    off += n * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // align the data section to 8 bytes
  const hbytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + hbytes.length + off);
  out.writeBigUInt64LE(BigInt(hbytes.length), 0);
  hbytes.copy(out, 8);
  let p = 8 + hbytes.length;
  for (const { data } of parts) {
    Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, p);
    p += data.byteLength;
  }
  return out;
}

/** Temporary files of earlier writes of `file` whose writer is gone (killed mid-write): removed, so they
 * do not pile up. A writer that is alive (another process writing the same file) keeps its own. */
function removeStaleTemporaries(file: string): void {
  const dir = path.dirname(file);
  const prefix = `.${path.basename(file)}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(prefix) || !n.endsWith('.tmp')) continue;
    const m = /^(\d+)\.\d+\.tmp$/.exec(n.slice(prefix.length));
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = pid === process.pid;
    if (!alive) {
      try {
        process.kill(pid, 0);
        alive = true;
      } catch (e) {
        alive = (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, not ours
      }
    }
    if (!alive) rmSync(path.join(dir, n), { force: true });
  }
}

/** Writes a file atomically: a temporary file in the same folder, fsync, then rename over the target.
 * A crash leaves either the old file or the new one, never a torn one; its temporary file is removed by
 * the next write. */
export function writeFileAtomic(file: string, data: Uint8Array): void {
  removeStaleTemporaries(file);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    let written = 0;
    while (written < data.byteLength) written += writeSync(fd, data, written, data.byteLength - written);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw new Error(`could not write ${file}: ${(e as Error).message}`);
  }
  try {
    const dfd = openSync(path.dirname(file), 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    /* directory fsync is best effort (not supported everywhere) */
  }
}

export function writeSafetensors(
  file: string,
  tensors: Iterable<[string, { shape: readonly number[]; data: Float32Array | Int32Array }]>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}
