/** The listing of an image folder in torchvision's layout (`root/<class>/<...>/<image>.jpg`): the classes,
 * every image file with the label of its class, and what was left out and why. ImageFolder reads through
 * it, and so does packing a folder into a store.
 *
 * - Classes are the root's subfolders (or symlinks to folders) sorted by code unit; a class's files are
 *   found recursively, each folder's entries sorted by code unit, hidden entries (".name") skipped. `limit`
 *   takes files round-robin over the classes (so they stay balanced), then back to that order.
 * - Every real file is listed once, with the label of the class folder it is really in. The real folders
 *   under the root are found first; a symlink to a folder is then followed only when that folder is not
 *   one of them and was not reached through another link already (folders are known by device and inode),
 *   and never into a folder that contains it (a loop). A symlink to a file is left out when that file is
 *   listed already (by real path). Each link not followed is reported in `problems`. (Hard links are not
 *   looked for: two names of one inode are two files here.) A dangling link with an image name is listed,
 *   as any file, and reported when it cannot be decoded.
 * - FIFOs, sockets and devices with an image name are reported and never opened (opening a FIFO blocks
 *   until someone writes to it).
 * - Names are read as bytes: a name that is not valid UTF-8 cannot be opened through a string path in
 *   Node (it would come back with U+FFFD in it and read as missing). A class folder with such a name is an
 *   error (class names are text: they label the outputs); a file or subfolder is reported, shown with
 *   \x escapes, and left out. */
import { isUtf8 } from 'node:buffer';
import type { Stats } from 'node:fs';
import { lstat, readdir, readlink, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe } from '../errors.js';
import { fileKind, type StatLike } from '../io/files.js';

export interface FolderProblem {
  path: string;
  reason: string;
}

export interface FolderListing {
  /** The root, absolute. */
  root: string;
  classes: string[];
  /** Every image file, absolute, by class and then by path. */
  files: string[];
  /** labels[i] is the class index of files[i]. */
  labels: Int32Array;
  /** What was left out of `files` and why, in listing order. */
  problems: FolderProblem[];
}

/** A listing error: the folder cannot be listed as an image folder (ImageFolder adds its name in front). */
export class FolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FolderError';
  }
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** A name for messages: the UTF-8 text, with each byte that is not part of valid UTF-8 as \xNN. */
export function escapeName(name: Buffer): string {
  let out = '';
  for (let i = 0; i < name.length; ) {
    const b = name[i];
    const len = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
    if (len && i + len <= name.length && isUtf8(name.subarray(i, i + len))) {
      out += name.subarray(i, i + len).toString('utf8');
      i += len;
    } else {
      out += `\\x${b.toString(16).padStart(2, '0')}`;
      i++;
    }
  }
  return out;
}

/** A folder's identity: the same folder reached by two paths has one. */
const idOf = (s: Stats) => `${s.dev}:${s.ino}`;

type Entry =
  | { kind: 'file'; name: string; path: string }
  | { kind: 'dir'; name: string; dir: Folder }
  | { kind: 'link'; name: string; path: string }
  | { kind: 'problem'; name: string; path: string; reason: string };

interface Folder {
  /** As listed (through links where it was reached through one). */
  path: string;
  /** Its real path. */
  real: string;
  id: string;
  /** Reached through a symlink (its files are not among the real files under the root). */
  linked: boolean;
  entries: Entry[];
}

/** What a FIFO, socket or device is, for messages; null for regular files, folders and links. */
function specialKind(d: StatLike): string | null {
  const k = fileKind(d);
  return k === 'file' || k === 'folder' || k === 'symbolic link' || k === 'unknown' ? null : k;
}

function specialReason(kind: string): string {
  return `a ${kind}, not a regular file: not opened${kind.startsWith('FIFO') ? ' (reading it would block)' : ''}`;
}

class Lister {
  /** Every folder listed so far (the real ones under the root first), by identity: the path it is listed as. */
  readonly folders = new Map<string, string>();
  /** Real paths of the files listed through links (and, once a link to a file is met, of all files). */
  private files: Map<string, string> | null = null;
  private readonly linkedFiles = new Map<string, string>();

  constructor(private readonly exts: readonly string[]) {}

  private isImage(name: string): boolean {
    return this.exts.includes(path.extname(name).toLowerCase());
  }

