/** Training checkpoints: weights, SGD momentum buffers, epoch/batch position, the dropout stream's
 * (seed, offset), the LR schedule, and the history so far — one safetensors file, written atomically
 * (temporary file + fsync + rename), so an interrupted write never leaves a torn checkpoint. */
import { readSafetensors, writeSafetensors } from './io/safetensors.js';
import type { AlexNet, AlexNetConfig } from './models/alexnet.js';
import type { SGD } from './optim/sgd.js';
import { Tensor } from './tensor.js';

export interface TrainingPosition {
  /** Epoch in progress (0-based). */
  epoch: number;
  /** Batches of that epoch already done. */
  batchInEpoch: number;
  /** Optimizer steps taken in all. */
  step: number;
  /** Running sums of the epoch in progress (so a resumed epoch reports the same averages). */
  partial?: { lossSum: number; correct: number; seen: number };
}

export interface CheckpointMeta extends TrainingPosition {
  format: 'alexnet-cuda-checkpoint';
  version: 1;
  config: AlexNetConfig;
  rngSeed: string;
  rngOffset: number;
  lr: number;
  schedule: Record<string, number> | null;
  history: unknown[];
  dataSeed: number;
  /** The run's settings: a resume with others would not reproduce the uninterrupted run. */
  settings: TrainingSettings;
}

export interface TrainingSettings {
  batchSize: number;
  momentum: number;
  weightDecay: number;
  schedule: string;
  /** Training images (a --limit changes them). Absent in checkpoints of earlier versions. */
  trainImages?: number;
  /** The parameters held fixed ('features' when fine-tuning only the classifier; 'none'). Absent in
   * checkpoints of earlier versions (none). */
  freeze?: string;
  /** The steps of an epoch: ⌊training images / batch size⌋, or maxBatchesPerEpoch below it. Absent in
   * checkpoints of earlier versions (not checked then). */
  batchesPerEpoch?: number;
}

export async function saveCheckpoint(
  path: string,
  model: AlexNet,
  opt: SGD,
  pos: TrainingPosition,
  extra: { schedule: Record<string, number> | null; history: unknown[]; dataSeed: number; settings: TrainingSettings },
): Promise<void> {
  const tensors = await model.stateDict();
  const named = model.namedParameters();
  for (let i = 0; i < opt.params.length; i++) {
    const buf = opt.buffers[i];
    if (!buf) continue;
    const name = named.find(([, p]) => p === opt.params[i])?.[0] ?? `param${i}`;
    tensors.set(`optimizer.momentum.${name}`, { shape: [...buf.shape], data: await buf.toFloat32Array() });
  }
  const meta: CheckpointMeta = {
    format: 'alexnet-cuda-checkpoint',
    version: 1,
    ...pos,
    config: model.config,
    rngSeed: model.rng.seed.toString(),
    rngOffset: model.rng.offset,
    lr: opt.lr,
    schedule: extra.schedule,
    history: extra.history,
    dataSeed: extra.dataSeed,
    settings: extra.settings,
  };
  writeSafetensors(path, tensors, { format: 'alexnet-cuda-checkpoint', meta: JSON.stringify(meta) });
}

/** Reads a checkpoint's metadata (to build the matching model before restoring). */
export async function readCheckpointMeta(path: string): Promise<CheckpointMeta> {
  const f = await readSafetensors(path);
  return parseMeta(f.metadata, path);
}

