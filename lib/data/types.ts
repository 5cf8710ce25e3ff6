/** The interface between data sets and the trainer: a source of labelled float32 batches in NCHW layout. */
import type { Tensor } from '../tensor.js';

/** One batch of `n` images: either `x`, the images in NCHW order on the host (`x.length === n * C * H * W`;
 * Fashion-MNIST, ImageFolder), or `input`, the model's input already made on the device (PackedDataset; the
 * consumer owns it and disposes it). `labels[i]` is the class index of image `i` (an index into the
 * source's `classes`). */
export interface Batch {
  x?: Float32Array;
  input?: Tensor;
  labels: Int32Array;
  n: number;
  /** [n, C, H, W] of one view of each image. */
  shape: [number, number, number, number];
  /** Views of each image in `input` (ten-crop evaluation: 10, image-major: input is [n · crops, C, H, W]);
   * absent: 1. */
  crops?: number;
}

/** Options of {@link BatchSource.batches}. */
export interface BatchOptions {
  /** Images per batch (a positive integer). The last batch of an epoch may be smaller unless `dropLast`. */
  batchSize: number;
  /** Visit the images in a random order (default false: the source's own order). */
  shuffle?: boolean;
  /** Seed of the shuffle and of any random augmentation (an integer, default 0). */
  seed?: number;
  /** Epoch number (a non-negative integer, default 0). The order of an epoch is a function of
   * (seed, epoch) only, so a run resumed at any epoch sees the same order as an uninterrupted one. */
  epoch?: number;
  /** Drop the last batch of the epoch when it has fewer than `batchSize` images (default false). */
  dropLast?: boolean;
  /** Start at this batch of the epoch: the first `startBatch` batches are skipped without being decoded,
   * and the batches that follow are exactly those an uninterrupted iteration yields (default 0). */
  startBatch?: number;
  /** Data-parallel share (distributed training and evaluation): `batchSize` is then this rank's part of a
   * global batch of `batchSize · world` images. The epoch's order is cut into global batches of
   * `batchSize · world` consecutive positions and rank `rank` takes block `rank` of each (positions
   * `rank · batchSize …` of it), so the ranks' batches of step k together are, in rank order, exactly the
   * batch k of a one-process run with the global batch size: the same images, augmented the same way.
   * A shorter last global batch (no `dropLast`) is cut into blocks of ⌈rest / world⌉ (the last ranks may
   * get fewer images, or none). Default: no sharding. */
  shard?: { rank: number; world: number };
}

export interface BatchSource {
  /** Number of images in one epoch (before `dropLast`). */
  readonly size: number;
  /** Class names; a label is an index into this array. */
  readonly classes: readonly string[];
  /** [C, H, W] of one image in a batch. */
  readonly sampleShape: readonly [number, number, number];
  /** The batches of one epoch, in order. */
  batches(opts: BatchOptions): AsyncIterable<Batch>;
  /** Releases worker threads or other resources, if the source holds any. */
  close?(): Promise<void>;
}
