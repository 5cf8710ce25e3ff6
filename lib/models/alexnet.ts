/** AlexNet: the 2012 paper's network, torchvision's variant, and a small one for 28–64 px inputs.
 * Parameter names follow torchvision's state_dict (features.N.*, classifier.N.*) for every arch, so
 * PyTorch weights load into 'torchvision' and the other archs have equally predictable names. */
import { DisposedError, describe } from '../errors.js';
import { writeSafetensors } from '../io/safetensors.js';
import { readWeights } from '../io/weights.js';
import { AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, Module, Parameter, RandomStream, ReLU, Sequential } from '../nn/index.js';
import { softmaxCrossEntropy, softmaxCrossEntropyBackward, topkCorrect } from '../ops/loss.js';
import { parsePrecision, type Precision } from '../ops/util.js';
import type { SGD } from '../optim/sgd.js';
import { Rng } from '../data/rng.js';
import { Tensor, parseDevice, type Device } from '../tensor.js';

export type Arch = 'paper' | 'torchvision' | 'small';

const ALEXNET_OPTION_KEYS: readonly (keyof AlexNetOptions)[] = ['arch', 'numClasses', 'device', 'precision', 'dropout', 'seed', 'groups', 'inChannels', 'hidden'];

export interface AlexNetOptions {
  arch?: Arch;
  numClasses?: number;
  device?: Device | string;
  /** GEMM precision of the convolutions and linear layers. Default on CUDA: 'tf32' (tensor cores, 8× the
   * strict float32 rate on an H100/H200; PyTorch's default for cuDNN convolutions too); elsewhere the
   * process default ('fp32' unless setDefaultPrecision). 'bf16': the GEMM inputs rounded to bfloat16 with
   * float32 sums (bf16 tensor cores on CUDA, twice TF32's peak on paper; the CPU rounds the same way, as its oracle);
   * weights, activations, the loss and SGD stay float32. On the CPU 'tf32' computes in float32. */
  precision?: Precision;
  /** Dropout probability in the classifier (0.5 in the paper and torchvision). */
  dropout?: number;
  /** Seeds the weight initialisation and the dropout stream. */
  seed?: number;
  /** 'paper' only: 2 reproduces the paper's two-tower (two-GPU) grouping of conv2, conv4, conv5. */
  groups?: 1 | 2;
  /** Input channels (3; 1 for grey images with the 'small' arch). */
  inChannels?: number;
  /** Width of the 'small' arch's hidden fully connected layers (default 512). */
  hidden?: number;
}

export interface AlexNetConfig {
  arch: Arch;
  numClasses: number;
  dropout: number;
  seed: number;
  groups: 1 | 2;
  inChannels: number;
  hidden: number;
  /** The input side the arch is built for (227 paper, 224 torchvision, 28 small). */
  inputSize: number;
}

export interface StepResult {
  loss: number;
  /** Top-1 correct predictions in the batch. */
  correct: number;
}

/** fc6-fc7-fc8 with dropout before fc6 and fc7 (indices 1, 4, 6 as torchvision's classifier). */
function buildClassifier(inFeatures: number, hidden: number, c: AlexNetConfig, rng: RandomStream, dev: Device): Sequential {
  return new Sequential([
    new Dropout(c.dropout, rng),
    new Linear(inFeatures, hidden, { device: dev }),
    new ReLU(true),
    new Dropout(c.dropout, rng),
    new Linear(hidden, hidden, { device: dev }),
    new ReLU(true),
    new Linear(hidden, c.numClasses, { device: dev }),
  ]);
}

