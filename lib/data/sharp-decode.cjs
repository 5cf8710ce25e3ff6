'use strict';
/* The one image-decoding path of the package (sharp/libvips): ImageFolder's decode workers
 * (decode-worker.ts), `predict` (predict.ts) and `alexnet pack`'s workers (pack-worker.cjs) all decode
 * through `decodeResized` / `encodeResized` here, so the same bounds and the same colour rules hold
 * everywhere. Plain CommonJS so that worker threads and child processes can require it by path, from the
 * TypeScript sources and from dist/ alike.
 *
 * Bounds (README "Untrusted input"): an image's size is read from its header before anything is decoded,
 * and the work is bounded by what is produced:
 *   - decoded pixels: width × height ≤ 100,000,000 (also given to libvips as limitInputPixels);
 *   - after the resize: each side ≤ 65,535 and width × height ≤ 16,777,216 (2²⁴) — a 65535×1 PNG of 275
 *     bytes would become 16,776,960×256 (4.3 G pixels, 13 GB of RGB) at short side 256: refused.
 * Colour: EXIF orientation applied; alpha removed the way PIL's convert('RGB') removes it — colour values
 * kept, no premultiplication (libvips premultiplies by alpha around a resize, which would turn a
 * transparent (64, 128, 192) into black), so an image with alpha is first decoded without its alpha and
 * then resized; then sRGB (3 channels) or greyscale (1). */

const LIMITS = Object.freeze({ decodedPixels: 100000000, resizedSide: 65535, resizedPixels: 16777216 });

class ImageBoundsError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ImageBoundsError';
  }
}

const fmt = (n) => n.toLocaleString('en-US');

/** The size of `meta` (sharp metadata) after EXIF orientation, resized so that its short side is `resize`
 * ('short'), or the resize×resize square ('square'); throws ImageBoundsError past the limits. */
function plan(meta, resize, mode) {
  let w = meta.width, h = meta.height;
  if (!(w > 0 && h > 0)) throw new Error('the image header gives no size');
  if (w * h > LIMITS.decodedPixels)
    throw new ImageBoundsError(`the image is ${w}×${h} (${fmt(w * h)} pixels), more than the ${fmt(LIMITS.decodedPixels)} pixels decoded at most`);
  if ((meta.orientation || 1) >= 5) [w, h] = [h, w];
  if (mode === 'square') return { width: resize, height: resize };
  const short = Math.min(w, h), long = Math.max(w, h);
  const longOut = Math.max(1, Math.round((long * resize) / short));
  if (longOut > LIMITS.resizedSide || longOut * resize > LIMITS.resizedPixels)
    throw new ImageBoundsError(
      `the image is ${w}×${h}: resizing its short side to ${resize} would make it ${w >= h ? `${fmt(longOut)}×${resize}` : `${resize}×${fmt(longOut)}`} ` +
        `(${fmt(longOut * resize)} pixels), more than the ${fmt(LIMITS.resizedPixels)} pixels (and ${fmt(LIMITS.resizedSide)} per side) allowed after a resize`,
    );
  return w >= h ? { width: longOut, height: resize } : { width: resize, height: longOut };
}

/** A sharp pipeline of `input` (a path or a Buffer) resized as asked, before the output format: the
 * header is checked first (plan), alpha dropped before the resize. */
async function resizedPipeline(sharp, input, o) {
  const opts = { failOn: o.failOn || 'warning', limitInputPixels: LIMITS.decodedPixels };
  // the header only, without libvips's own limit, so that our message (with the sizes) is the one seen
  const meta = await sharp(input, { ...opts, limitInputPixels: false }).metadata();
  const target = plan(meta, o.resize, o.mode || 'short');
  let p;
  if (meta.hasAlpha) {
    // Decode without alpha first (no premultiplication), then resize those pixels.
    const { data, info } = await sharp(input, opts).rotate().removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    p = sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } });
  } else {
    p = sharp(input, opts).rotate();
  }
  p = o.channels === 3 ? p.removeAlpha().toColourspace('srgb') : p.greyscale();
  const fit = (o.mode || 'short') === 'square' ? { fit: 'cover', position: 'centre' } : { fit: 'outside' };
  return { pipeline: p.resize({ width: o.resize, height: o.resize, ...fit }), target };
}

// libvips's error when failOn turns one of its warnings into an error. The warning's own text (e.g. libjpeg's
// "Premature end of JPEG file") goes to libvips's log, not into the error, so which message a damaged file
// gets depends on where the decoder noticed: an error ("VipsJpeg: premature end of JPEG image") or a
// warning (this one). Said in words a user can act on, with libvips's own kept.
const FAIL_ON_WARNING = 'Warning treated as error due to failOn setting';
function explained(e, failOn) {
  const msg = String((e && e.message) || e);
  if (!msg.startsWith(FAIL_ON_WARNING)) return e;
  return new Error(
    `the decoder warned about the image data, typically a truncated or corrupt file, and failOn '${failOn}' treats a warning as an error ` +
      `(failOn 'error' or 'none' would accept what it could decode; libvips: ${msg.split('\n')[0].trim()})`,
  );
}

/** Decodes `input`, resizes it (short side → `resize`, or the resize×resize centre square with
 * mode 'square') and returns raw HWC uint8: { data, width, height, channels }. */
async function decodeResized(sharp, input, o) {
  try {
    const { pipeline } = await resizedPipeline(sharp, input, o);
    const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== o.channels) throw new Error(`decoded to ${info.channels} channels, expected ${o.channels}`);
    return { data, width: info.width, height: info.height, channels: info.channels };
  } catch (e) {
    throw explained(e, o.failOn || 'warning');
  }
}

/** As decodeResized, then encoded for a packed data set: JPEG (baseline, 4:2:0, `quality`) or raw. */
async function encodeResized(sharp, input, o) {
  if (o.format === 'raw') return decodeResized(sharp, input, o);
  try {
    const { pipeline } = await resizedPipeline(sharp, input, o);
    const { data, info } = await pipeline
      .jpeg({ quality: o.quality, chromaSubsampling: '4:2:0', progressive: false, mozjpeg: false, optimiseCoding: true })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== o.channels) throw new Error(`encoded ${info.channels} channels, expected ${o.channels}`);
    return { data, width: info.width, height: info.height, channels: info.channels };
  } catch (e) {
    throw explained(e, o.failOn || 'warning');
  }
}

module.exports = { LIMITS, ImageBoundsError, plan, decodeResized, encodeResized, explained };
