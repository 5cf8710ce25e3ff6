// PyTorch checkpoints read without Python (lib/io/pth.ts): torch.save'd state_dicts written here by
// Debian's PyTorch — torchvision's AlexNet with random weights, strided and shared-storage views — load
// and give PyTorch's logits; the untrusted-input cases (a pickle that would run os.system, other dtypes,
// the legacy format, truncated and non-zip files) get clear errors; `alexnet convert` writes safetensors.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAlexNet, data, parsePth, readPth, readSafetensors, Tensor } from '../dist/index.js';
import { makeImageTree } from './data/helpers/image-tree.js';
import { hasTorch, runPython } from './helpers/torch.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'axn-pth-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const f = (name: string) => path.join(tmp, name);

const MAKE = String.raw`
import os, sys, torch, torchvision
out = sys.argv[1]
torch.manual_seed(int(sys.argv[2]))
m = torchvision.models.alexnet(num_classes=10).eval()
for p in m.parameters():
    torch.nn.init.uniform_(p, -0.05, 0.05)
torch.save(m.state_dict(), os.path.join(out, "tv.pth"))
x = torch.rand(2, 3, 224, 224)
with torch.no_grad():
    y = m(x)
torch.save({"x": x, "logits": y}, os.path.join(out, "ref.pth"))
base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
torch.save({"t": base.t(), "rows": base[1:3], "col": base[:, 2], "base": base, "scalar": torch.tensor(3.5)}, os.path.join(out, "views.pth"))
torch.save({"w": torch.zeros(3, dtype=torch.float64)}, os.path.join(out, "f64.pth"))
torch.save({"w": torch.ones(3)}, os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)
torch.save({"state_dict": m.state_dict(), "epoch": 3}, os.path.join(out, "nested.pth"))
d = {"w": torch.ones(2)}
d["again"] = d
torch.save(d, os.path.join(out, "cyclic.pth"))
torch.save({"w": torch.ones(2), "bn.num_batches_tracked": torch.tensor(5), "rng": torch.get_rng_state()}, os.path.join(out, "ints.pth"))
torch.save({"w": torch.ones(1).expand(100000)}, os.path.join(out, "expanded.pth"))
big = torch.ones(1000)
torch.save({"v%d" % i: big[i:] for i in range(200)}, os.path.join(out, "manyviews.pth"))
torch.save({"a.b": torch.ones(2), "a": {"b": torch.zeros(2)}}, os.path.join(out, "collide.pth"))
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + os.path.join(out, "pwned"),))
torch.save({"w": torch.ones(2), "evil": Evil()}, os.path.join(out, "evil.pth"))
`;

