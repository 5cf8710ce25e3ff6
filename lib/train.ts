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
import { ReduceLROnPlateau, StepLR, WarmupCosineLR, type LRSchedule } from './optim/schedule.js';
import { SGD } from './optim/sgd.js';
import { Tensor } from './tensor.js';
import { GradientBuckets, Watchdog, checkSameSettings, watchdogSeconds, type DistributedOptions } from './data-parallel.js';
import { abortDistributed, allReduceHost, barrier, broadcast, initDistributed, launchedByMpi, type DistInfo } from './distributed.js';

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
  /** 'plateau' (the paper: ÷10 when the test error stops improving), 'step' (÷10 every stepSize epochs),
   * 'cosine' (a linear warm-up over warmupSteps steps, then a half cosine from lr down to minLr over the
   * rest of the run's steps, set every step: WarmupCosineLR) or 'none'. */
  schedule?: 'plateau' | 'step' | 'cosine' | 'none';
  stepSize?: number;
  /** 'cosine': steps of linear warm-up (default 0). The cosine spans epochs × batches per epoch: a run
   * that timeLimitSeconds stops early ends before its decay does (at a higher rate than minLr). */
  warmupSteps?: number;
  /** 'cosine': the rate the decay ends at (default 0). */
  minLr?: number;
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
  /** Data-parallel training over several processes (one GPU each on CUDA), launched by MPI
   * (`mpirun -np N`, or `alexnet train --nproc N`): each of the N ranks trains on its block of every global
   * batch, the gradients are averaged over the ranks (lib/data-parallel.ts), and every rank ends every step
   * with the same weights, bit for bit. `batchSize` and `lr` stay the global ones: N ranks compute the
   * function one process computes with the whole batch (the same images, augmentation and dropout masks;
   * the sums in another order). Rank 0 writes the checkpoint; every rank resumes from it (on several
   * machines it must be on a shared file system). Default: on when the process was launched by MPI with
   * more than one rank; `false` never; `true` (or options) always (MPI must be built in). */
  distributed?: boolean | DistributedOptions;
}

export interface TrainResult {
  history: EpochRecord[];
  /** True when stopped by stopAfterBatches before finishing. */
  interrupted: boolean;
  optimizer: SGD;
  seconds: number;
  /** Data-parallel runs: this rank, the ranks, and the bytes all-reduced per step (the gradients in their
   * buckets, and the loss). */
  distributed?: { rank: number; world: number; bytesPerStep: number; buckets: number };
}

const ANY = Symbol('not recorded');
/** Settings absent from checkpoints of earlier versions: what they meant (ANY: not known, accepted). */
const LEGACY_SETTINGS: Partial<Record<keyof TrainingSettings, unknown>> = { trainImages: ANY, freeze: 'none', batchesPerEpoch: ANY };
/** What sets a setting, where its name alone would not say. */
const SETTING_HINTS: Partial<Record<keyof TrainingSettings, string>> = { batchesPerEpoch: ' (maxBatchesPerEpoch caps it)' };

export async function train(o: TrainOptions): Promise<TrainResult> {
  // Data parallel: which rank this is, of how many (null: one process)
  let dist: DistInfo | null = null;
  const distOpts: DistributedOptions = typeof o.distributed === 'object' && o.distributed !== null ? o.distributed : {};
  if (o.distributed === undefined ? launchedByMpi() : o.distributed !== false) {
    const info = initDistributed();
    if (info.world > 1) dist = info;
  }
  if (!dist) return trainProcess(o, distOpts, null, null, { agreed: false });
  // From here a rank that hangs ends the job (the others would wait for it in a collective)
  const watchdog = new Watchdog(dist.rank, watchdogSeconds(distOpts));
  const phase = { agreed: false };
  try {
    return await trainProcess(o, distOpts, dist, watchdog, phase);
  } catch (e) {
    // Once the ranks agreed on the run, the others are (or will be) waiting for this one in a collective:
    // end the job now, naming this rank, rather than leave them to the watchdog. (An error before that is
    // the same on every rank, or ends this process, which ends the job under mpirun.)
    if (phase.agreed) abortDistributed(1, `alexnet: rank ${dist.rank} of ${dist.world} failed: ${(e as Error)?.stack ?? String(e)}\nEnding the job; the last checkpoint is intact (--resume continues from it).`);
    throw e;
  } finally {
    watchdog.stop();
  }
}

