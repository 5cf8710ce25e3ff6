/** The training loop: epochs of SGD over a BatchSource, evaluation after each epoch, an LR schedule,
 * atomic checkpoints, and resumption that reproduces an uninterrupted run exactly (same seed → same
 * shuffles, same dropout masks, same weights). */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileKind, proveWritableFolder } from './io/files.js';
import { loadCheckpoint, saveCheckpoint, readCheckpointMeta, type TrainingSettings } from './checkpoint.js';
import { batchInput } from './data/batching.js';
import type { BatchSource } from './data/types.js';
import { evaluate, type EvalResult } from './eval.js';
import type { AlexNet, StepResult } from './models/alexnet.js';
import { ReduceLROnPlateau, StepLR, type LRSchedule } from './optim/schedule.js';
import { SGD } from './optim/sgd.js';
import { Tensor } from './tensor.js';

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainAcc: number;
  test?: EvalResult;
  lr: number;
  seconds: number;
  imagesPerSecond: number;
}

export interface ProgressInfo {
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  loss: number;
  /** Running training accuracy of this epoch. */
  acc: number;
  imagesPerSecond: number;
  lr: number;
}

export interface TrainOptions {
  model: AlexNet;
  train: BatchSource;
  test?: BatchSource;
  epochs: number;
  batchSize: number;
  lr: number;
  momentum?: number;
  weightDecay?: number;
  /** 'plateau' (the paper: ÷10 when the test error stops improving), 'step' (÷10 every stepSize epochs) or 'none'. */
  schedule?: 'plateau' | 'step' | 'none';
  stepSize?: number;
  /** 'features': train the classifier only (fine-tuning): the convolutional layers keep their weights
   * (they still pass gradients back through themselves, they are just not updated). Default 'none'. */
  freeze?: 'none' | 'features';
  /** Seeds the data order (the model's own seed drives initialisation and dropout). */
  seed?: number;
  /** Write a checkpoint here after every epoch (and every `checkpointEvery` batches). Its folder is
   * created if needed and proven writable (a file created and removed there) before the first step, so an
   * unwritable place fails at once, not after an epoch. train() takes no lock on it: the `alexnet train`
   * command locks its --out folder (lockFolder in lib/io/lock.ts), and a script that may run next to
   * another one writing the same checkpoint can take that lock itself. */
  checkpoint?: string;
  checkpointEvery?: number;
  /** Resume from this checkpoint (when it exists). */
  resume?: string;
  /** Stop (after checkpointing) once this many batches ran in this call — simulates an interruption. */
  stopAfterBatches?: number;
  /** Time budget: no epoch is started that the previous epoch's duration says would end past it. */
  timeLimitSeconds?: number;
  /** Cap the batches per epoch (quick runs). */
  maxBatchesPerEpoch?: number;
  /** Applied to each batch on the device before the model (e.g. upscaling 28×28 images to 227 on the
   * GPU with ops.resizeBilinear); returns a new tensor the trainer disposes. Also used for evaluation. */
  inputTransform?: (x: Tensor) => Tensor;
  onProgress?: (p: ProgressInfo) => void;
  /** The test pass after each epoch: images done of the test set. */
  onTestProgress?: (done: number, total: number) => void;
  onEpoch?: (r: EpochRecord) => void;
}

export interface TrainResult {
  history: EpochRecord[];
  /** True when stopped by stopAfterBatches before finishing. */
  interrupted: boolean;
  optimizer: SGD;
  seconds: number;
}

const ANY = Symbol('not recorded');
/** Settings absent from checkpoints of earlier versions: what they meant (ANY: not known, accepted). */
const LEGACY_SETTINGS: Partial<Record<keyof TrainingSettings, unknown>> = { trainImages: ANY, freeze: 'none' };

