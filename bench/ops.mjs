// The benchmark rows: every op of the paper AlexNet at its shapes (bench/alexnet.json), and the training
// step. Each task says what it counts (GEMM FLOPs, or the fewest bytes that must move) and makes a handle
// { call, dispose, async }: `call` runs the op once on fresh-but-fixed inputs and disposes its outputs
// (on CUDA that enqueues; the harness in run.mjs synchronises), `dispose` frees the inputs.
//
// Keys are shared with bench/pytorch_peer.py: <layer>[.g<groups>].<what>[.<precision>].
import { labelArray, U_FP32, uniformArray } from './check.mjs';
import { convDims, outSide, paramShapes, trainFlops } from './common.mjs';

const F32 = 4;

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

/** Reads every tensor of { name: tensor | null } to the host ({ name: Float32Array | Int32Array }), then
 * frees them all. */
async function readAll(obj) {
  try {
    const out = {};
    for (const [k, t] of Object.entries(obj)) if (t) out[k] = await t.data();
    return out;
  } finally {
    free(obj);
  }
}

/** ⌈k/s⌉²: how many windows of a k×k, stride-s sliding window cover one input position (at most). */
const overlap = (k, s) => Math.ceil(k / s) ** 2;

/** The reductions of one training step, for its tolerance: every GEMM's K in forward, dx and dw, and the
 * softmax's sum over the classes. */
function trainChain(convs, fcs, N, groups, classes) {
  const fwd = [];
  const bwd = [];
  convs.forEach((l, i) => {
    const g = l.groups.includes(groups) ? groups : 1;
    const d = convDims(l, N, g);
    fwd.push(d.Kg + 1);
    bwd.push(d.Ng);
    if (i > 0) bwd.push((l.K / g) * overlap(l.k, l.stride)); // conv1 computes no dx
  });
  for (const l of fcs) (fwd.push(l.in + 1), bwd.push(l.out, N));
  const gemms = fwd.length;
  fwd.push(classes);
  // GEMM stages: every forward one, and the backward ones (the bias sums ride along with dw)
  return { fwd, ks: [...fwd, ...bwd], fwdStages: gemms, stages: gemms + bwd.length };
}

/** Row i's label: the class at rank (i mod 7) of its logits, descending (the peer computes the same). */
export function plantedLabels(values, N, C) {
  const out = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    const row = values.subarray(i * C, (i + 1) * C);
    const order = Array.from({ length: C }, (_, j) => j).sort((a, b) => row[b] - row[a] || a - b);
    out[i] = order[i % 7];
  }
  return out;
}

/** fan-in bound of each parameter tensor (PyTorch's default init range, 1/√fan_in; biases take their
 * weight's): the check step's shared initial weights are uniform in ±bound. */
function initBounds(shapes) {
  const out = [];
  for (let i = 0; i < shapes.length; i += 2) {
    const fanIn = numel(shapes[i].slice(1));
    out.push(1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn));
  }
  return out;
}

/**
 * All tasks for `device` at batch `batch`. `pkg` is the loaded package (dist/index.js).
 * precisions: ['fp32', 'tf32'] on CUDA, ['fp32'] on the CPU (it computes tf32 requests in fp32).
 * trainPrecisions: the training-step rows' (default: precisions); on CUDA bf16 too (GEMM inputs rounded to
 * bf16, float32 sums), beside PyTorch's autocast step.
 *
 * A task: key, what it counts, `check` ({ output name: tolerance spec }, bench/check.mjs) and
 * make(dev = device) → { call, dispose, outputs }. Inputs come from the shared generator, one stream per
 * row (its key without the precision) and input name, so PyTorch's peer and the CPU oracle (make('cpu'))
 * see the same values. `outputs()` runs the op once more on the same inputs and resolves to its outputs on
 * the host; for the ops that change their inputs (SGD, the training step) it is called first, on the
 * fresh state.
 */
