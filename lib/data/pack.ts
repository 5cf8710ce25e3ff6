/** `alexnet pack` / `data.pack()`: decodes every image of a folder once, resizes it (short side 256 by
 * default, as the paper did beforehand) and writes a packed data set — one file of JPEG (or raw uint8)
 * records with an index (format: native/data/store.h, README "Packed data sets") — that the native loader
 * (lib/data/packed.ts) reads at thousands of images per second per core.
 *
 * - Decoding runs in child processes, one per core by default (lib/data/pack-worker.cjs), through the
 *   package's one decoding path (lib/data/sharp-decode.cjs: bounds checked from the header first, alpha
 *   dropped without premultiplying). A file that cannot be decoded is skipped and reported; a worker that
 *   dies is replaced, and the files it held are retried one at a time, so a file that crashes the decoder
 *   is skipped (and named) without losing the others.
 * - Records are written in the listing's order, whatever order the workers finish in, so the same folder
 *   and settings give the same file, byte for byte.
 * - Crash safety: the store is written as `<out>.partial` and renamed to `<out>` only when complete (after
 *   fsync), so `<out>` is never half a store. Progress is journalled in `<out>.partial.journal`: every
 *   second the records written are fsynced, then their index entries are appended to the journal and
 *   fsynced, so every journalled record is on disk. An interrupted pack continues where its journal ends
 *   (the rest of `.partial` is cut off) and gives the same file as an uninterrupted one. */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { open, readFile, rename, rm, stat, truncate, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe } from '../errors.js';
import { loadNative } from '../native.js';
import { SHARP_DECODE_PATH, loadSharp, packageFile } from '../sharp.js';
import { lockFolder } from '../io/lock.js';
import { listImageFolder } from './list-folder.js';
import { intOption, oneOfOption, optionsObject } from './options.js';

export interface PackSettings {
  /** The short side after resizing (mode 'short'), or the square's side (mode 'square'). */
  resize: number;
  /** 'short': keep the aspect ratio, short side → resize; 'square': the paper's resize×resize centre square. */
  mode: 'short' | 'square';
  /** 'jpeg' (baseline, 4:2:0) or 'raw' (HWC uint8: no decoding at all when read, ~9× the bytes). */
  format: 'jpeg' | 'raw';
  /** JPEG quality, 1–100. */
  quality: number;
  /** 3 (sRGB) or 1 (greyscale). */
  channels: 1 | 3;
}

export interface PackProgress {
  /** Files done (written or skipped), of `total`. */
  done: number;
  total: number;
  written: number;
  skipped: number;
  /** Bytes of records written. */
  bytes: number;
  /** Files per second in this run (resumed files not counted). */
  rate: number;
  /** Seconds left at that rate. */
  etaSeconds: number;
  /** Files found done in the journal of an interrupted pack. */
  resumedFrom: number;
}

export interface PackOptions extends Partial<PackSettings> {
  /** Decode processes (default: one per core). */
  workers?: number;
  /** File extensions (default .jpg, .jpeg, .png, .webp; case-insensitive). */
  extensions?: readonly string[];
  /** Pack only this many images, round-robin over the classes. */
  limit?: number;
  /** Continue an interrupted pack from `<out>.partial` (default true); false starts over. */
  resume?: boolean;
  /** Replace an existing `<out>` (default false: an error). */
  overwrite?: boolean;
  onProgress?: (p: PackProgress) => void;
  onSkip?: (s: { path: string; reason: string }) => void;
}

export interface PackResult {
  path: string;
  /** Records in the store. */
  count: number;
  classes: string[];
  skipped: { path: string; reason: string }[];
  /** Bytes of the store file. */
  bytes: number;
  seconds: number;
  /** Files per second in this run. */
  rate: number;
  resumedFrom: number;
  settings: PackSettings;
}

const DEFAULT_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp'];
const HEADER_BYTES = 128;
const ENTRY_BYTES = 32;
const MAGIC = Buffer.from('AXPACK\r\n', 'latin1');
const FLUSH_MS = 1000;
const FLUSH_RECORDS = 1024;
const PER_WORKER = 4; // files in flight per worker: hides the IPC round trip
const OPTION_KEYS = ['resize', 'mode', 'format', 'quality', 'channels', 'workers', 'extensions', 'limit', 'resume', 'overwrite', 'onProgress', 'onSkip'];

