/** sharp (libvips) on demand: image decoding (predict, image folders) and PNG output (training curves).
 * Loaded at first use rather than at import, so that the package — tensors, ops, training on
 * Fashion-MNIST — works where sharp's native binary could not be installed, with one clear error where an
 * image is actually needed (and the CLI skips its PNGs with a warning). */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { default as SharpFn } from 'sharp';

/** A file of the package by its path from the package root: this module is lib/sharp.ts (vitest) or
 * dist/sharp.js (installed), one folder below the root either way. The plain-JS helpers that worker
 * threads and child processes require by path (lib/data/*.cjs) ship in lib/. */
export function packageFile(rel: string): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', rel);
}

/** The shared decoding path (lib/data/sharp-decode.cjs): bounds, alpha and colour rules, resize, encode. */
export interface SharpDecode {
  LIMITS: { decodedPixels: number; resizedSide: number; resizedPixels: number };
  ImageBoundsError: new (message: string) => Error;
  decodeResized(
    sharp: typeof SharpFn,
    input: string | Buffer,
    o: { channels: 1 | 3; resize: number; mode?: 'short' | 'square'; failOn?: string },
  ): Promise<{ data: Buffer; width: number; height: number; channels: number }>;
  /** libvips's bare "Warning treated as error due to failOn setting" said in words (other errors as they are). */
  explained(e: unknown, failOn: string): Error;
  encodeResized(
    sharp: typeof SharpFn,
    input: string | Buffer,
    o: { channels: 1 | 3; resize: number; mode?: 'short' | 'square'; failOn?: string; format: 'jpeg' | 'raw'; quality: number },
  ): Promise<{ data: Buffer; width: number; height: number; channels: number }>;
}
export const SHARP_DECODE_PATH = packageFile('lib/data/sharp-decode.cjs');
export const sharpDecode: SharpDecode = createRequire(import.meta.url)(SHARP_DECODE_PATH);

let cached: Promise<typeof SharpFn> | undefined;

export function loadSharp(): Promise<typeof SharpFn> {
  cached ??= import('sharp').then(
    (m) => m.default,
    (e: Error) => {
      cached = undefined;
      throw new Error(
        `alexnet-cuda: sharp, which decodes images and writes PNGs, could not be loaded: ${e.message.split('\n')[0]}\n` +
          'Possible solutions:\n- npm install sharp@^0.35\n- see https://sharp.pixelplumbing.com/install for platform notes',
      );
    },
  );
  return cached;
}
