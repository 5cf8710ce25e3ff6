/** The decode worker of {@link ImageFolder}: a worker_threads pool where each worker loads its own sharp,
 * decodes, resizes and crops images, and turns them into normalised CHW float32 arrays that it transfers
 * back (no copy). The worker's code is a plain-JS string run with `eval: true`, so the same code runs
 * from the TypeScript sources (vitest) and from dist/, and sharp is required by the absolute path the
 * main thread resolved — it works wherever alexnet-cuda is installed.
 *
 * What a worker does with one image (the main thread draws the random numbers, so results do not
 * depend on which worker ran or when):
 *   decodeResized (lib/data/sharp-decode.cjs, the package's one decoding path: size read from the header
 *   and bounded before anything is decoded, EXIF orientation, alpha dropped without premultiplying)
 *     → sRGB (or greyscale, for channels = 1)
 *     → resize so that the short side is `resize` (fit 'outside', sharp's default Lanczos-3 kernel)
 *     → raw 8-bit HWC
 *   train: a size×size window inside the central resize×resize square (the paper's crop), at
 *          top = t₀ + ⌊uTop·(square − size + 1)⌋, left = l₀ + ⌊uLeft·(square − size + 1)⌋, mirrored when
 *          `flip`, plus the PCA shift; eval: the centred size×size window of the whole resized image;
 *   then ((v/255 + shift[c]) − mean[c]) / std[c] into CHW float32. */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { describe } from '../errors.js';
import { SHARP_DECODE_PATH } from '../sharp.js';

export interface DecodeConfig {
  size: number;
  resize: number;
  channels: 1 | 3;
  train: boolean;
  mean: number[];
  std: number[];
  failOn: 'none' | 'truncated' | 'error' | 'warning';
}

export interface DecodeTask {
  path: string;
  uTop: number;
  uLeft: number;
  flip: boolean;
  shift: number[] | null;
}

export type DecodeResult =
  | { ok: true; data: Float32Array }
  | { ok: false; reason: string; fatal?: Error };

const WORKER_SOURCE = String.raw`'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const cfg = workerData.config;
const sharp = require(workerData.sharpPath);
const { decodeResized } = require(workerData.decodePath);
// sharp.concurrency() and sharp.cache() are process-wide libvips settings: left as the user has them.
const C = cfg.channels, S = cfg.size, R = cfg.resize, plane = S * S;
const offset = (u, range) => Math.min(range - 1, Math.floor(u * range));
async function decode(t) {
  const { data, width: W, height: H } = await decodeResized(sharp, t.path, { channels: C, resize: R, failOn: cfg.failOn });
  if (H < S || W < S) throw new Error('resized to ' + W + 'x' + H + ', smaller than the ' + S + 'x' + S + ' crop');
  let top, left;
  if (cfg.train) {
    const sq = Math.min(H, W);
    top = Math.floor((H - sq) / 2) + offset(t.uTop, sq - S + 1);
    left = Math.floor((W - sq) / 2) + offset(t.uLeft, sq - S + 1);
  } else {
    top = Math.floor((H - S) / 2);
    left = Math.floor((W - S) / 2);
  }
  const out = new Float32Array(C * plane);
  for (let k = 0; k < C; k++) {
    const a = 1 / (255 * cfg.std[k]);
    const b = ((t.shift ? t.shift[k] : 0) - cfg.mean[k]) / cfg.std[k];
    for (let y = 0; y < S; y++) {
      const row = ((top + y) * W + left) * C + k;
      const o = k * plane + y * S;
      if (t.flip) for (let x = 0; x < S; x++) out[o + S - 1 - x] = data[row + x * C] * a + b;
      else for (let x = 0; x < S; x++) out[o + x] = data[row + x * C] * a + b;
    }
  }
  return out;
}
let active = 0, closing = false;
const settle = () => { active--; if (closing && active === 0) parentPort.close(); };
parentPort.on('message', (m) => {
  if (m === 'close') { closing = true; if (active === 0) parentPort.close(); return; }
  active++;
  decode(m.task).then(
    (out) => { parentPort.postMessage({ id: m.id, ok: true, data: out }, [out.buffer]); settle(); },
    (e) => {
      const msg = e && e.message ? String(e.message) : String(e);
      parentPort.postMessage({ id: m.id, ok: false, reason: msg.split('\n')[0].trim() || 'unknown error' });
      settle();
    });
});
`;

