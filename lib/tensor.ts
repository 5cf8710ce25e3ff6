/** Tensor: a float32, bfloat16, int32 or uint8 array with a shape, in host (`'cpu'`) or GPU (`'cuda'`) memory.
 * One native Storage owns the bytes; `reshape` views share it (reference-counted). `dispose()` frees it
 * at once; a FinalizationRegistry is only a safety net (GC does not see GPU memory pressure). */
import { DisposedError, describe } from './errors.js';
import { loadNative, type NativeStorage, type NativeMemoryStats } from './native.js';

/** Element types: float32 (activations, weights), bfloat16 (float32's sign, exponent and upper 7 mantissa
 * bits: half the bytes, the storage of precision 'bf16'), int32 (labels, indices), uint8 (decoded pixels, as
 * the data loader hands them to the device: 4× fewer bytes than float32).
 *
 * JavaScript has no bfloat16 array: a bfloat16 tensor reads back as a Float32Array (each value widened, which
 * is exact), and takes float32 values rounded to the nearest bfloat16 (ties to even), or its raw bits as a
 * Uint16Array. */
export type DType = 'float32' | 'bfloat16' | 'int32' | 'uint8';
export type Device = 'cpu' | 'cuda';
export type TypedArrayFor<D extends DType> = D extends 'int32' ? Int32Array : D extends 'uint8' ? Uint8Array : Float32Array;
type AnyTyped = Float32Array | Int32Array | Uint8Array;
/** What a storage holds, element for element: bfloat16's raw bits are a Uint16Array. */
type RawTyped = AnyTyped | Uint16Array;

/** Bytes of one element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = Object.freeze({ float32: 4, bfloat16: 2, int32: 4, uint8: 1 });
const RAW_OF: Record<DType, { new (n: number): RawTyped; name: string }> = { float32: Float32Array, bfloat16: Uint16Array, int32: Int32Array, uint8: Uint8Array };

// ---- bfloat16 in JavaScript (the same rounding as native/ops/gemm.h's round_bf16) ----------------------
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The bfloat16 bits of `v`: v as a float32 first (Math.fround), then rounded to the nearest bfloat16, ties
 * to even. Infinities stay; a NaN stays a (quiet) NaN; a finite value past bfloat16's largest (≈ 3.39e38)
 * becomes an infinity, as a conversion does. */
export function bf16Bits(v: number): number {
  f32Scratch[0] = v;
  let b = u32Scratch[0];
  if ((b & 0x7f800000) === 0x7f800000) {
    if (b & 0x007fffff) b = (b | 0x00400000) >>> 0;
  } else {
    b += 0x7fff + ((b >>> 16) & 1);
  }
  return (b >>> 16) & 0xffff;
}

/** The float32 (as a number) that bfloat16 bits stand for, exactly. */
export function bf16Value(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0];
}

/** `v` rounded to the nearest bfloat16 (ties to even), as a number: bf16Value(bf16Bits(v)). */
export function roundBf16(v: number): number {
  return bf16Value(bf16Bits(v));
}

function widenBf16(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}

function narrowBf16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = bf16Bits(values[i]);
  return out;
}

if (typeof (Symbol as { dispose?: symbol }).dispose !== 'symbol') {
  Object.defineProperty(Symbol, 'dispose', { value: Symbol.for('Symbol.dispose') });
}

const DEVICE_ID: Record<Device, number> = { cpu: -1, cuda: 0 };
const MAX_ELEMENTS = 2 ** 45; // far above any real tensor; keeps byte counts exact in a double

/** Normalises a device name ('cpu', 'cuda', 'cuda:0'); anything else is a TypeError naming what came. */
export function parseDevice(device: unknown, where = 'device'): Device {
  if (device === 'cpu' || device === 'cuda') return device;
  if (device === 'cuda:0' || device === 'gpu') return 'cuda';
  if (typeof device === 'string' && /^cuda:\d+$/.test(device))
    throw new RangeError(`${where}: only one CUDA device is supported (expected "cuda" or "cuda:0"), got ${describe(device)}`);
  throw new TypeError(`${where}: expected "cpu" or "cuda", got ${describe(device)}`);
}