export function buildTasks(pkg, geo, { device, batch, precisions, trainPrecisions = precisions, fuseRelu = true, lrnPath = 'window' }) {
  const { Tensor, ops, createAlexNet, SGD } = pkg;
  const N = batch;
  const C = geo.classes;
  /** Input makers of row `base` on `dev`. */
  const inputs = (base, dev) => ({
    rand: (name, shape, lo = -1, hi = 1) => Tensor.from(uniformArray(numel(shape), `${base}/${name}`, lo, hi), shape, dev),
    labels: (name, n) => Tensor.from(labelArray(n, `${base}/${name}`, C), [n], dev, 'int32'),
  });
  const tasks = [];

  // ---- convolutions: forward, its bare GEMM, backward (dw; dw+dx; dw+dx+db) ------------------------
  for (const l of geo.conv) {
    for (const g of l.groups) {
      const d = convDims(l, N, g);
      const base = `${l.name}.g${g}`;
      const opts = { stride: l.stride, padding: l.pad, groups: g };
      const convShape = `x${fmt(d.x)} w${fmt(d.w)} s${l.stride} p${l.pad}${g > 1 ? ` g${g}` : ''}`;
      const gemmShape = `${g > 1 ? `${g} × ` : ''}[${d.M}×${d.Kg}]·[${d.Kg}×${d.Ng}]`;
      const dxK = (l.K / g) * overlap(l.k, l.stride);
      for (const precision of precisions) {
        const common = { group: 'conv', layer: `${l.name}${g > 1 ? ` g${g}` : ''}`, precision, kind: 'flops' };
        tasks.push({
          ...common,
          key: `${base}.fwd.${precision}`,
          label: `${common.layer} fwd`,
          shape: convShape,
          flops: d.flops,
          note: 'im2col + GEMM + bias',
          check: { y: { K: d.Kg + 1 } },
          make(dev = device) {
            const r = inputs(`${base}.fwd`, dev);
            const x = r.rand('x', d.x);
            const w = r.rand('w', d.w, -0.01, 0.01);
            const b = r.rand('b', [l.K]);
            const run = () => ops.conv2d(x, w, b, { ...opts, precision });
            return { call: () => run().dispose(), outputs: () => readAll({ y: run() }), dispose: () => free(x, w, b) };
          },
        });
        const gemmCheck = {};
        for (let i = 0; i < g; i++) gemmCheck[`y${i}`] = { K: d.Kg };
        tasks.push({
          ...common,
          group: 'gemm',
          key: `${base}.gemm.${precision}`,
          label: `${common.layer} GEMM (matmul)`,
          shape: gemmShape,
          flops: d.flops,
          note: `bare matmul of conv forward's M×K·K×N${g > 1 ? ', once per group' : ''}`,
          check: gemmCheck,
          make(dev = device) {
            const r = inputs(`${base}.gemm`, dev);
            const as = [];
            const bs = [];
            for (let i = 0; i < g; i++) {
              as.push(r.rand(`a${i}`, [d.M, d.Kg], -0.01, 0.01));
              bs.push(r.rand(`b${i}`, [d.Kg, d.Ng]));
            }
            return {
              call: () => {
                for (let i = 0; i < g; i++) ops.matmul(as[i], bs[i], { precision }).dispose();
              },
              outputs: () => readAll(Object.fromEntries(as.map((a, i) => [`y${i}`, ops.matmul(a, bs[i], { precision })]))),
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
          const check = { dw: { K: d.Ng } };
          if (needInputGrad) check.dx = { K: dxK };
          if (needBiasGrad) check.db = { K: d.Ng, fp32: true };
          tasks.push({
            ...common,
            key: `${base}.${what}.${precision}`,
            label: `${common.layer} ${label}`,
            shape: convShape,
            flops,
            parts,
            note: needBiasGrad ? "GEMM FLOPs of dx + dw; db's bytes not counted" : undefined,
            check,
            make(dev = device) {
              const r = inputs(`${base}.bwd`, dev);
              const x = r.rand('x', d.x);
              const w = r.rand('w', d.w, -0.01, 0.01);
              const dy = r.rand('dy', d.y);
              const o = { ...opts, precision, needInputGrad, needBiasGrad };
              return { call: () => free(ops.conv2dBackward(dy, x, w, o)), outputs: () => readAll(ops.conv2dBackward(dy, x, w, o)), dispose: () => free(x, w, dy) };
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
        check: { y: { K: l.in + 1 } },
        make(dev = device) {
          const r = inputs(`${l.name}.fwd`, dev);
          const x = r.rand('x', [N, l.in]);
          const w = r.rand('w', [l.out, l.in], -0.01, 0.01);
          const b = r.rand('b', [l.out]);
          const run = () => ops.linear(x, w, b, { precision });
          return { call: () => run().dispose(), outputs: () => readAll({ y: run() }), dispose: () => free(x, w, b) };
        },
      });
      for (const [what, label, needInputGrad, needBiasGrad, flops] of [
        ['bwd_dw', 'bwd dw', false, false, F],
        ['bwd_dwdx', 'bwd dw+dx', true, false, 2 * F],
        ['bwd_all', 'bwd dx+dw+db', true, true, 2 * F],
      ]) {
        const check = { dw: { K: N } };
        if (needInputGrad) check.dx = { K: l.out };
        if (needBiasGrad) check.db = { K: N, fp32: true };
        tasks.push({
          ...common,
          key: `${l.name}.${what}.${precision}`,
          label: `${l.name} ${label}`,
          flops,
          parts,
          check,
          make(dev = device) {
            const r = inputs(`${l.name}.bwd`, dev);
            const x = r.rand('x', [N, l.in]);
            const w = r.rand('w', [l.out, l.in], -0.01, 0.01);
            const dy = r.rand('dy', [N, l.out]);
            const o = { precision, needInputGrad, needBiasGrad };
            return { call: () => free(ops.linearBackward(dy, x, w, o)), outputs: () => readAll(ops.linearBackward(dy, x, w, o)), dispose: () => free(x, w, dy) };
          },
        });
      }
    }
  }

  // ---- memory-bound ops: bytes = inputs read once + outputs written once ----------------------------
  const mem = (t) => tasks.push({ precision: null, kind: 'bytes', ...t });
  const exact = { exact: true };

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
      check: { y: exact, indices: exact },
      make(dev = device) {
        const x = inputs(`${p.name}.fwd`, dev).rand('x', xs);
        return { call: () => free(ops.maxPool2d(x, popts)), outputs: () => readAll(ops.maxPool2d(x, popts)), dispose: () => free(x) };
      },
    });
    mem({
      group: 'pool',
      key: `${p.name}.bwd`,
      label: `${p.name} maxpool bwd`,
      shape,
      bytes: (2 * nout + nin) * F32,
      note: 'dy and argmax read; dx written (zeros too)',
      check: { dx: { K: overlap(p.k, p.stride), fp32: true } },
      make(dev = device) {
        const r = inputs(`${p.name}.bwd`, dev);
        const x = r.rand('x', xs);
        const { y, indices } = ops.maxPool2d(x, popts);
        y.dispose();
        const dy = r.rand('dy', ys);
        const run = () => ops.maxPool2dBackward(dy, indices, xs);
        return { call: () => run().dispose(), outputs: () => readAll({ dx: run() }), dispose: () => free(x, indices, dy) };
      },
    });
  }

  // LRN: the window path (lib/ops/lrn.ts), or with --lrn-path legacy the kernels before it, which store
  // the scale in the forward and read it (and y) in the backward.
  const legacyLrn = lrnPath === 'legacy';
  for (const s of geo.lrn) {
    const xs = [N, s.C, s.H, s.H];
    const n = numel(xs);
    const lopts = geo.lrnParams;
    const shape = `${fmt(xs)} n${lopts.size}`;
    const fwd = (x) => (legacyLrn ? ops.localResponseNormLegacy(x, lopts) : ops.localResponseNorm(x, lopts));
    mem({
      group: 'lrn',
      key: `${s.name}.fwd`,
      label: `${s.name} LRN fwd`,
      shape,
      bytes: (legacyLrn ? 3 : 2) * n * F32,
      note: legacyLrn ? 'legacy path: x read; y and scale written' : 'x read; y written (the window\'s other channels from cache)',
      // a sum of `size` squares, then a power (a few ulps in any libm) and a product
      check: { y: { K: lopts.size, ulps: 8, fp32: true } },
      make(dev = device) {
        const x = inputs(`${s.name}.fwd`, dev).rand('x', xs, 0, 4); // post-ReLU activations
        return {
          call: () => free(fwd(x)),
          outputs: async () => {
            const r = fwd(x);
            if (!legacyLrn) return readAll({ y: r });
            r.scale.dispose();
            return readAll({ y: r.y });
          },
          dispose: () => free(x),
        };
      },
    });
    mem({
      group: 'lrn',
      key: `${s.name}.bwd`,
      label: `${s.name} LRN bwd`,
      shape,
      bytes: (legacyLrn ? 5 : 3) * n * F32,
      note: legacyLrn ? 'legacy path: dy, x, y, scale read; dx written' : 'dy, x read (scale recomputed); dx written',
      check: { dx: { K: 2 * lopts.size, ulps: 8, fp32: true } },
      make(dev = device) {
        const r = inputs(`${s.name}.bwd`, dev);
        const x = r.rand('x', xs, 0, 4);
        const dy = r.rand('dy', xs);
        // the legacy backward reads the legacy forward's y and scale (made once, untimed)
        const saved = legacyLrn ? ops.localResponseNormLegacy(x, lopts) : null;
        const run = () => (saved ? ops.localResponseNormLegacyBackward(dy, x, saved.y, saved.scale, lopts) : ops.localResponseNormBackward(dy, x, lopts));
        return { call: () => run().dispose(), outputs: () => readAll({ dx: run() }), dispose: () => free(x, dy, saved) };
      },
    });
  }

  {
    const rl = geo.relu;
    const xs = [N, rl.C, rl.H, rl.H];
    const n = numel(xs);
    mem({
      group: 'relu',
      key: 'relu1.fwd',
      label: 'relu1 fwd',
      shape: fmt(xs),
      bytes: 2 * n * F32,
      note: 'x read, y written',
      check: { y: exact },
      make(dev = device) {
        const x = inputs('relu1.fwd', dev).rand('x', xs);
        return { call: () => ops.relu(x).dispose(), outputs: () => readAll({ y: ops.relu(x) }), dispose: () => free(x) };
      },
    });
    mem({
      group: 'relu',
      key: 'relu1.bwd',
      label: 'relu1 bwd',
      shape: fmt(xs),
      bytes: 3 * n * F32,
      note: 'dy and y read, dx written',
      check: { dx: exact },
      make(dev = device) {
        const r = inputs('relu1.bwd', dev);
        const x = r.rand('x', xs);
        const y = ops.relu(x);
        const dy = r.rand('dy', xs);
        return { call: () => ops.reluBackward(dy, y).dispose(), outputs: () => readAll({ dx: ops.reluBackward(dy, y) }), dispose: () => free(x, y, dy) };
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
      // the peer draws the same Philox4x32-10 mask (its own implementation of the generator)
      check: { y: exact },
      make(dev = device) {
        const x = inputs(`${dr.name}.fwd`, dev).rand('x', xs);
        return { call: () => ops.dropout(x, dopts).dispose(), outputs: () => readAll({ y: ops.dropout(x, dopts) }), dispose: () => free(x) };
      },
    });
    mem({
      group: 'dropout',
      key: `${dr.name}.bwd`,
      label: `${dr.name} dropout bwd`,
      shape: `${fmt(xs)} p${dr.p}`,
      bytes: 2 * n * F32,
      note: 'dy read, dx written',
      check: { dx: exact },
      make(dev = device) {
        const dy = inputs(`${dr.name}.bwd`, dev).rand('dy', xs);
        return { call: () => ops.dropoutBackward(dy, dopts).dispose(), outputs: () => readAll({ dx: ops.dropoutBackward(dy, dopts) }), dispose: () => free(dy) };
      },
    });
  }

  {
    const nc = N * C;
    const shape = `[${N},${C}]`;
    mem({
      group: 'xent',
      key: 'xent.fwd',
      label: 'softmax-CE fwd',
      shape,
      bytes: (2 * nc + N + 1) * F32,
      note: 'logits + labels read; probs + loss written',
      // a sum of C exponentials per row, a log, the mean over the batch; probs: exp and a division
      check: { loss: { K: C + N, ulps: 8, fp32: true }, probs: { K: C, ulps: 4, fp32: true } },
      make(dev = device) {
        const r = inputs('xent.fwd', dev);
        const logits = r.rand('logits', [N, C], -3, 3);
        const lab = r.labels('labels', N);
        return { call: () => free(ops.softmaxCrossEntropy(logits, lab)), outputs: () => readAll(ops.softmaxCrossEntropy(logits, lab)), dispose: () => free(logits, lab) };
      },
    });
    mem({
      group: 'xent',
      key: 'xent.bwd',
      label: 'softmax-CE bwd',
      shape,
      bytes: (2 * nc + N) * F32,
      note: 'probs + labels read; dlogits written',
      // from our forward's probs (the peer differentiates its own loss): the forward's error, once more
      check: { dlogits: { K: C, ulps: 6, fp32: true } },
      make(dev = device) {
        const r = inputs('xent.bwd', dev);
        const logits = r.rand('logits', [N, C], -3, 3);
        const lab = r.labels('labels', N);
        const { loss, probs } = ops.softmaxCrossEntropy(logits, lab);
        loss.dispose();
        const run = () => ops.softmaxCrossEntropyBackward(probs, lab);
        return { call: () => run().dispose(), outputs: () => readAll({ dlogits: run() }), dispose: () => free(logits, lab, probs) };
      },
    });
    mem({
      group: 'topk',
      key: 'topk',
      label: 'top-1/top-5 correct',
      shape: `${shape} k=1,5`,
      bytes: (nc + N + 2) * F32,
      note: 'logits + labels read; 2 counts written',
      check: { counts: exact },
      make(dev = device) {
        const r = inputs('topk', dev);
        const values = uniformArray(N * C, 'topk/logits', -3, 3);
        const logits = Tensor.from(values, [N, C], dev);
        // each row's label at a planted rank of its logits (row i: rank i mod 7), so that the counts
        // depend on k: ranks 0 count for top-1, ranks 0–4 for top-5, 5 and 6 for neither
        const lab = Tensor.from(plantedLabels(values, N, C), [N], dev, 'int32');
        return { call: () => ops.topkCorrect(logits, lab, [1, 5]).dispose(), outputs: () => readAll({ counts: ops.topkCorrect(logits, lab, [1, 5]) }), dispose: () => free(logits, lab) };
      },
    });
  }

  {
    const sg = geo.sgd;
    const shapes = paramShapes(geo, sg.groups);
    const total = shapes.reduce((a, s) => a + numel(s), 0);
    const check = {};
    // momentum = μ·momentum + grad + wd·param (two multiply-adds); param − lr·momentum (one more)
    shapes.forEach((_, i) => Object.assign(check, { [`param${i}`]: { K: 1, ulps: 4, fp32: true }, [`momentum${i}`]: { K: 1, ulps: 4, fp32: true } }));
    mem({
      group: 'sgd',
      key: 'sgd',
      label: `SGD update, ${shapes.length} tensors`,
      shape: `${(total / 1e6).toFixed(2)} M params (groups ${sg.groups})`,
      bytes: 5 * total * F32,
      note: 'param, grad, momentum read; param, momentum written; one call per tensor',
      check,
      make(dev = device) {
        const r = inputs('sgd', dev);
        const params = shapes.map((s, i) => r.rand(`param${i}`, s, -0.01, 0.01));
        const grads = shapes.map((s, i) => r.rand(`grad${i}`, s, -0.001, 0.001));
        const bufs = shapes.map((s, i) => r.rand(`momentum${i}`, s, -0.001, 0.001)); // a step with momentum history
        const o = { lr: sg.lr, momentum: sg.momentum, weightDecay: sg.weightDecay, firstStep: false };
        const call = () => {
          for (let i = 0; i < params.length; i++) ops.sgdUpdate(params[i], grads[i], bufs[i], o);
        };
        return {
          call,
          // one update from momentum buffers the generator filled (the peer sets the same ones)
          outputs: async () => {
            call();
            const out = {};
            for (let i = 0; i < params.length; i++) {
              out[`param${i}`] = await params[i].toFloat32Array();
              out[`momentum${i}`] = await bufs[i].toFloat32Array();
            }
            return out;
          },
          dispose: () => free(...params, ...grads, ...bufs),
        };
      },
    });
  }

  // ---- end to end: one training step of the paper arch and of torchvision's ----------------------------
  const t = geo.train;
  const archs = [...t.groups.map((groups) => ({ arch: 'paper', groups, key: `g${groups}` })), { arch: 'torchvision', groups: 1, key: 'tv' }];
  for (const { arch, groups, key } of archs) {
    const paper = arch === 'paper';
    const input = paper ? geo.input : geo.torchvision.input;
    const convs = paper ? geo.conv : geo.torchvision.conv;
    const shapes = paramShapes({ conv: convs, fc: geo.fc }, groups);
    const bounds = initBounds(shapes);
    const base = `train.${key}`;
    const chain = trainChain(convs, geo.fc, N, groups, C);
    // Loss: the forward's reductions. Each updated parameter: p' = p − lr·(grad + wd·p) is compared as the
    // update p' − p (where a wrong gradient shows), to the chain of every reduction, plus the ReLU and
    // max-pool switches (bench/check.mjs), plus p′'s own rounding (u·‖p′‖ on each side) relative to the
    // update's size.
    const check = { loss: { chain: chain.fwd, tf32Stages: chain.fwdStages, ulps: 8, how: `loss: ${chain.fwd.length} reductions (forward)` } };
    shapes.forEach((_, i) => {
      check[`param${i}`] = (ref, ours) => {
        const p0 = ours[`initial${i}`];
        const p1 = ref[`param${i}`];
        let n2 = 0;
        let p2 = 0;
        if (p1 && p1.length === p0.length)
          for (let j = 0; j < p1.length; j++) {
            const dj = p1[j] - p0[j];
            n2 += dj * dj;
            p2 += p1[j] * p1[j];
          }
        return {
          chain: chain.ks,
          tf32Stages: chain.stages,
          switches: convs.length + 2 + 3, // ReLU after each conv and fc6, fc7; three max pools
          switchK: Math.max(...chain.fwd),
          base: p0,
          extra: n2 > 0 ? (2 * U_FP32 * Math.sqrt(p2)) / Math.sqrt(n2) : 0,
          how: `update p′ − p: ${chain.ks.length} reductions`,
          extraHow: 'p′ rounding',
        };
      };
    });
    for (const precision of trainPrecisions) {
      tasks.push({
        group: 'train',
        key: `${base}.${precision}`,
        layer: 'train',
        label: paper ? `train step, paper arch g${groups}` : 'train step, torchvision arch',
        shape: `x[${N},${input.join(',')}] → ${C} classes`,
        precision,
        kind: 'train',
        batch: N,
        flops: paper ? trainFlops(geo, N, groups) : trainFlops({ conv: convs, fc: geo.fc }, N, groups),
        note: 'forward + softmax-CE + backward + SGD (momentum, weight decay) + loss/top-1 read back',
        async: true,
        check,
        make(dev = device) {
          const r = inputs(base, dev);
          const x = r.rand('x', [N, ...input]);
          const lab = r.labels('labels', N);
          // the timed model is made at the first call (the warm-up), so that a CPU-oracle handle, which
          // only computes outputs, never builds one
          let model = null;
          let opt = null;
          return {
            async: true,
            call: () => {
              if (!model) {
                model = createAlexNet({ arch, groups, device: dev, precision, seed: 7, numClasses: C });
                model.net.setFuseRelu(fuseRelu);
                opt = new SGD(model.parameters(), { lr: t.lr, momentum: t.momentum, weightDecay: t.weightDecay });
              }
              return model.step(x, lab, opt);
            },
            // One step of a model with the shared initial weights and dropout stream, from no momentum.
            outputs: async () => {
              const m = createAlexNet({ arch, groups, device: dev, precision, seed: 7, numClasses: C });
              m.net.setFuseRelu(fuseRelu);
              // a large learning rate for the checked step: the update then stands well above p′'s rounding
              const o = new SGD(m.parameters(), { lr: t.checkLr, momentum: t.momentum, weightDecay: t.weightDecay });
              try {
                const named = m.namedParameters();
                const init = named.map(([, p], i) => uniformArray(p.value.size, `${base}/param${i}`, -bounds[i], bounds[i]));
                m.loadStateDict(new Map(named.map(([name, p], i) => [name, { shape: p.value.shape, data: init[i] }])), 'the check weights');
                m.rng.seed = BigInt(t.checkDropoutSeed);
                m.rng.offset = 0;
                const { loss } = await m.step(x, lab, o);
                const after = await m.stateDict();
                const out = { loss: Float32Array.of(loss) };
                named.forEach(([name], i) => {
                  out[`param${i}`] = after.get(name).data;
                  out[`initial${i}`] = init[i];
                });
                return out;
              } finally {
                o.dispose();
                m.dispose();
              }
            },
            dispose: () => {
              opt?.dispose();
              model?.dispose();
              free(x, lab);
            },
          };
        },
      });
    }
  }
  return tasks;
}