function resolve(opts: PackOptions | undefined): Required<Omit<PackOptions, 'onProgress' | 'onSkip' | 'limit'>> & PackOptions {
  const where = 'pack';
  const o = optionsObject(opts, OPTION_KEYS, where);
  const int = (v: unknown, name: string, lo: number, hi: number, dflt: number) => intOption(v, name, lo, hi, dflt, where);
  const oneOf = <T extends string>(v: unknown, name: string, allowed: readonly T[], dflt: T): T => oneOfOption(v, name, allowed, dflt, where);
  const channels = o.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new TypeError(`${where}: expected channels to be 1 or 3, got ${describe(o.channels)}`);
  const extensions = o.extensions ?? DEFAULT_EXTENSIONS;
  if (!Array.isArray(extensions) || !extensions.every((e) => typeof e === 'string' && e.startsWith('.')))
    throw new TypeError(`${where}: expected extensions to be an array like ['.jpg', '.png'], got ${describe(extensions)}`);
  if (o.limit !== undefined) int(o.limit, 'limit', 1, 2 ** 31, 0);
  return {
    ...o,
    resize: int(o.resize, 'resize', 8, 4096, 256),
    mode: oneOf(o.mode, 'mode', ['short', 'square'] as const, 'short'),
    format: oneOf(o.format, 'format', ['jpeg', 'raw'] as const, 'jpeg'),
    quality: int(o.quality, 'quality', 1, 100, 90),
    channels,
    workers: int(o.workers, 'workers', 1, 1024, Math.max(1, os.availableParallelism())),
    extensions: extensions.map((e) => e.toLowerCase()),
    resume: o.resume ?? true,
    overwrite: o.overwrite ?? false,
  };
}

interface Entry {
  offset: number;
  bytes: number;
  crc: number;
  label: number;
  width: number;
  height: number;
  channels: number;
}
/** A journal line: a written record (with its source index `i`) or a skipped file. */
type JournalLine = ({ i: number } & Entry) | { i: number; skip: string };

const crc32c = (b: Uint8Array, init = 0) => loadNative().data.crc32c(b, init) >>> 0;

/** Packs the image folder `src` (root/<class>/…/<image>) into the packed data set `out`. */
export async function pack(src: string, out: string, opts?: PackOptions): Promise<PackResult> {
  const o = resolve(opts);
  if (typeof src !== 'string' || !src) throw new TypeError(`pack: expected the source folder as a path, got ${describe(src)}`);
  if (typeof out !== 'string' || !out) throw new TypeError(`pack: expected the output file as a path, got ${describe(out)}`);
  const outPath = path.resolve(out);
  const settings: PackSettings = { resize: o.resize, mode: o.mode, format: o.format, quality: o.format === 'jpeg' ? o.quality : 0, channels: o.channels };
  if (existsSync(outPath) && !o.overwrite) throw new Error(`pack: ${outPath} exists already; remove it first, or pass overwrite (--overwrite) to replace it`);
  const sharp = await loadSharp(); // a clear error now rather than from every worker
  const t0 = performance.now();
  const listing = await listImageFolder(src, { extensions: o.extensions, limit: o.limit });
  // files the listing left out (loops, FIFOs, names that are not UTF-8) are reported as skipped too
  const listed: { path: string; reason: string }[] = listing.problems.map((p) => ({ path: path.relative(listing.root, p.path), reason: p.reason }));
  for (const p of listing.problems) o.onSkip?.(p);
  const rel = listing.files.map((f) => path.relative(listing.root, f));
  const total = listing.files.length;
  // What a resumed pack must find unchanged to give the uninterrupted pack's bytes: the files (names,
  // labels, sizes, modification times) and the decoder (sharp's and libvips's versions).
  const listHash = createHash('sha256');
  listHash.update(JSON.stringify(listing.classes));
  for (let i = 0; i < total; i += 256) {
    const stats = await Promise.all(listing.files.slice(i, i + 256).map((f) => stat(f, { bigint: true }).catch(() => null)));
    stats.forEach((st, k) => listHash.update(`${rel[i + k]}\0${listing.labels[i + k]}\0${st ? `${st.size}:${st.mtimeNs}` : '-'}\n`));
  }
  const decoder = `sharp ${sharp.versions.sharp ?? '?'}, libvips ${sharp.versions.vips}`;
  const header = { packJournal: 1, settings, files: total, list: listHash.digest('hex'), decoder };

  // One pack at a time writes <out>: a second one stops at once and says which process holds it.
  const lock = lockFolder(path.dirname(outPath), 'pack: the output', () => {}, `${path.basename(outPath)}.lock`);
  try {
    return await packLocked(o, listing, rel, total, header, outPath, listed, t0);
  } finally {
    lock.release();
  }
}

