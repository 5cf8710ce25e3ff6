#!/usr/bin/env node
/** The `alexnet` command: train, eval, predict, info. Argument parsing by commander, progress bars by
 * cli-progress. `alexnet train` with no arguments is the main job: Fashion-MNIST, the small arch on the
 * CPU (or the paper arch on upscaled images on a GPU), reporting test accuracy. */
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { readCheckpointMeta } from './checkpoint.js';
import type { BatchSource } from './data/types.js';
import { FASHION_MNIST_MEAN, FASHION_MNIST_STD, loadFashionMnist } from './data/fashion-mnist.js';
import { IMAGENET_MEAN, IMAGENET_STD } from './data/augment.js';
import { IMAGENET_CLASSES, IMAGENET_PREPROCESS } from './data/imagenet-classes.js';
import { resizeBilinear } from './ops/resize.js';
import { ImageFolder } from './data/image-folder.js';
import { pack, type PackOptions } from './data/pack.js';
import { PackedDataset } from './data/packed.js';
import { proveWritableFolder } from './io/files.js';
import { holdUntilExit, lockFolder } from './io/lock.js';
import { evaluate } from './eval.js';
import { evaluateTenCrop, loadImagesForPrediction, type InputSpec } from './predict.js';
import { createAlexNet, type AlexNet, type Arch } from './models/alexnet.js';
import { modelSpecFromWeights } from './models/from-weights.js';
import { packageRoot } from './native.js';
import { setDefaultPrecision, type Precision } from './ops/util.js';
import { Tensor, backendInfo, cudaAvailable, type Device } from './tensor.js';
import { train, type EpochRecord } from './train.js';
import { abortDistributed, distributedSupport, finalizeDistributed, initDistributed, launchedByMpi, mpirunArgs, type DistInfo } from './distributed.js';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { filterGridPng, trainingCurvePng } from './viz.js';
import { loadSharp } from './sharp.js';

const pkg = JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string };

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got "${v}"`);
  return n;
};
/** A number in [lo, hi) (the flags whose meaningful range is bounded). */
const inRange = (name: string, lo: number, hi: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < lo || n >= hi) throw new InvalidArgumentError(`${name} must be a number in [${lo}, ${hi}), got "${v}"`);
  return n;
};
const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative number, got "${v}"`);
  return n;
};

/** Progress of a long evaluation: a bar on a terminal; elsewhere (logs, --no-progress) a line every
 * 10 seconds on stderr, so a 17-second test pass is not silent. Returns the callback and a `done`. */
function evalProgress(label: string, bar: boolean): { update: (done: number, total: number) => void; done: () => void } {
  if (bar && process.stderr.isTTY) {
    const b = new cliProgress.SingleBar({ format: `${label} |{bar}| {value}/{total} images | eta {eta_formatted}`, hideCursor: true }, cliProgress.Presets.shades_classic);
    let started = false;
    return {
      update: (d, t) => {
        if (!started) b.start(t, 0);
        started = true;
        b.update(d);
      },
      done: () => started && b.stop(),
    };
  }
  let last = performance.now();
  return {
    update: (d, t) => {
      const now = performance.now();
      if (now - last < 10_000 || d >= t) return;
      last = now;
      console.error(`${label}: ${d}/${t} images`);
    },
    done: () => {},
  };
}

function pickDevice(d: string | undefined): Device {
  // The emulated CUDA device (a test build) is a correctness tool, thousands of times slower than a GPU:
  // only an explicit --device cuda uses it.
  if (d === undefined || d === 'auto') return cudaAvailable() && !backendInfo().emulated ? 'cuda' : 'cpu';
  if (d === 'cuda' && !cudaAvailable()) throw new Error(`--device cuda: CUDA is not available: ${backendInfo().cudaReason}`);
  return d as Device;
}

interface DataChoice {
  train: BatchSource;
  test: BatchSource;
  classes: readonly string[];
  describe: string;
  input: InputSpec;
  /** Upscaling done on the device (Fashion-MNIST for the paper/torchvision archs). */
  inputTransform?: (x: Tensor) => Tensor;
}

/** Fashion-MNIST (default) or an image folder (with train/ and test|val/ inside, or one folder split 90/10). */
/** A packed data set given to --data: a .axpk file (`single`), or a folder holding train.axpk and
 * test.axpk / val.axpk (what `alexnet pack` writes for a folder with train/ and test/). */
function packedSplits(p: string): { single?: string; train?: string; test?: string } | null {
  if (!existsSync(p)) return null;
  if (statSync(p).isFile()) return isPackedFile(p) ? { single: p } : null;
  const train = path.join(p, 'train.axpk');
  const test = ['test', 'val', 'valid'].map((d) => path.join(p, `${d}.axpk`)).find((f) => existsSync(f));
  return existsSync(train) || test ? { train: existsSync(train) ? train : undefined, test } : null;
}

/** A file that starts with the packed data set's magic (native/data/store.h). */
function isPackedFile(p: string): boolean {
  const fd = openSync(p, 'r');
  try {
    const b = Buffer.alloc(8);
    return readSync(fd, b, 0, 8, 0) === 8 && b.toString('latin1') === 'AXPACK\r\n';
  } finally {
    closeSync(fd);
  }
}