function buildPaper(c: AlexNetConfig, rng: RandomStream, dev: Device): Sequential {
  const g = c.groups;
  const features = new Sequential([
    new Conv2d(c.inChannels, 96, 11, { stride: 4, device: dev }),
    new ReLU(true),
    new LocalResponseNorm(5, 1e-4, 0.75, 2),
    new MaxPool2d(3, { stride: 2 }),
    new Conv2d(96, 256, 5, { padding: 2, groups: g, device: dev }),
    new ReLU(true),
    new LocalResponseNorm(5, 1e-4, 0.75, 2),
    new MaxPool2d(3, { stride: 2 }),
    new Conv2d(256, 384, 3, { padding: 1, device: dev }),
    new ReLU(true),
    new Conv2d(384, 384, 3, { padding: 1, groups: g, device: dev }),
    new ReLU(true),
    new Conv2d(384, 256, 3, { padding: 1, groups: g, device: dev }),
    new ReLU(true),
    new MaxPool2d(3, { stride: 2 }),
  ]);
  const classifier = buildClassifier(256 * 6 * 6, 4096, c, rng, dev);
  return new Sequential([
    ['features', features],
    ['flatten', new Flatten()],
    ['classifier', classifier],
  ]);
}

function buildTorchvision(c: AlexNetConfig, rng: RandomStream, dev: Device): Sequential {
  const features = new Sequential([
    new Conv2d(c.inChannels, 64, 11, { stride: 4, padding: 2, device: dev }),
    new ReLU(true),
    new MaxPool2d(3, { stride: 2 }),
    new Conv2d(64, 192, 5, { padding: 2, device: dev }),
    new ReLU(true),
    new MaxPool2d(3, { stride: 2 }),
    new Conv2d(192, 384, 3, { padding: 1, device: dev }),
    new ReLU(true),
    new Conv2d(384, 256, 3, { padding: 1, device: dev }),
    new ReLU(true),
    new Conv2d(256, 256, 3, { padding: 1, device: dev }),
    new ReLU(true),
    new MaxPool2d(3, { stride: 2 }),
  ]);
  const classifier = buildClassifier(256 * 6 * 6, 4096, c, rng, dev);
  return new Sequential([
    ['features', features],
    ['avgpool', new AdaptiveAvgPool2d([6, 6])],
    ['flatten', new Flatten()],
    ['classifier', classifier],
  ]);
}

/** AlexNet's structure — five convolutions (the first two followed by LRN and overlapping max pooling),
 * three fully connected layers with dropout — scaled down for 28–64 px inputs so CPU training is practical. */
function buildSmall(c: AlexNetConfig, rng: RandomStream, dev: Device): Sequential {
  const features = new Sequential([
    new Conv2d(c.inChannels, 32, 5, { padding: 2, device: dev }),
    new ReLU(true),
    new LocalResponseNorm(5, 1e-4, 0.75, 2),
    new MaxPool2d(3, { stride: 2 }),
    new Conv2d(32, 64, 3, { padding: 1, device: dev }),
    new ReLU(true),
    new LocalResponseNorm(5, 1e-4, 0.75, 2),
    new MaxPool2d(3, { stride: 2 }),
    new Conv2d(64, 96, 3, { padding: 1, device: dev }),
    new ReLU(true),
    new Conv2d(96, 96, 3, { padding: 1, device: dev }),
    new ReLU(true),
    new Conv2d(96, 64, 3, { padding: 1, device: dev }),
    new ReLU(true),
    new MaxPool2d(3, { stride: 2 }),
  ]);
  const classifier = buildClassifier(64 * 2 * 2, c.hidden, c, rng, dev);
  return new Sequential([
    ['features', features],
    ['avgpool', new AdaptiveAvgPool2d([2, 2])],
    ['flatten', new Flatten()],
    ['classifier', classifier],
  ]);
}

/** The config fields that decide the parameters' shapes. */
export type AlexNetShapeConfig = Pick<AlexNetConfig, 'arch' | 'numClasses' | 'inChannels' | 'groups' | 'hidden'>;

/** Every parameter's name and shape, in the order the model lists them (namedParameters), computed without
 * building anything: so that a weights file's metadata can be checked against its tensors before a model
 * is allocated (lib/models/from-weights.ts). The builders above make exactly these (tested). `hidden`
 * applies to the small arch only (the paper's and torchvision's fc layers are 4096 wide). */