  /** A folder's entries, recursively, without following links (those are resolved in listing order by
   * `emit`, once every real folder is known). */
  async scan(dir: string, real: string, id: string, linked: boolean): Promise<Folder> {
    this.folders.set(id, dir);
    const entries: Entry[] = [];
    for (const d of await readdir(dir, { withFileTypes: true, encoding: 'buffer' })) {
      const raw = d.name;
      if (raw[0] === 0x2e) continue; // hidden
      if (!isUtf8(raw)) {
        const shown = escapeName(raw);
        const isDir = d.isDirectory() || d.isSymbolicLink();
        if (isDir || this.isImage(raw.toString('latin1')))
          entries.push({
            kind: 'problem',
            name: shown,
            path: path.join(dir, shown),
            reason: `the name is not valid UTF-8 (it is shown with \\x escapes): the ${d.isDirectory() ? 'folder' : 'file'} cannot be opened by name here; rename it to list ${d.isDirectory() ? 'its images' : 'it'}`,
          });
        continue;
      }
      const name = raw.toString('utf8');
      const full = path.join(dir, name);
      let kind: StatLike = d;
      if (fileKind(d) === 'unknown') {
        // the file system did not say what it is (DT_UNKNOWN): ask
        try {
          kind = await lstat(full);
        } catch {
          continue; // gone since readdir
        }
      }
      if (kind.isDirectory()) {
        let s: Stats;
        try {
          s = await stat(full);
        } catch {
          continue;
        }
        entries.push({ kind: 'dir', name, dir: await this.scan(full, path.join(real, name), idOf(s), linked) });
      } else if (kind.isSymbolicLink()) entries.push({ kind: 'link', name, path: full });
      else if (this.isImage(name)) {
        const special = specialKind(kind);
        entries.push(special ? { kind: 'problem', name, path: full, reason: specialReason(special) } : { kind: 'file', name, path: full });
      }
    }
    entries.sort((a, b) => byCodeUnit(a.name, b.name));
    return { path: dir, real, id, linked, entries };
  }

  /** The real path → listed path of every file listed so far, built when first needed (only a link to a
   * file needs it: most folders have none). */
  private listedFiles(roots: Folder[]): Map<string, string> {
    if (this.files) return this.files;
    const files = new Map(this.linkedFiles);
    const walk = (f: Folder) => {
      for (const e of f.entries)
        if (e.kind === 'file') files.set(path.join(f.real, e.name), e.path);
        else if (e.kind === 'dir') walk(e.dir);
    };
    roots.forEach(walk);
    this.files = files;
    return files;
  }

  /** Notes a file listed from outside the real folders under the root (through a link). */
  private note(realPath: string, listed: string): void {
    (this.files ?? this.linkedFiles).set(realPath, listed);
  }

  /** The files of `folder` in listing order, following links as the rules say. `ancestors` are the
   * identities of the folders that contain it (itself included); `roots` the real class folders. */
  async emit(folder: Folder, ancestors: Set<string>, roots: Folder[], out: string[], problems: FolderProblem[]): Promise<void> {
    for (const e of folder.entries) {
      if (e.kind === 'file') {
        if (folder.linked) this.note(path.join(folder.real, e.name), e.path);
        out.push(e.path);
      } else if (e.kind === 'problem') problems.push({ path: e.path, reason: e.reason });
      else if (e.kind === 'dir') await this.emit(e.dir, new Set(ancestors).add(e.dir.id), roots, out, problems);
      else await this.follow(e, ancestors, roots, out, problems);
    }
  }

  /** A symlink met in listing order: followed, listed or reported. */
  private async follow(e: { name: string; path: string }, ancestors: Set<string>, roots: Folder[], out: string[], problems: FolderProblem[]): Promise<void> {
    let s: Stats;
    try {
      s = await stat(e.path);
    } catch {
      if (this.isImage(e.name)) out.push(e.path); // dangling: listed, reported when decoded (as before)
      return;
    }
    let target = e.path;
    try {
      target = path.resolve(path.dirname(e.path), await readlink(e.path));
    } catch {
      /* shown as the link itself */
    }
    if (s.isDirectory()) {
      const id = idOf(s);
      if (ancestors.has(id)) problems.push({ path: e.path, reason: `a symbolic link to ${target}, a folder that contains it (a loop): not followed` });
      else if (this.folders.has(id))
        problems.push({ path: e.path, reason: `a symbolic link to ${target}, a folder listed already (as ${this.folders.get(id)}): not followed, so nothing is listed twice` });
      else {
        const linked = await this.scan(e.path, await realpath(e.path), id, true);
        await this.emit(linked, new Set(ancestors).add(id), roots, out, problems);
      }
      return;
    }
    if (!this.isImage(e.name)) return;
    const special = specialKind(s);
    if (special) {
      problems.push({ path: e.path, reason: specialReason(special) });
      return;
    }
    const realPath = await realpath(e.path);
    const listed = this.listedFiles(roots).get(realPath);
    if (listed !== undefined) {
      problems.push({ path: e.path, reason: `a symbolic link to ${target}, a file listed already (as ${listed}): left out, so nothing is listed twice` });
      return;
    }
    this.note(realPath, e.path);
    out.push(e.path);
  }
}

/** Lists an image folder; see the module's comment for the rules. Throws a FolderError when the root is
 * missing or not a folder, has no class subfolders or no images, when class folders hold no images (unless
 * `allowEmptyClasses`), or when a class folder's name is not valid UTF-8. */
