/** PyTorch checkpoints (`torch.save` of a state_dict, the zip format of torch ≥ 1.6, e.g. torchvision's
 * `alexnet-owt-7be5be79.pth`), read without Python.
 *
 * The container is a zip (read with fflate: `<archive>/data.pkl`, `<archive>/data/<key>` per storage,
 * `<archive>/byteorder`). The pickle inside is **untrusted input**: a pickle can name any Python callable
 * and call it (`os.system` included), so this is not a general unpickler. It is a small stack machine for
 * the opcodes `torch.save` emits (protocol 2, and the protocol-4 short forms), with an allowlist of the
 * globals a state_dict needs — `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and
 * `_rebuild_parameter`, the `torch.*Storage` types — that are *interpreted* here, never executed. Any
 * other global, any unknown opcode, and any structure that is not a (possibly nested) dict of tensors is
 * refused with an error that names it. Tensors are float32 (other dtypes are refused by name), may be
 * views into a shared storage with any offset and strides (bounds-checked), and come out contiguous. */
import { unzipSync } from 'fflate';
import zlib from 'node:zlib';
import { readFileNamed } from './safetensors.js';

export interface PthTensor {
  dtype: 'F32';
  shape: number[];
  data: Float32Array;
}

/** A storage a tensor refers to: its type and the zip entry holding its bytes. */
interface StorageRef {
  kind: 'storage';
  dtype: string;
  key: string;
  numel: number | null;
}
interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}
interface GlobalRef {
  kind: 'global';
  name: string;
}
class Mark {}
class PyTuple {
  constructor(readonly items: unknown[]) {}
}

const STORAGE_DTYPES: Record<string, string> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};
const CALLABLES = new Set(['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter']);

function allowedGlobal(name: string): boolean {
  if (CALLABLES.has(name)) return true;
  const m = /^torch\.(\w+)$/.exec(name);
  return !!m && Object.hasOwn(STORAGE_DTYPES, m[1]);
}

/** Runs the restricted unpickler over `buf`; returns the top-level object. `base` is where `buf` starts in
 * the file it came from (data.pkl inside the zip), so that errors give offsets into that file; without it
 * they are offsets into `buf`. */