export function alexnetParameterShapes(c: AlexNetShapeConfig): [string, number[]][] {
  const g = c.arch === 'paper' ? c.groups : 1;
  // [index in features, out, in, kernel] of each convolution
  const convs: [number, number, number, number][] =
    c.arch === 'paper'
      ? [[0, 96, c.inChannels, 11], [4, 256, 96 / g, 5], [8, 384, 256, 3], [10, 384, 384 / g, 3], [12, 256, 384 / g, 3]]
      : c.arch === 'torchvision'
        ? [[0, 64, c.inChannels, 11], [3, 192, 64, 5], [6, 384, 192, 3], [8, 256, 384, 3], [10, 256, 256, 3]]
        : [[0, 32, c.inChannels, 5], [4, 64, 32, 3], [8, 96, 64, 3], [10, 96, 96, 3], [12, 64, 96, 3]];
  const hidden = c.arch === 'small' ? c.hidden : 4096;
  const flat = c.arch === 'small' ? 64 * 2 * 2 : 256 * 6 * 6;
  const out: [string, number[]][] = [];
  for (const [i, o, inC, k] of convs) out.push([`features.${i}.weight`, [o, inC, k, k]], [`features.${i}.bias`, [o]]);
  for (const [i, o, inF] of [[1, hidden, flat], [4, hidden, hidden], [6, c.numClasses, hidden]])
    out.push([`classifier.${i}.weight`, [o, inF]], [`classifier.${i}.bias`, [o]]);
  return out;
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

/** An allocation failure while building or initialising a model, restated with what asked for the memory:
 * the parameter, its shape and bytes, and the whole model's size (the native message, which says only
 * how many bytes, follows). Other errors pass unchanged. */
function namedAllocationError(e: unknown, param: [string, number[]] | undefined, c: AlexNetConfig, device: Device): unknown {
  const msg = (e as Error)?.message ?? '';
  if (!param || !/out of memory|allocation failed|invalid typed array length|invalid array buffer length/i.test(msg)) return e;
  const [name, shape] = param;
  const bytes = shape.reduce((a, d) => a * d, 4);
  const total = alexnetParameterShapes(c).reduce((a, [, s]) => a + s.reduce((x, d) => x * d, 1), 0);
  const opts = c.arch === 'small' ? ` with hidden ${c.hidden}` : '';
  const count = total >= 1e9 ? `${(total / 1e9).toFixed(2)} G` : `${(total / 1e6).toFixed(2)} M`;
  const err = new Error(
    `createAlexNet: out of memory allocating "${name}" [${shape.join(', ')}] (${bytes} bytes, ${gib(bytes)}) on ${device}; ` +
      `the ${c.arch} arch${opts} has ${count} parameters (${gib(total * 4)}): ${msg}`,
    { cause: e },
  );
  return err;
}

/** See AlexNet.setDataParallel. */
export interface DataParallelHooks {
  beforeBackward(loss: Tensor): void;
  gradients(params: Parameter[]): void;
  beforeUpdate(): void;
}

export class AlexNet {
  readonly config: AlexNetConfig;
  readonly net: Sequential;
  readonly device: Device;
  /** The dropout layers' random stream; its (seed, offset) is saved in checkpoints. */
  readonly rng: RandomStream;
  #precision: Precision;
  #disposed = false;
  /** Data-parallel training's hooks (train() sets them; null: one process). */
  #dataParallel: DataParallelHooks | null = null;

  constructor(opts: AlexNetOptions = {}) {
    if (opts === null || typeof opts !== 'object') throw new TypeError(`createAlexNet: expected an options object, got ${describe(opts)}`);
    // A misspelled option (numclasses) must not silently build the default model.
    for (const k of Object.keys(opts))
      if (!ALEXNET_OPTION_KEYS.includes(k as keyof AlexNetOptions))
        throw new TypeError(`createAlexNet: unknown option ${JSON.stringify(k)} (expected one of ${ALEXNET_OPTION_KEYS.join(', ')})`);
    const arch = opts.arch ?? 'paper';
    if (arch !== 'paper' && arch !== 'torchvision' && arch !== 'small')
      throw new TypeError(`createAlexNet: arch must be "paper", "torchvision" or "small", got ${describe(arch)}`);
    const int = (v: unknown, name: string, dflt: number, min = 1) => {
      if (v === undefined) return dflt;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new TypeError(`createAlexNet: ${name} must be an integer ≥ ${min} (and below 2^53), got ${describe(v)}`);
      return v;
    };
    const dropout = opts.dropout ?? 0.5;
    if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1))
      throw new RangeError(`createAlexNet: dropout must be in [0, 1), got ${describe(dropout)}`);
    const groups = opts.groups ?? 1;
    if (groups !== 1 && groups !== 2) throw new RangeError(`createAlexNet: groups must be 1 or 2, got ${describe(groups)}`);
    if (groups !== 1 && arch !== 'paper') throw new RangeError(`createAlexNet: groups applies to the 'paper' arch only, got arch ${describe(arch)}`);
    this.config = {
      arch,
      numClasses: int(opts.numClasses, 'numClasses', 1000),
      dropout,
      seed: int(opts.seed, 'seed', 0, 0),
      groups,
      inChannels: int(opts.inChannels, 'inChannels', arch === 'small' ? 1 : 3),
      hidden: int(opts.hidden, 'hidden', 512),
      inputSize: arch === 'paper' ? 227 : arch === 'torchvision' ? 224 : 28,
    };
    this.device = parseDevice(opts.device ?? 'cpu', 'createAlexNet: device');
    this.#precision = parsePrecision(opts.precision ?? (this.device === 'cuda' ? 'tf32' : undefined), 'createAlexNet');
    this.rng = new RandomStream(BigInt.asUintN(64, BigInt(this.config.seed) * 2654435761n + 1n));
    const build = arch === 'paper' ? buildPaper : arch === 'torchvision' ? buildTorchvision : buildSmall;
    const made: Tensor[] = [];
    // The builders allocate the parameters in this order, one tensor each: the one that did not fit is
    // the (made.length)-th. Initialisation says which one it is working on itself.
    const shapes = alexnetParameterShapes(this.config);
    let initialising: [string, number[]] | undefined;
    try {
      this.net = Tensor.collectCreated(made, () => {
        const net = build(this.config, this.rng, this.device);
        net.needInputGrad = false;
        net.setFirstLayer();
        return net;
      });
      this.precision = this.#precision;
      Tensor.collectCreated(made, () => this.#initialise((p) => (initialising = p)));
    } catch (e) {
      for (const t of made) t.dispose(); // a layer that did not fit: nothing of the half-built model stays
      throw namedAllocationError(e, initialising ?? shapes[made.length], this.config, this.device);
    }
  }

  get precision(): Precision {
    return this.#precision;
  }
  /** GEMM precision of the convolutions and linear layers: 'fp32', 'tf32' (CUDA tensor cores) or 'bf16'. */
  set precision(p: Precision) {
    this.#precision = parsePrecision(p, 'AlexNet.precision');
    this.#setActivations();
  }

  #bf16Activations = true;
  /** In precision 'bf16', whether the activations between layers are bfloat16 too (the default) or stay
   * float32 (only the GEMM inputs rounded: the design before bf16 activations, kept for comparisons).
   * No effect in other precisions. */
  get bf16Activations(): boolean {
    return this.#bf16Activations;
  }
  set bf16Activations(v: boolean) {
    if (typeof v !== 'boolean') throw new TypeError(`AlexNet.bf16Activations: expected a boolean, got ${describe(v)}`);
    this.#bf16Activations = v;
    this.#setActivations();
  }

  #setActivations(): void {
    const layers = this.modules().filter((m): m is Conv2d | Linear => m instanceof Conv2d || m instanceof Linear);
    // bf16: the activations between layers are bfloat16 too (every convolution and linear layer gives
    // bfloat16, and ReLU, LRN, pooling and dropout keep it), but the last layer's logits, which the loss
    // and softmax read in float32.
    const act = this.#precision === 'bf16' && this.#bf16Activations ? 'bfloat16' : 'float32';
    layers.forEach((m, i) => {
      m.precision = this.#precision;
      m.activationDtype = i === layers.length - 1 ? 'float32' : act;
    });
  }

  /** Every leaf layer, in order. */
  modules(): Module[] {
    const out: Module[] = [];
    const walk = (m: Module) => {
      if (m instanceof Sequential) m.children.forEach(([, c]) => walk(c));
      else out.push(m);
    };
    walk(this.net);
    return out;
  }

  /** Paper: weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7, else 0.
   * torchvision: PyTorch's default init (U(±1/√fan_in) for weights and biases).
   * small: He-normal weights (fan_in, ReLU gain), zero biases — trains fast from scratch. */
  #initialise(working: (param: [string, number[]]) => void): void {
    const rng = new Rng(this.config.seed);
    const layers = this.modules().filter((m): m is Conv2d | Linear => m instanceof Conv2d || m instanceof Linear);
    const names = new Map(this.namedParameters().map(([n, p]) => [p, n]));
    const ones = new Set([1, 3, 4, 5, 6]); // paper: conv2, conv4, conv5, fc6, fc7 (0-based among weighted layers)
    layers.forEach((m, i) => {
      const w = m.weight.value;
      working([names.get(m.weight) ?? `layer ${i} weight`, [...w.shape]]);
      const fanIn = w.size / w.shape[0];
      const wd = new Float32Array(w.size);
      let bias = 0;
      let biasBound = 0;
      const normal = (std: number) => wd.forEach((_, j) => (wd[j] = rng.normal(0, std)));
      if (this.config.arch === 'paper') {
        normal(0.01);
        bias = ones.has(i) ? 1 : 0;
      } else if (this.config.arch === 'torchvision') {
        biasBound = 1 / Math.sqrt(fanIn);
        wd.forEach((_, j) => (wd[j] = (2 * rng.next() - 1) * biasBound));
      } else {
        normal(Math.sqrt(2 / fanIn));
      }
      w.write(wd);
      if (m.bias) {
        working([names.get(m.bias) ?? `layer ${i} bias`, [...m.bias.value.shape]]);
        const bd = new Float32Array(m.bias.value.size);
        if (biasBound) bd.forEach((_, j) => (bd[j] = (2 * rng.next() - 1) * biasBound));
        else bd.fill(bias);
        m.bias.value.write(bd);
      }
    });
  }

  #check(op: string): void {
    if (this.#disposed) throw new Error(`AlexNet.${op}: the model was disposed`);
  }

  namedParameters(): [string, Parameter][] {
    return this.net.namedParameters();
  }
  parameters(): Parameter[] {
    return this.net.parameters();
  }
  /** Number of trainable values. */
  get numParameters(): number {
    return this.parameters().reduce((a, p) => a + p.value.size, 0);
  }

  train(on = true): this {
    this.net.train(on);
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  #input(x: Tensor, op: string): Tensor {
    this.#checkInput(x, op);
    return x.device === this.device ? x : x.to(this.device);
  }

  #checkInput(x: Tensor, op: string): void {
    this.#check(op);
    if (!(x instanceof Tensor)) throw new TypeError(`AlexNet.${op}: expected x to be a Tensor, got ${describe(x)}`);
    const c = this.config;
    if (x.shape.length !== 4 || x.shape[1] !== c.inChannels)
      throw new RangeError(`AlexNet.${op}: expected x of shape [N, ${c.inChannels}, H, W] (the ${c.arch} arch takes ${c.inChannels}×${c.inputSize}×${c.inputSize}), got [${x.shape.join(', ')}]`);
    if (x.dtype !== 'float32') throw new TypeError(`AlexNet.${op}: expected float32 input, got ${x.dtype}`);
    if (x.shape[0] === 0) throw new RangeError(`AlexNet.${op}: expected a batch of at least one image, got [${x.shape.join(', ')}]`);
    // The paper arch's fc6 takes pool5's 256×6×6, which only its 227×227 input gives (torchvision's and
    // the small arch's adaptive pooling take other sizes).
    if (c.arch === 'paper' && (x.shape[2] !== 227 || x.shape[3] !== 227))
      throw new RangeError(`AlexNet.${op}: the paper arch takes ${c.inChannels}×227×227 images, got [${x.shape.join(', ')}] (resize them, e.g. ops.resizeBilinear(x, [227, 227]))`);
  }

  /** The optimizer must be live and update this model's parameters (all or some of them, e.g. the
   * classifier's only): one built for another model would find no gradients here and update nothing. */
  #checkOptimizer(opt: SGD, op: string): void {
    if (opt === null || typeof opt !== 'object' || !Array.isArray(opt.params))
      throw new TypeError(`AlexNet.${op}: expected an optimizer (new SGD(model.parameters(), …)), got ${describe(opt)}`);
    if (opt.disposed) throw new DisposedError(`AlexNet.${op}: the optimizer (SGD)`);
    const mine = new Set(this.parameters());
    const i = opt.params.findIndex((p) => !mine.has(p));
    if (i >= 0)
      throw new Error(
        `AlexNet.${op}: the optimizer was built for other parameters than this model's: its parameter ${i} ([${opt.params[i].value.shape.join(', ')}]) ` +
          `is not one of the model's (build it with new SGD(model.parameters(), …))`,
      );
  }

  /** Logits [N, numClasses] for x [N, C, H, W]; the caller owns the result. An input on the other
   * device is copied over. Uses the current mode (train() / eval()). */
  forward(x: Tensor): Tensor {
    const xin = this.#input(x, 'forward');
    try {
      return this.net.forward(xin);
    } finally {
      if (xin !== x) xin.dispose();
    }
  }

  /** Backpropagates dlogits through the network, setting every parameter's grad. */
  backward(dlogits: Tensor): void {
    this.#check('backward');
    const dx = this.net.backward(dlogits);
    dx?.dispose();
  }

  /** Data-parallel training (train() with `distributed`): `beforeBackward(loss)` is called in step() with
   * the batch's loss tensor before the backward pass, `gradients(params)` as each layer's gradients are
   * made, and `beforeUpdate()` after the backward pass, before the optimizer's update (which is enqueued
   * after whatever the hooks enqueued). null removes them. */
  setDataParallel(hooks: DataParallelHooks | null): void {
    this.#dataParallel = hooks;
    this.net.setGradientHook(hooks ? (ps) => hooks.gradients(ps) : null);
  }

  #labels(labels: Int32Array | Tensor, n: number, op: string): Tensor {
    const k = this.config.numClasses;
    if (labels instanceof Tensor) {
      if (labels.dtype !== 'int32' || labels.shape.length !== 1 || labels.shape[0] !== n)
        throw new TypeError(`AlexNet.${op}: expected labels as int32 [${n}], got ${labels.toString()}`);
      return labels.device === this.device ? labels : labels.to(this.device);
    }
    if (!(labels instanceof Int32Array) || labels.length !== n)
      throw new TypeError(`AlexNet.${op}: expected labels as an Int32Array(${n}), got ${describe(labels)}`);
    for (let i = 0; i < n; i++)
      if (labels[i] < 0 || labels[i] >= k) throw new RangeError(`AlexNet.${op}: label ${labels[i]} at index ${i} is outside [0, ${k})`);
    return Tensor.from(labels, [n], this.device);
  }

  /** One training step: forward, softmax cross-entropy, backward, optimizer update. Resolves to the loss
   * and the batch's top-1 correct count.
   *
   * Everything is enqueued before this returns (on CUDA nothing waits for the device); the promise waits
   * for one read of the loss and the count, the step's only host synchronisation. So a caller may enqueue
   * the next step before awaiting this one (train() keeps one step in flight), and overlapping calls are
   * serialised in call order, never interleaved. A non-finite loss (divergence, or a bad label in a GPU
   * labels tensor, which the kernel reports as NaN) changes no weight: the update is skipped on the
   * device, and so is every update enqueued after it, until this promise rejects and clears the flag. */
  step(x: Tensor, labels: Int32Array | Tensor, opt: SGD): Promise<StepResult> {
    let read: Promise<Float32Array>;
    let stepNo: number;
    try {
      this.#checkInput(x, 'trainStep');
      this.#checkOptimizer(opt, 'trainStep');
      this.train(true);
      const n = x.shape[0];
      const lab = this.#labels(labels, n, 'trainStep');
      const temps: Tensor[] = [];
      const own = <T extends Tensor>(t: T): T => (temps.push(t), t);
      try {
        const logits = own(this.forward(x));
        const { loss, probs } = softmaxCrossEntropy(logits, lab);
        own(loss);
        own(probs);
        const correct = own(topkCorrect(logits, lab, [1]));
        const dp = this.#dataParallel;
        dp?.beforeBackward(loss);
        this.backward(own(softmaxCrossEntropyBackward(probs, lab)));
        dp?.beforeUpdate();
        stepNo = opt.step({ guard: loss });
        // One read: [loss, correct (int32 bits), the optimizer's halt flag after this update].
        const packed = own(Tensor.empty([3], this.device));
        const dst = Tensor.storageOf(packed, 'trainStep');
        dst.copyFrom(Tensor.storageOf(loss, 'trainStep'), 4, 0, 0);
        dst.copyFrom(Tensor.storageOf(correct, 'trainStep'), 4, 4, 0);
        dst.copyFrom(Tensor.storageOf(opt.haltFlag!, 'trainStep'), 4, 8, 0);
        read = packed.toFloat32Array(); // enqueued now; the tensors may go (stream order keeps the copy)
      } catch (e) {
        this.net.releaseSaved();
        throw e;
      } finally {
        opt.zeroGrad();
        for (const t of temps) t.dispose();
        if (lab !== labels) lab.dispose();
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return read.then((v) => {
      const l = v[0];
      const c = new Int32Array(v.buffer, v.byteOffset + 4, 1)[0];
      if (!Number.isFinite(l) || v[2] !== 0) {
        opt.stepSkipped(stepNo);
        throw new Error(
          Number.isFinite(l)
            ? 'AlexNet.trainStep: no update was made: an earlier step still in flight had a non-finite loss'
            : `AlexNet.trainStep: the loss is ${l}; no update was made (diverged? lower the learning rate; or a label is outside [0, ${this.config.numClasses}))`,
        );
      }
      return { loss: l, correct: c };
    });
  }

  /** One training step; returns the batch's mean cross-entropy loss. */
  async trainStep(x: Tensor, labels: Int32Array | Tensor, opt: SGD): Promise<number> {
    return (await this.step(x, labels, opt)).loss;
  }

  /** Whether the model is in training mode (dropout on). */
  get training(): boolean {
    return this.net.training;
  }

  /** Class probabilities [N, numClasses] in evaluation mode (no dropout); the mode is restored after. */
  async predict(x: Tensor): Promise<Float32Array> {
    const was = this.training;
    this.eval();
    const temps: Tensor[] = [];
    try {
      const logits = this.forward(x);
      temps.push(logits);
      // softmax through the loss op (its loss, against placeholder labels, is not used)
      const dummy = Tensor.zeros([x.shape[0]], this.device, 'int32');
      temps.push(dummy);
      const { loss, probs } = softmaxCrossEntropy(logits, dummy);
      temps.push(loss, probs);
      return await probs.toFloat32Array();
    } finally {
      for (const t of temps) t.dispose();
      this.train(was);
    }
  }

  /** A host copy of every parameter by name (a state_dict). */
  async stateDict(): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
    this.#check('stateDict');
    // Every read starts now, before anything else can be enqueued: one consistent snapshot, also when a
    // training step is called while this awaits (the step's update comes after all the reads).
    const params = this.namedParameters();
    const data = await Promise.all(params.map(([, p]) => p.value.toFloat32Array()));
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    params.forEach(([name, p], i) => out.set(name, { shape: [...p.value.shape], data: data[i] }));
    return out;
  }

  /** Loads parameters by name. Every parameter must be present with its exact shape; unknown names are
   * an error too unless `strict` is false. */
  loadStateDict(tensors: Map<string, { shape: readonly number[]; data: Float32Array | Int32Array }>, source = 'state dict', strict = true): void {
    this.#check('loadWeights');
    const params = this.namedParameters();
    const names = new Set(params.map(([n]) => n));
    for (const [name, p] of params) {
      const t = tensors.get(name);
      const want = `[${p.value.shape.join(', ')}]`;
      if (!t) throw new Error(`${source}: missing tensor "${name}" (expected shape ${want} for the ${this.config.arch} arch)`);
      if (t.shape.length !== p.value.shape.length || t.shape.some((d, i) => d !== p.value.shape[i]))
        throw new Error(`${source}: tensor "${name}" has shape [${t.shape.join(', ')}], expected ${want} (${this.config.arch} arch, ${this.config.numClasses} classes)`);
      if (!(t.data instanceof Float32Array)) throw new Error(`${source}: tensor "${name}" is not float32`);
    }
    if (strict) {
      const extra = [...tensors.keys()].filter((k) => !names.has(k) && !k.startsWith('optimizer.'));
      if (extra.length) throw new Error(`${source}: unexpected tensor(s) ${extra.slice(0, 5).map((e) => `"${e}"`).join(', ')}${extra.length > 5 ? ', …' : ''} for the ${this.config.arch} arch`);
    }
    for (const [name, p] of params) p.value.write(tensors.get(name)!.data as Float32Array);
  }

  /** Loads weights from a safetensors file or a `torch.save`d state_dict (.pth, e.g. torchvision's
   * `alexnet-owt-7be5be79.pth`; its names are torchvision's, as the torchvision arch's). */
  async loadWeights(path: string, opts: { strict?: boolean } = {}): Promise<void> {
    if (typeof path !== 'string') throw new TypeError(`AlexNet.loadWeights: expected a file path, got ${describe(path)}`);
    const f = await readWeights(path);
    this.loadStateDict(f.tensors, path, opts.strict ?? true);
  }

  /** Saves weights to a safetensors file, atomically. `classes` and the `input` the model was trained on
   * (side, mean, std) go into its metadata, so `alexnet predict` can name classes and prepare images. */
  async saveWeights(path: string, meta: { classes?: readonly string[]; input?: { side: number; mean: number[]; std: number[] } } = {}): Promise<void> {
    if (typeof path !== 'string') throw new TypeError(`AlexNet.saveWeights: expected a file path, got ${describe(path)}`);
    const sd = await this.stateDict();
    const md: Record<string, string> = { format: 'alexnet-cuda-weights', arch: this.config.arch, config: JSON.stringify(this.config) };
    if (meta.classes) md.classes = JSON.stringify(meta.classes);
    if (meta.input) md.input = JSON.stringify(meta.input);
    writeSafetensors(path, sd, md);
  }

  /** Moves nothing: a model lives on the device it was created on. Frees every tensor it holds. */
  dispose(): void {
    if (this.#disposed) return;
    this.net.dispose();
    this.#disposed = true;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `AlexNet(${this.config.arch}, ${this.config.numClasses} classes, ${this.device}, ${this.#precision})\n${this.net.toString()}`;
  }
}

export function createAlexNet(opts: AlexNetOptions = {}): AlexNet {
  return new AlexNet(opts);
}