async function packLocked(
  o: ReturnType<typeof resolve>,
  listing: Awaited<ReturnType<typeof listImageFolder>>,
  rel: string[],
  total: number,
  header: { packJournal: number; settings: PackSettings; files: number; list: string; decoder: string },
  outPath: string,
  listed: { path: string; reason: string }[],
  t0: number,
): Promise<PackResult> {
  const settings = header.settings;
  const partial = `${outPath}.partial`;
  const journalPath = `${outPath}.partial.journal`;
  const entries: (Entry & { i: number })[] = [];
  const skipped: { path: string; reason: string }[] = [];
  let next = 0;
  let dataEnd = HEADER_BYTES;
  const resumed = o.resume ? await readJournal(journalPath, partial, header) : null;
  if (resumed) {
    for (const l of resumed.lines) {
      if ('skip' in l) skipped.push({ path: rel[l.i], reason: l.skip });
      else entries.push(l);
    }
    next = resumed.lines.length;
    dataEnd = resumed.dataEnd;
    await truncate(partial, dataEnd);
    await truncate(journalPath, resumed.journalBytes);
  } else {
    await rm(journalPath, { force: true });
    const fh = await open(partial, 'w');
    await fh.write(Buffer.alloc(HEADER_BYTES), 0, HEADER_BYTES, 0);
    await fh.sync();
    await fh.close();
    const jh = await open(journalPath, 'w');
    await jh.write(JSON.stringify(header) + '\n');
    await jh.sync();
    await jh.close();
    await syncDir(path.dirname(outPath));
  }

  const data = await open(partial, 'r+');
  let journal: FileHandle;
  try {
    journal = await open(journalPath, 'a');
  } catch (e) {
    await data.close();
    throw e;
  }
  try {
    return await writeStore(o, listing, rel, total, outPath, listed, t0, entries, skipped, next, dataEnd, data, journal, partial, journalPath, settings);
  } finally {
    await data.close().catch(() => {});
    await journal.close().catch(() => {});
  }
}