async function openData(data: string, arch: Arch, opts: { limit?: number; testLimit?: number; workers?: number; side: number; channels: number; device: Device; decode?: 'cpu' | 'gpu' }): Promise<DataChoice> {
  if (data === 'fashion-mnist') {
    // 28×28 batches cross to the device; larger inputs (the paper's 227) are made there by bilinear upscaling.
    const common = { size: 28, channels: opts.channels as 1 | 3 };
    const tr = loadFashionMnist({ split: 'train', ...common, limit: opts.limit });
    const te = loadFashionMnist({ split: 'test', ...common, limit: opts.testLimit });
    const side = opts.side;
    const inputTransform = side !== 28 ? (x: Tensor) => resizeBilinear(x, [side, side]) : undefined;
    return {
      train: tr,
      test: te,
      classes: tr.classes,
      describe: `Fashion-MNIST (${tr.size} train / ${te.size} test, ${side}×${side}×${opts.channels}${side !== 28 ? ', upscaled on the device' : ''})`,
      input: { side, mean: [FASHION_MNIST_MEAN], std: [FASHION_MNIST_STD] },
      inputTransform,
    };
  }
  const root = path.resolve(data);
  const packed = packedSplits(root);
  if (packed) {
    if (!packed.train || !packed.test)
      throw new Error(`--data ${data}: a packed folder for training needs train.axpk and test.axpk (or val.axpk) inside (alexnet pack <folder with train/ and test/> ${data})`);
    const common = { size: opts.side, device: opts.device, threads: opts.workers, decode: opts.decode };
    const tr = await PackedDataset.open(packed.train, { ...common, train: true, limit: opts.limit });
    const te = await PackedDataset.open(packed.test, { ...common, train: false, limit: opts.testLimit });
    if (tr.settings.channels !== opts.channels) throw new Error(`--data ${data}: the store holds ${tr.settings.channels}-channel images, the ${arch} arch takes ${opts.channels}`);
    if (tr.classes.length < 2) throw new Error(`--data ${data}: ${packed.train} has ${tr.classes.length} class: a classifier needs at least 2`);
    if (te.classes.length !== tr.classes.length || te.classes.some((c, i) => c !== tr.classes[i]))
      throw new Error(`--data ${data}: the test classes (${te.classes.join(', ')}) are not the training classes (${tr.classes.join(', ')})`);
    return {
      train: tr,
      test: te,
      classes: tr.classes,
      describe: `packed data set ${root} (${tr.size} train / ${te.size} test; JPEGs decoded ${opts.decode === 'gpu' ? 'on the GPU (nvJPEG)' : `by ${opts.workers ?? os.availableParallelism()} native threads`}, augmented on the ${opts.device === 'cuda' ? 'GPU' : 'CPU'})`,
      input: { side: opts.side, mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] },
    };
  }
  const { existsSync } = await import('node:fs');
  const trainDir = path.join(root, 'train');
  const testDir = ['test', 'val', 'valid'].map((d) => path.join(root, d)).find((d) => existsSync(d));
  if (!existsSync(trainDir) || !testDir)
    throw new Error(`--data ${data}: expected an image folder with train/ and test/ (or val/) inside, each with one subfolder per class`);
  const common = { size: opts.side, channels: opts.channels as 1 | 3, workers: opts.workers };
  const tr = await ImageFolder.open(trainDir, { ...common, train: true, limit: opts.limit, onSkip: (s: { path: string; reason: string }) => console.error(`skipped ${s.path}: ${s.reason}`) });
  const te = await ImageFolder.open(testDir, { ...common, train: false, limit: opts.testLimit, onSkip: (s: { path: string; reason: string }) => console.error(`skipped ${s.path}: ${s.reason}`) });
  // Labels are class indices in sorted-name order: other names in test/ would score nonsense.
  if (tr.classes.length < 2) throw new Error(`--data ${data}: ${trainDir} has ${tr.classes.length} class (${tr.classes.join(', ')}): a classifier needs at least 2`);
  if (te.classes.length !== tr.classes.length || te.classes.some((c, i) => c !== tr.classes[i]))
    throw new Error(`--data ${data}: the test classes (${te.classes.join(', ')}) are not the training classes (${tr.classes.join(', ')})`);
  return {
    train: tr,
    test: te,
    classes: tr.classes,
    describe: `image folder ${root} (${tr.size} train / ${te.size} test)`,
    input: { side: opts.side, mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] },
  };
}

const program = new Command()
  .name('alexnet')
  .description('Train, evaluate and run AlexNet on CUDA (or the CPU) from Node.js')
  .version(pkg.version);

