// A folder of real photographs as JPEGs of ImageNet's kind (about 500×375, quality 90), one class per source
// photo, for the data-pipeline benchmark (bench/data.mjs) and the tests of packing and loading. The
// photographs are scikit-image's sample images (Debian: python3-skimage; they are files on disk, no
// Python runs): each image is a seeded random crop (half to all of the photo's short side, anywhere in
// it), mirrored half the time, resized to 500×375 (a quarter of them 375×500) and saved at quality 90.
//
//   node bench/photos.mjs <out> [--per-class N] [--classes K]      (default 200 per class, 10 classes)
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);

/** Where scikit-image's sample photographs are (Debian's python3-skimage, or a pip install), or null. */
export function skimageDataDir() {
  const dirs = [
    process.env.AXN_SKIMAGE_DATA,
    '/usr/lib/python3/dist-packages/skimage/data',
    ...['3.11', '3.12', '3.13'].map((v) => `/usr/local/lib/python${v}/dist-packages/skimage/data`),
  ].filter(Boolean);
  return dirs.find((d) => existsSync(path.join(d, 'astronaut.png'))) ?? null;
}

/** The colour photographs among the samples (class names follow the files). */
export const PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'hubble_deep_field.jpg', 'ihc.png', 'motorcycle_left.png', 'motorcycle_right.png', 'retina.jpg', 'rocket.jpg', 'moon.png'];

function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Writes `perClass` JPEGs for each of the first `classes` photographs into out/<class>/NNNN.jpg (skips
 * files that exist). Returns { root, files, bytes }. */
export async function makePhotoFolder(out, { perClass = 200, classes = 10, seed = 1, quality = 90, width = 500, height = 375 } = {}) {
  const dir = skimageDataDir();
  if (!dir) throw new Error('makePhotoFolder: scikit-image sample photographs not found (Debian: apt-get install python3-skimage)');
  const sharp = require('sharp');
  let files = 0;
  let bytes = 0;
  const jobs = [];
  for (const photo of PHOTOS.slice(0, classes)) {
    const cls = path.join(out, photo.replace(/\.\w+$/, ''));
    mkdirSync(cls, { recursive: true });
    const src = sharp(path.join(dir, photo)).removeAlpha().toColourspace('srgb');
    const { data, info } = await src.raw().toBuffer({ resolveWithObject: true });
    const rnd = mulberry32(seed * 7919 + PHOTOS.indexOf(photo));
    for (let i = 0; i < perClass; i++) {
      const portrait = rnd() < 0.25;
      const [w, h] = portrait ? [height, width] : [width, height];
      const short = Math.min(info.width, info.height);
      const cs = Math.max(16, Math.floor(short * (0.5 + 0.5 * rnd())));
      const cw = portrait ? Math.round((cs * w) / h) : cs;
      const ch = portrait ? cs : Math.round((cs * h) / w);
      const cw2 = Math.min(cw, info.width);
      const ch2 = Math.min(ch, info.height);
      const left = Math.floor(rnd() * (info.width - cw2 + 1));
      const top = Math.floor(rnd() * (info.height - ch2 + 1));
      const flop = rnd() < 0.5;
      const file = path.join(cls, `${String(i).padStart(4, '0')}.jpg`);
      files++;
      if (existsSync(file)) continue;
      let p = sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } }).extract({ left, top, width: cw2, height: ch2 });
      if (flop) p = p.flop();
      jobs.push(
        p
          .resize(w, h, { fit: 'fill' })
          .jpeg({ quality, mozjpeg: false })
          .toFile(file)
          .then((r) => (bytes += r.size)),
      );
      if (jobs.length >= 16) await Promise.all(jobs.splice(0));
    }
  }
  await Promise.all(jobs);
  return { root: out, files, bytes };
}

/** Splits a folder made by makePhotoFolder into out/train and out/test by linking files (every k-th to test). */
export function splitTrainTest(root, out, every = 5) {
  const { linkSync } = require('node:fs');
  for (const cls of readdirSync(root)) {
    const files = readdirSync(path.join(root, cls)).sort();
    for (const split of ['train', 'test']) mkdirSync(path.join(out, split, cls), { recursive: true });
    files.forEach((f, i) => {
      const to = path.join(out, i % every === every - 1 ? 'test' : 'train', cls, f);
      if (!existsSync(to)) linkSync(path.join(root, cls, f), to);
    });
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const out = args.find((a) => !a.startsWith('--'));
  if (!out) {
    console.error('usage: node bench/photos.mjs <out> [--per-class N] [--classes K]');
    process.exit(2);
  }
  const opt = (name, d) => {
    const k = args.indexOf(name);
    return k >= 0 ? Number(args[k + 1]) : d;
  };
  const t = performance.now();
  const r = await makePhotoFolder(out, { perClass: opt('--per-class', 200), classes: opt('--classes', 10) });
  console.log(`${r.files} photos in ${out} (${(r.bytes / 1e6).toFixed(1)} MB new) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
