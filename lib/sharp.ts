/** sharp (libvips) on demand: image decoding (predict, image folders) and PNG output (training curves).
 * Loaded at first use rather than at import, so that the package — tensors, ops, training on
 * Fashion-MNIST — works where sharp's native binary could not be installed, with one clear error where an
 * image is actually needed (and the CLI skips its PNGs with a warning). */
import type { default as SharpFn } from 'sharp';

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
