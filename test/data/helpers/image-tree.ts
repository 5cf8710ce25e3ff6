/** Writes a real image-folder tree for ImageFolder tests and benchmarks: Fashion-MNIST images, tinted to
 * RGB, upscaled with sharp and saved as JPEG or PNG, plus corrupt files. */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { loadFashionMnistRaw } from '../../../lib/data/index.js';

export interface TreeFile {
  path: string;
  label: number;
}

export interface ImageTree {
  root: string;
  classes: string[];
  /** The decodable images, in ImageFolder's source order (class, then path). */
  good: TreeFile[];
  /** The corrupt files. */
  corrupt: string[];
}

/** An RGB tint of a grey Fashion-MNIST image (so the channels differ): R = v, G = 0.75·v + 20, B = 255 − v. */
function tint(grey: Uint8Array): Buffer {
  const out = Buffer.alloc(grey.length * 3);
  for (let i = 0; i < grey.length; i++) {
    out[3 * i] = grey[i];
    out[3 * i + 1] = Math.round(0.75 * grey[i] + 20);
    out[3 * i + 2] = 255 - grey[i];
  }
  return out;
}

/** `perClass` images of each of three Fashion-MNIST classes (bag, sneaker, trouser), `width`×`height`,
 * alternately JPEG and PNG with a few variants (greyscale PNG, PNG with alpha, upper-case `.JPEG`, a
 * nested folder), a text file and a hidden file (both ignored), and — with `corrupt` — a truncated
 * JPEG, random bytes named .jpg and an empty .png. */
export async function makeImageTree(opts: { perClass: number; width: number; height: number; corrupt?: boolean; quality?: number }): Promise<ImageTree> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'axn-imagefolder-'));
  const test = await loadFashionMnistRaw('test');
  const spec = [
    { name: 'bag', fashion: 8 },
    { name: 'sneaker', fashion: 7 },
    { name: 'trouser', fashion: 1 },
  ];
  const good: TreeFile[] = [];
  for (const [label, { name, fashion }] of spec.entries()) {
    const dir = path.join(root, name);
    await mkdir(path.join(dir, 'more'), { recursive: true });
    const files: string[] = [];
    let k = 0;
    for (let i = 0; i < test.n && files.length < opts.perClass; i++) {
      if (test.labels[i] !== fashion) continue;
      const grey = test.pixels.subarray(i * 784, (i + 1) * 784);
      const rgb = sharp(tint(grey), { raw: { width: 28, height: 28, channels: 3 } }).resize(opts.width, opts.height, { fit: 'fill' });
      let file: string;
      let data: Buffer;
      if (k % 2 === 0) {
        file = path.join(k === 4 ? path.join(dir, 'more') : dir, `img-${String(k).padStart(3, '0')}${k === 2 ? '.JPEG' : '.jpg'}`);
        data = await rgb.jpeg({ quality: opts.quality ?? 92 }).toBuffer();
      } else if (k === 1) {
        file = path.join(dir, `img-${String(k).padStart(3, '0')}.png`);
        data = await sharp(Buffer.from(grey), { raw: { width: 28, height: 28, channels: 1 } }).resize(opts.width, opts.height, { fit: 'fill' }).png().toBuffer();
      } else if (k === 3) {
        file = path.join(dir, `img-${String(k).padStart(3, '0')}.png`);
        data = await rgb.ensureAlpha(0.5).png().toBuffer();
      } else {
        file = path.join(dir, `img-${String(k).padStart(3, '0')}.png`);
        data = await rgb.png().toBuffer();
      }
      await writeFile(file, data);
      files.push(file);
      k++;
    }
    files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    good.push(...files.map((f) => ({ path: f, label })));
  }
  await writeFile(path.join(root, 'bag', 'notes.txt'), 'not an image');
  await writeFile(path.join(root, 'bag', '.hidden.jpg'), await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } }).jpeg().toBuffer());
  const corrupt: string[] = [];
  if (opts.corrupt) {
    const jpeg = await sharp(tint(test.pixels.subarray(0, 784)), { raw: { width: 28, height: 28, channels: 3 } })
      .resize(opts.width, opts.height, { fit: 'fill' })
      .jpeg({ quality: 92 })
      .toBuffer();
    const truncated = path.join(root, 'trouser', 'img-050-truncated.jpg');
    await writeFile(truncated, jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
    const random = path.join(root, 'bag', 'img-051-random.jpg');
    const bytes = Buffer.alloc(3000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    await writeFile(random, bytes);
    const empty = path.join(root, 'sneaker', 'img-052-empty.png');
    await writeFile(empty, Buffer.alloc(0));
    corrupt.push(truncated, random, empty);
  }
  return { root, classes: spec.map((s) => s.name), good, corrupt };
}
