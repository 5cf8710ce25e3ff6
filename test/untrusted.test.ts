// Untrusted weights files (issue 21): what a file's metadata says about the model is checked against the
// tensors the file holds before anything is allocated, so metadata cannot make `predict` or `eval` build a
// model larger than the file; and an allocation that does not fit (asked for by a script) is an error that
// names the parameter and its size. The memory-bounded cases run under `ulimit -v`: a clear error, never a
// kill.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { createAlexNet, readSafetensors, writeSafetensors, type Arch } from '../lib/index.js';
import { alexnetParameterShapes } from '../lib/models/alexnet.js';
import { modelSpecFromWeights } from '../lib/models/from-weights.js';
import { underLimit as runUnderLimit } from './helpers/limit.js';

const underLimit = (args: string[], timeout?: number) => runUnderLimit(args, tmp, timeout);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(root, 'dist', 'cli.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'axn-untrusted-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A small-arch weights file as `alexnet train` writes it, then with its metadata "config" edited. */
async function weightsWithConfig(name: string, edit: (cfg: Record<string, unknown>) => void): Promise<string> {
  const honest = path.join(tmp, 'honest.safetensors');
  const model = createAlexNet({ arch: 'small', numClasses: 10, dropout: 0, seed: 1 });
  await model.saveWeights(honest, { classes: Array.from({ length: 10 }, (_, i) => `c${i}`), input: { side: 28, mean: [0.286], std: [0.353] } });
  model.dispose();
  const f = await readSafetensors(honest);
  const cfg = JSON.parse(f.metadata.config);
  edit(cfg);
  const file = path.join(tmp, name);
  writeSafetensors(file, f.tensors, { ...f.metadata, config: JSON.stringify(cfg) });
  return file;
}

describe('a weights file\'s metadata is checked against its tensors before any model is built', () => {
  it('predict with "config": {"hidden": 60000 | 100000} in a 2.4 MB file: an error naming the file and the field, under a memory limit, not a kill', async () => {
    const img = path.join(tmp, 'img.png');
    await sharp({ create: { width: 28, height: 28, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png().toFile(img);
    const ok = await weightsWithConfig('ok.safetensors', () => {});
    const good = underLimit([CLI, 'predict', '--weights', ok, '--device', 'cpu', img]);
    expect(good.signal, good.err).toBeNull();
    expect(good.code, good.err).toBe(0); // the limit leaves room for the honest file
    expect(good.out).toMatch(/img\.png: c\d [\d.]+%/);
    for (const hidden of [60000, 100000]) {
      const lying = await weightsWithConfig(`hidden-${hidden}.safetensors`, (c) => (c.hidden = hidden));
      for (const cmd of [['predict', '--weights', lying, '--device', 'cpu', img], ['eval', '--weights', lying, '--device', 'cpu']]) {
        const t0 = Date.now();
        const r = underLimit([CLI, ...cmd]);
        expect(r.signal, `${cmd[0]} hidden ${hidden}: killed? ${r.err}`).toBeNull();
        expect(r.code, r.err).toBe(1);
        expect(r.err).toContain(lying);
        expect(r.err).toMatch(new RegExp(`metadata "config" says hidden ${hidden}, but its tensor "classifier\\.1\\.weight" has shape \\[512, 256\\]`));
        expect(r.err).not.toMatch(/at .*\.js:\d+/);
        expect(Date.now() - t0).toBeLessThan(30_000); // refused, not built
      }
    }
  });

  it('every field the metadata gives is compared with the tensors, and a wrong value names the field', async () => {
    const spec = async (edit: (c: Record<string, unknown>) => void, opts = {}) => {
      const file = await weightsWithConfig('edited.safetensors', edit);
      const f = await readSafetensors(file);
      return () => modelSpecFromWeights(file, f, opts);
    };
    const ok = (await spec(() => {}))();
    expect(ok.options).toEqual({ arch: 'small', numClasses: 10, inChannels: 1, groups: 1, hidden: 512 });
    expect(ok.parameters).toBe(createAlexNet({ arch: 'small', numClasses: 10 }).numParameters);
    expect(ok.classes).toHaveLength(10);
    expect(ok.input).toEqual({ side: 28, mean: [0.286], std: [0.353] });
    expect(await spec((c) => (c.numClasses = 1000))).toThrow(/edited\.safetensors: metadata "config" says numClasses 1000, but its tensor "classifier\.6\.weight" has shape \[10, 512\]/);
    expect(await spec((c) => (c.inChannels = 3))).toThrow(/metadata "config" says inChannels 3, but its tensor "features\.0\.weight" has shape \[32, 1, 5, 5\]/);
    expect(await spec((c) => (c.arch = 'paper'))).toThrow(/edited\.safetensors: the paper arch \(from metadata "config"\) needs a tensor "features\.0\.weight" of shape \[96, 1, 11, 11\]; the file's has shape \[32, 1, 5, 5\]/);
    expect(await spec((c) => (c.arch = 'resnet'))).toThrow(/metadata "config" field "arch" must be "paper", "torchvision" or "small", got "resnet"/);
    expect(await spec((c) => (c.hidden = 'wide'))).toThrow(/metadata "config" field "hidden" must be an integer ≥ 1, got "wide"/);
    expect(await spec((c) => (c.groups = 2))).toThrow(/metadata "config" field "groups" applies to the paper arch only, got 2 with the small arch/);
    expect(await spec(() => {}, { arch: 'torchvision', archFrom: '--arch' })).toThrow(/the torchvision arch \(from --arch\) needs a tensor "features\.0\.weight" of shape \[64, 1, 11, 11\]/);
    // tensors missing or extra
    const f = await readSafetensors(path.join(tmp, 'ok.safetensors'));
    const fewer = new Map(f.tensors);
    fewer.delete('classifier.4.bias');
    expect(() => modelSpecFromWeights('x.safetensors', { tensors: fewer, metadata: f.metadata })).toThrow(/x\.safetensors: the small arch \(from metadata "config"\) needs a tensor "classifier\.4\.bias" of shape \[512\]; the file has none/);
    const more = new Map(f.tensors);
    more.set('classifier.7.weight', { dtype: 'F32', shape: [2], data: new Float32Array(2) });
    expect(() => modelSpecFromWeights('x.safetensors', { tensors: more, metadata: f.metadata })).toThrow(/x\.safetensors: tensor "classifier\.7\.weight" is not a parameter of the small arch \(from metadata "config"\)/);
    // the other metadata: classes and input
    const md = (k: string, v: string) => () => modelSpecFromWeights('x.safetensors', { tensors: f.tensors, metadata: { ...f.metadata, [k]: v } });
    expect(md('classes', JSON.stringify(['a', 'b']))).toThrow(/x\.safetensors: metadata "classes" should list 10 class names \(the tensors' classes\), got \["a","b"\]/);
    expect(md('input', JSON.stringify({ side: 100000, mean: [0.5], std: [0.5] }))).toThrow(/x\.safetensors: metadata "input" field "side" must be an integer from 1 to 1024, got 100000/);
    expect(md('input', JSON.stringify({ side: 28, mean: [0.5, 0.5], std: [0.5] }))).toThrow(/metadata "input" field "mean" must hold 1 number \(one per input channel\) or 1, got \[0.5, 0.5\]/);
    expect(md('config', '{"hidden": ')).toThrow(/x\.safetensors: metadata "config" is not valid JSON/);
  });

  it('without metadata (a torch.save\'d state_dict) the model is what the tensors say', async () => {
    for (const arch of ['paper', 'torchvision', 'small'] as Arch[]) {
      const shapes = alexnetParameterShapes({ arch, numClasses: 7, inChannels: 3, groups: 1, hidden: 64 });
      const tensors = new Map(shapes.map(([n, s]) => [n, { dtype: 'F32' as const, shape: s, data: new Float32Array(0) }]));
      const s = modelSpecFromWeights('x.pth', { tensors, metadata: {} });
      expect(s.options).toEqual({ arch, numClasses: 7, inChannels: 3, groups: 1, hidden: arch === 'small' ? 64 : 512 }); // the paper and torchvision archs do not use hidden
    }
    const two = alexnetParameterShapes({ arch: 'paper', numClasses: 7, inChannels: 3, groups: 2, hidden: 4096 });
    const s = modelSpecFromWeights('x.pth', { tensors: new Map(two.map(([n, sh]) => [n, { dtype: 'F32' as const, shape: sh, data: new Float32Array(0) }])), metadata: {} });
    expect(s.options.groups).toBe(2);
  });

  it('the parameter shapes computed without building are the built models\' own', () => {
    const cases = [
      { arch: 'paper' as const, numClasses: 10, inChannels: 3, groups: 1 as const, hidden: 512 },
      { arch: 'paper' as const, numClasses: 5, inChannels: 1, groups: 2 as const, hidden: 512 },
      { arch: 'torchvision' as const, numClasses: 1000, inChannels: 3, groups: 1 as const, hidden: 512 },
      { arch: 'small' as const, numClasses: 10, inChannels: 1, groups: 1 as const, hidden: 96 },
    ];
    for (const c of cases) {
      const m = createAlexNet({ ...c, dropout: 0 });
      expect(alexnetParameterShapes(c), JSON.stringify(c)).toEqual(m.namedParameters().map(([n, p]) => [n, [...p.value.shape]]));
      m.dispose();
    }
  });
});

describe('an allocation that does not fit names what asked for it and how much', () => {
  it('createAlexNet({ hidden: 100000 }) under a memory limit: the parameter, its shape and bytes; no kill, nothing left allocated', () => {
    const script = `
      import { createAlexNet, memoryStats } from ${JSON.stringify(path.join(root, 'dist', 'index.js'))};
      try {
        createAlexNet({ arch: 'small', numClasses: 10, hidden: 100000 });
        console.log('built');
      } catch (e) {
        console.log(e.message);
        console.log('live tensors', memoryStats().tensors.cpu);
      }`;
    const r = underLimit(['--input-type=module', '-e', script]);
    expect(r.signal, r.err).toBeNull();
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(
      /createAlexNet: out of memory allocating "classifier\.4\.weight" \[100000, 100000\] \(40000000000 bytes, 37\.3 GiB\) on cpu; the small arch with hidden 100000 has 10\.\d+ G parameters \(\d+\.\d GiB\): host: out of memory allocating 40000000000 bytes/,
    );
    expect(r.out).toMatch(/live tensors 0/);
  });
});
