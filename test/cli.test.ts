// The `alexnet` command end to end, as a user runs it (the compiled dist/cli.js; test/setup-dist.ts
// compiles lib/ first): info, train (short), eval (centre crop and 10-crop), predict, and bad input.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { makeImageTree } from './data/helpers/image-tree.js';

const photos: {
  makePhotoFolder: (out: string, o: object) => Promise<unknown>;
  splitTrainTest: (root: string, out: string, every?: number) => string;
  skimageDataDir: () => string | null;
} = await import('../bench/photos.mjs');

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(root, 'dist', 'cli.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'axn-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function alexnet(args: string[], timeout = 300_000) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout, cwd: tmp });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('alexnet CLI', () => {
  it('info names the backend and why CUDA is or is not there', () => {
    const r = alexnet(['info']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/alexnet-cuda \d+\.\d+\.\d+ \(addon built with (cmake-js|node-gyp)\)/);
    expect(r.out).toMatch(/CPU: \d+ threads, GEMM: \w+/);
    expect(r.out).toMatch(/CUDA: (runtime|not available: .+)/);
  });

  it('train → eval → predict on Fashion-MNIST', async () => {
    const out = path.join(tmp, 'run');
    // 40 steps: a warm-up over 4, then the cosine down to ~0 (the epoch's line shows the last step's rate)
    const t = alexnet(['train', '--limit', '2560', '--epochs', '1', '--dropout', '0', '--out', out, '--no-progress', '--device', 'cpu', '--schedule', 'cosine', '--warmup-steps', '4']);
    expect(t.code, t.err).toBe(0);
    expect(t.out).toMatch(/epoch 1: train loss [\d.]+, train acc [\d.]+%, test loss [\d.]+, test top-1 ([\d.]+)%/);
    expect(Number(/epoch 1: .*, lr ([\d.e-]+),/.exec(t.out)?.[1])).toBeCloseTo((0.02 * (1 + Math.cos((Math.PI * 35) / 36))) / 2, 7);
    const acc = Number(/test top-1 ([\d.]+)%, top-5/.exec(t.out)![1]);
    expect(acc).toBeGreaterThan(40); // 2,560 images, one epoch; chance is 10 %
    for (const f of ['weights.safetensors', 'checkpoint.safetensors', 'history.json', 'curve.png', 'conv1-filters.png'])
      expect(existsSync(path.join(out, f)), f).toBe(true);
    const png = await sharp(path.join(out, 'curve.png')).metadata();
    expect([png.format, png.width, png.height]).toEqual(['png', 800, 450]);

    const e = alexnet(['eval', '--weights', path.join(out, 'weights.safetensors'), '--device', 'cpu']);
    expect(e.code, e.err).toBe(0);
    const m = /9988 images: top-1 ([\d.]+)%, top-5 ([\d.]+)%/.exec(e.out);
    expect(m, e.out).not.toBeNull();
    expect(Number(m![1])).toBeCloseTo(acc, 1); // the same weights on the same test set

    // predict: two real Fashion-MNIST test images written as PNG/JPEG, and a broken file
    const { data } = await import('../lib/index.js');
    const raw = await data.loadFashionMnistRaw('test');
    const files: string[] = [];
    for (const i of [0, 1]) {
      const f = path.join(tmp, `img${i}.${i ? 'jpg' : 'png'}`);
      await sharp(Buffer.from(raw.pixels.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).toFile(f);
      files.push(f);
    }
    const bad = path.join(tmp, 'broken.jpg');
    writeFileSync(bad, 'not an image');
    const p = alexnet(['predict', '--weights', path.join(out, 'weights.safetensors'), '--device', 'cpu', '--top', '2', ...files, bad]);
    expect(p.code).toBe(1); // one file failed
    expect(p.err).toMatch(/broken\.jpg: could not read it/);
    const classes = data.FASHION_MNIST_CLASSES;
    for (const f of files) expect(p.out).toMatch(new RegExp(`${path.basename(f)}: (${classes.join('|')}) [\\d.]+%, (${classes.join('|')}) [\\d.]+%`));
  });

  it('eval with the paper\'s 10-crop on an image folder', async () => {
    const tree = await makeImageTree({ perClass: 8, width: 48, height: 40 });
    const folder = path.join(tmp, 'folder');
    const { cpSync } = await import('node:fs');
    cpSync(tree.root, path.join(folder, 'train'), { recursive: true });
    cpSync(tree.root, path.join(folder, 'test'), { recursive: true });
    const out = path.join(tmp, 'run-folder');
    const t = alexnet(['train', '--data', folder, '--epochs', '1', '--batch-size', '8', '--out', out, '--no-progress', '--device', 'cpu']);
    expect(t.code, t.err).toBe(0);
    const w = path.join(out, 'weights.safetensors');
    const centre = alexnet(['eval', '--weights', w, '--data', path.join(folder, 'test'), '--device', 'cpu']);
    expect(centre.code, centre.err).toBe(0);
    expect(centre.out).toMatch(/24 images: top-1 [\d.]+%, top-5 100.00%/); // 3 classes: top-5 is everything
    const ten = alexnet(['eval', '--weights', w, '--data', path.join(folder, 'test'), '--ten-crop', '--device', 'cpu']);
    expect(ten.code, ten.err).toBe(0);
    expect(ten.out).toMatch(/24 images: top-1 [\d.]+%, top-5 100.00% \(10-crop\)/);
    // 10-crop goes through the model a batch's worth of crops at a time: the same result in chunks of
    // one image (10 crops) as of ten.
    const tenSmall = alexnet(['eval', '--weights', w, '--data', path.join(folder, 'test'), '--ten-crop', '--batch-size', '10', '--device', 'cpu']);
    expect(tenSmall.code, tenSmall.err).toBe(0);
    expect(tenSmall.out).toBe(ten.out);
    // The root that `train --data` takes means its test split for `eval --data` too (not train/ and
    // test/ as two classes).
    const rootEval = alexnet(['eval', '--weights', w, '--data', folder, '--device', 'cpu']);
    expect(rootEval.code, rootEval.err).toBe(0);
    expect(rootEval.err).toMatch(/evaluating .*test \(the test split of /);
    expect(rootEval.out).toBe(centre.out);
    // Test classes other than the training classes, or a single class, are refused by train.
    const { renameSync } = await import('node:fs');
    const odd = path.join(tmp, 'odd');
    cpSync(folder, odd, { recursive: true });
    renameSync(path.join(odd, 'test', tree.classes[0]), path.join(odd, 'test', 'zzz-other'));
    const mism = alexnet(['train', '--data', odd, '--epochs', '1', '--batch-size', '8', '--out', path.join(tmp, 'odd-run'), '--no-progress', '--device', 'cpu']);
    expect(mism.code).toBe(1);
    expect(mism.err).toMatch(/the test classes \(.*zzz-other\) are not the training classes/);
    const one = path.join(tmp, 'one');
    for (const split of ['train', 'test']) cpSync(path.join(folder, split, tree.classes[0]), path.join(one, split, tree.classes[0]), { recursive: true });
    const single = alexnet(['train', '--data', one, '--epochs', '1', '--batch-size', '8', '--out', path.join(tmp, 'one-run'), '--no-progress', '--device', 'cpu']);
    expect(single.code).toBe(1);
    expect(single.err).toMatch(/has 1 class .*: a classifier needs at least 2/);
    // A batch larger than the data: an error, not "train loss NaN … 0 img/s" and untrained weights.
    const big = alexnet(['train', '--limit', '10', '--epochs', '1', '--out', path.join(tmp, 'big-run'), '--no-progress', '--device', 'cpu']);
    expect(big.code).toBe(1);
    expect(big.err).toMatch(/the batch size 64 is larger than the training set \(10 images\)/);
    rmSync(tree.root, { recursive: true, force: true });
  });

  it('predict refuses a FIFO, a socket or a device at once (never opens it) and prints the other images\' results', async () => {
    const { createAlexNet } = await import('../lib/index.js');
    const w = path.join(tmp, 'untrained.safetensors');
    const m = createAlexNet({ arch: 'small', numClasses: 3, dropout: 0 });
    await m.saveWeights(w, { classes: ['x', 'y', 'z'], input: { side: 28, mean: [0.5], std: [0.25] } });
    m.dispose();
    const img = (n: string) => path.join(tmp, n);
    for (const n of ['before.png', 'after.png']) await sharp({ create: { width: 30, height: 30, channels: 3, background: { r: 9, g: 99, b: 199 } } }).png().toFile(img(n));
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [img('pipe.png')]);
    const { symlinkSync } = await import('node:fs');
    symlinkSync('/dev/zero', img('zero.jpg'));
    const t0 = Date.now();
    const p = alexnet(['predict', '--weights', w, '--device', 'cpu', img('before.png'), img('pipe.png'), img('zero.jpg'), img('after.png')], 60_000);
    expect(p.code, p.err).toBe(1); // not killed by the timeout: it did not hang
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(p.err).toContain(`${img('pipe.png')}: could not read it (expected a regular file, got a FIFO (named pipe)`);
    expect(p.err).toContain(`${img('zero.jpg')}: could not read it (expected a regular file, got a character device)`);
    expect(p.out).toMatch(/before\.png: [xyz] [\d.]+%/);
    expect(p.out).toMatch(/after\.png: [xyz] [\d.]+%/);
  });

  it.skipIf(!photos.skimageDataDir())('pack a folder of real photos, then train the paper arch on it, eval (centre and 10-crop) and predict from the store', async () => {
    const src = path.join(tmp, 'photos');
    await photos.makePhotoFolder(path.join(tmp, 'photos-all'), { perClass: 5, classes: 3 });
    photos.splitTrainTest(path.join(tmp, 'photos-all'), src, 5); // 12 train, 3 test
    const packed = path.join(tmp, 'packed');
    const p = alexnet(['pack', src, packed, '--workers', '2', '--no-progress']);
    expect(p.code, p.err).toBe(0);
    expect(p.out).toMatch(/wrote .*train\.axpk: 12 images in 3 classes, [\d.]+ MiB, jpeg q90, short side 256; 0 skipped/);
    expect(p.out).toMatch(/wrote .*test\.axpk: 3 images in 3 classes/);
    const out = path.join(tmp, 'run-packed');
    const t = alexnet(['train', '--data', packed, '--arch', 'paper', '--epochs', '1', '--batch-size', '4', '--limit', '8', '--device', 'cpu', '--out', out, '--no-progress']);
    expect(t.code, t.err).toBe(0);
    expect(t.out).toMatch(/training the paper arch/);
    expect(t.out).toMatch(/data: packed data set .*\(8 train \/ 3 test; JPEGs decoded by \d+ native threads, augmented on the CPU\)/);
    expect(t.out).toMatch(/epoch 1: train loss [\d.]+, train acc [\d.]+%, test loss [\d.]+, test top-1 [\d.]+%/);
    const w = path.join(out, 'weights.safetensors');
    expect(existsSync(w)).toBe(true);
    const e = alexnet(['eval', '--weights', w, '--data', packed, '--device', 'cpu', '--no-progress']);
    expect(e.code, e.err).toBe(0);
    expect(e.out).toMatch(/^3 images: top-1 [\d.]+%, top-5 [\d.]+%, loss [\d.]+$/m);
    const e10 = alexnet(['eval', '--weights', w, '--data', path.join(packed, 'test.axpk'), '--ten-crop', '--device', 'cpu', '--no-progress']);
    expect(e10.code, e10.err).toBe(0);
    expect(e10.out).toMatch(/^3 images: top-1 [\d.]+%, top-5 [\d.]+% \(10-crop\)$/m);
    const pr = alexnet(['predict', '--weights', w, '--data', path.join(packed, 'test.axpk'), '--device', 'cpu', '--top', '2']);
    expect(pr.code, pr.err).toBe(0);
    expect(pr.out.trim().split('\n')).toHaveLength(3);
    expect(pr.out).toMatch(/^astronaut\/0004\.jpg: \w+ [\d.]+%, \w+ [\d.]+%$/m);
  });

  it('a time limit that ends a cosine run before its decay does says so', () => {
    const t = alexnet(['train', '--limit', '640', '--test-limit', '200', '--epochs', '3', '--time-limit', '0.01', '--schedule', 'cosine', '--warmup-steps', '2', '--out', path.join(tmp, 'tl'), '--no-progress', '--device', 'cpu']);
    expect(t.code, t.err).toBe(0);
    expect(t.err).toMatch(/warning: the time limit \(0\.01 min\) ended the run after 1 of 3 epochs, before the cosine schedule's end \(its last lr [\d.e-]+\): --resume with a larger --time-limit finishes it/);
  });

  it('bad input gets a clear message and a non-zero exit, not a stack trace', () => {
    const r1 = alexnet(['train', '--epochs', 'zero']);
    expect(r1.code).not.toBe(0);
    expect(r1.err).toMatch(/--epochs must be a positive integer, got "zero"/);
    const r2 = alexnet(['train', '--data', path.join(tmp, 'nowhere'), '--device', 'cpu']);
    expect(r2.code).toBe(1);
    expect(r2.err).toMatch(/expected an image folder with train\/ and test\/ \(or val\/\) inside/);
    const r3 = alexnet(['eval', '--weights', path.join(tmp, 'missing.safetensors')]);
    expect(r3.code).toBe(1);
    expect(r3.err).toMatch(/alexnet: could not read .*missing\.safetensors/);
    expect(r3.err).not.toMatch(/at .*\.js:\d+/);
    const r4 = alexnet(['train', '--warmup-steps', '3', '--out', path.join(tmp, 'r4')]);
    expect(r4.code).toBe(1);
    expect(r4.err).toMatch(/--warmup-steps and --min-lr belong to --schedule cosine, this run's schedule is plateau/);
    expect(r4.err).not.toMatch(/at .*\.js:\d+/);
    const r5 = alexnet(['train', '--schedule', 'cosine', '--lr', '0.01', '--min-lr', '0.1', '--out', path.join(tmp, 'r5')]);
    expect(r5.code).toBe(1);
    expect(r5.err).toMatch(/--min-lr must be at most --lr \(0\.01\), got 0\.1/);
  });
});