let sharpPath: string | undefined;
/** Loads sharp in the main thread (so its shared libraries stay loaded while workers come and go — sharp's
 * advice for worker_threads on glibc) and returns the path workers require it by. */
function loadSharp(): string {
  if (sharpPath) return sharpPath;
  const require = createRequire(import.meta.url);
  try {
    const p = require.resolve('sharp');
    require(p);
    sharpPath = p;
    return p;
  } catch (e) {
    throw new Error(
      `ImageFolder: could not load sharp, which decodes the images: ${(e as Error).message.split('\n')[0]}\n` +
        'Possible solutions:\n- npm install sharp@^0.35\n- see https://sharp.pixelplumbing.com/install for platform notes',
    );
  }
}

interface Slot {
  worker: Worker;
  outstanding: number;
}

/** A pool of decode workers. `run` never rejects: a file that fails is `{ ok: false, reason }`; a worker
 * that dies or a closed pool is `{ ok: false, fatal }`. */
export class DecodePool {
  private readonly slots: Slot[] = [];
  private readonly waiting = new Map<number, { slot: Slot; resolve: (r: DecodeResult) => void }>();
  private nextId = 1;
  private broken: Error | undefined;
  private closing: Promise<void> | undefined;

  constructor(workers: number, config: DecodeConfig) {
    if (!Number.isInteger(workers) || workers < 1) throw new TypeError(`DecodePool: expected workers ≥ 1, got ${describe(workers)}`);
    const path = loadSharp();
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { sharpPath: path, decodePath: SHARP_DECODE_PATH, config }, name: `alexnet-decode-${i}` });
      const slot: Slot = { worker, outstanding: 0 };
      worker.unref();
      worker.on('message', (m: { id: number; ok: boolean; data?: Float32Array; reason?: string }) => {
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        if (--slot.outstanding === 0) worker.unref();
        w.resolve(m.ok ? { ok: true, data: m.data! } : { ok: false, reason: m.reason ?? 'unknown error' });
      });
      worker.on('error', (e) => this.fail(slot, new Error(`ImageFolder: decode worker ${i} failed: ${e.message}`)));
      worker.on('exit', (code) => {
        if (!this.closing || code !== 0) this.fail(slot, new Error(`ImageFolder: decode worker ${i} exited (code ${code})`));
      });
      this.slots.push(slot);
    }
  }

  get isBroken(): boolean {
    return this.broken !== undefined || this.closing !== undefined;
  }

  private fail(slot: Slot, err: Error): void {
    this.broken ??= err;
    for (const [id, w] of this.waiting)
      if (w.slot === slot) {
        this.waiting.delete(id);
        w.resolve({ ok: false, reason: err.message, fatal: err });
      }
  }

  run(task: DecodeTask): Promise<DecodeResult> {
    const dead = this.broken ?? (this.closing ? new Error('ImageFolder: closed while decoding') : undefined);
    if (dead) return Promise.resolve({ ok: false, reason: dead.message, fatal: dead });
    let slot = this.slots[0];
    for (const s of this.slots) if (s.outstanding < slot.outstanding) slot = s;
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, { slot, resolve });
      if (slot.outstanding++ === 0) slot.worker.ref();
      slot.worker.postMessage({ id, task });
    });
  }

  /** Lets the workers finish what they hold (terminating one inside sharp can crash the process),
   * then waits for them to exit. */
  close(): Promise<void> {
    this.closing ??= Promise.all(
      this.slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.worker.threadId < 0) return resolve();
            s.worker.once('exit', () => resolve());
            s.worker.ref();
            s.worker.postMessage('close');
          }),
      ),
    ).then(() => {
      const err = new Error('ImageFolder: closed while decoding');
      for (const [, w] of this.waiting) w.resolve({ ok: false, reason: err.message, fatal: err });
      this.waiting.clear();
    });
    return this.closing;
  }
}