async function writeStore(
  o: ReturnType<typeof resolve>,
  listing: Awaited<ReturnType<typeof listImageFolder>>,
  rel: string[],
  total: number,
  outPath: string,
  listed: { path: string; reason: string }[],
  t0: number,
  entries: (Entry & { i: number })[],
  skipped: { path: string; reason: string }[],
  next: number,
  dataEnd: number,
  data: FileHandle,
  journal: FileHandle,
  partial: string,
  journalPath: string,
  settings: PackSettings,
): Promise<PackResult> {
  const resumedFrom = next;
  const pool = new WorkerPool(o.workers, settings);
  let lines: string[] = [];
  let lastFlush = performance.now();
  let bytesWritten = entries.reduce((a, e) => a + e.bytes, 0);
  const tRun = performance.now();
  const progress = () => {
    const secs = (performance.now() - tRun) / 1000;
    const doneHere = next - resumedFrom;
    const rate = secs > 0 ? doneHere / secs : 0;
    o.onProgress?.({ done: next, total, written: entries.length, skipped: skipped.length, bytes: bytesWritten, rate, etaSeconds: rate > 0 ? (total - next) / rate : Infinity, resumedFrom });
  };
  const flush = async () => {
    if (!lines.length) return;
    await data.datasync(); // the records first: every journalled record is on disk
    await journal.write(lines.join(''));
    await journal.datasync();
    lines = [];
    lastFlush = performance.now();
  };
  try {
    const results = pool.run(listing.files, next);
    for (; next < total; ) {
      const r = await results.get(next);
      if (r.ok) {
        const crc = crc32c(r.data);
        await writeAll(data, r.data, dataEnd);
        const e = { i: next, offset: dataEnd, bytes: r.data.length, crc, label: listing.labels[next], width: r.width, height: r.height, channels: r.channels };
        if (r.width > 65535 || r.height > 65535) throw new Error(`pack: ${listing.files[next]} resized to ${r.width}×${r.height}, over the 65,535 the index holds`);
        entries.push(e);
        dataEnd += r.data.length;
        bytesWritten += r.data.length;
        lines.push(JSON.stringify(e) + '\n');
      } else {
        const s = { path: rel[next], reason: r.reason };
        skipped.push(s);
        o.onSkip?.({ path: listing.files[next], reason: r.reason });
        lines.push(JSON.stringify({ i: next, skip: r.reason }) + '\n');
      }
      next++;
      if (lines.length >= FLUSH_RECORDS || performance.now() - lastFlush >= FLUSH_MS) {
        await flush();
        progress();
      }
    }
    await flush();
    progress();
  } finally {
    await pool.close();
  }
  try {
    if (entries.length === 0) throw new Error(`pack: none of the ${total} images of ${listing.root} could be decoded (first: ${skipped[0]?.path}: ${skipped[0]?.reason})`);
    // index, meta, names, then the header: the file is complete
    const index = Buffer.alloc(entries.length * ENTRY_BYTES);
    entries.forEach((e, k) => {
      const b = k * ENTRY_BYTES;
      index.writeBigUInt64LE(BigInt(e.offset), b);
      index.writeUInt32LE(e.bytes, b + 8);
      index.writeUInt32LE(e.crc, b + 12);
      index.writeInt32LE(e.label, b + 16);
      index.writeUInt16LE(e.width, b + 20);
      index.writeUInt16LE(e.height, b + 22);
      index.writeUInt8(e.channels, b + 24);
      index.writeUInt8(settings.format === 'jpeg' ? 0 : 1, b + 25);
    });
    const meta = Buffer.from(
      JSON.stringify({
        format: 'alexnet-cuda packed data set',
        version: 1,
        count: entries.length,
        classes: listing.classes,
        settings,
        source: { files: total, skipped: skipped.length, unlisted: listed.length },
        skipped: [...listed, ...skipped],
      }),
      'utf8',
    );
    const names = Buffer.from(entries.map((e) => JSON.stringify(rel[e.i]) + '\n').join(''), 'utf8');
    const indexOff = dataEnd;
    const metaOff = indexOff + index.length;
    const namesOff = metaOff + meta.length;
    await writeAll(data, index, indexOff);
    await writeAll(data, meta, metaOff);
    await writeAll(data, names, namesOff);
    const h = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(h, 0);
    h.writeUInt32LE(1, 8);
    h.writeUInt32LE(HEADER_BYTES, 12);
    h.writeBigUInt64LE(BigInt(entries.length), 16);
    h.writeBigUInt64LE(BigInt(HEADER_BYTES), 24);
    h.writeBigUInt64LE(BigInt(dataEnd - HEADER_BYTES), 32);
    h.writeBigUInt64LE(BigInt(indexOff), 40);
    h.writeBigUInt64LE(BigInt(index.length), 48);
    h.writeBigUInt64LE(BigInt(metaOff), 56);
    h.writeBigUInt64LE(BigInt(meta.length), 64);
    h.writeBigUInt64LE(BigInt(namesOff), 72);
    h.writeBigUInt64LE(BigInt(names.length), 80);
    h.writeUInt32LE(crc32c(index), 88);
    h.writeUInt32LE(crc32c(meta), 92);
    h.writeUInt32LE(crc32c(names), 96);
    h.writeUInt32LE(crc32c(h.subarray(0, 124)), 124);
    await writeAll(data, h, 0);
    await data.truncate(namesOff + names.length);
    await data.sync();
  } finally {
    await data.close();
    await journal.close();
  }
  await rename(partial, outPath);
  await syncDir(path.dirname(outPath));
  await rm(journalPath, { force: true });
  const seconds = (performance.now() - t0) / 1000;
  const runSecs = (performance.now() - tRun) / 1000;
  return {
    path: outPath,
    count: entries.length,
    classes: listing.classes,
    skipped: [...listed, ...skipped],
    bytes: (await stat(outPath)).size,
    seconds,
    rate: runSecs > 0 ? (total - resumedFrom) / runSecs : 0,
    resumedFrom,
    settings,
  };
}