program
  .command('train')
  .description('train AlexNet; with no options: Fashion-MNIST, the small arch on the CPU / the paper arch on a GPU')
  .option('--data <source>', '"fashion-mnist", an image folder with train/ and test/ subfolders, or a packed folder (alexnet pack) with train.axpk and test.axpk', 'fashion-mnist')
  .addOption(new Option('--arch <arch>', 'network').choices(['small', 'paper', 'torchvision']))
  .addOption(new Option('--device <device>', 'where to train').choices(['auto', 'cpu', 'cuda']).default('auto'))
  .addOption(new Option('--precision <p>', 'GEMM precision (default on CUDA tf32: tensor cores; bf16: GEMM inputs rounded to bfloat16, float32 sums)').choices(['fp32', 'tf32', 'bf16']))
  .option('--epochs <n>', 'epochs', int('--epochs'))
  .option('--batch-size <n>', 'images per batch (with --nproc / mpirun: the global batch, all processes together)', int('--batch-size'))
  .option('--lr <x>', 'initial learning rate (with --nproc / mpirun: for the global batch)', num('--lr'))
  .option('--momentum <x>', 'SGD momentum, in [0, 1)', inRange('--momentum', 0, 1), 0.9)
  .option('--weight-decay <x>', 'SGD weight decay, in [0, 1)', inRange('--weight-decay', 0, 1), 5e-4)
  .addOption(new Option('--schedule <s>', 'learning-rate schedule: plateau (÷10 when the test error stops improving), step (÷10 every 30 epochs), cosine (linear warm-up over --warmup-steps, then a half cosine down to --min-lr, set every step) or none').choices(['plateau', 'step', 'cosine', 'none']))
  .option('--warmup-steps <n>', '--schedule cosine: steps of linear warm-up (default 0)', (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`--warmup-steps must be an integer ≥ 0, got "${v}"`);
    return n;
  })
  .option('--min-lr <x>', '--schedule cosine: the rate the decay ends at (default 0)', num('--min-lr'))
  .option('--dropout <p>', 'dropout probability, in [0, 1)', inRange('--dropout', 0, 1), 0.5)
  .option('--groups <g>', "paper arch: 2 for the paper's two-tower grouping", int('--groups'), 1)
  .option('--seed <n>', 'seed of the initialisation, dropout and data order', (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`--seed must be an integer ≥ 0, got "${v}"`);
    return n;
  }, 1)
  .option('--limit <n>', 'use only the first n training images', int('--limit'))
  .option('--test-limit <n>', 'evaluate on only the first n test images (class-balanced)', int('--test-limit'))
  .option('--workers <n>', 'image decoding workers (image folders) or decode threads (packed data sets; default one per core)', int('--workers'))
  .addOption(new Option('--decode <where>', 'packed data sets: decode JPEGs on the cpu (decode threads) or the gpu (nvJPEG, --device cuda)').choices(['cpu', 'gpu']).default('cpu'))
  .option('--time-limit <minutes>', 'start no epoch that would end past this many minutes (default 14 for the default CPU job)', num('--time-limit'))
  .option('--out <dir>', 'where to write weights, checkpoint, history and PNGs', 'alexnet-run')
  .option('--weights <file>', 'start from these weights (fine-tuning; .safetensors or a torch.save\'d .pth, e.g. torchvision\'s ImageNet AlexNet): every layer is loaded, the last one only when it has as many classes as the data (else it is replaced by a fresh one for the data\'s classes)')
  .addOption(new Option('--freeze <what>', 'keep these layers fixed: features (the convolutional layers; train the classifier only) or none').choices(['none', 'features']).default('none'))
  .option('--resume', 'resume from <out>/checkpoint.safetensors when it exists')
  .option('--checkpoint-every <n>', 'also write the checkpoint every n batches (it is written after every epoch)', int('--checkpoint-every'))
  .option('--no-progress', 'no progress bar (one line per epoch)')
  .option('--nproc <n>', 'data-parallel training in n processes on this machine (one GPU each on CUDA): runs mpirun -np n for you (needs MPI: Open MPI or MPICH). On several machines, start it with mpirun (or srun) yourself: mpirun -np N -hostfile hosts npx alexnet train …. --batch-size and --lr stay the global ones: each process takes batch-size / n images a step', int('--nproc'))
  .action(async (o) => {
    // Before anything is loaded: options that belong to another schedule
    if ((o.warmupSteps !== undefined || o.minLr !== undefined) && o.schedule !== 'cosine')
      throw new InvalidArgumentError(`--warmup-steps and --min-lr belong to --schedule cosine, this run's schedule is ${o.schedule ?? 'plateau (the default)'}`);
    if (o.minLr !== undefined && o.lr !== undefined && o.minLr > o.lr) throw new InvalidArgumentError(`--min-lr must be at most --lr (${o.lr}), got ${o.minLr}`);
    if (o.nproc !== undefined && !launchedByMpi()) {
      if (o.nproc > 1) return launchRanks(o.nproc);
    }
    // Under MPI (mpirun -np N, or --nproc): rank, world and this process's GPU first, before anything uses
    // the device. Rank 0 writes the results; the other ranks train quietly beside it.
    if (launchedByMpi()) distInfo = initDistributed();
    const lead = !distInfo || distInfo.rank === 0;
    if (distInfo && distInfo.world > 1 && !lead) o.progress = false;
    const log = (m: string) => {
      if (lead) console.log(m);
    };
    // Where the results go, first: proven writable and locked against a second run there before anything
    // is loaded or trained (released when the process ends, by an error or a signal too).
    proveWritableFolder(o.out, '--out');
    const unlock = lead ? holdUntilExit(lockFolder(o.out, '--out', (m) => console.error(`warning: ${m}`))) : () => {};
    const device = pickDevice(o.device);
    // The paper arch where a GPU runs it; the small one on the CPU and on the emulated device (a test build).
    const arch: Arch = o.arch ?? (device === 'cuda' && !backendInfo().emulated ? 'paper' : 'small');
    const isFashion = o.data === 'fashion-mnist';
    const side = arch === 'paper' ? 227 : arch === 'torchvision' ? 224 : isFashion ? 28 : 64;
    const channels = isFashion && arch === 'small' ? 1 : 3;
    // Defaults measured to reach ≥ 88 % on Fashion-MNIST within the README's time on 2 CPU cores (small arch),
    // and the usual AlexNet settings on a GPU.
    const dflt = arch === 'small' ? { epochs: 6, batchSize: 64, lr: 0.02 } : { epochs: 10, batchSize: 128, lr: 0.01 };
    const epochs = o.epochs ?? dflt.epochs;
    // The default CPU job keeps within 15 minutes: no epoch is started that would end past 14.
    const timeLimit: number | undefined = o.timeLimit ?? (o.epochs === undefined && device === 'cpu' ? 14 : undefined);
    const batchSize = o.batchSize ?? dflt.batchSize;
    const lr = o.lr ?? dflt.lr;
    // TF32 tensor cores by default on CUDA (strict fp32: --precision fp32); the CPU computes in fp32.
    const precision: Precision = (o.precision as Precision | undefined) ?? (device === 'cuda' ? 'tf32' : 'fp32');
    setDefaultPrecision(precision);
    const data = await openData(o.data, arch, { limit: o.limit, testLimit: o.testLimit, workers: o.workers, side, channels, device, decode: o.decode });
    const model = createAlexNet({ arch, numClasses: data.classes.length, device, precision, dropout: o.dropout, seed: o.seed, groups: o.groups, inChannels: channels });
    if (o.weights) {
      try {
        log(await loadPretrained(model, o.weights));
      } catch (e) {
        model.dispose();
        throw e;
      }
    }
    const ckpt = path.join(o.out, 'checkpoint.safetensors');
    if (o.resume) {
      if (existsSync(ckpt)) {
        const meta = await readCheckpointMeta(ckpt); // a corrupt checkpoint is an error, not a fresh start
        log(`resuming from ${ckpt}: epoch ${meta.epoch + 1}, batch ${meta.batchInEpoch}`);
      } else {
        log(`no checkpoint at ${ckpt}: starting fresh`);
      }
    }
    const info = backendInfo();
    log(`alexnet-cuda ${pkg.version}: training the ${arch} arch (${(model.numParameters / 1e6).toFixed(2)}M parameters) on ${device === 'cuda' ? `${info.gpus[0]?.name ?? 'CUDA'} (${precision})` : `the CPU (${info.threads} threads, ${info.blas} GEMM)`}`);
    log(`data: ${data.describe}; ${epochs} epochs, batch ${batchSize}, lr ${lr}, momentum ${o.momentum}, weight decay ${o.weightDecay}`);
    let testBar: ReturnType<typeof evalProgress> | undefined;
    const bar = o.progress && process.stderr.isTTY
      ? new cliProgress.SingleBar({ format: 'epoch {epoch}/{epochs} |{bar}| {value}/{total} | loss {loss} | acc {acc}% | {ips} img/s | eta {eta_formatted}', hideCursor: true }, cliProgress.Presets.shades_classic)
      : null;
    let lastEpoch = -1;
    const t0 = performance.now();
    const result = await train({
      model,
      train: data.train,
      test: data.test,
      epochs,
      batchSize,
      lr,
      momentum: o.momentum,
      weightDecay: o.weightDecay,
      schedule: o.schedule ?? 'plateau',
      warmupSteps: o.warmupSteps,
      minLr: o.minLr,
      seed: o.seed,
      freeze: o.freeze,
      checkpoint: ckpt,
      checkpointEvery: o.checkpointEvery,
      resume: o.resume ? ckpt : undefined,
      timeLimitSeconds: timeLimit !== undefined ? timeLimit * 60 : undefined,
      inputTransform: data.inputTransform,
      onProgress: (p) => {
        if (!bar) return;
        if (p.epoch !== lastEpoch) {
          if (lastEpoch >= 0) bar.stop();
          bar.start(p.batches, 0, { epoch: p.epoch + 1, epochs: p.epochs, loss: '-', acc: '-', ips: '-' });
          lastEpoch = p.epoch;
        }
        bar.update(p.batch, { loss: p.loss.toFixed(4), acc: (p.acc * 100).toFixed(1), ips: p.imagesPerSecond.toFixed(0) });
      },
      onTestProgress: (d, t) => {
        if (!testBar) {
          bar?.stop();
          lastEpoch = -1;
          testBar = evalProgress('test pass', o.progress);
        }
        testBar.update(d, t);
      },
      onEpoch: (r: EpochRecord) => {
        bar?.stop();
        testBar?.done();
        testBar = undefined;
        lastEpoch = -1;
        log(
          `epoch ${r.epoch + 1}: train loss ${r.trainLoss.toFixed(4)}, train acc ${(r.trainAcc * 100).toFixed(2)}%` +
            (r.test ? `, test loss ${r.test.loss.toFixed(4)}, test top-1 ${(r.test.top1 * 100).toFixed(2)}%, top-5 ${(r.test.top5 * 100).toFixed(2)}%` : '') +
            `, ${r.imagesPerSecond.toFixed(0)} img/s, lr ${Number(r.lr.toPrecision(4))}, ${r.seconds.toFixed(1)} s`,
        );
      },
    });
    bar?.stop();
    if (!lead) {
      // rank 0 writes the results
      result.optimizer.dispose();
      model.dispose();
      await data.train.close?.();
      await data.test.close?.();
      await finalizeDistributed();
      return;
    }
    await model.saveWeights(path.join(o.out, 'weights.safetensors'), { classes: data.classes, input: data.input });
    writeFileSync(path.join(o.out, 'history.json'), JSON.stringify({ arch, device, data: data.describe, classes: data.classes, history: result.history }, null, 2));
    const conv1 = model.namedParameters()[0][1].value;
    try {
      writeFileSync(path.join(o.out, 'curve.png'), await trainingCurvePng(result.history, `AlexNet (${arch}) on ${isFashion ? 'Fashion-MNIST' : 'images'}, ${device}`));
      writeFileSync(path.join(o.out, 'conv1-filters.png'), await filterGridPng(await conv1.toFloat32Array(), conv1.shape));
    } catch (e) {
      // The weights and the history are written; the pictures need sharp.
      console.error(`warning: no curve.png / conv1-filters.png: ${(e as Error).message.split('\n')[0]}`);
    }
    const last = result.history.at(-1);
    const minutes = (performance.now() - t0) / 60000;
    if (last?.test) log(`test top-1 ${(last.test.top1 * 100).toFixed(2)}%, top-5 ${(last.test.top5 * 100).toFixed(2)}% after ${result.history.length} epochs in ${minutes.toFixed(1)} min`);
    if (lead && o.schedule === 'cosine' && result.history.length < epochs && timeLimit !== undefined)
      console.error(
        `warning: the time limit (${timeLimit} min) ended the run after ${result.history.length} of ${epochs} epochs, before the cosine schedule's end (its last lr ${Number(result.optimizer.lr.toPrecision(4))}): ` +
          `--resume with a larger --time-limit finishes it, or plan fewer --epochs`,
      );
    log(`wrote ${o.out}/{weights.safetensors, checkpoint.safetensors, history.json, curve.png, conv1-filters.png}`);
    result.optimizer.dispose();
    model.dispose();
    await data.train.close?.();
    await data.test.close?.();
    unlock();
    if (distInfo) await finalizeDistributed();
  });

