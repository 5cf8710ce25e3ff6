/** The model a weights file holds, from what the file says about it — safetensors metadata ("config" as
 * saveWeights writes it, or a checkpoint's "meta" with its config; "classes"; "input") — checked against
 * the tensors the file actually holds, before anything is allocated.
 *
 * A weights file is untrusted input: its metadata is a few bytes of JSON, and a model built from it as it
 * stands can ask for any amount of memory (`"hidden": 60000` in a 2.4 MB small-arch file asked for a
 * ~14 GB model). So every field that decides a parameter's shape (arch, numClasses, inChannels, groups,
 * hidden) is compared with the tensors, then every parameter's name and shape: the model that is built
 * has exactly the file's tensors, so its parameters take no more memory than the file's own values
 * (4 bytes each). A disagreement is an error that names the file and the field. */
import { describe } from '../errors.js';
import type { InputSpec } from '../predict.js';
import { alexnetParameterShapes, type Arch } from './alexnet.js';

/** The largest input side a weights file's "input" metadata may ask for (the paper's 227, torchvision's
 * 224 and the small arch's 28–64 are far below it): one image at 1024×1024 is 12 MiB of float32 input
 * and ~95 MiB of im2col for the first convolution, so a lying file cannot make a prediction take more. */
export const MAX_INPUT_SIDE = 1024;

export interface WeightsModelSpec {
  /** createAlexNet options for the model the file holds. */
  options: { arch: Arch; numClasses: number; inChannels: number; groups: 1 | 2; hidden: number };
  /** The class names the file gives (metadata "classes"), one per output. */
  classes: string[] | undefined;
  /** How the model's inputs were prepared (metadata "input"), when the file says. */
  input: InputSpec | undefined;
  /** Values in the model's parameters: those of the file's tensors. */
  parameters: number;
}

type Tensors = Map<string, { shape: readonly number[]; data: Float32Array | Int32Array; dtype?: string }>;

const ARCHS: readonly Arch[] = ['paper', 'torchvision', 'small'];

/** What the metadata and the tensors say about the model, checked against each other. `arch` (from
 * `archFrom`, e.g. "--arch") overrides the file's. Throws an Error naming `file` and the field. */