async function writeAll(fh: FileHandle, buf: Uint8Array, pos: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, pos + off);
    off += bytesWritten;
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** The state of an interrupted pack: its journal's valid lines (a torn last line is dropped), checked
 * against the header (same settings, same files) and the partial file (the last records' CRCs). Null when
 * there is nothing to resume; an error when there is something, but for other settings or files. */
async function readJournal(
  journalPath: string,
  partial: string,
  header: { settings: PackSettings; files: number; list: string; decoder: string },
): Promise<{ lines: JournalLine[]; dataEnd: number; journalBytes: number } | null> {
  if (!existsSync(journalPath) || !existsSync(partial)) return null;
  const text = await readFile(journalPath, 'utf8');
  const nl = text.indexOf('\n');
  if (nl < 0) return null; // the header line never made it: nothing was written
  let head: { packJournal?: number; settings?: PackSettings; files?: number; list?: string; decoder?: string };
  try {
    head = JSON.parse(text.slice(0, nl));
  } catch {
    throw new Error(`pack: ${journalPath} is not a pack journal; remove it and ${partial} to start over`);
  }
  if (head.packJournal !== 1) throw new Error(`pack: ${journalPath} is not a pack journal of this version; remove it and ${partial} to start over`);
  if (JSON.stringify(head.settings) !== JSON.stringify(header.settings))
    throw new Error(`pack: an interrupted pack at ${partial} used other settings (${JSON.stringify(head.settings)}, now ${JSON.stringify(header.settings)}); pass the same options to continue it, or resume: false (--restart) to start over`);
  if (head.files !== header.files || head.list !== header.list)
    throw new Error(`pack: an interrupted pack at ${partial} was of other files (${head.files} then, ${header.files} now, or other names, classes, sizes or modification times); the folder changed: pass resume: false (--restart) to start over`);
  if (head.decoder !== header.decoder)
    throw new Error(`pack: an interrupted pack at ${partial} was made with ${head.decoder ?? 'another decoder'}, this one has ${header.decoder}: its records would not match; pass resume: false (--restart) to start over`);
  const lines: JournalLine[] = [];
  let pos = nl + 1;
  let dataEnd = HEADER_BYTES;
  for (;;) {
    const end = text.indexOf('\n', pos);
    if (end < 0) break; // a torn last line
    let l: JournalLine;
    try {
      l = JSON.parse(text.slice(pos, end));
    } catch {
      break;
    }
    if (l.i !== lines.length) break;
    if (!('skip' in l)) {
      if (l.offset !== dataEnd) break;
      dataEnd += l.bytes;
    }
    lines.push(l);
    pos = end + 1;
  }
  // The journalled records were fsynced before their lines; still, check the last ones' bytes.
  const size = (await stat(partial)).size;
  const fh = await open(partial, 'r');
  try {
    let keep = lines.length;
    let checked = 0;
    for (let k = lines.length - 1; k >= 0 && checked < 64; k--) {
      const l = lines[k];
      if ('skip' in l) continue;
      checked++;
      const buf = Buffer.alloc(l.bytes);
      if (l.offset + l.bytes > size || (await fh.read(buf, 0, l.bytes, l.offset)).bytesRead !== l.bytes || crc32c(buf) !== l.crc) keep = k;
    }
    if (keep < lines.length) {
      lines.length = keep;
      dataEnd = HEADER_BYTES;
      for (const l of lines) if (!('skip' in l)) dataEnd = l.offset + l.bytes;
      pos = nl + 1;
      for (let k = 0; k < keep; k++) pos = text.indexOf('\n', pos) + 1;
    }
  } finally {
    await fh.close();
  }
  return { lines, dataEnd, journalBytes: Buffer.byteLength(text.slice(0, pos), 'utf8') };
}

type Result = { ok: true; data: Buffer; width: number; height: number; channels: number } | { ok: false; reason: string };

/** The decode processes: `run(files, from)` hands out files from `from` on, and `get(i)` resolves with
 * file i's result (results arrive in any order; the caller takes them in order). */
class WorkerPool {
  private readonly procs: { child: ChildProcess; inFlight: Set<number>; solo: boolean }[] = [];
  private readonly waiting = new Map<number, (r: Result) => void>();
  private readonly done = new Map<number, Result>();
  private readonly retry: number[] = [];
  private readonly crashes = new Map<number, number>();
  private files: string[] = [];
  private nextFile = 0;
  private window = 0;
  private closed = false;
  private fatal: Error | undefined;

  constructor(
    private readonly n: number,
    private readonly settings: PackSettings,
  ) {}

  run(files: string[], from: number): this {
    this.files = files;
    this.nextFile = from;
    this.window = from;
    for (let k = 0; k < this.n; k++) this.spawn();
    this.pump();
    return this;
  }

  private spawn(): void {
    const child = fork(packageFile('lib/data/pack-worker.cjs'), [], {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, AXN_PACK_SHARP: sharpModulePath(), AXN_PACK_DECODE: SHARP_DECODE_PATH },
    });
    const slot = { child, inFlight: new Set<number>(), solo: false };
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    child.on('message', (m: { id: number; ok: boolean; data?: Uint8Array; width?: number; height?: number; channels?: number; reason?: string }) => {
      slot.inFlight.delete(m.id);
      slot.solo = false;
      this.settle(m.id, m.ok ? { ok: true, data: Buffer.from(m.data!.buffer, m.data!.byteOffset, m.data!.byteLength), width: m.width!, height: m.height!, channels: m.channels! } : { ok: false, reason: m.reason ?? 'unknown error' });
      this.pump();
    });
    child.on('exit', (code, signal) => {
      const k = this.procs.indexOf(slot);
      if (k >= 0) this.procs.splice(k, 1);
      if (this.closed) return;
      // A decoder died: retry what it held one file at a time; a file it dies on alone is skipped.
      const why = `the decoder process died (${signal ?? `exit code ${code}`})${stderr.trim() ? `: ${stderr.trim().split('\n').pop()}` : ''}`;
      for (const id of slot.inFlight) {
        const c = (this.crashes.get(id) ?? 0) + (slot.inFlight.size === 1 ? 2 : 1);
        this.crashes.set(id, c);
        if (c >= 2) this.settle(id, { ok: false, reason: why });
        else this.retry.push(id);
      }
      this.spawn();
      this.pump();
    });
    child.on('error', (e) => {
      this.fatal ??= new Error(`pack: a decoder process failed to start: ${e.message}`);
      for (const [, w] of this.waiting) w({ ok: false, reason: this.fatal.message });
    });
    child.send({ settings: this.settings });
    this.procs.push(slot);
  }

  private settle(id: number, r: Result): void {
    const w = this.waiting.get(id);
    if (w) {
      this.waiting.delete(id);
      w(r);
    } else this.done.set(id, r);
  }

  /** Hands out files: at most PER_WORKER per process, and no further ahead of the oldest unread result
   * than the processes can hold (bounded memory); retried files go alone to an idle process. */
  private pump(): void {
    if (this.closed) return;
    const limit = this.window + this.n * PER_WORKER * 2;
    for (const p of this.procs) {
      if (p.solo) continue;
      if (this.retry.length && p.inFlight.size === 0) {
        const id = this.retry.shift()!;
        p.solo = true;
        p.inFlight.add(id);
        p.child.send({ id, path: this.files[id] });
        continue;
      }
      while (p.inFlight.size < PER_WORKER && this.nextFile < this.files.length && this.nextFile < limit) {
        const id = this.nextFile++;
        p.inFlight.add(id);
        p.child.send({ id, path: this.files[id] });
      }
    }
  }

  get(i: number): Promise<Result> {
    this.window = i;
    this.pump();
    if (this.fatal) return Promise.reject(this.fatal);
    const r = this.done.get(i);
    if (r) {
      this.done.delete(i);
      return Promise.resolve(r);
    }
    return new Promise((resolve) => this.waiting.set(i, resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
            p.child.once('exit', () => resolve());
            p.child.disconnect();
          }),
      ),
    );
  }
}

let sharpPath: string | undefined;
/** The path worker processes require sharp by: the one this package resolves. */
function sharpModulePath(): string {
  sharpPath ??= createRequire(import.meta.url).resolve('sharp');
  return sharpPath;
}