describe.skipIf(!hasTorch)('PyTorch checkpoints (.pth)', () => {
  const seed = Math.floor(Math.random() * 1e6);
  beforeAll(() => {
    runPython(['-c', MAKE, tmp, String(seed)]);
  });

  it("torchvision's AlexNet from a torch.save'd state_dict gives PyTorch's logits", async () => {
    const model = createAlexNet({ arch: 'torchvision', numClasses: 10, dropout: 0 });
    await model.loadWeights(f('tv.pth'));
    const ref = await readPth(f('ref.pth'));
    const x = Tensor.from(ref.get('x')!.data, ref.get('x')!.shape);
    model.eval();
    const y = model.forward(x);
    const got = await y.toFloat32Array();
    const want = ref.get('logits')!.data;
    let d2 = 0;
    let r2 = 0;
    for (let i = 0; i < want.length; i++) (d2 += (got[i] - want[i]) ** 2), (r2 += want[i] ** 2);
    expect(Math.sqrt(d2 / r2), `seed ${seed}`).toBeLessThan(1e-5);
    y.dispose();
    x.dispose();
    model.dispose();
  });

  it('strided and shared-storage views come out contiguous, as PyTorch sees them', async () => {
    const t = await readPth(f('views.pth'));
    const base = Array.from({ length: 24 }, (_, i) => i);
    expect(t.get('base')!.shape).toEqual([4, 6]);
    expect(Array.from(t.get('base')!.data)).toEqual(base);
    expect(t.get('t')!.shape).toEqual([6, 4]);
    expect(Array.from(t.get('t')!.data)).toEqual(Array.from({ length: 24 }, (_, k) => base[(k % 4) * 6 + Math.floor(k / 4)]));
    expect(Array.from(t.get('rows')!.data)).toEqual(base.slice(6, 18));
    expect(Array.from(t.get('col')!.data)).toEqual([2, 8, 14, 20]);
    expect(t.get('scalar')!.shape).toEqual([]);
    expect(Array.from(t.get('scalar')!.data)).toEqual([3.5]);
  });

  it('a state_dict nested in a training checkpoint ({"state_dict": ..., "epoch": 3}) is found', async () => {
    const t = await readPth(f('nested.pth'));
    expect(t.get('classifier.6.weight')!.shape).toEqual([10, 4096]);
    expect(t.size).toBe(16);
  });

  it('a pickle that would call os.system is refused before anything runs', async () => {
    await expect(readPth(f('evil.pth'))).rejects.toThrow(/refers to (posix|os)\.system, which a state_dict does not need \(refused: a checkpoint is untrusted input/);
    const model = createAlexNet({ arch: 'torchvision', numClasses: 10 });
    await expect(model.loadWeights(f('evil.pth'))).rejects.toThrow(/untrusted input/);
    model.dispose();
    expect(existsSync(f('pwned'))).toBe(false);
  });

  it('crafted structures cannot make it hang, blow up memory or load a wrong tensor', async () => {
    await expect(readPth(f('cyclic.pth'))).rejects.toThrow(/a dict appears twice in the checkpoint/);
    await expect(readPth(f('expanded.pth'))).rejects.toThrow(/tensor "w" has 100000 elements, more than its storage's 1/);
    await expect(readPth(f('manyviews.pth'))).rejects.toThrow(/more than twice the 1000 its storages have/);
    await expect(readPth(f('collide.pth'))).rejects.toThrow(/two tensors are named "a\.b"/);
    // integer tensors (a BatchNorm counter, an RNG state) are not weights: left out, the rest loads
    const ints = await readPth(f('ints.pth'));
    expect([...ints.keys()]).toEqual(['w']);
  });

  it('float64 tensors, the legacy format, truncated, damaged and non-zip files get clear errors', async () => {
    await expect(readPth(f('f64.pth'))).rejects.toThrow(/tensor "w" is float64; only float32 tensors can be loaded/);
    await expect(readPth(f('legacy.pth'))).rejects.toThrow(/legacy \(pre-1\.6\) format, which is not supported: re-save it/);
    const whole = readFileSync(f('tv.pth'));
    for (const cut of [10, 1000, Math.floor(whole.length / 2), whole.length - 30]) {
      expect(() => parsePth(whole.subarray(0, cut), 'cut.pth'), `cut at ${cut}`).toThrow(/^cut\.pth: /);
    }
    const flipped = Buffer.from(whole);
    flipped.fill(0x41, 60, 200); // inside the first entry (data.pkl)
    expect(() => parsePth(flipped, 'damaged.pth')).toThrow(/^damaged\.pth: zip entry tv\/data\.pkl fails its CRC-32 check/);
    // one byte of a weight: loads no wrong value silently
    const oneByte = Buffer.from(whole);
    const at = whole.length - 200_000;
    oneByte[at] ^= 0x10;
    expect(() => parsePth(oneByte, 'onebyte.pth')).toThrow(/^onebyte\.pth: zip entry tv\/data\/\d+ fails its CRC-32 check/);
    expect(() => parsePth(Buffer.from('hello world'), 'text.pth')).toThrow(/not a PyTorch checkpoint \(expected a zip, as torch\.save writes, or safetensors\)/);
    expect(() => parsePth(new Uint8Array(0), 'empty.pth')).toThrow(/empty file/);
  });

  it('alexnet convert writes the same tensors as safetensors, and predict reads a .pth', async () => {
    const cli = path.join(root, 'dist', 'cli.js');
    const out = f('tv.safetensors');
    const r = spawnSync(process.execPath, [cli, 'convert', f('tv.pth'), out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote .*tv\.safetensors: 16 tensors, .* M values, from .*tv\.pth \(pytorch\)/);
    const a = await readPth(f('tv.pth'));
    const b = (await readSafetensors(out)).tensors;
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [k, v] of a) expect(Buffer.from(b.get(k)!.data.buffer).equals(Buffer.from(v.data.buffer)), k).toBe(true);
    const bad = spawnSync(process.execPath, [cli, 'convert', f('evil.pth'), f('x.safetensors')], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^alexnet: .*evil\.pth.*untrusted input/);
    expect(existsSync(f('x.safetensors'))).toBe(false);
    // a picture through the converted-from-PyTorch weights (10 classes: indices, no names in a .pth)
    const { default: sharp } = await import('sharp');
    await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 90 } } }).jpeg().toFile(f('red.jpg'));
    const p = spawnSync(process.execPath, [cli, 'predict', '--weights', f('tv.pth'), '--device', 'cpu', f('red.jpg')], { encoding: 'utf8' });
    expect(p.status, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/red\.jpg: \d \d+\.\d%, \d \d+\.\d%, \d \d+\.\d%/);
  });
});