export function unpickleStateDict(buf: Uint8Array, source: string, base?: number): unknown {
  const bad = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  // "at byte N of the file" (or "of the pickle" where the pickle's place in the file is not known)
  const byte = (p: number) => (base === undefined ? `${p} of the pickle` : `${base + p} of the file`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dec = new TextDecoder('utf-8', { fatal: true });
  let pos = 0;
  const need = (n: number, what: string) => {
    if (pos + n > buf.length) bad(`the pickle ends inside ${what} at byte ${byte(pos)} (${buf.length - pos} bytes are left): truncated?`);
  };
  const u8 = () => (need(1, 'an opcode argument'), buf[pos++]);
  const u16 = () => (need(2, 'an opcode argument'), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4, 'an opcode argument'), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = () => (need(4, 'an opcode argument'), (pos += 4), view.getInt32(pos - 4, true));
  const bytes = (n: number, what: string) => (need(n, what), (pos += n), buf.subarray(pos - n, pos));
  const line = () => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0) bad(`the pickle ends inside a GLOBAL name at byte ${byte(pos)} (truncated?)`);
    let s = '';
    try {
      s = dec.decode(buf.subarray(pos, end));
    } catch (e) {
      bad(`a GLOBAL name at byte ${byte(pos)} is not UTF-8 (${(e as Error).message})`);
    }
    pos = end + 1;
    return s;
  };
  const str = (n: number) => {
    // The length first (a truncated or lying length is not a decoding error), then the decoding.
    const b = bytes(n, `a string of ${n} bytes`);
    try {
      return dec.decode(b);
    } catch (e) {
      return bad(`a pickle string at byte ${byte(pos - n)} is not UTF-8 (${(e as Error).message})`);
    }
  };

  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const pop = (): unknown => (stack.length ? stack.pop() : bad(`pickle stack underflow at byte ${byte(pos - 1)}`));
  const top = (): unknown => (stack.length ? stack[stack.length - 1] : bad(`pickle stack underflow at byte ${byte(pos - 1)}`));
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) bad(`pickle MARK missing at byte ${byte(pos - 1)}`);
    return stack.splice(m!);
  };
  const asDict = (d: unknown, op: string): Map<unknown, unknown> => (d instanceof Map ? d : bad(`pickle ${op} on a ${describePy(d)}, not a dict, at byte ${byte(pos - 1)}`));
  const key = (k: unknown): unknown => (typeof k === 'string' || typeof k === 'number' ? k : bad(`a dict key of type ${describePy(k)} at byte ${byte(pos - 1)} (expected a string)`));

  const reduce = (fn: unknown, args: unknown): unknown => {
    if (!isGlobal(fn)) return bad(`pickle REDUCE calls a ${describePy(fn)}, not an allowed global, at byte ${byte(pos - 1)}`);
    const a = args instanceof PyTuple ? args.items : bad(`pickle REDUCE arguments are not a tuple at byte ${byte(pos - 1)}`);
    switch (fn.name) {
      case 'collections.OrderedDict':
        if (a.length) bad('collections.OrderedDict called with arguments (not what torch.save writes)');
        return new Map();
      case 'torch._utils._rebuild_tensor_v2': {
        if (a.length < 4) bad(`torch._utils._rebuild_tensor_v2 called with ${a.length} arguments, expected at least 4`);
        const [storage, offset, size, stride] = a;
        if (!isStorage(storage)) bad(`a tensor's storage is a ${describePy(storage)}, not a storage`);
        const ints = (v: unknown, what: string): number[] => {
          const items = v instanceof PyTuple ? v.items : bad(`a tensor's ${what} is a ${describePy(v)}, not a tuple`);
          return items.map((x) => (Number.isSafeInteger(x) && (x as number) >= 0 ? (x as number) : bad(`a tensor's ${what} holds ${describePy(x)}, not a non-negative integer`)));
        };
        const shape = ints(size, 'size');
        const st = ints(stride, 'stride');
        if (st.length !== shape.length) bad(`a tensor has size (${shape.join(', ')}) but stride (${st.join(', ')})`);
        if (!Number.isSafeInteger(offset) || (offset as number) < 0) bad(`a tensor's storage offset is ${describePy(offset)}`);
        return { kind: 'tensor', storage: storage as StorageRef, offset: offset as number, shape, stride: st } satisfies TensorRef;
      }
      case 'torch._utils._rebuild_parameter':
        if (!isTensor(a[0])) bad(`torch._utils._rebuild_parameter of a ${describePy(a[0])}`);
        return a[0];
      default:
        return bad(`pickle REDUCE calls ${fn.name}, which a state_dict does not need (refused: a checkpoint is untrusted input)`);
    }
  };

  for (;;) {
    if (pos >= buf.length) bad(`the pickle ends at byte ${byte(pos)} without a STOP opcode (truncated?)`);
    const at = pos;
    const op = buf[pos++];
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) bad(`pickle protocol ${buf[pos - 1]} is newer than 5`);
        break;
      case 0x95: // FRAME (protocol 4): a length hint
        bytes(8, 'a FRAME length');
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) bad(`the pickle stops with ${stack.length} objects on its stack, expected 1`);
        return stack[0];
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x74: // TUPLE
        stack.push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(new PyTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(new PyTuple([pop(), b, c]));
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) bad(`pickle memo ${i} read before it is written, at byte ${byte(at)}`);
        stack.push(memo.get(i));
        break;
      }
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x8a: {
        // LONG1: a little-endian two's-complement integer of n bytes
        const n = u8();
        const b = bytes(n, 'a LONG1');
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) bad(`an integer ${v} beyond 2^53 at byte ${byte(at)}`);
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8, 'a BINFLOAT');
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(str(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(u8()));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const name = `${line()}.${line()}`;
        if (!allowedGlobal(name)) bad(`the pickle refers to ${name}, which a state_dict does not need (refused: a checkpoint is untrusted input, and unpickling it would run that)`);
        stack.push({ kind: 'global', name } satisfies GlobalRef);
        break;
      }
      case 0x93: {
        // STACK_GLOBAL (protocol 4)
        const name = pop();
        const mod = pop();
        if (typeof mod !== 'string' || typeof name !== 'string') bad(`pickle STACK_GLOBAL of non-strings at byte ${byte(at)}`);
        const full = `${mod}.${name}`;
        if (!allowedGlobal(full)) bad(`the pickle refers to ${full}, which a state_dict does not need (refused: a checkpoint is untrusted input, and unpickling it would run that)`);
        stack.push({ kind: 'global', name: full } satisfies GlobalRef);
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(reduce(pop(), args));
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', storage type, key, location, numel)
        const pid = pop();
        const t = pid instanceof PyTuple ? pid.items : bad(`a persistent id at byte ${byte(at)} is a ${describePy(pid)}, not a tuple`);
        if (t[0] !== 'storage' || t.length < 3) bad(`a persistent id at byte ${byte(at)} is not a storage reference`);
        const type = t[1];
        if (!isGlobal(type) || !/^torch\.\w+Storage$/.test(type.name)) bad(`a storage of type ${describePy(type)} at byte ${byte(at)}`);
        if (!Object.hasOwn(STORAGE_DTYPES, (type as GlobalRef).name.slice(6))) bad(`a storage of type ${(type as GlobalRef).name} at byte ${byte(at)}: only float32 tensors can be loaded`);
        const k = t[2];
        if (typeof k !== 'string' || !/^[\w.-]+$/.test(k)) bad(`a storage key ${describePy(k)} at byte ${byte(at)}`);
        const numel = t.length > 4 && Number.isSafeInteger(t[4]) ? (t[4] as number) : null;
        stack.push({ kind: 'storage', dtype: STORAGE_DTYPES[(type as GlobalRef).name.slice(6)], key: k as string, numel } satisfies StorageRef);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        asDict(top(), 'SETITEM').set(key(k), v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const d = asDict(top(), 'SETITEMS');
        if (items.length % 2) bad(`pickle SETITEMS with an odd number of items at byte ${byte(at)}`);
        for (let i = 0; i < items.length; i += 2) d.set(key(items[i]), items[i + 1]);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) bad(`pickle APPEND to a ${describePy(l)} at byte ${byte(at)}`);
        (l as unknown[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) bad(`pickle APPENDS to a ${describePy(l)} at byte ${byte(at)}`);
        for (const it of items) (l as unknown[]).push(it);
        break;
      }
      case 0x62: {
        // BUILD: state for the object below; torch.save sets an OrderedDict's _metadata this way
        const state = pop();
        const obj = top();
        if (!(obj instanceof Map)) bad(`pickle BUILD on a ${describePy(obj)} at byte ${byte(at)} (only a state_dict's OrderedDict takes a state)`);
        void state;
        break;
      }
      default:
        bad(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${byte(at)} (not one torch.save writes for a state_dict; refused)`);
    }
  }
}

const isGlobal = (v: unknown): v is GlobalRef => typeof v === 'object' && v !== null && (v as GlobalRef).kind === 'global';
const isStorage = (v: unknown): v is StorageRef => typeof v === 'object' && v !== null && (v as StorageRef).kind === 'storage';
const isTensor = (v: unknown): v is TensorRef => typeof v === 'object' && v !== null && (v as TensorRef).kind === 'tensor';

function describePy(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'dict';
  if (v instanceof PyTuple) return 'tuple';
  if (Array.isArray(v)) return 'list';
  if (isGlobal(v)) return v.name;
  if (isStorage(v)) return 'storage';
  if (isTensor(v)) return 'tensor';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return typeof v;
}

/** The tensors of a state_dict by name: a dict of tensors, also nested (`{"state_dict": {...}, "epoch": 3}`:
 * the one inner dict that holds the weights, when the top level holds none; otherwise nested dicts' tensors
 * get dotted names). Integer and boolean tensors (counters such as BatchNorm's num_batches_tracked, RNG
 * states) are not weights and are left out; floating tensors of another dtype are kept, to be refused by
 * name. A dict shared or nested in itself, a name given twice, or nesting deeper than 32 is refused. */
function collectTensors(obj: unknown, source: string): Map<string, TensorRef> {
  if (!(obj instanceof Map)) throw new Error(`${source}: the checkpoint holds a ${describePy(obj)}, not a state_dict (a dict of tensors); save model.state_dict()`);
  const INTEGRAL = new Set(['int64', 'int32', 'int16', 'int8', 'uint8', 'bool']);
  const weight = (v: unknown): v is TensorRef => isTensor(v) && !INTEGRAL.has(v.storage.dtype);
  const holdsWeights = (d: unknown) => d instanceof Map && [...d.values()].some(weight);
  const out = new Map<string, TensorRef>();
  const seen = new Set<Map<unknown, unknown>>();
  const walk = (d: Map<unknown, unknown>, prefix: string, depth: number) => {
    if (depth > 32) throw new Error(`${source}: dicts nested more than 32 deep (not a state_dict)`);
    if (seen.has(d)) throw new Error(`${source}: a dict appears twice in the checkpoint (shared or nested in itself; torch.save of a state_dict never does that)`);
    seen.add(d);
    for (const [k, v] of d) {
      const name = `${prefix}${String(k)}`;
      if (weight(v)) {
        if (out.has(name)) throw new Error(`${source}: two tensors are named "${name}"`);
        out.set(name, v);
      } else if (v instanceof Map) walk(v, `${name}.`, depth + 1);
      // other entries (epoch counters, optimizer hyper-parameters, integer tensors) are not weights
    }
  };
  if (holdsWeights(obj)) walk(obj, '', 0);
  else {
    const inner = [...obj.values()].filter(holdsWeights);
    if (inner.length === 1) walk(inner[0] as Map<unknown, unknown>, '', 0);
    else walk(obj, '', 0);
  }
  if (!out.size) throw new Error(`${source}: the checkpoint's dict holds no floating-point tensors`);
  return out;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

/** Whether `buf` starts like a zip (torch.save's format since 1.6). */
export function looksLikeZip(buf: Uint8Array): boolean {
  return buf.length >= 4 && ZIP_MAGIC.every((b, i) => buf[i] === b);
}

let crcTable: Uint32Array | null = null;
/** CRC-32 (zip's): node:zlib's where it has one (Node ≥ 20.15), else a table. */
function crc32(b: Uint8Array): number {
  const z = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  if (z) return z(b) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Each entry's CRC-32 from the zip's central directory (fflate does not check them: a damaged byte in a
 * stored tensor would otherwise load as a wrong weight). */
function centralCrcs(buf: Uint8Array, source: string): Map<string, { crc: number; method: number; local: number }> {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const bad = (m: string): never => {
    throw new Error(`${source}: not a readable zip (truncated or damaged?): ${m}`);
  };
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--)
    if (v.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd < 0) bad('no end-of-central-directory record');
  let entries = v.getUint16(eocd + 10, true);
  let cd = v.getUint32(eocd + 16, true);
  const loc = eocd - 20;
  // The zip64 record whenever its locator is there (torch writes one always; fflate reads it then too)
  if (loc >= 0 && v.getUint32(loc, true) === 0x07064b50) {
    const z = Number(v.getBigUint64(loc + 8, true));
    if (z + 56 > buf.length || v.getUint32(z, true) !== 0x06064b50) bad('no zip64 end-of-central-directory record');
    entries = Number(v.getBigUint64(z + 32, true));
    cd = Number(v.getBigUint64(z + 48, true));
  } else if (cd === 0xffffffff || entries === 0xffff) bad('no zip64 end-of-central-directory locator');
  if (cd > buf.length || entries > (buf.length - cd) / 46) bad(`the central directory claims ${entries} entries at byte ${cd}, more than the file can hold`);
  const out = new Map<string, { crc: number; method: number; local: number }>();
  const dec = new TextDecoder();
  let p = cd;
  for (let e = 0; e < entries; e++) {
    if (p + 46 > buf.length || v.getUint32(p, true) !== 0x02014b50) bad(`central directory entry ${e} at byte ${p} is not one`);
    const n = v.getUint16(p + 28, true);
    const x = v.getUint16(p + 30, true);
    if (p + 46 + n + x > buf.length) bad(`central directory entry ${e} runs past the end`);
    // Where the entry's local header is (for offsets in error messages): in its zip64 extra field when
    // the 32-bit field says 0xffffffff; that field lists the 64-bit values whose 32-bit ones are full.
    let local = v.getUint32(p + 42, true);
    if (local === 0xffffffff) {
      local = -1;
      for (let q = p + 46 + n; q + 4 <= p + 46 + n + x; q += 4 + v.getUint16(q + 2, true)) {
        if (v.getUint16(q, true) !== 0x0001) continue;
        const skip = (v.getUint32(p + 24, true) === 0xffffffff ? 8 : 0) + (v.getUint32(p + 20, true) === 0xffffffff ? 8 : 0);
        if (q + 4 + skip + 8 <= p + 46 + n + x) local = Number(v.getBigUint64(q + 4 + skip, true));
      }
    }
    out.set(dec.decode(buf.subarray(p + 46, p + 46 + n)), { crc: v.getUint32(p + 16, true), method: v.getUint16(p + 10, true), local });
    p += 46 + n + x + v.getUint16(p + 32, true);
  }
  return out;
}

/** Where a stored entry's bytes start in the zip (its local header, 30 bytes + name + extra, comes first),
 * when that is where `data` is; else undefined. */
function storedDataStart(buf: Uint8Array, local: number, data: Uint8Array): number | undefined {
  if (local < 0 || local + 30 > buf.length) return undefined;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(local, true) !== 0x04034b50) return undefined;
  const start = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
  if (start + data.length > buf.length) return undefined;
  return Buffer.from(buf.buffer, buf.byteOffset + start, data.length).equals(data) ? start : undefined;
}

/** Parses a `torch.save`d state_dict (the bytes of a .pth / .pt file). */
export function parsePth(buf: Uint8Array, source = 'PyTorch checkpoint'): Map<string, PthTensor> {
  if (!looksLikeZip(buf)) {
    if (buf.length >= 2 && buf[0] === 0x80 && buf[1] <= 5)
      throw new Error(`${source}: a PyTorch checkpoint in the legacy (pre-1.6) format, which is not supported: re-save it with torch.save(...) from torch ≥ 1.6`);
    throw new Error(`${source}: not a PyTorch checkpoint (expected a zip, as torch.save writes, or safetensors); it starts with bytes ${[...buf.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ') || '(empty file)'}`);
  }
  // The central directory first (bounded by the file's size), then only the entries a checkpoint has,
  // stored as torch.save writes them (no inflating of anything: no zip bombs).
  const dir = centralCrcs(buf, source);
  const wanted = /^([^/]+\/)?(data\.pkl|byteorder|data\/[\w.-]+)$/;
  for (const [name, e] of dir)
    if (wanted.test(name) && e.method !== 0) throw new Error(`${source}: zip entry ${name} is compressed (method ${e.method}); torch.save stores its entries uncompressed`);
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(buf, { filter: (f) => wanted.test(f.name) && f.compression === 0 && f.originalSize <= buf.length });
  } catch (e) {
    throw new Error(`${source}: not a readable zip (truncated or damaged?): ${(e as Error).message}`);
  }
  const checked = (name: string): Uint8Array | undefined => {
    const b = files[name];
    if (!b) return undefined;
    const e = dir.get(name);
    if (!e) throw new Error(`${source}: zip entry ${name} is not in the central directory (the file is damaged)`);
    if (crc32(b) !== e.crc) throw new Error(`${source}: zip entry ${name} fails its CRC-32 check (the file is damaged)`);
    return b;
  };
  const pkl = Object.keys(files).filter((n) => /^[^/]+\/data\.pkl$/.test(n) || n === 'data.pkl');
  if (pkl.length !== 1) throw new Error(`${source}: a zip, but not a torch.save checkpoint: ${pkl.length ? 'several' : 'no'} <archive>/data.pkl (entries: ${Object.keys(files).slice(0, 6).join(', ')}${Object.keys(files).length > 6 ? ', …' : ''})`);
  const prefix = pkl[0].slice(0, -'data.pkl'.length);
  const order = checked(`${prefix}byteorder`);
  if (order && new TextDecoder().decode(order).trim() !== 'little') throw new Error(`${source}: the checkpoint was written on a big-endian machine (byteorder "${new TextDecoder().decode(order).trim()}"), which is not supported`);
  const pklBytes = checked(pkl[0])!;
  const pklAt = storedDataStart(buf, dir.get(pkl[0])!.local, pklBytes);
  const refs = collectTensors(unpickleStateDict(pklBytes, `${source} (${pkl[0]})`, pklAt), source);
  const out = new Map<string, PthTensor>();
  const storages = new Map<string, Float32Array>();
  const made = new Map<TensorRef, Float32Array>(); // one tensor object referenced under several names
  let storageElems = 0;
  for (const [name, b] of Object.entries(files)) if (/(^|\/)data\/[\w.-]+$/.test(name)) storageElems += b.byteLength / 4;
  let produced = 0;
  for (const [name, t] of refs) {
    if (t.shape.length > 64) throw new Error(`${source}: tensor "${name}" has ${t.shape.length} dimensions (more than 64)`);
    if (t.storage.dtype !== 'float32') throw new Error(`${source}: tensor "${name}" is ${t.storage.dtype}; only float32 tensors can be loaded (convert with .float() before saving)`);
    let st = storages.get(t.storage.key);
    if (!st) {
      const raw = checked(`${prefix}data/${t.storage.key}`);
      if (!raw) throw new Error(`${source}: tensor "${name}" refers to storage ${t.storage.key}, which is not in the zip (${prefix}data/${t.storage.key} missing: truncated?)`);
      if (raw.byteLength % 4) throw new Error(`${source}: storage ${t.storage.key} has ${raw.byteLength} bytes, not a whole number of float32 values`);
      if (t.storage.numel !== null && raw.byteLength !== t.storage.numel * 4)
        throw new Error(`${source}: storage ${t.storage.key} should hold ${t.storage.numel} float32 values (${t.storage.numel * 4} bytes) but has ${raw.byteLength} bytes (truncated?)`);
      st = new Float32Array(raw.byteLength / 4);
      new Uint8Array(st.buffer).set(raw);
      storages.set(t.storage.key, st);
    }
    // A view holds at most its storage's elements (an expanded, stride-0 view of a small storage would
    // let a few bytes of file ask for gigabytes).
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n > st.length) throw new Error(`${source}: tensor "${name}" has ${n} elements, more than its storage's ${st.length} (an expanded view; save a contiguous copy)`);
    let data = made.get(t);
    if (!data) {
      produced += n;
      if (produced > 2 * storageElems + 1024)
        throw new Error(`${source}: its tensors hold ${produced} elements, more than twice the ${storageElems} its storages have (one storage viewed by many tensors; refused)`);
      made.set(t, (data = gather(st, t, `${source}: tensor "${name}"`)));
    }
    out.set(name, { dtype: 'F32', shape: t.shape, data });
  }
  return out;
}