export function parseDType(dtype: unknown, where = 'dtype'): DType {
  if (dtype === 'float32' || dtype === 'bfloat16' || dtype === 'int32' || dtype === 'uint8') return dtype;
  throw new TypeError(`${where}: expected "float32", "bfloat16", "int32" or "uint8", got ${describe(dtype)}`);
}

/** Checks a shape: an array of non-negative integers. Returns a frozen copy. */
export function parseShape(shape: unknown, where = 'shape'): readonly number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${where}: expected an array of non-negative integers, got ${describe(shape)}`);
  shape.forEach((d, i) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0)
      throw new TypeError(`${where}: expected an array of non-negative integers, got ${describe(shape)} (dimension ${i} is ${describe(d)})`);
  });
  const n = shape.reduce((a: number, b: number) => a * b, 1);
  if (n > MAX_ELEMENTS) throw new RangeError(`${where}: ${describe(shape)} has ${n} elements, more than the ${MAX_ELEMENTS} supported`);
  return Object.freeze([...shape]);
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// ---- live-memory accounting (tfjs's numTensors) -----------------------------------------------------

interface Counts {
  tensors: number;
  storages: number;
  bytes: number;
}
const live: Record<Device, Counts> = {
  cpu: { tensors: 0, storages: 0, bytes: 0 },
  cuda: { tensors: 0, storages: 0, bytes: 0 },
};

/** Shared owner of one native Storage; freed when the last tensor viewing it is disposed. */
class StorageRef {
  refs = 1;
  constructor(
    readonly native: NativeStorage,
    readonly device: Device,
    readonly bytes: number,
  ) {
    live[device].storages++;
    live[device].bytes += bytes;
  }
  retain(): this {
    this.refs++;
    return this;
  }
  release(): void {
    if (--this.refs > 0) return;
    this.native.free();
    live[this.device].storages--;
    live[this.device].bytes -= this.bytes;
  }
}

// A tensor that is garbage-collected without dispose() releases its reference here. The native Storage
// also frees its memory when it is itself collected; this keeps the counts honest.
const finalizer = new FinalizationRegistry<{ ref: StorageRef; device: Device }>(({ ref, device }) => {
  live[device].tensors--;
  try {
    ref.release();
  } catch {
    /* the storage may already be gone at teardown */
  }
});

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly device: Device;
  /** Number of elements. */
  readonly size: number;
  #ref: StorageRef | null;
  #token = {};

  private constructor(ref: StorageRef, shape: readonly number[], dtype: DType) {
    this.#ref = ref;
    this.shape = shape;
    this.dtype = dtype;
    this.device = ref.device;
    this.size = numel(shape);
    live[this.device].tensors++;
    finalizer.register(this, { ref, device: this.device }, this.#token);
  }

  // ---- construction --------------------------------------------------------------------------------

  /** A new uninitialised tensor (contents are whatever the allocator returns). */
  static empty(shape: readonly number[], device: Device | string = 'cpu', dtype: DType = 'float32'): Tensor {
    const s = parseShape(shape, 'Tensor.empty: shape');
    const dev = parseDevice(device, 'Tensor.empty: device');
    const dt = parseDType(dtype, 'Tensor.empty: dtype');
    if (dev === 'cuda') requireCuda('Tensor.empty');
    const bytes = numel(s) * DTYPE_BYTES[dt];
    const Storage = loadNative().Storage;
    const t = new Tensor(new StorageRef(new Storage(DEVICE_ID[dev], bytes), dev, bytes), s, dt);
    Tensor.#sinks.at(-1)?.push(t);
    return t;
  }

  static #sinks: Tensor[][] = [];

  /** @internal Runs `fn`, appending every tensor it allocates to `sink` — so that a constructor that
   * fails half-way (a model whose 8th layer does not fit) can dispose what it made. */
  static collectCreated<T>(sink: Tensor[], fn: () => T): T {
    Tensor.#sinks.push(sink);
    try {
      return fn();
    } finally {
      Tensor.#sinks.pop();
    }
  }

  /** A new tensor filled with zeros. */
  static zeros(shape: readonly number[], device: Device | string = 'cpu', dtype: DType = 'float32'): Tensor {
    const t = Tensor.empty(shape, device, dtype);
    t.#storage('Tensor.zeros').zero();
    return t;
  }

  /**
   * A tensor holding a copy of `data`. The dtype follows the data (Float32Array → float32, Int32Array →
   * int32, Uint8Array → uint8) unless given; plain number arrays are float32 by default. dtype "bfloat16"
   * takes numbers or a Float32Array, each value rounded to the nearest bfloat16 (ties to even, after
   * float32), or a Uint16Array of raw bfloat16 bits, copied as they are. `data.length` must equal the
   * product of `shape`.
   */
  static from(
    data: Float32Array | Int32Array | Uint8Array | Uint16Array | ArrayLike<number>,
    shape: readonly number[],
    device: Device | string = 'cpu',
    dtype?: DType,
  ): Tensor {
    const s = parseShape(shape, 'Tensor.from: shape');
    const dev = parseDevice(device, 'Tensor.from: device');
    let dt: DType;
    if (dtype !== undefined) dt = parseDType(dtype, 'Tensor.from: dtype');
    else dt = data instanceof Int32Array ? 'int32' : data instanceof Uint8Array ? 'uint8' : 'float32';
    if (data === null || typeof data !== 'object' || typeof (data as ArrayLike<number>).length !== 'number')
      throw new TypeError(`Tensor.from: expected data as a Float32Array, Int32Array, Uint8Array or array of numbers, got ${describe(data)}`);
    if (data instanceof Uint16Array && dt !== 'bfloat16')
      throw new TypeError(`Tensor.from: a Uint16Array is taken as raw bfloat16 bits: pass dtype "bfloat16"${dtype === undefined ? '' : `, not ${describe(dtype)}`}`);
    if (ArrayBuffer.isView(data) && !(data instanceof Float32Array || data instanceof Int32Array || data instanceof Uint8Array || data instanceof Uint16Array))
      throw new TypeError(`Tensor.from: expected a Float32Array, Int32Array, Uint8Array or Uint16Array (bfloat16 bits), got ${describe(data)} (convert it first)`);
    const n = numel(s);
    if (data.length !== n)
      throw new RangeError(`Tensor.from: shape [${s.join(', ')}] needs ${n} elements, got ${data.length}`);
    let typed: RawTyped;
    if (dt === 'bfloat16') {
      if (data instanceof Int32Array || data instanceof Uint8Array)
        throw new TypeError(`Tensor.from: got a ${data.constructor.name} for dtype "bfloat16"; pass a Float32Array, numbers, or a Uint16Array of bfloat16 bits`);
      if (!ArrayBuffer.isView(data)) {
        for (let i = 0; i < data.length; i++)
          if (typeof data[i] !== 'number') throw new TypeError(`Tensor.from: dtype "bfloat16" needs numbers, got ${describe(data[i])} at index ${i}`);
      }
      typed = data instanceof Uint16Array ? data : narrowBf16(data as ArrayLike<number>);
    } else if (dt === 'uint8') {
      if (ArrayBuffer.isView(data) && !(data instanceof Uint8Array))
        throw new TypeError(`Tensor.from: got a ${data.constructor.name} for dtype "uint8"; pass a Uint8Array`);
      if (!(data instanceof Uint8Array)) {
        for (let i = 0; i < data.length; i++) {
          const v = data[i];
          if (!Number.isInteger(v) || v < 0 || v > 255) throw new TypeError(`Tensor.from: dtype "uint8" needs integers from 0 to 255, got ${describe(v)} at index ${i}`);
        }
      }
      typed = data instanceof Uint8Array ? data : Uint8Array.from(data as ArrayLike<number>);
    } else if (dt === 'float32') {
      if (data instanceof Int32Array || data instanceof Uint8Array)
        throw new TypeError(`Tensor.from: got a ${data.constructor.name} for dtype "float32"; pass a Float32Array or dtype "${data instanceof Int32Array ? 'int32' : 'uint8'}"`);
      if (!(data instanceof Float32Array)) {
        for (let i = 0; i < data.length; i++)
          if (typeof data[i] !== 'number') throw new TypeError(`Tensor.from: dtype "float32" needs numbers, got ${describe(data[i])} at index ${i}`);
      }
      typed = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    } else {
      if (data instanceof Float32Array || data instanceof Uint8Array)
        throw new TypeError(`Tensor.from: got a ${data.constructor.name} for dtype "int32"; pass an Int32Array or dtype "${data instanceof Float32Array ? 'float32' : 'uint8'}"`);
      if (!(data instanceof Int32Array)) {
        for (let i = 0; i < data.length; i++) {
          const v = data[i];
          if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31)
            throw new TypeError(`Tensor.from: dtype "int32" needs 32-bit integers, got ${describe(v)} at index ${i}`);
        }
      }
      typed = data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
    }
    // A view of a SharedArrayBuffer (another thread may write it meanwhile) is copied first.
    if (typeof SharedArrayBuffer !== 'undefined' && typed.buffer instanceof SharedArrayBuffer)
      typed = typed.slice();
    const t = Tensor.empty(s, dev, dt);
    try {
      t.#storage('Tensor.from').write(typed);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  // ---- state ---------------------------------------------------------------------------------------

  get isDisposed(): boolean {
    return this.#ref === null;
  }

  /** Bytes of this tensor's data. */
  get bytes(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  /** @internal The native storage, for op bindings. Throws DisposedError after dispose(). */
  #storage(op: string): NativeStorage {
    if (!this.#ref) throw new DisposedError(`${op}: Tensor [${this.shape.join(', ')}] ${this.dtype} on ${this.device}`);
    return this.#ref.native;
  }

  /** @internal */
  static storageOf(t: Tensor, op: string): NativeStorage {
    if (!(t instanceof Tensor)) throw new TypeError(`${op}: expected a Tensor, got ${describe(t)}`);
    return t.#storage(op);
  }

  /** Frees the tensor's memory now (when it is the last view of it). Idempotent. */
  dispose(): void {
    const ref = this.#ref;
    if (!ref) return;
    this.#ref = null;
    finalizer.unregister(this.#token);
    live[this.device].tensors--;
    ref.release();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- reading back --------------------------------------------------------------------------------

  /** A copy of the data as a Float32Array (int32 and uint8 tensors are converted). Waits for the device — the GPU,
   * or the CPU stream's worker for a CPU tensor — without blocking the event loop. Rejects with the error
   * of an earlier op whose kernel failed (reported at the next synchronisation). */
  async toFloat32Array(): Promise<Float32Array> {
    const st = this.#storage('Tensor.toFloat32Array');
    if (this.dtype === 'float32') {
      const out = new Float32Array(this.size);
      await st.read(out);
      return out;
    }
    const raw = new RAW_OF[this.dtype](this.size);
    await st.read(raw);
    return raw instanceof Uint16Array ? widenBf16(raw) : Float32Array.from(raw);
  }

  /** Resolves when the ops that write this tensor have run (on the GPU, or on the CPU stream), without
   * reading it back (one byte is copied); rejects with an earlier op's error as a read would. A way to keep
   * a producer at most a step ahead of the device. */
  async ready(): Promise<void> {
    const st = this.#storage('Tensor.ready');
    if (this.bytes === 0) return;
    await st.read(new Uint8Array(1));
  }

  /** A copy of a uint8 tensor's data. */
  async toUint8Array(): Promise<Uint8Array> {
    const st = this.#storage('Tensor.toUint8Array');
    if (this.dtype !== 'uint8') throw new TypeError(`Tensor.toUint8Array: tensor is ${this.dtype}; use toFloat32Array()`);
    const out = new Uint8Array(this.size);
    await st.read(out);
    return out;
  }

  /** A copy of an int32 tensor's data. */
  async toInt32Array(): Promise<Int32Array> {
    const st = this.#storage('Tensor.toInt32Array');
    if (this.dtype !== 'int32') throw new TypeError(`Tensor.toInt32Array: tensor is ${this.dtype}; use toFloat32Array()`);
    const out = new Int32Array(this.size);
    await st.read(out);
    return out;
  }

  /** A copy of the data in the tensor's own dtype (bfloat16: a Float32Array of its values), synchronously:
   * blocks the JS thread until the ops that write this tensor have run (GPU or CPU stream). Prefer
   * `await data()` in long-running programs. */
  dataSync(): AnyTyped {
    const st = this.#storage('Tensor.dataSync');
    const out = new RAW_OF[this.dtype](this.size);
    st.readSync(out);
    return out instanceof Uint16Array ? widenBf16(out) : out;
  }

  /** A copy of a bfloat16 tensor's raw bits (the upper 16 bits of each value's float32). */
  async toBfloat16Bits(): Promise<Uint16Array> {
    const st = this.#storage('Tensor.toBfloat16Bits');
    if (this.dtype !== 'bfloat16') throw new TypeError(`Tensor.toBfloat16Bits: tensor is ${this.dtype}; use toFloat32Array()`);
    const out = new Uint16Array(this.size);
    await st.read(out);
    return out;
  }

  /** The data in the tensor's own dtype (bfloat16: a Float32Array of its values). */
  async data(): Promise<AnyTyped> {
    return this.dtype === 'int32' ? this.toInt32Array() : this.dtype === 'uint8' ? this.toUint8Array() : this.toFloat32Array();
  }

  // ---- copies and views ----------------------------------------------------------------------------

  /** A copy on `device`. Always a new tensor, which the caller owns (also when the device is the same). */
  to(device: Device | string): Tensor {
    const dev = parseDevice(device, 'Tensor.to: device');
    const src = this.#storage('Tensor.to');
    const t = Tensor.empty(this.shape, dev, this.dtype);
    Tensor.storageOf(t, 'Tensor.to').copyFrom(src, this.bytes);
    return t;
  }

  /** A copy on the same device. */
  clone(): Tensor {
    return this.to(this.device);
  }

  /** A view with another shape of the same size, sharing this tensor's memory. One dimension may be -1. */
  reshape(shape: readonly number[]): Tensor {
    if (!Array.isArray(shape)) throw new TypeError(`Tensor.reshape: expected an array of integers, got ${describe(shape)}`);
    const ref = this.#ref;
    if (!ref) throw new DisposedError(`Tensor.reshape: Tensor [${this.shape.join(', ')}]`);
    const inferred = shape.filter((d) => d === -1).length;
    if (inferred > 1) throw new TypeError(`Tensor.reshape: at most one dimension may be -1, got [${shape.join(', ')}]`);
    let s = shape;
    if (inferred === 1) {
      const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
      if (known === 0 || this.size % known !== 0)
        throw new RangeError(`Tensor.reshape: cannot reshape [${this.shape.join(', ')}] (${this.size} elements) to [${shape.join(', ')}]`);
      s = shape.map((d) => (d === -1 ? this.size / known : d));
    }
    const ps = parseShape(s, 'Tensor.reshape: shape');
    if (numel(ps) !== this.size)
      throw new RangeError(`Tensor.reshape: cannot reshape [${this.shape.join(', ')}] (${this.size} elements) to [${ps.join(', ')}] (${numel(ps)} elements)`);
    return new Tensor(ref.retain(), ps, this.dtype);
  }

  /** Copies `src` (same size and dtype, any device) into this tensor. */
  copyFrom(src: Tensor): this {
    if (!(src instanceof Tensor)) throw new TypeError(`Tensor.copyFrom: expected a Tensor, got ${describe(src)}`);
    if (src.size !== this.size || src.dtype !== this.dtype)
      throw new RangeError(`Tensor.copyFrom: expected ${this.size} ${this.dtype} elements, got [${src.shape.join(', ')}] ${src.dtype}`);
    this.#storage('Tensor.copyFrom').copyFrom(src.#storage('Tensor.copyFrom'), this.bytes);
    return this;
  }

  /** Overwrites the data from a host array of the same length (bfloat16: a Float32Array, rounded to the
   * nearest bfloat16, or a Uint16Array of raw bits). */
  write(data: AnyTyped | Uint16Array): this {
    const bf16 = this.dtype === 'bfloat16';
    const want = RAW_OF[this.dtype];
    const ok = bf16 ? data instanceof Uint16Array || data instanceof Float32Array : data instanceof want;
    if (!ok || data.length !== this.size)
      throw new TypeError(`Tensor.write: expected ${bf16 ? `Float32Array(${this.size}) or Uint16Array(${this.size}) of bfloat16 bits` : `${want.name}(${this.size})`}, got ${describe(data)}`);
    let src: RawTyped = bf16 && data instanceof Float32Array ? narrowBf16(data) : data;
    if (typeof SharedArrayBuffer !== 'undefined' && src.buffer instanceof SharedArrayBuffer) src = src.slice();
    this.#storage('Tensor.write').write(src);
    return this;
  }

  /** Sets every element to zero. */
  zero_(): this {
    this.#storage('Tensor.zero_').zero();
    return this;
  }

  toString(): string {
    return `Tensor([${this.shape.join(', ')}], ${this.dtype}, ${this.device}${this.isDisposed ? ', disposed' : ''})`;
  }
}

// ---- backend queries ------------------------------------------------------------------------------

let cudaState: { ok: boolean; reason: string } | undefined;

/** Throws a clear error when the CUDA device can't be used, saying why (built without it, no GPU...). */
export function requireCuda(op: string): void {
  if (!cudaState) {
    const info = loadNative().backendInfo();
    cudaState = { ok: info.cuda, reason: info.cudaReason };
  }
  if (!cudaState.ok) throw new Error(`${op}: device "cuda" is not available: ${cudaState.reason}`);
}

/** True when the CUDA backend was built and a CUDA device answers. */
export function cudaAvailable(): boolean {
  return loadNative().backendInfo().cuda;
}

/** The devices usable now: always 'cpu', and 'cuda' when available. */
export function devices(): Device[] {
  return cudaAvailable() ? ['cpu', 'cuda'] : ['cpu'];
}

/** What the addon was built with, and why CUDA is or isn't there. */
export function backendInfo() {
  const n = loadNative();
  const info = n.backendInfo();
  return { ...info, gpus: info.cuda ? n.cudaDevices() : [] };
}

export interface MemoryStats {
  /** Live (not disposed, not collected) tensors per device. */
  tensors: Record<Device, number>;
  /** Bytes held by live tensors' storages per device. */
  bytes: Record<Device, number>;
  /** Native counters: host buffers, and the CUDA caching allocator when built with CUDA. */
  native: NativeMemoryStats;
}

export function memoryStats(): MemoryStats {
  return {
    tensors: { cpu: live.cpu.tensors, cuda: live.cuda.tensors },
    bytes: { cpu: live.cpu.bytes, cuda: live.cuda.bytes },
    native: loadNative().memoryStats(),
  };
}

/** Waits for all queued work — the CPU stream's and the GPU's — blocking the JS thread; throws the error
 * of an op whose kernel failed since the last synchronisation. */
export function synchronize(): void {
  loadNative().cudaSynchronize();
}

/** Starts the CUDA allocator's peak (memoryStats().native.cuda.peakInUseBytes) again from the bytes in use
 * now, as torch.cuda.reset_peak_memory_stats does; a no-op without CUDA. */
export function resetPeakMemoryStats(): void {
  loadNative().resetPeakMemory();
}

/** Returns the allocators' cached (freed) blocks: host blocks to the OS, CUDA blocks to the driver. */
export function emptyCache(): void {
  loadNative().cudaEmptyCache();
}

/** Test aid: when on, new tensors and op workspaces are filled with NaN, so a kernel that leaves part of
 * its output unwritten shows up. Off by default. */
export function setPoison(on: boolean): void {
  loadNative().setPoison(!!on);
}