const IMAGENET = String.raw`
import json, sys, torch, torchvision
from PIL import Image
from torchvision.models import AlexNet_Weights
out, seed, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
torch.manual_seed(seed)
m = torchvision.models.alexnet().eval()  # 1,000 classes, torchvision's own initialisation
torch.save(m.state_dict(), out)
w = AlexNet_Weights.IMAGENET1K_V1
tf, names = w.transforms(), w.meta["categories"]
res = []
with torch.no_grad():
    for f in files:
        p = torch.softmax(m(tf(Image.open(f).convert("RGB"))[None]), 1)[0]
        top = p.topk(5)
        res.append([[names[i], float(v)] for v, i in zip(top.values, top.indices)])
print(json.dumps(res))
`;

describe.skipIf(!hasTorch)('predict with ImageNet weights from a .pth', () => {
  it("names ImageNet classes, and its top-5 on real images is PyTorch's (torchvision's transform)", async () => {
    // real images: Fashion-MNIST test pictures, written as 256-pixel colour PNGs (lossless, so both sides
    // decode the same pixels) — square, and wider than tall (the centre crop takes the middle)
    const raw = await data.loadFashionMnistRaw('test');
    const { default: sharp } = await import('sharp');
    const files: string[] = [];
    for (const [k, w, h] of [
      [3, 256, 256],
      [1234, 256, 256],
      [5678, 320, 256],
    ]) {
      const px = raw.pixels.subarray(k * 784, (k + 1) * 784);
      const file = f(`real${k}.png`);
      await sharp(Buffer.from(px), { raw: { width: 28, height: 28, channels: 1 } }).resize(w, h, { fit: 'fill', kernel: 'nearest' }).toColourspace('srgb').png().toFile(file);
      files.push(file);
    }
    const seed = 1 + Math.floor(Math.random() * 1e6);
    const want = JSON.parse(runPython(['-c', IMAGENET, f('imagenet.pth'), String(seed), ...files])) as [string, number][][];
    const cli = path.join(root, 'dist', 'cli.js');
    const r = spawnSync(process.execPath, [cli, 'predict', '--arch', 'torchvision', '--weights', f('imagenet.pth'), '--device', 'cpu', ...files], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(files.length);
    lines.forEach((line, i) => {
      const [file, rest] = [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)];
      expect(file).toBe(files[i]);
      const got = rest.split(', ').map((e) => /^(.*) (\d+\.\d)%$/.exec(e)!.slice(1));
      expect(got.map(([n]) => n), `seed ${seed}, ${file}`).toEqual(want[i].map(([n]) => n));
      got.forEach(([, p], j) => expect(Math.abs(Number(p) - 100 * want[i][j][1])).toBeLessThanOrEqual(0.051));
    });
  });
});

