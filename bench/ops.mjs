// The benchmark rows: every op of the paper AlexNet at its shapes (bench/alexnet.json), and the training
// step. Each task says what it counts (GEMM FLOPs, or the fewest bytes that must move) and makes a handle
// { call, dispose, async }: `call` runs the op once on fresh-but-fixed inputs and disposes its outputs
// (on CUDA that enqueues; the harness in run.mjs synchronises), `dispose` frees the inputs.
//
// Keys are shared with bench/pytorch_peer.py: <layer>[.g<groups>].<what>[.<precision>].
import { convDims, outSide, paramShapes, trainFlops } from './common.mjs';

const F32 = 4;

/** Uniform floats in [lo, hi) from a fixed-seed xorshift32: a 1 Mi-element random block, tiled by
 * doubling copies (the values only need to be ordinary floats — no zeros, NaN or denormals — not
 * independent: filling 224 M floats one by one would take seconds). */
function randomArray(n, seed, lo = -1, hi = 1) {
  const a = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  const block = Math.min(n, 1 << 20);
  const span = hi - lo;
  for (let i = 0; i < block; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = lo + span * (s / 4294967296);
  }
  for (let filled = block; filled < n; filled *= 2) a.copyWithin(filled, 0, Math.min(filled, n - filled));
  return a;
}

function randomLabels(n, classes, seed) {
  const a = new Int32Array(n);
  let s = (seed * 2246822519) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = s % classes;
  }
  return a;
}

const numel = (shape) => shape.reduce((a, b) => a * b, 1);
const fmt = (shape) => `[${shape.join(',')}]`;

/** Frees every tensor (or null) given, and the tensors inside plain objects such as { y, indices }. */
function free(...items) {
  for (const t of items) {
    if (!t) continue;
    if (typeof t.dispose === 'function') t.dispose();
    else if (typeof t === 'object') free(...Object.values(t));
  }
}

/**
 * All tasks for `device` at batch `batch`. `pkg` is the loaded package (dist/index.js).
 * precisions: ['fp32', 'tf32'] on CUDA, ['fp32'] on the CPU (it computes tf32 requests in fp32).
 */