export async function train(o: TrainOptions): Promise<TrainResult> {
  const { model } = o;
  const t0 = performance.now();
  if (o.checkpoint !== undefined) {
    if (typeof o.checkpoint !== 'string' || o.checkpoint === '') throw new TypeError(`train: expected checkpoint to be a file path, got ${JSON.stringify(o.checkpoint)}`);
    proveWritableFolder(path.dirname(path.resolve(o.checkpoint)), 'train: checkpoint');
    if (existsSync(o.checkpoint) && !statSync(o.checkpoint).isFile())
      throw new Error(`train: checkpoint: expected ${o.checkpoint} to be a file path, got a ${fileKind(statSync(o.checkpoint))}`);
  }
  const freeze = o.freeze ?? 'none';
  if (freeze !== 'none' && freeze !== 'features') throw new TypeError(`train: freeze must be 'none' or 'features', got ${JSON.stringify(freeze)}`);
  const trainable = model.namedParameters().filter(([name]) => freeze === 'none' || !name.startsWith('features.')).map(([, p]) => p);
  const opt = new SGD(trainable, { lr: o.lr, momentum: o.momentum ?? 0.9, weightDecay: o.weightDecay ?? 5e-4 });
  const schedule: LRSchedule | null =
    o.schedule === 'step' ? new StepLR(opt, o.stepSize ?? 30, 0.1) : o.schedule === 'none' ? null : new ReduceLROnPlateau(opt, 0.1, 1);
  const dataSeed = o.seed ?? model.config.seed;
  let history: EpochRecord[] = [];
  let startEpoch = 0;
  let startBatch = 0;
  let step = 0;
  let partial = { lossSum: 0, correct: 0, seen: 0 };
  const settings: TrainingSettings = { batchSize: o.batchSize, momentum: opt.momentum, weightDecay: opt.weightDecay, schedule: o.schedule ?? 'plateau', trainImages: o.train.size, freeze };
  if (o.train.size < o.batchSize) {
    opt.dispose();
    throw new RangeError(`train: the batch size ${o.batchSize} is larger than the training set (${o.train.size} images): no full batch to train on; lower the batch size or use more images`);
  }
  if (o.resume && existsSync(o.resume)) {
    try {
      // The run's settings first: a resume with other ones would not reproduce the uninterrupted run.
      const m = await readCheckpointMeta(o.resume);
      if (m.dataSeed !== dataSeed) throw new Error(`${o.resume}: checkpoint was trained with data seed ${m.dataSeed}, this run uses ${dataSeed}`);
      for (const k of Object.keys(settings) as (keyof TrainingSettings)[]) {
        // a setting that checkpoints of earlier versions lack reads as what those versions did
        const saved = m.settings[k] === undefined && k in LEGACY_SETTINGS ? LEGACY_SETTINGS[k] : m.settings[k];
        if (saved !== ANY && saved !== settings[k]) throw new Error(`${o.resume}: checkpoint was trained with ${k} ${String(saved)}, this run uses ${settings[k]}`);
      }
      // The schedule's state before anything else changes (a bad one leaves the model as it was).
      if (schedule && m.schedule === null) throw new Error(`${o.resume}: checkpoint holds no schedule state, this run uses ${settings.schedule}`);
      if (m.schedule && schedule) schedule.load(m.schedule);
      const meta = await loadCheckpoint(o.resume, model, opt);
      history = meta.history as EpochRecord[];
      startEpoch = meta.epoch;
      startBatch = meta.batchInEpoch;
      step = meta.step;
      if (meta.partial) partial = meta.partial;
    } catch (e) {
      opt.dispose();
      throw e;
    }
  }
  const perEpoch = Math.floor(o.train.size / o.batchSize);
  const batches = Math.min(perEpoch, o.maxBatchesPerEpoch ?? Infinity);
  let ran = 0;
  const save = async (epoch: number, batchInEpoch: number, sums?: typeof partial) => {
    if (!o.checkpoint) return;
    await saveCheckpoint(o.checkpoint, model, opt, { epoch, batchInEpoch, step, partial: sums }, { schedule: schedule?.state() ?? null, history, dataSeed, settings });
  };

  try {
    let lastEpochSeconds = 0;
    for (let epoch = startEpoch; epoch < o.epochs; epoch++) {
      const elapsed = (performance.now() - t0) / 1000;
      if (o.timeLimitSeconds !== undefined && epoch > startEpoch && elapsed + lastEpochSeconds > o.timeLimitSeconds) break;
      const te = performance.now();
      const resumed = epoch === startEpoch && startBatch > 0;
      let lossSum = resumed ? partial.lossSum : 0;
      let correct = resumed ? partial.correct : 0;
      let seen = resumed ? partial.seen : 0;
      const seenBefore = seen; // images of this epoch done before a resume: not part of this run's throughput
      let b = epoch === startEpoch ? startBatch : 0;
      model.train(true);
      // One step in flight: step k+1 is enqueued (on CUDA) before step k's loss is awaited, so the device
      // never idles while the host reads a loss or prepares a batch. A step's sums are counted when its
      // loss arrives; everything that needs them (progress, checkpoints) settles the step in flight first.
      let inFlight: { result: Promise<StepResult>; n: number } | null = null;
      const settle = async () => {
        if (!inFlight) return;
        const { result, n } = inFlight;
        inFlight = null;
        const r = await result;
        lossSum += r.loss * n;
        correct += r.correct;
        seen += n;
        const secs = (performance.now() - te) / 1000;
        o.onProgress?.({ epoch, epochs: o.epochs, batch: b, batches, loss: r.loss, acc: correct / seen, imagesPerSecond: (seen - seenBefore) / secs, lr: opt.lr });
      };
      try {
        for await (const batch of o.train.batches({ batchSize: o.batchSize, shuffle: true, seed: dataSeed, epoch, dropLast: true, startBatch: b })) {
          if (b >= batches) break;
          const raw = batchInput(batch, model.device, 'train');
          let x = raw;
          let result: Promise<StepResult>;
          try {
            if (o.inputTransform) x = o.inputTransform(raw);
            result = model.step(x, batch.labels, opt);
          } finally {
            raw.dispose();
            x.dispose();
          }
          result.catch(() => {}); // awaited below or by the next settle; never an unhandled rejection
          await settle();
          inFlight = { result, n: batch.n };
          b++;
          step++;
          ran++;
          const stop = o.stopAfterBatches !== undefined && ran >= o.stopAfterBatches;
          if ((o.checkpointEvery && b % o.checkpointEvery === 0 && b < batches) || stop) {
            await settle();
            await save(epoch, b, { lossSum, correct, seen });
          }
          if (stop) return { history, interrupted: true, optimizer: opt, seconds: (performance.now() - t0) / 1000 };
        }
        await settle();
      } finally {
        // An error leaves no step in flight behind (its tensors are already released; only its read waits).
        const left = inFlight as { result: Promise<StepResult> } | null;
        if (left) await left.result.catch(() => {});
      }
      const seconds = (performance.now() - te) / 1000;
      const test = o.test ? await evaluate(model, o.test, { batchSize: Math.max(o.batchSize, 100), inputTransform: o.inputTransform, onProgress: o.onTestProgress }) : undefined;
      const rec: EpochRecord = {
        epoch,
        trainLoss: seen ? lossSum / seen : NaN,
        trainAcc: seen ? correct / seen : NaN,
        test,
        lr: opt.lr,
        seconds,
        imagesPerSecond: (seen - seenBefore) / seconds,
      };
      history.push(rec);
      lastEpochSeconds = (performance.now() - te) / 1000; // training and evaluation
      schedule?.epochEnd(test ? 1 - test.top1 : rec.trainLoss);
      o.onEpoch?.(rec);
      await save(epoch + 1, 0);
    }
  } catch (e) {
    opt.dispose();
    throw e;
  }
  return { history, interrupted: false, optimizer: opt, seconds: (performance.now() - t0) / 1000 };
}

export { readCheckpointMeta };