/** The contiguous values of a strided view into a storage, bounds-checked. */
function gather(st: Float32Array, t: TensorRef, what: string): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  if (n === 0) return out;
  let last = t.offset;
  t.shape.forEach((s, i) => (last += (s - 1) * t.stride[i]));
  if (last >= st.length) throw new Error(`${what} (size [${t.shape.join(', ')}], stride [${t.stride.join(', ')}], offset ${t.offset}) reaches element ${last} of a storage of ${st.length}`);
  let contiguous = true;
  for (let i = t.shape.length - 1, expect = 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== expect) contiguous = false;
    expect *= t.shape[i];
  }
  if (contiguous) {
    out.set(st.subarray(t.offset, t.offset + n));
    return out;
  }
  const d = t.shape.length;
  const idx = new Array<number>(d).fill(0);
  let src = t.offset;
  for (let o = 0; o < n; o++) {
    out[o] = st[src];
    for (let k = d - 1; k >= 0; k--) {
      idx[k]++;
      src += t.stride[k];
      if (idx[k] < t.shape[k]) break;
      src -= t.stride[k] * t.shape[k];
      idx[k] = 0;
    }
  }
  return out;
}

export async function readPth(file: string): Promise<Map<string, PthTensor>> {
  return parsePth(await readFileNamed(file), file);
}