program
  .command('eval')
  .description('evaluate weights: top-1 and top-5, centre crop or the paper\'s 10-crop')
  .requiredOption('--weights <file>', 'weights: a .safetensors file written by `alexnet train` or saveWeights, or a torch.save\'d state_dict (.pth)')
  .option('--data <source>', '"fashion-mnist", or an image folder: its test/ (or val/) when it has train/ and test/ as for `train`, else the folder itself (one subfolder per class); or a packed data set (.axpk, or a packed folder: its test.axpk)', 'fashion-mnist')
  .addOption(new Option('--arch <arch>', 'network (default: from the weights file)').choices(['small', 'paper', 'torchvision']))
  .addOption(new Option('--device <device>', 'device').choices(['auto', 'cpu', 'cuda']).default('auto'))
  .option('--ten-crop', 'average the predictions of the paper\'s 10 crops (image folders)')
  .addOption(new Option('--decode <where>', 'packed data sets: decode JPEGs on the cpu or the gpu (nvJPEG, --device cuda)').choices(['cpu', 'gpu']).default('cpu'))
  .option('--batch-size <n>', 'images per batch (10-crop: crops per forward)', int('--batch-size'), 100)
  .option('--synsets <file>', 'class folders named by WordNet id (ImageNet: n01440764, …): a file listing the model\'s classes\' ids in index order, one per line, first word (ILSVRC\'s LOC_synset_mapping.txt); not needed when the folder has all 1,000')
  .option('--no-progress', 'no progress bar (a line every 10 s instead)')
  .action(async (o) => {
    const device = pickDevice(o.device);
    const { model, classes, input } = await modelFromWeights(o.weights, o.arch, device);
    const c = model.config;
    const side = input.side;
    let source: BatchSource;
    let inputTransform: ((x: Tensor) => Tensor) | undefined;
    const onSkip = (s: { path: string; reason: string }) => console.error(`skipped ${s.path}: ${s.reason}`);
    const packed = o.data === 'fashion-mnist' ? null : packedSplits(path.resolve(o.data));
    if (packed) {
      const file = packed.single ?? packed.test;
      if (!file) throw new Error(`--data ${o.data}: the packed folder has no test.axpk (or val.axpk) to evaluate`);
      if (!packed.single) console.error(`evaluating ${file} (the test split of ${path.resolve(o.data)})`);
      source = await PackedDataset.open(file, { size: side, tenCrop: o.tenCrop === true, device, mean: input.mean, std: input.std, decode: o.decode });
    } else if (o.data === 'fashion-mnist') {
      if (o.tenCrop) throw new Error('--ten-crop needs an image folder (Fashion-MNIST images are 28×28)');
      source = loadFashionMnist({ split: 'test', size: 28, channels: c.inChannels as 1 | 3 });
      if (side !== 28) inputTransform = (x) => resizeBilinear(x, [side, side]);
    } else {
      // 10-crop: the crops come from the short-side-resized centre square (256 for a 224/227 input).
      const big = Math.round((side * 256) / 224);
      // The same root `train --data` takes means its test split here.
      const { existsSync } = await import('node:fs');
      const root = path.resolve(o.data);
      const split = existsSync(path.join(root, 'train')) ? ['test', 'val', 'valid'].map((d) => path.join(root, d)).find((d) => existsSync(d)) : undefined;
      if (split) console.error(`evaluating ${split} (the test split of ${root})`);
      source = await ImageFolder.open(split ?? root, { size: o.tenCrop ? big : side, resize: big, channels: c.inChannels as 1 | 3, train: false, mean: input.mean, std: input.std, onSkip });
    }
    if (source.classes.length > c.numClasses)
      throw new Error(`the data has ${source.classes.length} classes, the model only ${c.numClasses}`);
    const labelMap = mapLabels(source.classes, classes, c.numClasses, o.synsets);
    if (!labelMap && classes && source.classes.some((name, i) => classes[i] !== name))
      console.warn(`warning: the data's classes (${source.classes.slice(0, 4).join(', ')}, …) are not the ones the weights were trained on (${classes.slice(0, 4).join(', ')}, …); labels are matched by position`);
    const progress = evalProgress(o.tenCrop ? 'eval (10-crop)' : 'eval', o.progress);
    const r = o.tenCrop
      ? await evaluateTenCrop(model, source, { batchSize: o.batchSize, side, onProgress: progress.update, labelMap })
      : await evaluate(model, source, { batchSize: o.batchSize, inputTransform, onProgress: progress.update, labelMap });
    progress.done();
    console.log(`${r.n} images: top-1 ${(r.top1 * 100).toFixed(2)}%, top-5 ${(r.top5 * 100).toFixed(2)}%${Number.isFinite(r.loss) ? `, loss ${r.loss.toFixed(4)}` : ''}${o.tenCrop ? ' (10-crop)' : ''}`);
    await source.close?.();
    model.dispose();
  });

