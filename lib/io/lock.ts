/** A lock on an output folder, so that two runs writing the same files (weights, checkpoint, history) do
 * not overwrite each other's results without a word.
 *
 * The lock is a file, `alexnet.lock`, holding JSON: the holder's pid, host, start time, command line, the
 * kernel's boot id and the process's start time in clock ticks since boot (Linux), and a random token.
 * It is made by writing a temporary file and hard-linking it to the lock's name, which fails when the name
 * exists: taking the lock is atomic. A lock whose holder is gone — on this host, no process with its pid,
 * or one that started at another time or in another boot (the pid was reused, the container restarted) —
 * is stale and is taken over, under a second, short-lived lock (`alexnet.lock.takeover`), so that two runs
 * that find the same stale lock do not both take it. A lock from another host (a shared file system)
 * cannot be checked from here and is refused with the way to clear it. Everything here is synchronous, so
 * that it can run in exit and signal handlers. */
import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const LOCK_FILE = 'alexnet.lock';

interface LockInfo {
  pid: number;
  host: string;
  started: string;
  token: string;
  command?: string;
  bootId?: string;
  startTicks?: number;
}

export interface FolderLock {
  /** The lock file. */
  readonly file: string;
  /** Removes the lock (if it is still this one's); idempotent. */
  release(): void;
}

/** Tokens of the locks this process holds (a lock with our pid and another token is a stale one). */
const held = new Set<string>();

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

const bootId = () => readText('/proc/sys/kernel/random/boot_id')?.trim();

/** A process's start time in clock ticks after boot (Linux /proc/<pid>/stat field 22), or undefined. */
function startTicks(pid: number | 'self'): number | undefined {
  const s = readText(`/proc/${pid}/stat`);
  if (!s) return undefined;
  const fields = s.slice(s.lastIndexOf(')') + 2).split(' '); // the name in parentheses may hold spaces
  const v = Number(fields[19]); // field 22 of the line; fields[0] is field 3
  return Number.isSafeInteger(v) ? v : undefined;
}

function parse(text: string): LockInfo | null {
  try {
    const v = JSON.parse(text) as LockInfo;
    if (v && typeof v === 'object' && Number.isSafeInteger(v.pid) && v.pid > 0 && typeof v.host === 'string' && typeof v.token === 'string') return v;
  } catch {
    /* not ours */
  }
  return null;
}

/** 'alive', 'dead' or 'elsewhere' (another host: not checkable). */
function holderState(h: LockInfo): 'alive' | 'dead' | 'elsewhere' | 'self' {
  if (h.host !== os.hostname()) return 'elsewhere';
  if (h.bootId && bootId() && h.bootId !== bootId()) return 'dead'; // written before the last boot
  if (h.pid === process.pid) return held.has(h.token) ? 'self' : 'dead'; // our pid, not our lock: a restart
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return 'dead'; // ESRCH: no such process
  }
  // a process with that pid runs; the same one only if it started when the holder did
  const t = startTicks(h.pid);
  if (h.startTicks !== undefined && t !== undefined && t !== h.startTicks) return 'dead';
  return 'alive';
}

/** Creates `file` with the content of `tmp` if it does not exist (EEXIST otherwise), atomically: a hard
 * link, whose content is whole from the start; where the file system has no hard links, an exclusive
 * create and a write. */
function createExclusive(tmp: string, file: string, content: LockInfo): void {
  try {
    linkSync(tmp, file);
    return;
  } catch (e) {
    if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
  }
  const fd = openSync(file, 'wx');
  try {
    writeSync(fd, JSON.stringify(content, null, 1));
  } finally {
    closeSync(fd);
  }
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Takes the lock on `dir` (which must exist) for this process, or throws an Error that says which process
 * holds it. `what` names the folder in messages (e.g. "--out"); `note` hears about a stale lock taken over;
 * `name` is the lock file's name in `dir` (another name locks one output in the folder, e.g. a pack's
 * `<out>.lock`). */
export function lockFolder(dir: string, what: string, note: (message: string) => void = () => {}, name: string = LOCK_FILE): FolderLock {
  const file = path.join(dir, name);
  const mine: LockInfo = {
    pid: process.pid,
    host: os.hostname(),
    started: new Date().toISOString(),
    token: randomBytes(12).toString('hex'),
    command: process.argv.slice(1).join(' ').slice(0, 500),
    bootId: bootId(),
    startTicks: startTicks('self'),
  };
  const tmp = `${file}.${process.pid}.${mine.token}.tmp`;
  const fd = openSync(tmp, 'wx');
  try {
    writeSync(fd, JSON.stringify(mine, null, 1));
  } finally {
    closeSync(fd);
  }
  const lock: FolderLock = {
    file,
    release() {
      if (!held.delete(mine.token)) return;
      if (parse(readText(file) ?? '')?.token === mine.token) rmSync(file, { force: true });
    },
  };
  try {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        createExclusive(tmp, file, mine);
        held.add(mine.token);
        return lock;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const text = readText(file);
      if (text === undefined) continue; // released meanwhile
      const h = parse(text);
      if (!h) throw new Error(`${what} ${dir}: ${file} exists but is not an alexnet lock file; remove it if no run is using the folder`);
      const state = holderState(h);
      if (state !== 'dead') {
        const since = ` has held ${file} since ${h.started}${h.command ? ` (${h.command})` : ''}`;
        if (state === 'elsewhere')
          throw new Error(`${what} ${dir} is in use by another run: process ${h.pid} on host ${h.host} (not this one: it cannot be checked from here; if that run is gone, remove ${file})`);
        throw new Error(`${what} ${dir} is in use by another run: process ${h.pid} on this host${state === 'self' ? ' (this process)' : ''}${since}; wait for it to end or choose another ${what}`);
      }
      // Stale: take it over, one taker at a time, and only if it is still the lock we found.
      const guard = `${file}.takeover`;
      let g: number;
      try {
        g = openSync(guard, 'wx');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const other = Number(readText(guard));
        let gone = !Number.isSafeInteger(other) || other <= 0;
        if (!gone)
          try {
            process.kill(other, 0);
          } catch (err) {
            gone = (err as NodeJS.ErrnoException).code !== 'EPERM';
          }
        if (gone) rmSync(guard, { force: true }); // a taker that died half-way
        else sleep(20);
        continue;
      }
      try {
        try {
          writeSync(g, String(process.pid));
        } finally {
          closeSync(g);
        }
        if (parse(readText(file) ?? '')?.token !== h.token) continue; // changed meanwhile: look again
        renameSync(tmp, file);
        held.add(mine.token);
        note(`${what} ${dir}: took over the lock of process ${h.pid}, which is no longer running (started ${h.started})`);
        return lock;
      } finally {
        rmSync(guard, { force: true });
      }
    }
    throw new Error(`${what} ${dir}: could not take ${file}: it kept changing (other runs starting there at the same time?)`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Keeps `lock` until the process ends — normally, by an error, or by SIGINT, SIGTERM or SIGHUP — and
 * releases it then. On a signal the lock is released and the signal raised again, so that the process
 * ends by it as it would have without this handler (a checkpoint written atomically stays whole; what was
 * not written is not). Returns a function that releases the lock now and removes the handlers. */
export function holdUntilExit(lock: FolderLock): () => void {
  const onExit = () => lock.release();
  const onSignal = (sig: NodeJS.Signals) => {
    done();
    // with no other listener the signal's default action is back: it ends the process as it would have
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const done = () => {
    lock.release();
    process.off('exit', onExit);
    for (const s of SIGNALS) process.off(s, onSignal);
  };
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
  return done;
}
