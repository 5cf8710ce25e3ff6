/** Small checks on paths that come from users: what kind of file a path is, and refusing anything but a
 * regular file before it is opened (a FIFO blocks the reader until someone writes to it; a device or a
 * socket is not an image). */
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';

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