program
  .command('predict')
  .description('classify image files')
  .argument('[images...]', 'JPEG/PNG files')
  .option('--data <store>', 'classify the images of a packed data set (.axpk) instead of files')
  .option('--limit <n>', 'with --data: only the first n images', int('--limit'))
  .requiredOption('--weights <file>', 'weights: a .safetensors file written by `alexnet train`, or a torch.save\'d state_dict (.pth, torchvision names)')
  .addOption(new Option('--arch <arch>', 'network (default: from the weights file; torchvision for a .pth)').choices(['small', 'paper', 'torchvision']))
  .addOption(new Option('--device <device>', 'device').choices(['auto', 'cpu', 'cuda']).default('auto'))
  .addOption(new Option('--preprocess <how>', 'weights: as the weights file says (else ImageNet\'s for colour models); imagenet: torchvision\'s ImageNet transform (short side 256, centre crop 224, ImageNet mean/std)').choices(['weights', 'imagenet']).default('weights'))
  .option('--top <k>', 'classes to show per image', int('--top'), 5)
  .action(async (images: string[], o) => {
    const device = pickDevice(o.device);
    const loaded = await modelFromWeights(o.weights, o.arch, device);
    const { model, classes } = loaded;
    let { input } = loaded;
    if (o.preprocess === 'imagenet') {
      if (model.config.inChannels !== 3) throw new Error(`--preprocess imagenet is for colour models; these weights take ${model.config.inChannels} channel(s)`);
      input = { side: IMAGENET_PREPROCESS.crop, mean: [...IMAGENET_PREPROCESS.mean], std: [...IMAGENET_PREPROCESS.std] };
    }
    if (o.data) {
      if (images.length) throw new Error('predict: give image files or --data <store>, not both');
      await predictPacked(model, classes, input, o.data, device, o.top, o.limit);
      model.dispose();
      return;
    }
    if (!images.length) throw new Error('predict: give image files to classify, or --data <store>');
    const { tensor, files, failed } = await loadImagesForPrediction(images, model.config, input);
    for (const f of failed) console.error(`${f.path}: could not read it (${f.reason})`);
    if (tensor) {
      const probs = await model.predict(tensor);
      tensor.dispose();
      const k = model.config.numClasses;
      files.forEach((f, i) => {
        const row = Array.from(probs.subarray(i * k, (i + 1) * k)).map((p, j) => [p, j] as const).sort((a, b) => b[0] - a[0]).slice(0, o.top);
        console.log(`${f}: ${row.map(([p, j]) => `${classes?.[j] ?? j} ${(p * 100).toFixed(1)}%`).join(', ')}`);
      });
    }
    model.dispose();
    if (failed.length) process.exitCode = 1;
  });

