/** Small checks on paths that come from users: what kind of file a path is, refusing anything but a
 * regular file before it is opened (a FIFO blocks the reader until someone writes to it; a device or a
 * socket is not an image), and proving a folder writable before work that would be lost otherwise. */
import { closeSync, mkdirSync, openSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';

export type FileKind = 'file' | 'folder' | 'symbolic link' | 'FIFO (named pipe)' | 'socket' | 'character device' | 'block device' | 'unknown';

/** What fs.Stats and fs.Dirent both say about an entry. */
export type StatLike = Pick<Stats, 'isFile' | 'isDirectory' | 'isSymbolicLink' | 'isFIFO' | 'isSocket' | 'isCharacterDevice' | 'isBlockDevice'>;

/** What a directory entry or stat result is, in words for messages ('file' for a regular file). */
export function fileKind(s: StatLike): FileKind {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'folder';
  if (s.isSymbolicLink()) return 'symbolic link';
  if (s.isFIFO()) return 'FIFO (named pipe)';
  if (s.isSocket()) return 'socket';
  if (s.isCharacterDevice()) return 'character device';
  if (s.isBlockDevice()) return 'block device';
  return 'unknown';
}

/** Resolves when `file` (symlinks followed) is a regular file; otherwise rejects, without opening it, with
 * an Error that says what it is instead ("expected a regular file, got a FIFO (named pipe)…"). A missing
 * path says "the file does not exist"; an unreadable one rejects with the system's message. */
export async function checkRegularFile(file: string): Promise<void> {
  let s;
  try {
    s = await stat(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('the file does not exist', { cause: e });
    throw e;
  }
  if (s.isFile()) return;
  const kind = fileKind(s);
  throw new Error(`expected a regular file, got a ${kind}${kind.startsWith('FIFO') ? ' (not opened: reading it would block until something writes to it)' : ''}`);
}

/** Why a write failed, in words, from its errno code. */
function why(e: NodeJS.ErrnoException, where: string): string {
  switch (e.code) {
    case 'EROFS':
      return `${where} on a read-only file system (EROFS)`;
    case 'EACCES':
    case 'EPERM':
      return `${where} not writable by this user (${e.code})`;
    case 'ENOSPC':
      return `${where} on a full disk (ENOSPC)`;
    case 'EDQUOT':
      return `${where} over its disk quota (EDQUOT)`;
    default:
      return `${where} not writable: ${e.message}`;
  }
}

/** Makes sure `dir` is a folder this process can write in, before any work whose results would go there:
 * creates it (and missing parents), then creates and removes a file in it. Throws an Error that starts
 * with `what` and says what is wrong, e.g. "--out: cannot create the folder /mnt/ro/run: /mnt/ro is on a
 * read-only file system (EROFS)" (where mkdir -p reports a misleading ENOENT). */
export function proveWritableFolder(dir: string, what: string): void {
  const abs = path.resolve(dir);
  // The nearest part of the path that exists; the folders below it are created one at a time, so that a
  // failure names the folder that could not be written.
  const missing: string[] = [];
  let at = abs;
  for (;;) {
    let s: Stats | undefined;
    try {
      s = statSync(at);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') {
        // a file higher up: find it, to name it
      } else if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${what}: cannot use ${abs}: ${(e as Error).message}`);
    }
    if (s) {
      if (!s.isDirectory()) {
        if (at === abs) throw new Error(`${what}: cannot write to ${abs}: it is a ${fileKind(s)}, not a folder`);
        throw new Error(`${what}: cannot create the folder ${abs}: ${at} is a ${fileKind(s)}, not a folder`);
      }
      break;
    }
    missing.unshift(at);
    const up = path.dirname(at);
    if (up === at) break;
    at = up;
  }
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // made meanwhile
      throw new Error(`${what}: cannot create the folder ${abs}: ${why(e as NodeJS.ErrnoException, `${path.dirname(d)} is`)}`);
    }
  }
  const probe = path.join(abs, `.alexnet-write-test.${process.pid}.tmp`);
  try {
    const fd = openSync(probe, 'w');
    try {
      writeSync(fd, 'alexnet-cuda checks that it can write here');
    } finally {
      closeSync(fd);
    }
    rmSync(probe);
  } catch (e) {
    rmSync(probe, { force: true });
    throw new Error(`${what}: cannot write to ${abs}: ${why(e as NodeJS.ErrnoException, 'it is')}`);
  }
}