export async function listImageFolder(
  root: string,
  opts: { extensions: readonly string[]; allowEmptyClasses?: boolean; limit?: number },
): Promise<FolderListing> {
  if (typeof root !== 'string' || root === '') throw new TypeError(`listImageFolder: expected root to be a folder path, got ${describe(root)}`);
  const { extensions, allowEmptyClasses = false, limit = Infinity } = opts ?? ({} as never);
  if (!Array.isArray(extensions) || extensions.length === 0 || !extensions.every((e) => typeof e === 'string' && /^\.[^./\\]+$/.test(e)))
    throw new TypeError(`listImageFolder: expected extensions to be a non-empty array like [".jpg", ".png"], got ${describe(extensions)}`);
  if (limit !== Infinity && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1))
    throw new TypeError(`listImageFolder: expected limit to be an integer ≥ 1, got ${describe(limit)}`);
  const exts = extensions.map((e) => e.toLowerCase());
  const abs = path.resolve(root);
  let s: Stats;
  try {
    s = await stat(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FolderError(code === 'ENOENT' ? `the folder ${abs} does not exist` : `cannot read ${abs}: ${(e as Error).message}`);
  }
  if (!s.isDirectory()) throw new FolderError(`expected ${abs} to be a folder with one subfolder per class, got a ${fileKind(s)}`);

  // The classes: subfolders, and symlinks to folders (resolved below like any link).
  const lister = new Lister(exts);
  const realRoot = await realpath(abs);
  const classDirs: { name: string; path: string; link: boolean }[] = [];
  let looseFiles = 0;
  for (const d of await readdir(abs, { withFileTypes: true, encoding: 'buffer' })) {
    const raw = d.name;
    if (raw[0] === 0x2e) continue;
    // by bytes: a name that is not UTF-8 must still be found to be a folder, to be refused as a class
    const isDir = d.isDirectory() || (d.isSymbolicLink() && (await stat(Buffer.concat([Buffer.from(abs + path.sep), raw])).then((x) => x.isDirectory(), () => false)));
    if (!isDir) {
      looseFiles++;
      continue;
    }
    if (!isUtf8(raw))
      throw new FolderError(`a class folder of ${abs} has a name that is not valid UTF-8 ("${escapeName(raw)}", shown with \\x escapes): class names must be text; rename it`);
    const name = raw.toString('utf8');
    classDirs.push({ name, path: path.join(abs, name), link: !d.isDirectory() });
  }
  if (classDirs.length === 0)
    throw new FolderError(
      `expected one subfolder per class in ${abs} (root/<class>/<image>.jpg), found ` + (looseFiles ? `${looseFiles} file(s) and no subfolders` : 'an empty folder'),
    );
  classDirs.sort((a, b) => byCodeUnit(a.name, b.name));
  const classes = classDirs.map((c) => c.name);

  // Every real folder first (the classes in parallel), so that no link can claim one of them; then the
  // files in listing order, links resolved as they come.
  const rootId = idOf(s);
  lister.folders.set(rootId, abs);
  const real = await Promise.all(classDirs.map(async (c) => (c.link ? null : lister.scan(c.path, path.join(realRoot, c.name), idOf(await stat(c.path)), false))));
  const roots = real.filter((f): f is Folder => f !== null);
  const problems: FolderProblem[] = [];
  const perClass: string[][] = [];
  for (const [i, c] of classDirs.entries()) {
    const out: string[] = [];
    const folder = real[i];
    // A class that is a symlink is a link like any other, seen from the root.
    const top: Folder = folder ?? { path: abs, real: realRoot, id: rootId, linked: false, entries: [{ kind: 'link', name: c.name, path: c.path }] };
    await lister.emit(top, new Set(folder ? [rootId, folder.id] : [rootId]), roots, out, problems);
    perClass.push(out);
  }

  const total = perClass.reduce((a, l) => a + l.length, 0);
  const also = problems.length ? ` (${problems.length} left out: ${problems[0].path}: ${problems[0].reason}${problems.length > 1 ? '; …' : ''})` : '';
  if (total === 0)
    throw new FolderError(`no images (${exts.join(', ')}) in the ${classes.length} class folder(s) of ${abs}: ${classes.slice(0, 5).join(', ')}${classes.length > 5 ? ', …' : ''}${also}`);
  const empty = classes.filter((_, c) => perClass[c].length === 0);
  if (empty.length && !allowEmptyClasses)
    throw new FolderError(
      `${empty.length} class folder(s) of ${abs} hold no images (${exts.join(', ')}): ${empty.slice(0, 5).join(', ')}` +
        `${empty.length > 5 ? ', …' : ''} (pass allowEmptyClasses: true to keep them as classes without images)${also}`,
    );
  // limit: round-robin over the classes, then back to source order
  let pick = perClass.map((l) => l.length);
  if (limit < total) {
    pick = perClass.map(() => 0);
    let left = limit;
    for (let r = 0; left > 0; r++)
      for (let c = 0; c < classes.length && left > 0; c++)
        if (r < perClass[c].length) {
          pick[c]++;
          left--;
        }
  }
  const files: string[] = [];
  const labels: number[] = [];
  perClass.forEach((l, c) => {
    for (let i = 0; i < pick[c]; i++) {
      files.push(l[i]);
      labels.push(c);
    }
  });
  return { root: abs, classes, files, labels: Int32Array.from(labels), problems };
}