program
  .command('pack')
  .description('decode every image of a folder once, resize it (short side 256) and write a packed data set that the native loader reads at thousands of images per second per core')
  .argument('<src>', 'an image folder (one subfolder per class), or a folder with train/ and test/ (or val/) inside: then each is packed')
  .argument('<out>', 'the packed data set (a .axpk file); for a folder with train/ and test/, a folder that gets train.axpk and test.axpk')
  .option('--resize <n>', 'short side after resizing', int('--resize'), 256)
  .option('--square', "store the paper's resize×resize centre square instead of keeping the aspect ratio")
  .addOption(new Option('--format <f>', 'record format: jpeg (decoded when read) or raw (uint8, ~9× larger, nothing to decode)').choices(['jpeg', 'raw']).default('jpeg'))
  .option('--quality <q>', 'JPEG quality, 1–100', int('--quality'), 90)
  .addOption(new Option('--channels <c>', '3 (sRGB) or 1 (grey)').choices(['1', '3']).default('3'))
  .option('--workers <n>', 'decode processes (default: one per core)', int('--workers'))
  .option('--limit <n>', 'pack only n images of each split, round-robin over the classes', int('--limit'))
  .option('--restart', 'start over instead of continuing an interrupted pack of the same files')
  .option('--overwrite', 'replace an existing output')
  .option('--no-progress', 'no progress bar (a line every 10 s instead)')
  .action(async (src: string, out: string, o) => {
    const root = path.resolve(src);
    if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`pack: ${root} is not a folder`);
    const splits = existsSync(path.join(root, 'train'))
      ? [['train', path.join(root, 'train')], ...(['test', 'val', 'valid'].map((d) => [d, path.join(root, d)]).filter(([, d]) => existsSync(d)).slice(0, 1))]
      : [[null, root]];
    if (splits.length > 1 || splits[0][0] !== null) mkdirSync(out, { recursive: true });
    for (const [split, dir] of splits as [string | null, string][]) {
      const file = split === null ? out : path.join(out, `${split}.axpk`);
      const bar = o.progress && process.stderr.isTTY
        ? new cliProgress.SingleBar({ format: `pack${split ? ` ${split}` : ''} |{bar}| {value}/{total} | {rate} img/s | {skipped} skipped | eta {eta_formatted}`, hideCursor: true, etaBuffer: 200 }, cliProgress.Presets.shades_classic)
        : null;
      let started = false;
      let lastLine = performance.now();
      const opts: PackOptions = {
        resize: o.resize,
        mode: o.square ? 'square' : 'short',
        format: o.format,
        quality: o.quality,
        channels: Number(o.channels) as 1 | 3,
        workers: o.workers,
        limit: o.limit,
        resume: !o.restart,
        overwrite: o.overwrite === true,
        onSkip: (s) => {
          if (bar) bar.stop();
          console.error(`skipped ${s.path}: ${s.reason}`);
          if (bar && started) bar.start(bar.getTotal(), bar.getProgress() * bar.getTotal());
        },
        onProgress: (p) => {
          if (bar) {
            if (!started) bar.start(p.total, p.done, { rate: '-', skipped: 0 });
            started = true;
            bar.update(p.done, { rate: p.rate.toFixed(0), skipped: p.skipped });
          } else if (performance.now() - lastLine > 10_000 || p.done === p.total) {
            lastLine = performance.now();
            console.error(`pack${split ? ` ${split}` : ''}: ${p.done}/${p.total} images, ${p.rate.toFixed(0)} img/s, ${p.skipped} skipped${Number.isFinite(p.etaSeconds) && p.done < p.total ? `, eta ${Math.ceil(p.etaSeconds)} s` : ''}`);
          }
        },
      };
      const r = await pack(dir, file, opts);
      bar?.stop();
      console.log(
        `wrote ${r.path}: ${r.count} images in ${r.classes.length} classes, ${(r.bytes / 2 ** 20).toFixed(1)} MiB, ${r.settings.format}` +
          `${r.settings.format === 'jpeg' ? ` q${r.settings.quality}` : ''}, ${r.settings.mode === 'square' ? `${r.settings.resize}×${r.settings.resize} centre squares` : `short side ${r.settings.resize}`}; ` +
          `${r.skipped.length} skipped; ${r.rate.toFixed(0)} images/s${r.resumedFrom ? ` (resumed after ${r.resumedFrom})` : ''}`,
      );
    }
  });