export function modelSpecFromWeights(
  file: string,
  f: { tensors: Tensors; metadata: Record<string, string> },
  opts: { arch?: Arch; archFrom?: string } = {},
): WeightsModelSpec {
  const fail = (msg: string): never => {
    throw new Error(`${file}: ${msg}`);
  };
  const json = (key: string): unknown => {
    const text = f.metadata[key];
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch (e) {
      return fail(`metadata "${key}" is not valid JSON (${(e as Error).message})`);
    }
  };
  // weights.safetensors keeps the config in "config"; checkpoint.safetensors inside "meta"
  let cfg: Record<string, unknown> = {};
  let from = '';
  const config = json('config');
  const meta = config === undefined ? json('meta') : undefined;
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (config !== undefined) {
    if (!isObject(config)) fail(`metadata "config" should be an object describing the model, got ${describe(config)}`);
    cfg = config as Record<string, unknown>;
    from = 'metadata "config"';
  } else if (isObject(meta) && meta.config !== undefined) {
    if (!isObject(meta.config)) fail(`metadata "meta" field "config" should be an object describing the model, got ${describe(meta.config)}`);
    cfg = meta.config as Record<string, unknown>;
    from = 'metadata "meta" (its "config")';
  }
  const field = (k: string) => `${from} field "${k}"`;
  const shapeOf = (name: string) => f.tensors.get(name)?.shape;
  const show = (s: readonly number[]) => `[${s.join(', ')}]`;

  // The arch: the caller's, the metadata's, or what the tensors' names and kernels say.
  let arch: Arch;
  let archFrom: string;
  if (opts.arch !== undefined) {
    arch = opts.arch;
    archFrom = opts.archFrom ?? 'the caller';
  } else if (cfg.arch !== undefined) {
    if (!ARCHS.includes(cfg.arch as Arch)) fail(`${field('arch')} must be "paper", "torchvision" or "small", got ${describe(cfg.arch)}`);
    arch = cfg.arch as Arch;
    archFrom = from;
  } else if (f.metadata.arch !== undefined) {
    if (!ARCHS.includes(f.metadata.arch as Arch)) fail(`metadata "arch" must be "paper", "torchvision" or "small", got ${describe(f.metadata.arch)}`);
    arch = f.metadata.arch as Arch;
    archFrom = 'metadata "arch"';
  } else {
    const k = shapeOf('features.0.weight')?.[2];
    arch = f.tensors.has('features.3.weight') || f.tensors.size === 0 ? 'torchvision' : k === 5 ? 'small' : k === 11 ? 'paper' : 'torchvision';
    archFrom = "the file's tensors (it has no metadata saying)";
  }

  // Each shape-deciding field: the metadata's value (type-checked), compared with the tensor it shapes;
  // without one, the tensor's.
  const int = (k: string, dflt: number, tensor: string, dim: number, derive: (d: number) => number = (d) => d): number => {
    const seen = shapeOf(tensor);
    const v = cfg[k];
    if (v === undefined) return seen && seen.length > dim ? derive(seen[dim]) : dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) fail(`${field(k)} must be an integer ≥ 1, got ${describe(v)}`);
    if (seen && seen.length > dim && derive(seen[dim]) !== v)
      fail(`${from} says ${k} ${v}, but its tensor "${tensor}" has shape ${show(seen)} (${k} ${derive(seen[dim])}): the metadata does not describe the tensors the file holds`);
    return v as number;
  };
  const numClasses = int('numClasses', 1000, 'classifier.6.weight', 0);
  const inChannels = int('inChannels', 3, 'features.0.weight', 1);
  let groups: 1 | 2 = 1;
  if (arch === 'paper') {
    if (cfg.groups !== undefined && cfg.groups !== 1 && cfg.groups !== 2) fail(`${field('groups')} must be 1 or 2, got ${describe(cfg.groups)}`);
    // conv2 of the paper arch is [256, 96 / groups, 5, 5]; a tensor of another form is reported below
    const conv2 = shapeOf('features.4.weight');
    const paperConv2 = conv2?.length === 4 && conv2[0] === 256 && (conv2[1] === 96 || conv2[1] === 48) && conv2[2] === 5;
    groups = (paperConv2 ? int('groups', 1, 'features.4.weight', 1, (d) => 96 / d) : (cfg.groups ?? 1)) as 1 | 2;
  } else if (cfg.groups !== undefined && cfg.groups !== 1) {
    fail(`${field('groups')} applies to the paper arch only, got ${describe(cfg.groups)} with the ${arch} arch`);
  }
  let hidden = 512;
  if (arch === 'small') hidden = int('hidden', 512, 'classifier.1.weight', 0);
  else if (cfg.hidden !== undefined && (typeof cfg.hidden !== 'number' || !Number.isSafeInteger(cfg.hidden) || cfg.hidden < 1))
    fail(`${field('hidden')} must be an integer ≥ 1, got ${describe(cfg.hidden)}`);
  else if (typeof cfg.hidden === 'number') hidden = cfg.hidden; // recorded by saveWeights; the paper and torchvision archs do not use it

  // Then every parameter: the model built has exactly the file's tensors.
  const options = { arch, numClasses, inChannels, groups, hidden };
  const want = alexnetParameterShapes(options);
  const archIs = `the ${arch} arch (from ${archFrom})`;
  let parameters = 0;
  for (const [name, shape] of want) {
    const t = f.tensors.get(name);
    if (!t) fail(`${archIs} needs a tensor "${name}" of shape ${show(shape)}; the file has none`);
    if (t!.shape.length !== shape.length || t!.shape.some((d, i) => d !== shape[i]))
      fail(`${archIs} needs a tensor "${name}" of shape ${show(shape)}; the file's has shape ${show(t!.shape)}`);
    if (t!.dtype !== undefined && t!.dtype !== 'F32') fail(`tensor "${name}" is ${t!.dtype}; model parameters are F32`);
    parameters += shape.reduce((a, d) => a * d, 1);
  }
  const names = new Set(want.map(([n]) => n));
  const extra = [...f.tensors.keys()].filter((k) => !names.has(k) && !k.startsWith('optimizer.'));
  if (extra.length)
    fail(`tensor${extra.length > 1 ? 's' : ''} ${extra.slice(0, 5).map((e) => `"${e}"`).join(', ')}${extra.length > 5 ? ', …' : ''} ${extra.length > 1 ? 'are not parameters' : 'is not a parameter'} of ${archIs}`);

  // The other metadata: class names (one per output) and the input preparation (bounded side).
  const classes = json('classes');
  if (classes !== undefined && (!Array.isArray(classes) || classes.length !== numClasses || !classes.every((c) => typeof c === 'string')))
    fail(`metadata "classes" should list ${numClasses} class names (the tensors' classes), got ${JSON.stringify(classes).slice(0, 80)}`);
  const input = json('input');
  if (input !== undefined) {
    if (!isObject(input)) fail(`metadata "input" should be { side, mean: number[], std: number[] }, got ${JSON.stringify(input).slice(0, 80)}`);
    const i = input as Record<string, unknown>;
    if (typeof i.side !== 'number' || !Number.isInteger(i.side) || i.side < 1 || i.side > MAX_INPUT_SIDE)
      fail(`metadata "input" field "side" must be an integer from 1 to ${MAX_INPUT_SIDE}, got ${describe(i.side)}`);
    if (arch === 'paper' && i.side !== 227) fail(`metadata "input" field "side" must be 227 for the paper arch (its fc6 takes pool5's 6×6), got ${i.side}`);
    for (const k of ['mean', 'std'] as const) {
      const v = i[k];
      const finite = Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x) && (k === 'mean' || x > 0));
      if (!finite || ((v as number[]).length !== inChannels && (v as number[]).length !== 1))
        fail(`metadata "input" field "${k}" must hold ${inChannels} ${k === 'std' ? 'positive ' : ''}number${inChannels > 1 ? 's' : ''} (one per input channel) or 1, got ${describe(v)}`);
    }
  }
  return { options, classes: classes as string[] | undefined, input: input as InputSpec | undefined, parameters };
}