function parseMeta(md: Record<string, string>, path: string): CheckpointMeta {
  if (md.format !== 'alexnet-cuda-checkpoint' || !md.meta)
    throw new Error(`${path}: not an alexnet-cuda checkpoint (metadata format is ${JSON.stringify(md.format)})`);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(md.meta) as CheckpointMeta;
  } catch (e) {
    throw new Error(`${path}: checkpoint metadata is not valid JSON (${(e as Error).message})`);
  }
  const bad = (what: string, v: unknown) => {
    throw new Error(`${path}: invalid checkpoint: ${what}, got ${JSON.stringify(v)}`);
  };
  if (meta === null || typeof meta !== 'object') bad('metadata must be an object', meta);
  if (meta.version !== 1) throw new Error(`${path}: checkpoint version ${meta.version} is not supported (expected 1)`);
  const count = (k: keyof CheckpointMeta) => {
    if (!Number.isSafeInteger(meta[k]) || (meta[k] as number) < 0) bad(`${k} must be an integer ≥ 0`, meta[k]);
  };
  (['epoch', 'batchInEpoch', 'step', 'rngOffset', 'dataSeed'] as const).forEach(count);
  if (typeof meta.config !== 'object' || meta.config === null || typeof meta.config.arch !== 'string') bad('config must describe the model', meta.config);
  if (typeof meta.rngSeed !== 'string' || !/^\d+$/.test(meta.rngSeed) || BigInt(meta.rngSeed) >= 2n ** 64n) bad('rngSeed must be a 64-bit unsigned integer', meta.rngSeed);
  if (typeof meta.lr !== 'number' || !Number.isFinite(meta.lr) || meta.lr < 0) bad('lr must be a finite number ≥ 0', meta.lr);
  if (!Array.isArray(meta.history)) bad('history must be an array', meta.history);
  // One record per finished epoch, in order: a resume appends to it and draws the curve from it.
  const num = (v: unknown) => typeof v === 'number' || v === null; // JSON writes NaN as null
  meta.history.forEach((e, i) => {
    const r = e as Record<string, unknown>;
    if (r === null || typeof r !== 'object' || Array.isArray(r)) bad(`history[${i}] must be an epoch record`, e);
    if (r.epoch !== i) bad(`history[${i}].epoch must be ${i}`, r.epoch);
    for (const k of ['trainLoss', 'trainAcc', 'lr', 'seconds', 'imagesPerSecond'])
      if (!num(r[k])) bad(`history[${i}].${k} must be a number`, r[k]);
    if (r.test !== undefined) {
      const t = r.test as Record<string, unknown>;
      if (t === null || typeof t !== 'object' || !['n', 'top1', 'top5', 'loss'].every((k) => num(t[k]))) bad(`history[${i}].test must hold n, top1, top5 and loss`, r.test);
    }
  });
  if (meta.history.length !== meta.epoch) bad(`history holds ${meta.history.length} epochs, but the checkpoint is in epoch ${meta.epoch}`, meta.history.length);
  if (meta.schedule !== null && typeof meta.schedule !== 'object') bad('schedule must be an object or null', meta.schedule);
  if (meta.partial !== undefined && !['lossSum', 'correct', 'seen'].every((k) => Number.isFinite((meta.partial as Record<string, number>)[k])))
    bad('partial must hold finite lossSum, correct and seen', meta.partial);
  if (typeof meta.settings !== 'object' || meta.settings === null) bad('settings must be an object', meta.settings);
  return meta;
}

/** Restores weights, momentum buffers and the dropout stream into `model`/`opt`; returns the metadata. */
export async function loadCheckpoint(path: string, model: AlexNet, opt: SGD): Promise<CheckpointMeta> {
  const f = await readSafetensors(path);
  const meta = parseMeta(f.metadata, path);
  const c = model.config;
  if (meta.config.arch !== c.arch || meta.config.numClasses !== c.numClasses || meta.config.inChannels !== c.inChannels)
    throw new Error(`${path}: checkpoint is for arch ${meta.config.arch} with ${meta.config.numClasses} classes and ${meta.config.inChannels} input channels; the model is ${c.arch} with ${c.numClasses} and ${c.inChannels}`);
  // Check everything before changing anything: a bad file leaves the model and optimizer as they were.
  const named = model.namedParameters();
  const momenta = opt.params.map((p) => {
    const name = named.find(([, q]) => q === p)?.[0];
    const t = name ? f.tensors.get(`optimizer.momentum.${name}`) : undefined;
    if (!t) return null;
    if (!(t.data instanceof Float32Array) || t.shape.length !== p.value.shape.length || t.shape.some((d, j) => d !== p.value.shape[j]))
      throw new Error(`${path}: momentum buffer of "${name}" is ${t.dtype} [${t.shape.join(', ')}], expected F32 [${p.value.shape.join(', ')}]`);
    return t.data;
  });
  // After a step with momentum every parameter has its buffer: one missing would restart its momentum,
  // and the resumed run would not be the uninterrupted one.
  if (meta.step > 0 && opt.momentum !== 0) {
    const missing = opt.params.map((p, i) => (momenta[i] ? null : named.find(([, q]) => q === p)?.[0] ?? `param ${i}`)).filter((n) => n !== null);
    if (missing.length)
      throw new Error(`${path}: after ${meta.step} steps with momentum the checkpoint lacks the momentum buffer of ${missing.map((n) => `"${n}"`).join(', ')}`);
  }
  model.loadStateDict(f.tensors, path); // validates every weight before writing any
  opt.params.forEach((p, i) => {
    opt.buffers[i]?.dispose();
    const m = momenta[i];
    opt.buffers[i] = m ? Tensor.from(m, p.value.shape, p.value.device) : null;
  });
  opt.lr = meta.lr;
  opt.stepCount = meta.step;
  model.rng.seed = BigInt(meta.rngSeed);
  model.rng.offset = meta.rngOffset;
  return meta;
}