program
  .command('info')
  .description('backend, GPU and versions')
  .action(async () => {
    const info = backendInfo();
    const sharpInfo = await loadSharp().then(
      (sharp) => `sharp ${sharp.versions.sharp ?? ''} (libvips ${sharp.versions.vips})`,
      (e: Error) => `sharp not loadable (${e.message.split('\n')[0].replace(/^alexnet-cuda: /, '')})`,
    );
    const cudaVer = (v?: number) => (v ? `${Math.floor(v / 1000)}.${(v % 1000) / 10}` : 'n/a');
    console.log(`alexnet-cuda ${pkg.version} (addon built with ${info.buildSystem})`);
    console.log(`node ${process.version} (${process.platform}-${process.arch}), ${sharpInfo}`);
    console.log(`CPU: ${info.threads} threads, GEMM: ${info.blas}`);
    if (info.cuda) {
      console.log(`CUDA: runtime ${cudaVer(info.cudaRuntime)}, driver ${cudaVer(info.cudaDriver)}, built for sm_${info.cudaArchs}`);
      for (const g of info.gpus) console.log(`GPU ${g.index}: ${g.name}, ${(g.totalBytes / 2 ** 30).toFixed(1)} GiB, compute capability ${g.computeCapability}, ${g.smCount} SMs`);
    } else {
      console.log(`CUDA: not available: ${info.cudaReason}`);
    }
  });

/** `predict --data store.axpk`: every image of a packed data set (its centred crop), printed as
 * `<source path>: <class> <p>%, …`, batch by batch. */
async function predictPacked(model: AlexNet, classes: readonly string[] | undefined, input: InputSpec, file: string, device: Device, top: number, limit?: number): Promise<void> {
  const ds = await PackedDataset.open(path.resolve(file), { size: input.side, device, mean: input.mean, std: input.std, limit });
  try {
    const names = ds.names;
    const k = model.config.numClasses;
    let at = 0;
    const order = ds.epochRecords({ shuffle: false, seed: 0, epoch: 0 });
    for await (const b of ds.batches({ batchSize: 64 })) {
      let probs: Float32Array;
      try {
        probs = await model.predict(b.input!);
      } finally {
        b.input!.dispose();
      }
      for (let i = 0; i < b.n; i++) {
        const row = Array.from(probs.subarray(i * k, (i + 1) * k)).map((p, j) => [p, j] as const).sort((x, y) => y[0] - x[0]).slice(0, top);
        console.log(`${names[order[at + i]]}: ${row.map(([p, j]) => `${classes?.[j] ?? j} ${(p * 100).toFixed(1)}%`).join(', ')}`);
      }
      at += b.n;
    }
  } finally {
    await ds.close();
  }
}

const WNID = /^n\d{8}$/;

/** The model's class index of each data class, when they are not simply the same position: folders named
 * by WordNet id mapped through a synset list (ImageNet's class order), or folders named like a subset of
 * the weights' classes mapped by name. undefined: by position. */
function mapLabels(data: readonly string[], model: readonly string[] | undefined, numClasses: number, synsets: string | undefined): Int32Array | undefined {
  const byName = (list: readonly string[], what: string) => {
    const index = new Map(list.map((n, i) => [n, i]));
    const missing = data.filter((n) => !index.has(n));
    if (missing.length) throw new Error(`${what} does not list the data's class folder(s) ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`);
    return Int32Array.from(data, (n) => index.get(n)!);
  };
  if (synsets !== undefined) {
    const text = readFileSync(synsets, 'utf8');
    const ids = text.split(/\r?\n/).map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
    if (ids.length !== numClasses) throw new Error(`--synsets ${synsets}: ${ids.length} ids, the model has ${numClasses} classes`);
    const bad = ids.find((id) => !WNID.test(id));
    if (bad !== undefined) throw new Error(`--synsets ${synsets}: "${bad}" is not a WordNet id (n + 8 digits); expected one id per line, first word (as ILSVRC's LOC_synset_mapping.txt)`);
    if (new Set(ids).size !== ids.length) throw new Error(`--synsets ${synsets}: an id is listed twice`);
    return byName(ids, `--synsets ${synsets}`);
  }
  if (data.every((n) => WNID.test(n))) {
    // ImageNet's class indices are its 1,000 WordNet ids sorted; the folder's classes are sorted too
    if (data.length === numClasses) return undefined;
    throw new Error(`the data's ${data.length} class folders are WordNet ids (${data.slice(0, 3).join(', ')}, …) but not all ${numClasses}: give --synsets <file> with the model's ${numClasses} ids in class order (ILSVRC's LOC_synset_mapping.txt) to map them`);
  }
  if (model && data.some((n, i) => model[i] !== n) && data.every((n) => model.includes(n))) return byName(model, 'the weights\' class list');
  return undefined;
}

