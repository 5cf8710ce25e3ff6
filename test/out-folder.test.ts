// Where a run writes (issue 21, defects 4 and 7): `train --out` (and train()'s checkpoint folder) is proven
// writable before the first step, with a message that says why not (a read-only parent is not "ENOENT …
// mkdir"); a run holds a lock on its --out folder, so a second run there stops at once and says which
// process holds it; a lock left by a dead process is taken over; the lock goes on normal exit, on errors
// and on SIGINT/SIGTERM.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { lockFolder, LOCK_FILE } from '../lib/io/lock.js';
import { proveWritableFolder } from '../lib/io/files.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(root, 'dist', 'cli.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'axn-out-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A process id that is not running: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

/** Whether `unshare -m` can mount a read-only tmpfs here (root with CAP_SYS_ADMIN, as in CI's container). */
const canMountReadOnly = (() => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'axn-ro-probe-'));
  const r = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o ro tmpfs "$0" && ! touch "$0/x" 2>/dev/null', dir], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  return r.status === 0;
})();

/** Runs `node args…` with a read-only file system mounted at `ro` (in a private mount namespace). */
function withReadOnly(ro: string, args: string[], timeout = 120_000) {
  mkdirSync(ro, { recursive: true });
  const r = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"', ro, process.execPath, ...args], { encoding: 'utf8', timeout, cwd: tmp });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

describe('proveWritableFolder', () => {
  it('creates the folder, writes and removes a file there, and says why it cannot', () => {
    const dir = path.join(tmp, 'a', 'b', 'c');
    proveWritableFolder(dir, '--out');
    expect(existsSync(dir)).toBe(true);
    expect(readdirSync(dir)).toEqual([]); // the probe is gone
    const file = path.join(tmp, 'plain-file');
    writeFileSync(file, 'x');
    expect(() => proveWritableFolder(file, '--out')).toThrow(`--out: cannot write to ${file}: it is a file, not a folder`);
    expect(() => proveWritableFolder(path.join(file, 'run'), '--out')).toThrow(`--out: cannot create the folder ${path.join(file, 'run')}: ${file} is a file, not a folder`);
  });
});

describe('lockFolder', () => {
  it('holds a lock file with the pid, host and start time; a second lock there is refused naming the holder; release removes it', () => {
    const dir = path.join(tmp, 'locked');
    mkdirSync(dir);
    const lock = lockFolder(dir, '--out');
    const file = path.join(dir, LOCK_FILE);
    const held = JSON.parse(readFileSync(file, 'utf8'));
    expect(held).toMatchObject({ pid: process.pid, host: os.hostname(), started: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    // another process is refused (this one holds it: a child sees a live holder)
    const script = `import { lockFolder } from ${JSON.stringify(path.join(root, 'dist', 'io', 'lock.js'))}; try { lockFolder(${JSON.stringify(dir)}, '--out'); console.log('took it'); } catch (e) { console.log(e.message); }`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.stdout).toContain(`--out ${dir} is in use by another run: process ${process.pid} on this host`);
    expect(r.stdout).toContain(`has held ${file} since ${held.started}`);
    // within the process, a second lock of the same folder is refused too (two trainings of one script)
    expect(() => lockFolder(dir, '--out')).toThrow(/is in use by another run: process \d+ on this host \(this process\)/);
    lock.release();
    expect(existsSync(file)).toBe(false);
    lock.release(); // idempotent
  });

  it('a stale lock from a dead process (or from an earlier boot, or a reused pid) is taken over', () => {
    const dir = path.join(tmp, 'stale');
    mkdirSync(dir);
    const file = path.join(dir, LOCK_FILE);
    const pid = deadPid();
    writeFileSync(file, JSON.stringify({ pid, host: os.hostname(), started: '2020-01-01T00:00:00.000Z', token: 'x' }));
    const notes: string[] = [];
    const lock = lockFolder(dir, '--out', (m) => notes.push(m));
    expect(JSON.parse(readFileSync(file, 'utf8')).pid).toBe(process.pid);
    expect(notes).toEqual([`--out ${dir}: took over the lock of process ${pid}, which is no longer running (started 2020-01-01T00:00:00.000Z)`]);
    lock.release();
    // our own pid but not our lock: a container restarted with the same pids
    writeFileSync(file, JSON.stringify({ pid: process.pid, host: os.hostname(), started: '2020-01-01T00:00:00.000Z', token: 'not-ours' }));
    lockFolder(dir, '--out').release();
    // a lock that is not ours at all is not touched
    writeFileSync(file, 'something else');
    expect(() => lockFolder(dir, '--out')).toThrow(`--out ${dir}: ${file} exists but is not an alexnet lock file; remove it if no run is using the folder`);
    // a lock from another host cannot be checked from here: refused, saying how to clear it
    writeFileSync(file, JSON.stringify({ pid: 1, host: 'elsewhere', started: '2020-01-01T00:00:00.000Z', token: 'y' }));
    expect(() => lockFolder(dir, '--out')).toThrow(`--out ${dir} is in use by another run: process 1 on host elsewhere (not this one: it cannot be checked from here; if that run is gone, remove ${file})`);
  });
});

describe('alexnet train --out', () => {
  const train = (out: string, extra: string[] = []) => ['train', '--limit', '640', '--test-limit', '100', '--batch-size', '64', '--device', 'cpu', '--no-progress', '--out', out, ...extra];

  it.skipIf(!canMountReadOnly)('on a read-only file system: refused before the first step, with a message that says so (not ENOENT)', () => {
    const ro = path.join(tmp, 'ro');
    const fresh = withReadOnly(ro, [CLI, ...train(path.join(ro, 'new', 'run'), ['--epochs', '1'])]);
    expect(fresh.code, fresh.err).toBe(1);
    expect(fresh.err).toContain(`alexnet: --out: cannot create the folder ${path.join(ro, 'new', 'run')}: ${ro} is on a read-only file system (EROFS)`);
    expect(fresh.out).not.toMatch(/epoch 1/);
    const there = withReadOnly(ro, [CLI, ...train(ro, ['--epochs', '1'])]);
    expect(there.code, there.err).toBe(1);
    expect(there.err).toContain(`alexnet: --out: cannot write to ${ro}: it is on a read-only file system (EROFS)`);
    expect(there.out).not.toMatch(/epoch 1/);
    // train() from a script: its checkpoint folder is proven writable before the first step
    const script = `
      import { createAlexNet, train, data } from ${JSON.stringify(path.join(root, 'dist', 'index.js'))};
      const model = createAlexNet({ arch: 'small', numClasses: 10, device: 'cpu' });
      let steps = 0;
      try {
        await train({ model, train: data.loadFashionMnist({ split: 'train', limit: 256 }), epochs: 1, batchSize: 64, lr: 0.01,
          checkpoint: ${JSON.stringify(path.join(ro, 'ckpt', 'checkpoint.safetensors'))}, onProgress: () => steps++ });
      } catch (e) { console.log(e.message); }
      console.log('steps', steps);`;
    const s = withReadOnly(ro, ['--input-type=module', '-e', script]);
    expect(s.out).toContain(`train: checkpoint: cannot create the folder ${path.join(ro, 'ckpt')}: ${ro} is on a read-only file system (EROFS)`);
    expect(s.out).toContain('steps 0');
  });

  it('a second run on the same --out stops at once naming the first; SIGINT and SIGTERM release the lock; a dead run\'s lock is taken over', async () => {
    const out = path.join(tmp, 'shared-run');
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const first = spawn(process.execPath, [CLI, ...train(out, ['--epochs', '100'])], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
      let firstOut = '';
      first.stdout.on('data', (d) => (firstOut += d));
      first.stderr.on('data', (d) => (firstOut += d));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => first.on('exit', (code, signal) => r({ code, signal })));
      // wait until it trains (it holds the lock from before it loads the data)
      for (let i = 0; i < 600 && !/training the small arch/.test(firstOut); i++) await new Promise((r) => setTimeout(r, 100));
      expect(firstOut).toMatch(/training the small arch/);
      expect(JSON.parse(readFileSync(path.join(out, LOCK_FILE), 'utf8')).pid).toBe(first.pid);
      const t0 = Date.now();
      const second = spawnSync(process.execPath, [CLI, ...train(out, ['--epochs', '1'])], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
      expect(second.status, second.stderr).toBe(1);
      expect(second.stderr).toContain(`alexnet: --out ${out} is in use by another run: process ${first.pid} on this host`);
      expect(second.stdout).not.toMatch(/training/);
      expect(Date.now() - t0).toBeLessThan(20_000);
      first.kill(sig);
      const { signal } = await exited;
      expect(signal, firstOut).toBe(sig); // ended by the signal, as without the handler
      expect(existsSync(path.join(out, LOCK_FILE)), `${sig}: the lock is released`).toBe(false);
    }
    // a lock left by a process that is gone (killed with SIGKILL, say): taken over, said so; a normal end releases it
    const pid = deadPid();
    writeFileSync(path.join(out, LOCK_FILE), JSON.stringify({ pid, host: os.hostname(), started: '2020-01-01T00:00:00.000Z', token: 'z' }));
    const third = spawnSync(process.execPath, [CLI, ...train(out, ['--epochs', '1'])], { cwd: tmp, encoding: 'utf8', timeout: 300_000 });
    expect(third.status, third.stderr).toBe(0);
    expect(third.stderr).toContain(`took over the lock of process ${pid}, which is no longer running`);
    expect(existsSync(path.join(out, LOCK_FILE))).toBe(false);
    // an error after the lock was taken releases it too
    const bad = spawnSync(process.execPath, [CLI, 'train', '--data', path.join(tmp, 'no-such-data'), '--device', 'cpu', '--out', out], { cwd: tmp, encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(existsSync(path.join(out, LOCK_FILE))).toBe(false);
  });
});
