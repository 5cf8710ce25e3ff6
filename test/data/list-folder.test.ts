// The listing of an image folder (lib/data/list-folder.ts), which ImageFolder and packing share: every real
// file once, with the label of the class folder it is really in; symlinks followed only to what is not
// listed already and never into an ancestor, each refusal reported; FIFOs, sockets and devices reported
// and never opened; names that are not UTF-8 reported or refused by name (issue 21).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageFolder } from '../../lib/data/image-folder.js';
import { listImageFolder } from '../../lib/data/list-folder.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'axn-list-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const EXT = ['.jpg', '.jpeg', '.png'];

/** A folder `name` under the test's base with `files` (relative paths; content irrelevant: nothing is decoded). */
function tree(name: string, files: string[]): string {
  const root = path.join(base, name);
  for (const f of files) {
    mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    writeFileSync(path.join(root, f), f);
  }
  return root;
}
const rel = (root: string, files: readonly string[]) => files.map((f) => path.relative(root, f));

describe('listImageFolder', () => {
  it('a symlink loop (train/a/loop -> ..) neither duplicates nor mislabels anything, and is reported', async () => {
    const files = [...Array.from({ length: 8 }, (_, i) => `a/${i}.png`), ...Array.from({ length: 8 }, (_, i) => `b/${i}.png`)];
    const root = tree('loop', files);
    symlinkSync('..', path.join(root, 'a', 'loop'));
    mkdirSync(path.join(root, 'b', 'sub'));
    writeFileSync(path.join(root, 'b', 'sub', 'x.png'), 'x');
    symlinkSync('..', path.join(root, 'b', 'sub', 'up')); // into its own class folder, one level up
    const l = await listImageFolder(root, { extensions: EXT });
    expect(l.root).toBe(root);
    expect(l.classes).toEqual(['a', 'b']);
    expect(rel(root, l.files)).toEqual([...files.slice(0, 8), ...files.slice(8), 'b/sub/x.png']);
    expect(Array.from(l.labels)).toEqual([...Array(8).fill(0), ...Array(9).fill(1)]);
    expect(l.problems).toEqual([
      { path: path.join(root, 'a', 'loop'), reason: `a symbolic link to ${root}, a folder that contains it (a loop): not followed` },
      { path: path.join(root, 'b', 'sub', 'up'), reason: `a symbolic link to ${path.join(root, 'b')}, a folder that contains it (a loop): not followed` },
    ]);
  });

  it("links into another class's folder are not followed (the images keep their own class); outside folders and files are, once", async () => {
    const root = tree('cross', ['a/1.png', 'b/1.png', 'b/sub/2.png', 'b/sub/3.jpg']);
    const outside = tree('outside', ['o1.png', 'deep/o2.png']);
    const loose = tree('loose', ['l.png']);
    symlinkSync(path.join(root, 'b'), path.join(root, 'a', 'b-all'));
    symlinkSync('../b/sub', path.join(root, 'a', 'b-sub'));
    symlinkSync('../b/1.png', path.join(root, 'a', 'b1.png')); // a file of class b
    symlinkSync(outside, path.join(root, 'a', 'ext'));
    symlinkSync(outside, path.join(root, 'b', 'ext-again')); // the same outside folder a second time
    symlinkSync(path.join(loose, 'l.png'), path.join(root, 'b', 'l.png'));
    symlinkSync(path.join(loose, 'l.png'), path.join(root, 'b', 'l2.png')); // the same outside file again
    symlinkSync(path.join(root, 'nowhere.png'), path.join(root, 'b', 'dangling.png')); // listed: reported when decoded, as before
    const l = await listImageFolder(root, { extensions: EXT });
    expect(rel(root, l.files)).toEqual(['a/1.png', 'a/ext/deep/o2.png', 'a/ext/o1.png', 'b/1.png', 'b/dangling.png', 'b/l.png', 'b/sub/2.png', 'b/sub/3.jpg']);
    expect(Array.from(l.labels)).toEqual([0, 0, 0, 1, 1, 1, 1, 1]);
    expect(l.problems.map((p) => [path.relative(root, p.path), p.reason])).toEqual([
      ['a/b-all', `a symbolic link to ${path.join(root, 'b')}, a folder listed already (as ${path.join(root, 'b')}): not followed, so nothing is listed twice`],
      ['a/b-sub', `a symbolic link to ${path.join(root, 'b', 'sub')}, a folder listed already (as ${path.join(root, 'b', 'sub')}): not followed, so nothing is listed twice`],
      ['a/b1.png', `a symbolic link to ${path.join(root, 'b', '1.png')}, a file listed already (as ${path.join(root, 'b', '1.png')}): left out, so nothing is listed twice`],
      ['b/ext-again', `a symbolic link to ${outside}, a folder listed already (as ${path.join(root, 'a', 'ext')}): not followed, so nothing is listed twice`],
      ['b/l2.png', `a symbolic link to ${path.join(loose, 'l.png')}, a file listed already (as ${path.join(root, 'b', 'l.png')}): left out, so nothing is listed twice`],
    ]);
  });

  it('FIFOs, sockets and devices are reported at once and never opened', async () => {
    const root = tree('special', ['a/1.png', 'b/1.png']);
    expect(spawnSync('mkfifo', [path.join(root, 'a', 'pipe.jpg')]).status).toBe(0);
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(path.join(root, 'b', 'sock.png'), r));
    symlinkSync('/dev/null', path.join(root, 'b', 'null.jpg'));
    expect(spawnSync('mkfifo', [path.join(root, 'a', 'pipe.txt')]).status).toBe(0); // not an image name: ignored like any .txt
    try {
      const l = await Promise.race([
        listImageFolder(root, { extensions: EXT }),
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error('the listing blocked')), 10_000)),
      ]);
      expect(rel(root, l.files)).toEqual(['a/1.png', 'b/1.png']);
      expect(l.problems.map((p) => [path.relative(root, p.path), p.reason])).toEqual([
        ['a/pipe.jpg', 'a FIFO (named pipe), not a regular file: not opened (reading it would block)'],
        ['b/null.jpg', 'a character device, not a regular file: not opened'],
        ['b/sock.png', 'a socket, not a regular file: not opened'],
      ]);
    } finally {
      server.close();
    }
  });

  it('names that are not UTF-8: a class folder is an error that names the folder, a file or subfolder is reported', async () => {
    const root = tree('utf8', ['a/1.png', 'b/1.png']);
    const raw = (...parts: (string | number[])[]) => Buffer.concat([Buffer.from(root), ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p)))]);
    writeFileSync(raw('/a/', [0x78, 0xff], '.png'), 'x'); // "x\xff.png"
    mkdirSync(raw('/b/', [0x64, 0xe9])); // a Latin-1 "dé"
    writeFileSync(raw('/b/', [0x64, 0xe9], '/2.png'), 'x');
    writeFileSync(raw('/b/', [0xfe], '.txt'), 'x'); // not an image name: ignored
    const l = await listImageFolder(root, { extensions: EXT });
    expect(rel(root, l.files)).toEqual(['a/1.png', 'b/1.png']);
    expect(l.problems).toEqual([
      { path: path.join(root, 'a', 'x\\xff.png'), reason: `the name is not valid UTF-8 (it is shown with \\x escapes): the file cannot be opened by name here; rename it to list it` },
      { path: path.join(root, 'b', 'd\\xe9'), reason: `the name is not valid UTF-8 (it is shown with \\x escapes): the folder cannot be opened by name here; rename it to list its images` },
    ]);
    mkdirSync(raw('/c', [0xff]));
    writeFileSync(raw('/c', [0xff], '/1.png'), 'x');
    await expect(listImageFolder(root, { extensions: EXT })).rejects.toThrow(
      `a class folder of ${root} has a name that is not valid UTF-8 ("c\\xff", shown with \\x escapes): class names must be text; rename it`,
    );
    await expect(ImageFolder.open(root)).rejects.toThrow(`ImageFolder: a class folder of ${root} has a name that is not valid UTF-8`);
  });

  it('limit takes files round-robin over the classes; classes and files sorted by code unit', async () => {
    const root = tree('limit', ['b/2.png', 'b/10.png', 'B/1.png', 'a/x/1.png', 'a/0.png', 'a/z.png', 'c/1.JPG']);
    const all = await listImageFolder(root, { extensions: EXT });
    expect(all.classes).toEqual(['B', 'a', 'b', 'c']);
    expect(rel(root, all.files)).toEqual(['B/1.png', 'a/0.png', 'a/x/1.png', 'a/z.png', 'b/10.png', 'b/2.png', 'c/1.JPG']);
    const some = await listImageFolder(root, { extensions: EXT, limit: 6 });
    expect(rel(root, some.files)).toEqual(['B/1.png', 'a/0.png', 'a/x/1.png', 'b/10.png', 'b/2.png', 'c/1.JPG']);
    expect(Array.from(some.labels)).toEqual([0, 1, 1, 2, 2, 3]);
    await expect(listImageFolder(root, { extensions: [] })).rejects.toThrow(/expected extensions to be a non-empty array like \[".jpg", ".png"\], got \[\]/);
    await expect(listImageFolder(root, { extensions: EXT, limit: 0 })).rejects.toThrow(/expected limit to be an integer ≥ 1, got 0/);
  });
});

describe('ImageFolder reports what the listing left out', () => {
  it('through onSkip (which the CLI prints), and in problems', async () => {
    const root = tree('reported', ['a/1.png', 'b/1.png']);
    symlinkSync('..', path.join(root, 'a', 'loop'));
    const seen: { path: string; reason: string }[] = [];
    const f = await ImageFolder.open(root, { onSkip: (s) => seen.push(s) });
    expect(f.files.length).toBe(2);
    expect(f.problems).toEqual([{ path: path.join(root, 'a', 'loop'), reason: expect.stringMatching(/a loop/) }]);
    expect(seen).toEqual(f.problems);
    expect(f.skipped).toEqual([]); // not decode failures
    // without onSkip: a process warning, never silence
    const warned: string[] = [];
    const onWarning = (w: Error) => warned.push(w.message);
    process.on('warning', onWarning);
    try {
      await ImageFolder.open(root);
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warned).toEqual([`ImageFolder: ${path.join(root, 'a', 'loop')}: a symbolic link to ${root}, a folder that contains it (a loop): not followed`]);
  });
});