async function trainProcess(o: TrainOptions, distOpts: DistributedOptions, dist: DistInfo | null, watchdog: Watchdog | null, phase: { agreed: boolean }): Promise<TrainResult> {
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
  if (dist)
    // Every rank must train the same thing. A mismatch is the same error on every rank (no other collective
    // has run), so each ends without waiting for the others.
    await checkSameSettings(dist, {
      model: model.config, device: model.device, precision: model.precision, batchSize: o.batchSize, lr: o.lr, epochs: o.epochs,
      momentum: o.momentum ?? 0.9, weightDecay: o.weightDecay ?? 5e-4, schedule: o.schedule ?? 'plateau', stepSize: o.stepSize ?? null, warmupSteps: o.warmupSteps ?? null, minLr: o.minLr ?? null, freeze,
      seed: o.seed ?? model.config.seed, trainImages: o.train.size, testImages: o.test?.size ?? null, maxBatchesPerEpoch: o.maxBatchesPerEpoch ?? null,
      checkpoint: o.checkpoint !== undefined, checkpointEvery: o.checkpointEvery ?? null, stopAfterBatches: o.stopAfterBatches ?? null,
      timeLimit: o.timeLimitSeconds !== undefined, resume: o.resume !== undefined, parameters: model.numParameters, inputTransform: o.inputTransform !== undefined,
    }, 'train');
  if (dist && o.batchSize % dist.world !== 0)
    throw new RangeError(`train: the batch size ${o.batchSize} is the global one and must be divisible by the ${dist.world} ranks (each takes batchSize / ranks images a step); use e.g. ${Math.max(1, Math.round(o.batchSize / dist.world)) * dist.world}`);
  const local = dist ? o.batchSize / dist.world : o.batchSize; // this rank's images per step
  const trainable = model.namedParameters().filter(([name]) => freeze === 'none' || !name.startsWith('features.')).map(([, p]) => p);
  if (o.train.size < o.batchSize) {
    throw new RangeError(`train: the batch size ${o.batchSize} is larger than the training set (${o.train.size} images): no full batch to train on; lower the batch size or use more images`);
  }
  const opt = new SGD(trainable, { lr: o.lr, momentum: o.momentum ?? 0.9, weightDecay: o.weightDecay ?? 5e-4 });
  const kind = o.schedule ?? 'plateau';
  if (!['plateau', 'step', 'cosine', 'none'].includes(kind)) {
    opt.dispose();
    throw new TypeError(`train: schedule must be 'plateau', 'step', 'cosine' or 'none', got ${JSON.stringify(o.schedule)}`);
  }
  if (kind !== 'cosine' && (o.warmupSteps !== undefined || o.minLr !== undefined)) {
    opt.dispose();
    throw new TypeError(`train: warmupSteps and minLr belong to schedule 'cosine', this run's schedule is '${kind}'`);
  }
  const perEpoch = Math.floor(o.train.size / o.batchSize);
  const batches = Math.min(perEpoch, o.maxBatchesPerEpoch ?? Infinity);
  let schedule: LRSchedule | null;
  try {
    schedule =
      kind === 'step' ? new StepLR(opt, o.stepSize ?? 30, 0.1)
      : kind === 'cosine' ? new WarmupCosineLR(opt, Math.max(1, o.epochs * batches), o.warmupSteps ?? 0, o.minLr ?? 0)
      : kind === 'none' ? null
      : new ReduceLROnPlateau(opt, 0.1, 1);
  } catch (e) {
    opt.dispose();
    const steps = kind === 'cosine' ? ` (the run's steps: ${o.epochs} epochs × ${batches} batches of ${o.batchSize} images${batches < perEpoch ? ', capped by maxBatchesPerEpoch' : ''})` : '';
    throw new RangeError(`train: ${(e as Error).message}${steps}`);
  }
  const dataSeed = o.seed ?? model.config.seed;
  let history: EpochRecord[] = [];
  let startEpoch = 0;
  let startBatch = 0;
  let step = 0;
  let partial = { lossSum: 0, correct: 0, seen: 0 };
  const settings: TrainingSettings = { batchSize: o.batchSize, momentum: opt.momentum, weightDecay: opt.weightDecay, schedule: kind, trainImages: o.train.size, freeze, batchesPerEpoch: batches };
  let resumeError: unknown = null;
  if (o.resume && existsSync(o.resume)) {
    try {
      // The run's settings first: a resume with other ones would not reproduce the uninterrupted run.
      const m = await readCheckpointMeta(o.resume);
      if (m.dataSeed !== dataSeed) throw new Error(`${o.resume}: checkpoint was trained with data seed ${m.dataSeed}, this run uses ${dataSeed}`);
      for (const k of Object.keys(settings) as (keyof TrainingSettings)[]) {
        // a setting that checkpoints of earlier versions lack reads as what those versions did
        const saved = m.settings[k] === undefined && k in LEGACY_SETTINGS ? LEGACY_SETTINGS[k] : m.settings[k];
        if (saved !== ANY && saved !== settings[k]) throw new Error(`${o.resume}: checkpoint was trained with ${k} ${String(saved)}, this run uses ${settings[k]}${SETTING_HINTS[k] ?? ''}`);
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
      // Data parallel: the ranks first agree that they all failed (below), else one would wait for the others
      if (!dist) {
        opt.dispose();
        throw e;
      }
      resumeError = e;
    }
  }
  let buckets: GradientBuckets | null = null;
  if (dist) {
    try {
      // every rank resumed from the same place (or all failed alike)
      await checkSameSettings(dist, { resumedAt: resumeError ? `no: ${(resumeError as Error)?.message ?? String(resumeError)}` : [startEpoch, startBatch, step] }, 'train');
      if (resumeError) throw resumeError;
      phase.agreed = true;
      // The same start on every rank: rank 0's weights (the same seed gives them anyway; a resume read the
      // same checkpoint: the momentum buffers agree too).
      broadcast(model.parameters().map((p) => p.value), 0);
      const named = model.namedParameters().filter(([, p]) => trainable.includes(p)).reverse(); // backward's order
      buckets = new GradientBuckets(named, distOpts.bucketBytes, distOpts.reduce ?? true);
      model.setDataParallel(buckets);
      model.rng.shard = { start: dist.rank * local, total: o.batchSize };
      if (dist.rank !== 0 && startBatch > 0) partial = { ...partial, correct: 0 }; // the saved count is the ranks' sum: rank 0 carries it
    } catch (e) {
      model.setDataParallel(null);
      model.rng.shard = null;
      opt.dispose();
      throw e;
    }
  }
  const shard = dist ? { rank: dist.rank, world: dist.world } : undefined;
  const distReport = () => (dist && buckets ? { rank: dist.rank, world: dist.world, bytesPerStep: buckets.bytesPerStep, buckets: buckets.buckets.length } : undefined);
  /** The ranks' sum of each value (identity in one process). */
  const sumOverRanks = async (v: number[]): Promise<number[]> => (dist ? Array.from(await allReduceHost(Float64Array.from(v), 'sum')) : v);
  let ran = 0;
  const save = async (epoch: number, batchInEpoch: number, sums?: typeof partial) => {
    if (!o.checkpoint) return;
    // the running correct count is each rank's own: the checkpoint holds their sum (a collective: every
    // rank saves at the same points); rank 0 writes
    if (dist && sums) sums = { ...sums, correct: (await sumOverRanks([sums.correct]))[0] };
    if (dist && dist.rank !== 0) return;
    watchdog?.progress(`writing the checkpoint of epoch ${epoch + 1}, batch ${batchInEpoch}`);
    await saveCheckpoint(o.checkpoint, model, opt, { epoch, batchInEpoch, step, partial: sums }, { schedule: schedule?.state() ?? null, history, dataSeed, settings });
  };

  try {
    let lastEpochSeconds = 0;
    for (let epoch = startEpoch; epoch < o.epochs; epoch++) {
      const elapsed = (performance.now() - t0) / 1000;
      let late = o.timeLimitSeconds !== undefined && epoch > startEpoch && elapsed + lastEpochSeconds > o.timeLimitSeconds;
      if (dist && o.timeLimitSeconds !== undefined) late = (await sumOverRanks([late ? 1 : 0]))[0] > 0; // the ranks stop together
      if (late) break;
      const te = performance.now();
      const resumed = epoch === startEpoch && startBatch > 0;
      let lossSum = resumed ? partial.lossSum : 0;
      let correct = resumed ? partial.correct : 0;
      let seen = resumed ? partial.seen : 0;
      const seenBefore = seen; // images of this epoch done before a resume: not part of this run's throughput
      let b = epoch === startEpoch ? startBatch : 0;
      model.train(true);
      // Data parallel: the ranks' epochs must hold the same images (an image folder drops a file it finds
      // unreadable, and a rank that found one would cut its share differently, or run fewer steps)
      if (dist) await checkSameSettings(dist, { trainImages: o.train.size }, `train: epoch ${epoch + 1}`);
      // One step in flight: step k+1 is enqueued (on CUDA) before step k's loss is awaited, so the device
      // never idles while the host reads a loss or prepares a batch. A step's sums are counted when its
      // loss arrives; everything that needs them (progress, checkpoints) settles the step in flight first.
      let inFlight: { result: Promise<StepResult>; n: number; lr: number } | null = null;
      const settle = async () => {
        if (!inFlight) return;
        const { result, n, lr } = inFlight;
        inFlight = null;
        const r = await result;
        // data parallel: the loss is the global batch's (all-reduced with the gradients), `correct` this rank's
        const all = dist ? n * dist.world : n;
        lossSum += r.loss * all;
        correct += r.correct;
        seen += all;
        watchdog?.progress(`step ${b} of epoch ${epoch + 1}`);
        const secs = (performance.now() - te) / 1000;
        o.onProgress?.({ epoch, epochs: o.epochs, batch: b, batches, loss: r.loss, acc: correct / (dist ? seen / dist.world : seen), imagesPerSecond: (seen - seenBefore) / secs, lr });
      };
      try {
        for await (const batch of o.train.batches({ batchSize: local, shuffle: true, seed: dataSeed, epoch, dropLast: true, startBatch: b, shard })) {
          if (b >= batches) break;
          if (dist && batch.n !== local)
            throw new Error(`train: rank ${dist.rank}'s batch ${b} of epoch ${epoch + 1} has ${batch.n} images, not ${local} (an unreadable image dropped from it?); data-parallel training needs full batches on every rank: pack the images first (alexnet pack), which leaves the unreadable ones out up front`);
          const raw = batchInput(batch, model.device, 'train');
          let x = raw;
          let result: Promise<StepResult>;
          try {
            if (o.inputTransform) x = o.inputTransform(raw);
            schedule?.beforeStep?.(step);
            result = model.step(x, batch.labels, opt);
          } finally {
            raw.dispose();
            x.dispose();
          }
          result.catch(() => {}); // awaited below or by the next settle; never an unhandled rejection
          await settle();
          inFlight = { result, n: batch.n, lr: opt.lr }; // the rate this step was taken with
          b++;
          step++;
          ran++;
          const stop = o.stopAfterBatches !== undefined && ran >= o.stopAfterBatches;
          if ((o.checkpointEvery && b % o.checkpointEvery === 0 && b < batches) || stop) {
            await settle();
            await save(epoch, b, { lossSum, correct, seen });
          }
          if (stop) return { history, interrupted: true, optimizer: opt, seconds: (performance.now() - t0) / 1000, distributed: distReport() };
        }
        await settle();
      } finally {
        // An error leaves no step in flight behind (its tensors are already released; only its read waits).
        const left = inFlight as { result: Promise<StepResult> } | null;
        if (left) await left.result.catch(() => {});
      }
      const seconds = (performance.now() - te) / 1000;
      if (dist) [correct] = await sumOverRanks([correct]);
      const onTestProgress = (d: number, t: number) => {
        watchdog?.progress(`evaluation batch ${d}/${t} after epoch ${epoch + 1}`);
        o.onTestProgress?.(d, t);
      };
      const test = o.test
        ? await evaluate(model, o.test, {
            batchSize: dist ? Math.max(local, Math.ceil(100 / dist.world)) : Math.max(o.batchSize, 100),
            inputTransform: o.inputTransform,
            onProgress: onTestProgress,
            shard,
            combine: dist ? async (v) => Float64Array.from(await sumOverRanks(Array.from(v))) : undefined,
          })
        : undefined;
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
    if (dist) await barrier(); // rank 0's last checkpoint is written before any rank returns
  } catch (e) {
    opt.dispose();
    throw e;
  } finally {
    if (dist) {
      model.setDataParallel(null);
      model.rng.shard = null;
    }
  }
  return { history, interrupted: false, optimizer: opt, seconds: (performance.now() - t0) / 1000, distributed: distReport() };
}

export { readCheckpointMeta };