export function buildTasks(pkg, geo, { device, batch, precisions }) {
  const { Tensor, ops, createAlexNet, SGD } = pkg;
  const N = batch;
  let seed = 1;
  const rand = (shape, lo, hi) => Tensor.from(randomArray(numel(shape), seed++, lo, hi), shape, device);
  const labels = (n) => Tensor.from(randomLabels(n, geo.classes, seed++), [n], device, 'int32');
  const tasks = [];

  // ---- convolutions: forward, its bare GEMM, backward (dw; dw+dx; dw+dx+db) ------------------------
  for (const l of geo.conv) {
    for (const g of l.groups) {
      const d = convDims(l, N, g);
      const base = `${l.name}.g${g}`;
      const opts = { stride: l.stride, padding: l.pad, groups: g };
      const convShape = `x${fmt(d.x)} w${fmt(d.w)} s${l.stride} p${l.pad}${g > 1 ? ` g${g}` : ''}`;
      const gemmShape = `${g > 1 ? `${g} × ` : ''}[${d.M}×${d.Kg}]·[${d.Kg}×${d.Ng}]`;
      for (const precision of precisions) {
        const common = { group: 'conv', layer: `${l.name}${g > 1 ? ` g${g}` : ''}`, precision, kind: 'flops' };
        tasks.push({
          ...common,
          key: `${base}.fwd.${precision}`,
          label: `${common.layer} fwd`,
          shape: convShape,
          flops: d.flops,
          note: 'im2col + GEMM + bias',
          make() {
            const x = rand(d.x);
            const w = rand(d.w, -0.01, 0.01);
            const b = rand([l.K]);
            return { call: () => ops.conv2d(x, w, b, { ...opts, precision }).dispose(), dispose: () => free(x, w, b) };
          },
        });
        tasks.push({
          ...common,
          group: 'gemm',
          key: `${base}.gemm.${precision}`,
          label: `${common.layer} GEMM (matmul)`,
          shape: gemmShape,
          flops: d.flops,
          note: `bare matmul of conv forward's M×K·K×N${g > 1 ? ', once per group' : ''}`,
          make() {
            const as = [];
            const bs = [];
            for (let i = 0; i < g; i++) {
              as.push(rand([d.M, d.Kg], -0.01, 0.01));
              bs.push(rand([d.Kg, d.Ng]));
            }
            return {
              call: () => {
                for (let i = 0; i < g; i++) ops.matmul(as[i], bs[i], { precision }).dispose();
              },
              dispose: () => free(...as, ...bs),
            };
          },
        });
        const parts = { dx: d.flops, dw: d.flops, dbBytes: d.dbBytes };
        const bwd = [
          ['bwd_dw', 'bwd dw', false, false, d.flops],
          ['bwd_dwdx', 'bwd dw+dx', true, false, 2 * d.flops],
          ['bwd_all', 'bwd dx+dw+db', true, true, 2 * d.flops],
        ];
        for (const [what, label, needInputGrad, needBiasGrad, flops] of bwd) {
          tasks.push({
            ...common,
            key: `${base}.${what}.${precision}`,
            label: `${common.layer} ${label}`,
            shape: convShape,
            flops,
            parts,
            note: needBiasGrad ? "GEMM FLOPs of dx + dw; db's bytes not counted" : undefined,
            make() {
              const x = rand(d.x);
              const w = rand(d.w, -0.01, 0.01);
              const dy = rand(d.y);
              const o = { ...opts, precision, needInputGrad, needBiasGrad };
              return { call: () => free(ops.conv2dBackward(dy, x, w, o)), dispose: () => free(x, w, dy) };
            },
          });
        }
      }
    }
  }

  // ---- fully connected layers ---------------------------------------------------------------------
  for (const l of geo.fc) {
    const F = 2 * N * l.in * l.out;
    const shape = `x[${N},${l.in}] w[${l.out},${l.in}]`;
    const parts = { dx: F, dw: F, dbBytes: (N * l.out + l.out) * F32 };
    for (const precision of precisions) {
      const common = { group: 'fc', layer: l.name, precision, kind: 'flops', shape };
      tasks.push({
        ...common,
        key: `${l.name}.fwd.${precision}`,
        label: `${l.name} fwd`,
        flops: F,
        make() {
          const x = rand([N, l.in]);
          const w = rand([l.out, l.in], -0.01, 0.01);
          const b = rand([l.out]);
          return { call: () => ops.linear(x, w, b, { precision }).dispose(), dispose: () => free(x, w, b) };
        },
      });
      for (const [what, label, needInputGrad, needBiasGrad, flops] of [
        ['bwd_dw', 'bwd dw', false, false, F],
        ['bwd_dwdx', 'bwd dw+dx', true, false, 2 * F],
        ['bwd_all', 'bwd dx+dw+db', true, true, 2 * F],
      ]) {
        tasks.push({
          ...common,
          key: `${l.name}.${what}.${precision}`,
          label: `${l.name} ${label}`,
          flops,
          parts,
          make() {
            const x = rand([N, l.in]);
            const w = rand([l.out, l.in], -0.01, 0.01);
            const dy = rand([N, l.out]);
            const o = { precision, needInputGrad, needBiasGrad };
            return { call: () => free(ops.linearBackward(dy, x, w, o)), dispose: () => free(x, w, dy) };
          },
        });
      }
    }
  }

  // ---- memory-bound ops: bytes = inputs read once + outputs written once ----------------------------
  const mem = (t) => tasks.push({ precision: null, kind: 'bytes', ...t });

  for (const p of geo.pool) {
    const xs = [N, p.C, p.H, p.H];
    const Ho = outSide(p.H, p.k, p.stride, 0);
    const ys = [N, p.C, Ho, Ho];
    const nin = numel(xs);
    const nout = numel(ys);
    const popts = { kernelSize: p.k, stride: p.stride };
    const shape = `${fmt(xs)} → ${fmt(ys)} k${p.k} s${p.stride}`;
    mem({
      group: 'pool',
      key: `${p.name}.fwd`,
      label: `${p.name} maxpool fwd`,
      shape,
      bytes: (nin + 2 * nout) * F32,
      note: 'x read; y and int32 argmax written',
      make() {
        const x = rand(xs);
        return { call: () => free(ops.maxPool2d(x, popts)), dispose: () => free(x) };
      },
    });
    mem({
      group: 'pool',
      key: `${p.name}.bwd`,
      label: `${p.name} maxpool bwd`,
      shape,
      bytes: (2 * nout + nin) * F32,
      note: 'dy and argmax read; dx written (zeros too)',
      make() {
        const x = rand(xs);
        const { y, indices } = ops.maxPool2d(x, popts);
        y.dispose();
        const dy = rand(ys);
        return { call: () => ops.maxPool2dBackward(dy, indices, xs).dispose(), dispose: () => free(x, indices, dy) };
      },
    });
  }

  for (const s of geo.lrn) {
    const xs = [N, s.C, s.H, s.H];
    const n = numel(xs);
    const lopts = geo.lrnParams;
    const shape = `${fmt(xs)} n${lopts.size}`;
    mem({
      group: 'lrn',
      key: `${s.name}.fwd`,
      label: `${s.name} LRN fwd`,
      shape,
      bytes: 3 * n * F32,
      note: 'x read; y and scale written',
      make() {
        const x = rand(xs, 0, 4); // post-ReLU activations
        return { call: () => free(ops.localResponseNorm(x, lopts)), dispose: () => free(x) };
      },
    });
    mem({
      group: 'lrn',
      key: `${s.name}.bwd`,
      label: `${s.name} LRN bwd`,
      shape,
      bytes: 5 * n * F32,
      note: 'dy, x, y, scale read; dx written',
      make() {
        const x = rand(xs, 0, 4);
        const { y, scale } = ops.localResponseNorm(x, lopts);
        const dy = rand(xs);
        return { call: () => ops.localResponseNormBackward(dy, x, y, scale, lopts).dispose(), dispose: () => free(x, y, scale, dy) };
      },
    });
  }

  {
    const r = geo.relu;
    const xs = [N, r.C, r.H, r.H];
    const n = numel(xs);
    mem({
      group: 'relu',
      key: 'relu1.fwd',
      label: 'relu1 fwd',
      shape: fmt(xs),
      bytes: 2 * n * F32,
      note: 'x read, y written',
      make() {
        const x = rand(xs);
        return { call: () => ops.relu(x).dispose(), dispose: () => free(x) };
      },
    });
    mem({
      group: 'relu',
      key: 'relu1.bwd',
      label: 'relu1 bwd',
      shape: fmt(xs),
      bytes: 3 * n * F32,
      note: 'dy and y read, dx written',
      make() {
        const x = rand(xs);
        const y = ops.relu(x);
        const dy = rand(xs);
        return { call: () => ops.reluBackward(dy, y).dispose(), dispose: () => free(x, y, dy) };
      },
    });
  }

  {
    const dr = geo.dropout;
    const xs = [N, dr.features];
    const n = numel(xs);
    const dopts = { p: dr.p, seed: 1234, offset: 0 };
    mem({
      group: 'dropout',
      key: `${dr.name}.fwd`,
      label: `${dr.name} dropout fwd`,
      shape: `${fmt(xs)} p${dr.p}`,
      bytes: 2 * n * F32,
      note: 'x read, y written (mask recomputed from Philox, never stored)',
      make() {
        const x = rand(xs);
        return { call: () => ops.dropout(x, dopts).dispose(), dispose: () => free(x) };
      },
    });
    mem({
      group: 'dropout',
      key: `${dr.name}.bwd`,
      label: `${dr.name} dropout bwd`,
      shape: `${fmt(xs)} p${dr.p}`,
      bytes: 2 * n * F32,
      note: 'dy read, dx written',
      make() {
        const dy = rand(xs);
        return { call: () => ops.dropoutBackward(dy, dopts).dispose(), dispose: () => free(dy) };
      },
    });
  }

  {
    const C = geo.classes;
    const nc = N * C;
    const shape = `[${N},${C}]`;
    mem({
      group: 'xent',
      key: 'xent.fwd',
      label: 'softmax-CE fwd',
      shape,
      bytes: (2 * nc + N + 1) * F32,
      note: 'logits + labels read; probs + loss written',
      make() {
        const logits = rand([N, C], -3, 3);
        const lab = labels(N);
        return { call: () => free(ops.softmaxCrossEntropy(logits, lab)), dispose: () => free(logits, lab) };
      },
    });
    mem({
      group: 'xent',
      key: 'xent.bwd',
      label: 'softmax-CE bwd',
      shape,
      bytes: (2 * nc + N) * F32,
      note: 'probs + labels read; dlogits written',
      make() {
        const logits = rand([N, C], -3, 3);
        const lab = labels(N);
        const { loss, probs } = ops.softmaxCrossEntropy(logits, lab);
        loss.dispose();
        return { call: () => ops.softmaxCrossEntropyBackward(probs, lab).dispose(), dispose: () => free(logits, lab, probs) };
      },
    });
    mem({
      group: 'topk',
      key: 'topk',
      label: 'top-1/top-5 correct',
      shape: `${shape} k=1,5`,
      bytes: (nc + N + 2) * F32,
      note: 'logits + labels read; 2 counts written',
      make() {
        const logits = rand([N, C], -3, 3);
        const lab = labels(N);
        return { call: () => ops.topkCorrect(logits, lab, [1, 5]).dispose(), dispose: () => free(logits, lab) };
      },
    });
  }

  {
    const sg = geo.sgd;
    const shapes = paramShapes(geo, sg.groups);
    const total = shapes.reduce((a, s) => a + numel(s), 0);
    mem({
      group: 'sgd',
      key: 'sgd',
      label: `SGD update, ${shapes.length} tensors`,
      shape: `${(total / 1e6).toFixed(2)} M params (groups ${sg.groups})`,
      bytes: 5 * total * F32,
      note: 'param, grad, momentum read; param, momentum written; one call per tensor',
      make() {
        const params = shapes.map((s) => rand(s, -0.01, 0.01));
        const grads = shapes.map((s) => rand(s, -0.001, 0.001));
        const bufs = shapes.map((s) => Tensor.zeros(s, device));
        const o = { lr: sg.lr, momentum: sg.momentum, weightDecay: sg.weightDecay, firstStep: false };
        return {
          call: () => {
            for (let i = 0; i < params.length; i++) ops.sgdUpdate(params[i], grads[i], bufs[i], o);
          },
          dispose: () => free(...params, ...grads, ...bufs),
        };
      },
    });
  }

  // ---- end to end: one training step of the paper arch (and torchvision's, ours only) -----------------
  const archs = [...geo.train.groups.map((groups) => ({ arch: 'paper', groups, key: `g${groups}` })), { arch: 'torchvision', groups: 1, key: 'tv' }];
  for (const { arch, groups, key } of archs) {
    const input = arch === 'paper' ? geo.input : [3, 224, 224];
    for (const precision of precisions) {
      tasks.push({
        group: 'train',
        key: `train.${key}.${precision}`,
        layer: 'train',
        label: arch === 'paper' ? `train step, paper arch g${groups}` : 'train step, torchvision arch',
        shape: `x[${N},${input.join(',')}] → ${geo.classes} classes`,
        precision,
        kind: 'train',
        batch: N,
        flops: arch === 'paper' ? trainFlops(geo, N, groups) : undefined,
        note: 'forward + softmax-CE + backward + SGD (momentum, weight decay) + loss/top-1 read back',
        async: true,
        make() {
          const model = createAlexNet({ arch, groups, device, precision, seed: 7, numClasses: geo.classes });
          const t = geo.train;
          const opt = new SGD(model.parameters(), { lr: t.lr, momentum: t.momentum, weightDecay: t.weightDecay });
          const x = rand([N, ...input]);
          const lab = labels(N);
          return {
            async: true,
            call: () => model.step(x, lab, opt),
            dispose: () => {
              opt.dispose();
              model.dispose();
              free(x, lab);
            },
          };
        },
      });
    }
  }
  return tasks;
}