describe.skipIf(!hasTorch)('fine-tuning from a .pth', () => {
  it('train --arch torchvision --weights x.pth replaces the last layer for the folder\'s classes and learns; --freeze features keeps the convolutions', async () => {
    // a 1,000-class torchvision AlexNet as a .pth (random weights: no ImageNet here), and a folder of real
    // Fashion-MNIST pictures in three classes
    runPython(['-c', 'import sys, torch, torchvision; torch.manual_seed(3); torch.save(torchvision.models.alexnet().state_dict(), sys.argv[1])', f('pre.pth')]);
    const tree = await makeImageTree({ perClass: 16, width: 64, height: 64 });
    const { cpSync } = await import('node:fs');
    cpSync(tree.root, f('ft/train'), { recursive: true });
    cpSync(tree.root, f('ft/test'), { recursive: true });
    rmSync(tree.root, { recursive: true, force: true });
    const cli = path.join(root, 'dist', 'cli.js');
    const run = (out: string, extra: string[]) =>
      spawnSync(process.execPath, [cli, 'train', '--arch', 'torchvision', '--weights', f('pre.pth'), '--data', f('ft'), '--epochs', '6', '--batch-size', '8', '--lr', '0.05', '--dropout', '0', '--schedule', 'none', '--out', f(out), '--no-progress', '--device', 'cpu', ...extra], { encoding: 'utf8', timeout: 600_000 });
    const r = run('ft-frozen', ['--freeze', 'features']);
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/weights: .*pre\.pth \(pytorch\); the last layer is replaced for the data's 3 classes \(classifier\.6\.weight \[1000, 4096\], classifier\.6\.bias \[1000\] in the file\)/);
    const losses = [...r.stdout.matchAll(/^epoch \d+: train loss ([\d.]+)/gm)].map((m) => Number(m[1]));
    expect(losses).toHaveLength(6);
    expect(losses[5], r.stdout).toBeLessThan(losses[0] - 0.05); // it learns (from ln 3 = 1.0986)
    const top1 = Number(/test top-1 ([\d.]+)%, top-5 [\d.]+% after 6 epochs/.exec(r.stdout)![1]);
    expect(top1, r.stdout).toBeGreaterThan(50); // 3 classes: chance is 33 %
    // the convolutions are the file's, unchanged; the classifier moved
    const pre = await readPth(f('pre.pth'));
    const after = (await readSafetensors(f('ft-frozen/weights.safetensors'))).tensors;
    for (const [name, t] of pre) {
      if (name.startsWith('features.')) expect(Buffer.from(after.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
    }
    expect(Buffer.from(after.get('classifier.4.weight')!.data.buffer).equals(Buffer.from(pre.get('classifier.4.weight')!.data.buffer))).toBe(false);
    // weights of another arch are refused by name and shape
    const bad = spawnSync(process.execPath, [cli, 'train', '--arch', 'small', '--weights', f('pre.pth'), '--data', f('ft'), '--epochs', '1', '--out', f('ft-bad'), '--no-progress', '--device', 'cpu'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^alexnet: .*pre\.pth: tensor "features\.0\.weight" has shape \[64, 3, 11, 11\], the small arch needs/);
  }, 900_000); // ~50 s here; 2–3× that under the sanitizers of npm run test:emu
});

const IMAGENET_EVAL = String.raw`
import json, sys, torch, torchvision
from PIL import Image
from torchvision.models import AlexNet_Weights
out, files = sys.argv[1], sys.argv[2:]
torch.manual_seed(11)
m = torchvision.models.alexnet().eval()
torch.save(m.state_dict(), out)
tf = AlexNet_Weights.IMAGENET1K_V1.transforms()
with torch.no_grad():
    print(json.dumps([m(tf(Image.open(f).convert("RGB"))[None])[0].topk(5).indices.tolist() for f in files]))
`;

describe.skipIf(!hasTorch)('ImageNet evaluation from synset folders', () => {
  it("eval maps WordNet-id folders to torchvision's class indices (--synsets) and counts as PyTorch ranks", async () => {
    // three real pictures (256-pixel PNGs: both sides decode the same pixels); PyTorch ranks them
    const raw = await data.loadFashionMnistRaw('test');
    const { default: sharp } = await import('sharp');
    const { copyFileSync, mkdirSync, writeFileSync } = await import('node:fs');
    const pics: string[] = [];
    for (const k of [40, 137, 234]) {
      const file = f(`pic${k}.png`);
      await sharp(Buffer.from(raw.pixels.subarray(k * 784, (k + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).resize(256, 256, { fit: 'fill', kernel: 'nearest' }).toColourspace('srgb').png().toFile(file);
      pics.push(file);
    }
    const top5 = JSON.parse(runPython(['-c', IMAGENET_EVAL, f('in1k.pth'), ...pics])) as number[][];
    // one synset folder per picture; their classes: picture 0's top-1 (a top-1 hit), a lower entry of
    // picture 1's top-5 (a top-5 hit only), and a class outside picture 2's top-5 (a miss)
    const a = top5[0][0];
    const b = top5[1].slice(1).find((i) => i !== a)!;
    const c = Array.from({ length: 1000 }, (_, i) => i).find((i) => !top5[2].includes(i) && i !== a && i !== b)!;
    const wnids = ['n01000001', 'n01000002', 'n01000003'];
    wnids.forEach((w, j) => {
      mkdirSync(f(`val/${w}`), { recursive: true });
      copyFileSync(pics[j], f(`val/${w}/ILSVRC2012_val_${j}.png`));
    });
    // the synset list in class order (LOC_synset_mapping.txt's form); the other 997 ids are stand-ins
    const lines = Array.from({ length: 1000 }, (_, i) => `n${String(90000000 + i)} class ${i}`);
    [a, b, c].forEach((index, j) => (lines[index] = `${wnids[j]} picked`));
    writeFileSync(f('synsets.txt'), `${lines.join('\n')}\n`);
    const cli = path.join(root, 'dist', 'cli.js');
    const r = spawnSync(process.execPath, [cli, 'eval', '--weights', f('in1k.pth'), '--data', f('val'), '--synsets', f('synsets.txt'), '--device', 'cpu', '--no-progress'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/matched by position/);
    expect(r.stdout, `classes ${a}, ${b}, ${c}; PyTorch's top-5 ${JSON.stringify(top5)}`).toMatch(/3 images: top-1 33\.33%, top-5 66\.67%/);
    // without the list, a partial set of synset folders cannot be mapped: said, not guessed
    const no = spawnSync(process.execPath, [cli, 'eval', '--weights', f('in1k.pth'), '--data', f('val'), '--device', 'cpu', '--no-progress'], { encoding: 'utf8' });
    expect(no.status).toBe(1);
    expect(no.stderr).toMatch(/the data's 3 class folders are WordNet ids \(n01000001, n01000002, n01000003, …\) but not all 1000: give --synsets <file>/);
    writeFileSync(f('short.txt'), 'n01000001\nn01000002\n');
    const short = spawnSync(process.execPath, [cli, 'eval', '--weights', f('in1k.pth'), '--data', f('val'), '--synsets', f('short.txt'), '--device', 'cpu'], { encoding: 'utf8' });
    expect(short.status).toBe(1);
    expect(short.stderr).toMatch(/--synsets .*short\.txt: 2 ids, the model has 1000 classes/);
  });
});

// Written here byte by byte (no PyTorch needed): a zip as torch.save lays it out, with a crafted pickle.
describe('.pth error offsets', () => {
  it('are real offsets into the file (a truncated pickle string was reported "at byte -3036675910")', async () => {
    const { zipSync } = await import('fflate');
    // PROTO 2, EMPTY_DICT, BINUNICODE of 0xB5000000 bytes of which 3 are there
    const pkl = Uint8Array.from([0x80, 0x02, 0x7d, 0x58, 0x00, 0x00, 0x00, 0xb5, 0x61, 0x62, 0x63]);
    const zip = zipSync({ 'arc/data.pkl': [pkl, { level: 0 }], 'arc/byteorder': [new TextEncoder().encode('little'), { level: 0 }] });
    const pklAt = Buffer.from(zip).indexOf(Buffer.from(pkl));
    expect(pklAt).toBeGreaterThan(0);
    let msg = '';
    try {
      parsePth(zip, 'cut.pth');
    } catch (e) {
      msg = (e as Error).message;
    }
    const m = /at byte (-?\d+)/.exec(msg);
    expect(m, msg).not.toBeNull();
    expect(Number(m![1]), msg).toBe(pklAt + 8); // where the string's bytes start, in the file
    expect(msg).toMatch(/^cut\.pth \(arc\/data\.pkl\): the pickle ends inside a string of 3036676096 bytes at byte \d+ of the file \(3 bytes are left\): truncated\?/);
    // the other offsets are the file's too: an unknown opcode right after the protocol
    const odd = Uint8Array.from([0x80, 0x02, 0xff]);
    const zip2 = zipSync({ 'arc/data.pkl': [odd, { level: 0 }] });
    const at2 = Buffer.from(zip2).indexOf(Buffer.from(odd));
    expect(() => parsePth(zip2, 'odd.pth')).toThrow(new RegExp(`unsupported pickle opcode 0xff at byte ${at2 + 2} of the file`));
  });
});