/** Loads pretrained weights into a freshly made model for fine-tuning: every parameter by name with its
 * exact shape, except the last layer (classifier.6), which is kept fresh when its class count differs.
 * Returns the line to print. */
async function loadPretrained(model: AlexNet, file: string): Promise<string> {
  const { readWeights } = await import('./io/weights.js');
  const f = await readWeights(file);
  const merged = new Map<string, { shape: readonly number[]; data: Float32Array | Int32Array }>();
  const replaced: string[] = [];
  for (const [name, p] of model.namedParameters()) {
    const shape = p.value.shape;
    const t = f.tensors.get(name);
    if (!t) throw new Error(`${file}: no tensor "${name}" (shape [${shape.join(', ')}]) for the ${model.config.arch} arch: are these ${model.config.arch} weights?`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      if (!name.startsWith('classifier.6.')) throw new Error(`${file}: tensor "${name}" has shape [${t.shape.join(', ')}], the ${model.config.arch} arch needs [${shape.join(', ')}]`);
      replaced.push(`${name} [${t.shape.join(', ')}]`);
      merged.set(name, { shape, data: await p.value.toFloat32Array() }); // the fresh layer stays as it is
    } else merged.set(name, t);
  }
  model.loadStateDict(merged, file);
  return replaced.length
    ? `weights: ${file} (${f.format}); the last layer is replaced for the data's ${model.config.numClasses} classes (${replaced.join(', ')} in the file), freshly initialised`
    : `weights: ${file} (${f.format}), every layer`;
}

async function modelFromWeights(file: string, arch: Arch | undefined, device: Device) {
  const { readWeights } = await import('./io/weights.js');
  const f = await readWeights(file);
  // What the metadata says is checked against the tensors before anything is allocated: the model built
  // has exactly the file's tensors (lib/models/from-weights.ts).
  const spec = modelSpecFromWeights(file, f, { arch, archFrom: '--arch' });
  const { numClasses, inChannels } = spec.options;
  const model = createAlexNet({ ...spec.options, device, dropout: 0 });
  try {
    model.loadStateDict(f.tensors, file);
  } catch (e) {
    model.dispose();
    throw e;
  }
  let classes = spec.classes;
  // Weights that name no classes (a torchvision .pth) with 1,000 colour outputs: ImageNet-1k, in
  // torchvision's order.
  if (classes === undefined && numClasses === 1000 && inChannels === 3) classes = [...IMAGENET_CLASSES];
  const input: InputSpec = spec.input ?? {
    side: model.config.inputSize,
    mean: inChannels === 1 ? [FASHION_MNIST_MEAN] : [...IMAGENET_MEAN],
    std: inChannels === 1 ? [FASHION_MNIST_STD] : [...IMAGENET_STD],
  };
  return { model, classes, input };
}

program
  .command('convert')
  .description('convert a torch.save\'d state_dict (.pth, e.g. torchvision\'s alexnet-owt-7be5be79.pth) to safetensors')
  .argument('<in>', 'a .pth / .pt file (the zip format of torch ≥ 1.6), or a .safetensors file')
  .argument('<out>', 'the .safetensors file to write (atomically)')
  .action(async (input: string, out: string) => {
    const { readWeights } = await import('./io/weights.js');
    const { writeSafetensors } = await import('./io/safetensors.js');
    const f = await readWeights(input);
    const md = { ...f.metadata, converted_from: path.basename(input), source_format: f.format };
    await writeSafetensors(out, f.tensors, md);
    let values = 0;
    for (const t of f.tensors.values()) values += t.data.length;
    console.log(`wrote ${out}: ${f.tensors.size} tensors, ${(values / 1e6).toFixed(2)} M values, from ${input} (${f.format})`);
  });

/** This process's place in a data-parallel run (set under MPI). */
let distInfo: DistInfo | null = null;

/** `alexnet train --nproc n`: runs this command again in n processes under mpirun, and ends as it ends. */
async function launchRanks(nproc: number): Promise<void> {
  const support = distributedSupport();
  if (!support.mpi) throw new Error(`--nproc ${nproc}: this build of alexnet-cuda has no MPI: ${support.reason}`);
  const probe = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (probe.error)
    throw new Error(`--nproc ${nproc}: mpirun was not found on the PATH (${(probe.error as NodeJS.ErrnoException).code}); install an MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev), then npm rebuild alexnet-cuda`);
  // the same command line without --nproc
  const argv = process.argv.slice(2);
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--nproc') i++;
    else if (!argv[i].startsWith('--nproc=')) rest.push(argv[i]);
  }
  const env = { ...process.env };
  // the CPU's cores shared among the ranks (unless the user chose)
  if (env.OMP_NUM_THREADS === undefined) env.OMP_NUM_THREADS = String(Math.max(1, Math.floor(os.availableParallelism() / nproc)));
  const cli = fileURLToPath(import.meta.url);
  const child = spawn('mpirun', [...mpirunArgs(nproc), process.execPath, cli, ...rest], { stdio: 'inherit', env });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 + (os.constants.signals[sig] ?? 0) : 1)));
  });
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  if (code !== 0) process.exitCode = code;
}

program.parseAsync(process.argv).catch((e: Error) => {
  // A rank of a data-parallel run: the others may wait for this one; end the job, naming the rank
  if (distInfo && distInfo.world > 1) abortDistributed(1, `alexnet: rank ${distInfo.rank} of ${distInfo.world}: ${e.message}`);
  console.error(`alexnet: ${e.message}`);
  process.exitCode = 1;
});
