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
}

export async function saveCheckpoint(
  path: string,
  model: AlexNet,
  opt: SGD,
  pos: TrainingPosition,
  extra: { schedule: Record<string, number> | null; history: unknown[]; dataSeed: number },
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
  const meta = JSON.parse(md.meta) as CheckpointMeta;
  if (meta.version !== 1) throw new Error(`${path}: checkpoint version ${meta.version} is not supported (expected 1)`);
  return meta;
}

/** Restores weights, momentum buffers and the dropout stream into `model`/`opt`; returns the metadata. */
export async function loadCheckpoint(path: string, model: AlexNet, opt: SGD): Promise<CheckpointMeta> {
  const f = await readSafetensors(path);
  const meta = parseMeta(f.metadata, path);
  const c = model.config;
  if (meta.config.arch !== c.arch || meta.config.numClasses !== c.numClasses || meta.config.inChannels !== c.inChannels)
    throw new Error(`${path}: checkpoint is for arch ${meta.config.arch} with ${meta.config.numClasses} classes and ${meta.config.inChannels} input channels; the model is ${c.arch} with ${c.numClasses} and ${c.inChannels}`);
  model.loadStateDict(f.tensors, path);
  const named = model.namedParameters();
  opt.params.forEach((p, i) => {
    const name = named.find(([, q]) => q === p)?.[0];
    const t = name ? f.tensors.get(`optimizer.momentum.${name}`) : undefined;
    opt.buffers[i]?.dispose();
    opt.buffers[i] = null;
    if (!t) return;
    if (t.shape.length !== p.value.shape.length || t.shape.some((d, j) => d !== p.value.shape[j]))
      throw new Error(`${path}: momentum buffer of "${name}" has shape [${t.shape.join(', ')}], expected [${p.value.shape.join(', ')}]`);
    opt.buffers[i] = Tensor.from(t.data as Float32Array, p.value.shape, p.value.device);
  });
  opt.lr = meta.lr;
  opt.stepCount = meta.step;
  model.rng.seed = BigInt(meta.rngSeed);
  model.rng.offset = meta.rngOffset;
  return meta;
}
