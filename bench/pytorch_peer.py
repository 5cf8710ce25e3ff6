#!/usr/bin/env python3
"""PyTorch (+ cuDNN) peer of bench/run.mjs: the same ops of the paper AlexNet at the same shapes
(bench/alexnet.json), under the same row keys, and the same end-to-end training step, timed on the same
device. bench/summary.mjs puts the two side by side.

    python3 bench/pytorch_peer.py [--device cpu|cuda] [--batch N] [--time MS] [--filter REGEX]
                                  [--json FILE] [--list] [--threads N] [--outputs DIR [--no-time]]

Outputs (--outputs DIR): every row's inputs come from the generator bench/check.mjs defines (mix32 of
an index and a key hashed from the row and input name, mapped to [lo, hi) in float64, rounded once to
float32; implemented here in torch integer ops, bit-identical), and before it is timed the row computes
its outputs once on them (fresh state: SGD and the training step from their first update) and writes them
to DIR/<key>.safetensors, which bench/run.mjs compares with its own. Dropout masks (the dropout rows and
the training step's two layers) are drawn with the same Philox4x32-10 stream as ours, by this file's own
implementation of the generator (checked against Random123's known answer at start). --no-time writes
the outputs only.

Timing: each row runs once to warm up (cudnn.benchmark picks its algorithms there), once more to
calibrate `inner` so that one timed repetition (`inner` calls) lasts a few ms, then is repeated until --time ms
have been spent (and at least 10 repetitions on CUDA, 3 on the CPU). On CUDA a repetition is timed with
CUDA events recorded around the `inner` calls on the current stream; on the CPU with perf_counter. The
row's figure is the median per call; p10 and p90 are kept too.

train.<arch>.bf16 (with --precisions …,bf16, CUDA): the training step with forward and loss under
torch.autocast('cuda', torch.bfloat16) — the same step as train.<g1|tv>.tf32~bf16 below, but with its
outputs written: the reference (timing and check) for alexnet-cuda's bf16 step, whose GEMM inputs are
rounded to bf16 with float32 activations (autocast also stores activations in bf16). On the CPU it
computes in fp32, like a tf32 row.

PyTorch-only rows (key~variant: no outputs of ours to compare, so none are written; bench/run.mjs shows
them beside the table, unchecked): sgd~foreach_off and sgd~fused (torch.optim.SGD's other implementations),
and, on CUDA only, for train.g1 and train.tv, variants of the tf32 training step (same model, inputs,
cross-entropy, SGD update, PyTorch's own dropout and the same two .item() read-backs as the eager row):
  train.<g1|tv>.tf32~bf16            eager, forward + loss under torch.autocast('cuda', torch.bfloat16): the
                                     standard AMP recipe (fp32 master weights and SGD, no GradScaler for bf16);
  train.<g1|tv>.tf32~compiled        torch.compile (default mode) of forward + loss (backward compiled
                                     with it by AOTAutograd) and of the SGD update; TF32 on;
  train.<g1|tv>.tf32~bf16_compiled   both (autocast inside the compiled forward).
The compiled rows start with zeroed momentum buffers (the first update is the same; the update then
compiles once, not again at the second step), reset torch.compile's caches first, and get 2 warm-up steps
before measure()'s own warm-up and calibration calls: compiling (and any recompile at the second call)
happens in those 4 untimed calls; the row's warmupSeconds is the 2 warm-up steps' wall time (mostly
compiling). On the CPU none of these rows exist; on torch < 2.0 (no torch.compile, e.g. the development
machine's 1.13) the ~compiled ones are absent, also from --list. With --keys-file (bench/run.mjs) the
training variants are left out unless --train-variants or PYTORCH_PEER_TRAIN_VARIANTS=1: they compile
for tens of seconds, which a plain `run.mjs --vs-pytorch --filter '^train'` should not pay.

Precision: 'fp32' rows set torch.backends.cuda.matmul.allow_tf32 = False and
torch.backends.cudnn.allow_tf32 = False; 'tf32' rows set both True (on torch >= 2.9, which deprecates
those flags, the same through torch.backends.cuda.matmul.fp32_precision and
torch.backends.cudnn.conv.fp32_precision = 'ieee' | 'tf32'). Memory-bound rows run in fp32.
Works with torch 1.13 (CPU, the development machine) and torch 2.x (CUDA).
"""
import argparse
import ctypes
import datetime
import json
import math
import os
import platform
import re
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
aten = torch.ops.aten


def load_geometry():
    with open(os.path.join(HERE, "alexnet.json"), encoding="utf-8") as f:
        return json.load(f)


def out_side(h, k, s, p):
    return (h + 2 * p - k) // s + 1


# ---- the shared input generator (bench/check.mjs) and Philox (native/ops/philox.h) -------------------
# torch integer ops on int64, never overflowing: 32-bit products are split into 16-bit halves.

M32 = 0xFFFFFFFF
BLOCK = 1 << 20


def fnv1a(s):
    h = 0x811C9DC5
    for c in s.encode("utf-8"):
        h = ((h ^ c) * 0x01000193) & M32
    return h


def mul32(x, m):
    """(x · m) mod 2^32 for an int64 tensor x in [0, 2^32) and an int m in [0, 2^32)."""
    return (x * (m & 0xFFFF) + ((x * (m >> 16)) & 0xFFFF) * 65536) & M32


def mix32(x):
    x = x ^ (x >> 16)
    x = mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def mix32_int(v):
    return int(mix32(torch.tensor([v], dtype=torch.int64))[0])


def uniform(n, name, lo=-1.0, hi=1.0):
    """n float32 values of the stream `name` in [lo, hi) (CPU), as bench/check.mjs uniformArray."""
    key = mix32_int(fnv1a(name))
    m = min(n, BLOCK)
    u = mix32(torch.arange(m, dtype=torch.int64) ^ key)
    v = u.double().div(4294967296.0).mul(hi - lo).add(lo).float()
    if n > m:
        v = v.repeat((n + m - 1) // m)[:n]
    return v


def labels_of(n, name, classes):
    key = mix32_int(fnv1a(name))
    return mix32(torch.arange(n, dtype=torch.int64) ^ key) % classes


PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85


def mulhilo(a, m):
    """(high, low) 32-bit halves of a · m for an int64 tensor a in [0, 2^32)."""
    pl, ph = a * (m & 0xFFFF), a * (m >> 16)
    return (ph + (pl >> 16)) >> 16, (((ph & 0xFFFF) << 16) + pl) & M32


def philox4x32_10(c0, c1, seed):
    """Philox4x32-10 of counters (c0, c1, 0, 0) under the 64-bit key `seed`: four int64 word tensors."""
    k0, k1 = seed & M32, (seed >> 32) & M32
    x, y = c0, c1
    z, w = torch.zeros_like(c0), torch.zeros_like(c0)
    for r in range(10):
        if r:
            k0, k1 = (k0 + PHILOX_W0) & M32, (k1 + PHILOX_W1) & M32
        hi0, lo0 = mulhilo(x, PHILOX_M0)
        hi1, lo1 = mulhilo(z, PHILOX_M1)
        x, y, z, w = hi1 ^ y ^ k0, lo1, hi0 ^ w ^ k1, lo0
    return x, y, z, w


def philox_selftest():
    # Random123's known-answer vector for philox4x32-10: counter 0, key 0
    z = torch.zeros(1, dtype=torch.int64)
    got = [int(t[0]) for t in philox4x32_10(z, z, 0)]
    want = [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    if got != want:
        raise RuntimeError("pytorch_peer: Philox4x32-10 known-answer test failed: %s" % [hex(v) for v in got])


def dropout_keep(n, p, seed, offset):
    """Our dropout's keep mask (native/ops/dropout.h): element i draws word i % 4 of block offset + i // 4
    and is kept when (word >> 8) < ceil((1 - p) · 2^24)."""
    q = 1.0 - p
    if not q > 0.0:
        return torch.zeros(n, dtype=torch.bool), 0.0
    thr = 1 << 24 if q >= 1.0 else math.ceil(q * 16777216.0)
    ctr = torch.arange((n + 3) // 4, dtype=torch.int64) + offset
    words = torch.stack(philox4x32_10(ctr & M32, ctr >> 32, seed), 1).reshape(-1)[:n]
    scale = 1.0 if q >= 1.0 else float(torch.tensor(1.0 / q, dtype=torch.float32))
    return (words >> 8) < thr, scale


class PhiloxDropout(nn.Module):
    """Dropout with our mask, for the training step's reference: layers share one stream (seed, offset),
    each call takes ceil(n / 4) counters, as lib/nn/dropout.ts."""

    def __init__(self, p, stream):
        super().__init__()
        self.p, self.stream = p, stream

    def forward(self, x):
        n = x.numel()
        keep, scale = dropout_keep(n, self.p, self.stream["seed"], self.stream["offset"])
        self.stream["offset"] += (n + 3) // 4
        return x * (keep.to(x.device, torch.float32) * scale).reshape(x.shape)


def write_safetensors(path, tensors):
    """{name: tensor} as safetensors (F32, or I32 for integer tensors), without the safetensors package."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().to("cpu")
        t = (t.to(torch.int32) if not t.is_floating_point() else t.to(torch.float32)).contiguous()
        nbytes = t.numel() * 4
        header[name] = dict(dtype="F32" if t.dtype == torch.float32 else "I32", shape=list(t.shape), data_offsets=[off, off + nbytes])
        blobs.append(t)
        off += nbytes
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for t in blobs:
            if t.numel():
                f.write(ctypes.string_at(t.data_ptr(), t.numel() * 4))
    os.replace(tmp, path)


def tf32_api():
    """torch >= 2.9 controls TF32 per backend with `fp32_precision` ('ieee' | 'tf32') and deprecates the
    `allow_tf32` flags (mixing the two APIs can raise); older torch has only the flags."""
    try:  # torch 1.13's matmul module raises AssertionError, not AttributeError, for unknown names
        torch.backends.cuda.matmul.fp32_precision  # noqa: B018
        torch.backends.cudnn.conv.fp32_precision  # noqa: B018
        return "fp32_precision"
    except (AttributeError, AssertionError):
        return "allow_tf32"


def set_precision(p):
    """'fp32': strict fp32 in cuBLAS and cuDNN; 'tf32': TF32 tensor cores allowed in both; 'bf16' (the
    training-step rows under autocast) allows TF32 for what autocast leaves in fp32, as the ~bf16 variants."""
    on = p in ("tf32", "bf16")
    if tf32_api() == "fp32_precision":
        torch.backends.cuda.matmul.fp32_precision = "tf32" if on else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if on else "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


# ---- the paper AlexNet (as bench/alexnet.json and lib/models/alexnet.ts 'paper') -------------------


def paper_alexnet(geo, groups, dropout=0.5, make_dropout=None):
    c = {l["name"]: l for l in geo["conv"]}

    def conv(name):
        l = c[name]
        g = groups if groups in l["groups"] else 1
        return nn.Conv2d(l["C"], l["K"], l["k"], stride=l["stride"], padding=l["pad"], groups=g)

    p = geo["lrnParams"]

    def lrn():
        return nn.LocalResponseNorm(p["size"], alpha=p["alpha"], beta=p["beta"], k=p["k"])

    drop = make_dropout or (lambda: nn.Dropout(dropout))
    fc = geo["fc"]
    return nn.Sequential(
        conv("conv1"), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
        conv("conv2"), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
        conv("conv3"), nn.ReLU(inplace=True),
        conv("conv4"), nn.ReLU(inplace=True),
        conv("conv5"), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        drop(), nn.Linear(fc[0]["in"], fc[0]["out"]), nn.ReLU(inplace=True),
        drop(), nn.Linear(fc[1]["in"], fc[1]["out"]), nn.ReLU(inplace=True),
        nn.Linear(fc[2]["in"], fc[2]["out"]),
    )


def torchvision_alexnet(classes, make_dropout=None):
    import torchvision

    m = torchvision.models.alexnet(num_classes=classes)
    if make_dropout:
        m.classifier[0] = make_dropout()
        m.classifier[3] = make_dropout()
    return m


def param_shapes(geo, groups):
    out = []
    for l in geo["conv"]:
        g = groups if groups in l["groups"] else 1
        out += [(l["K"], l["C"] // g, l["k"], l["k"]), (l["K"],)]
    for l in geo["fc"]:
        out += [(l["out"], l["in"]), (l["out"],)]
    return out


# ---- rows ------------------------------------------------------------------------------------------
# A row: key, precision, and make() -> (call, ref): call() runs the op once (timed); ref() computes the
# row's outputs once on the same inputs, from the fresh state, as {name: tensor} under bench/ops.mjs's names.


def build_rows(geo, dev, batch, precisions):
    N = batch
    C = geo["classes"]

    def inputs(base):
        def rand(name, *shape, lo=-1.0, hi=1.0):
            return uniform(math.prod(shape), "%s/%s" % (base, name), lo, hi).reshape(shape).to(dev)

        def labels(name, n):
            return labels_of(n, "%s/%s" % (base, name), C).to(dev)

        return rand, labels

    rows = []
    # bf16 is a training-step precision only (autocast); the per-op rows run fp32 and tf32
    op_precisions = [p for p in precisions if p != "bf16"]
    # fp32 references on CUDA in float64: cuDNN may pick Winograd/FFT algorithms for fp32, whose error is
    # several times a plain sum's; in double it has none of them, and the reference is then exact to fp32
    exact = dev.type == "cuda"

    def hi(prec, *ts):
        return [t.double() for t in ts] if exact and prec == "fp32" else list(ts)

    def row(key, precision, make, **extra):
        rows.append(dict(key=key, precision=precision, make=make, **extra))

    for l in geo["conv"]:
        for g in l["groups"]:
            ho = out_side(l["H"], l["k"], l["stride"], l["pad"])
            xs, ws, ys = (N, l["C"], l["H"], l["H"]), (l["K"], l["C"] // g, l["k"], l["k"]), (N, l["K"], ho, ho)
            M, Kg, Ng = l["K"] // g, (l["C"] // g) * l["k"] ** 2, N * ho * ho
            base = "%s.g%d" % (l["name"], g)
            s, p = [l["stride"]] * 2, [l["pad"]] * 2
            for prec in op_precisions:

                def fwd(xs=xs, ws=ws, l=l, g=g, base=base, prec=prec):
                    rand, _ = inputs(base + ".fwd")
                    x, w, b = rand("x", *xs), rand("w", *ws, lo=-0.01, hi=0.01), rand("b", l["K"])
                    run = lambda x=x, w=w, b=b: F.conv2d(x, w, b, l["stride"], l["pad"], 1, g)  # noqa: E731
                    return run, lambda: dict(y=run(*hi(prec, x, w, b)))

                def gemm(M=M, Kg=Kg, Ng=Ng, g=g, base=base, prec=prec):
                    rand, _ = inputs(base + ".gemm")
                    ab = [(rand("a%d" % i, M, Kg, lo=-0.01, hi=0.01), rand("b%d" % i, Kg, Ng)) for i in range(g)]

                    def call():
                        for a, b in ab:
                            torch.mm(a, b)

                    return call, lambda: {"y%d" % i: torch.mm(*hi(prec, a, b)) for i, (a, b) in enumerate(ab)}

                def bwd(mask, xs=xs, ws=ws, ys=ys, l=l, g=g, s=s, p=p, base=base, prec=prec):
                    rand, _ = inputs(base + ".bwd")
                    x, w, dy = rand("x", *xs), rand("w", *ws, lo=-0.01, hi=0.01), rand("dy", *ys)
                    run = lambda dy=dy, x=x, w=w: aten.convolution_backward(dy, x, w, [l["K"]], s, p, [1, 1], False, [0, 0], g, mask)  # noqa: E731

                    def ref():
                        dx, dw, db = run(*hi(prec, dy, x, w))
                        out = dict(dw=dw)
                        if mask[0]:
                            out["dx"] = dx
                        if mask[2]:
                            out["db"] = db
                        return out

                    return run, ref

                row("%s.fwd.%s" % (base, prec), prec, fwd)
                row("%s.gemm.%s" % (base, prec), prec, gemm)
                row("%s.bwd_dw.%s" % (base, prec), prec, lambda bwd=bwd: bwd([False, True, False]))
                row("%s.bwd_dwdx.%s" % (base, prec), prec, lambda bwd=bwd: bwd([True, True, False]))
                row("%s.bwd_all.%s" % (base, prec), prec, lambda bwd=bwd: bwd([True, True, True]))

    for l in geo["fc"]:
        for prec in op_precisions:

            def fc_fwd(l=l, prec=prec):
                rand, _ = inputs(l["name"] + ".fwd")
                x, w, b = rand("x", N, l["in"]), rand("w", l["out"], l["in"], lo=-0.01, hi=0.01), rand("b", l["out"])
                run = lambda x=x, w=w, b=b: F.linear(x, w, b)  # noqa: E731
                return run, lambda: dict(y=run(*hi(prec, x, w, b)))

            def fc_bwd(need_dx, need_db, l=l, prec=prec):
                # what autograd runs for addmm: dx = dy·w, dw = dyᵀ·x, db = Σ_N dy
                rand, _ = inputs(l["name"] + ".bwd")
                x, w, dy = rand("x", N, l["in"]), rand("w", l["out"], l["in"], lo=-0.01, hi=0.01), rand("dy", N, l["out"])

                def call(x=x, w=w, dy=dy):
                    out = dict(dw=torch.mm(dy.t(), x))
                    if need_dx:
                        out["dx"] = torch.mm(dy, w)
                    if need_db:
                        out["db"] = dy.sum(0)
                    return out

                return call, lambda: call(*hi(prec, x, w, dy))

            row("%s.fwd.%s" % (l["name"], prec), prec, fc_fwd)
            row("%s.bwd_dw.%s" % (l["name"], prec), prec, lambda f=fc_bwd: f(False, False))
            row("%s.bwd_dwdx.%s" % (l["name"], prec), prec, lambda f=fc_bwd: f(True, False))
            row("%s.bwd_all.%s" % (l["name"], prec), prec, lambda f=fc_bwd: f(True, True))

    for pl in geo["pool"]:
        xs = (N, pl["C"], pl["H"], pl["H"])
        ho = out_side(pl["H"], pl["k"], pl["stride"], 0)
        k, st = [pl["k"]] * 2, [pl["stride"]] * 2

        def pool_fwd(xs=xs, pl=pl):
            rand, _ = inputs(pl["name"] + ".fwd")
            x = rand("x", *xs)
            run = lambda: F.max_pool2d(x, pl["k"], pl["stride"], return_indices=True)  # noqa: E731

            def ref():
                y, idx = run()
                return dict(y=y, indices=idx)

            return run, ref

        def pool_bwd(xs=xs, ho=ho, pl=pl, k=k, st=st):
            rand, _ = inputs(pl["name"] + ".bwd")
            x = rand("x", *xs)
            _, idx = F.max_pool2d(x, pl["k"], pl["stride"], return_indices=True)
            dy = rand("dy", N, pl["C"], ho, ho)
            run = lambda: aten.max_pool2d_with_indices_backward(dy, x, k, st, [0, 0], [1, 1], False, idx)  # noqa: E731
            return run, lambda: dict(dx=run())

        row("%s.fwd" % pl["name"], None, pool_fwd)
        row("%s.bwd" % pl["name"], None, pool_bwd)

    lp = geo["lrnParams"]
    for sl in geo["lrn"]:
        xs = (N, sl["C"], sl["H"], sl["H"])

        def lrn_fwd(xs=xs, sl=sl):
            rand, _ = inputs(sl["name"] + ".fwd")
            x = rand("x", *xs, lo=0.0, hi=4.0)
            run = lambda: F.local_response_norm(x, lp["size"], lp["alpha"], lp["beta"], lp["k"])  # noqa: E731
            return run, lambda: dict(y=run())

        def lrn_bwd(xs=xs, sl=sl):
            # F.local_response_norm is a composite op: its backward is whatever autograd records.
            rand, _ = inputs(sl["name"] + ".bwd")
            x = rand("x", *xs, lo=0.0, hi=4.0).requires_grad_(True)
            with torch.enable_grad():
                y = F.local_response_norm(x, lp["size"], lp["alpha"], lp["beta"], lp["k"])
            dy = rand("dy", *xs)
            run = lambda: torch.autograd.grad(y, x, dy, retain_graph=True)  # noqa: E731
            return run, lambda: dict(dx=run()[0])

        row("%s.fwd" % sl["name"], None, lrn_fwd)
        row("%s.bwd" % sl["name"], None, lrn_bwd)

    r = geo["relu"]
    rs = (N, r["C"], r["H"], r["H"])

    def relu_fwd():
        rand, _ = inputs("relu1.fwd")
        x = rand("x", *rs)
        run = lambda: F.relu(x)  # noqa: E731
        return run, lambda: dict(y=run())

    def relu_bwd():
        rand, _ = inputs("relu1.bwd")
        y = F.relu(rand("x", *rs))
        dy = rand("dy", *rs)
        run = lambda: aten.threshold_backward(dy, y, 0)  # noqa: E731
        return run, lambda: dict(dx=run())

    row("relu1.fwd", None, relu_fwd)
    row("relu1.bwd", None, relu_bwd)

    d = geo["dropout"]
    ds = (N, d["features"])
    # bench/ops.mjs's dropout rows: seed 1234, offset 0. Timed: PyTorch's own native_dropout; the reference
    # output: our mask, drawn by this file's Philox.
    keep, scale = dropout_keep(N * d["features"], d["p"], 1234, 0)
    keep = keep.reshape(ds)

    def drop_fwd():
        rand, _ = inputs("%s.fwd" % d["name"])
        x = rand("x", *ds)
        return (lambda: aten.native_dropout(x, d["p"], True)), lambda: dict(y=x * (keep.to(dev, torch.float32) * scale))

    def drop_bwd():
        rand, _ = inputs("%s.bwd" % d["name"])
        dy = rand("dy", *ds)
        _, mask = aten.native_dropout(dy, d["p"], True)
        return (lambda: aten.native_dropout_backward(dy, mask, 1.0 / (1.0 - d["p"]))), lambda: dict(dx=dy * (keep.to(dev, torch.float32) * scale))

    row("%s.fwd" % d["name"], None, drop_fwd)
    row("%s.bwd" % d["name"], None, drop_bwd)

    def xent_fwd():
        rand, labels = inputs("xent.fwd")
        logits, lab = rand("logits", N, C, lo=-3.0, hi=3.0), labels("labels", N)
        return (lambda: F.cross_entropy(logits, lab)), lambda: dict(loss=F.cross_entropy(logits, lab).reshape(1), probs=torch.softmax(logits, 1))

    def xent_bwd():
        rand, labels = inputs("xent.bwd")
        logits, lab = rand("logits", N, C, lo=-3.0, hi=3.0).requires_grad_(True), labels("labels", N)
        with torch.enable_grad():
            loss = F.cross_entropy(logits, lab)
        run = lambda: torch.autograd.grad(loss, logits, retain_graph=True)  # noqa: E731
        return run, lambda: dict(dlogits=run()[0])

    def topk():
        rand, _ = inputs("topk")
        logits = rand("logits", N, C, lo=-3.0, hi=3.0)
        # row i's label at rank i mod 7 of its logits (bench/ops.mjs plantedLabels): counts depend on k
        order = torch.sort(logits.cpu(), stable=True, dim=1, descending=True).indices
        lab = order[torch.arange(N), torch.arange(N) % 7].to(dev)

        def call():
            hit = logits.topk(5, 1).indices.eq(lab[:, None])
            return hit[:, :1].sum(), hit.sum()

        return call, lambda: dict(counts=torch.stack(call()))

    row("xent.fwd", None, xent_fwd)
    row("xent.bwd", None, xent_bwd)
    row("topk", None, topk)

    sg = geo["sgd"]
    shapes = param_shapes(geo, sg["groups"])

    def sgd(**kw):
        def make():
            rand, _ = inputs("sgd")
            params = [rand("param%d" % i, *s, lo=-0.01, hi=0.01) for i, s in enumerate(shapes)]
            for i, prm in enumerate(params):
                prm.grad = rand("grad%d" % i, *prm.shape, lo=-0.001, hi=0.001)
            opt = torch.optim.SGD(params, lr=sg["lr"], momentum=sg["momentum"], weight_decay=sg["weightDecay"], **kw)
            for i, prm in enumerate(params):  # momentum history from the generator, as ours
                opt.state[prm]["momentum_buffer"] = rand("momentum%d" % i, *prm.shape, lo=-0.001, hi=0.001)

            def ref():  # one update from those buffers
                opt.step()
                out = {}
                for i, prm in enumerate(params):
                    out["param%d" % i] = prm.detach().clone()
                    out["momentum%d" % i] = opt.state[prm]["momentum_buffer"].clone()
                return out

            return opt.step, ref

        return make

    row("sgd", None, sgd(), note="torch.optim.SGD default implementation")
    if "foreach" in torch.optim.SGD.__init__.__code__.co_varnames:
        row("sgd~foreach_off", None, sgd(foreach=False), note="torch.optim.SGD(foreach=False): a few kernels per tensor")
    if "fused" in torch.optim.SGD.__init__.__code__.co_varnames and dev.type == "cuda":
        row("sgd~fused", None, sgd(fused=True), note="torch.optim.SGD(fused=True)")

    t = geo["train"]
    archs = [("g%d" % g, g) for g in t["groups"]] + [("tv", None)]
    for key, groups in archs:
        input_shape = geo["input"] if groups else geo["torchvision"]["input"]
        for prec in precisions:

            def build(groups=groups, make_dropout=None):
                if groups:
                    return paper_alexnet(geo, groups, make_dropout=make_dropout)
                return torchvision_alexnet(C, make_dropout=make_dropout)

            def train(key=key, build=build, input_shape=input_shape, prec=prec):
                base = "train." + key
                rand, labels = inputs(base)
                x, lab = rand("x", N, *input_shape), labels("labels", N)
                # bf16 on CUDA: the standard AMP recipe (forward and loss under autocast, fp32 master weights
                # and SGD, no GradScaler for bf16), as the ~bf16 variant. On the CPU the peer computes fp32.
                amp = prec == "bf16" and dev.type == "cuda"

                def stepper(model, lr=t["lr"]):
                    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=t["momentum"], weight_decay=t["weightDecay"])

                    def step():
                        opt.zero_grad(set_to_none=True)
                        with torch.enable_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                            logits = model(x)
                            loss = F.cross_entropy(logits, lab)
                        with torch.enable_grad():
                            loss.backward()
                        opt.step()
                        correct = (logits.detach().argmax(1) == lab).sum()
                        # read back loss and top-1 count, as alexnet-cuda's model.step does
                        return loss.item(), correct.item()

                    return step

                model = build().to(dev).train()
                step = stepper(model)

                def ref():
                    # one step from the shared initial weights (uniform ±1/√fan_in, bench/ops.mjs) and our
                    # dropout stream, from no momentum
                    stream = dict(seed=t["checkDropoutSeed"], offset=0)
                    m = build(make_dropout=lambda: PhiloxDropout(0.5, stream)).to(dev).train()
                    params = list(m.parameters())
                    with torch.no_grad():
                        for i in range(0, len(params), 2):
                            bound = 1.0 / math.sqrt(params[i][0].numel())
                            for j in (i, i + 1):
                                params[j].copy_(uniform(params[j].numel(), "%s/param%d" % (base, j), -bound, bound).reshape(params[j].shape))
                    loss, _ = stepper(m, t["checkLr"])()
                    out = dict(loss=torch.tensor([loss], dtype=torch.float32))
                    for i, prm in enumerate(params):
                        out["param%d" % i] = prm.detach().clone()
                    return out

                return step, ref

            row("train.%s.%s" % (key, prec), prec, train, batch=N,
                **(dict(autocast="bf16", note="forward + loss under torch.autocast(bfloat16)") if prec == "bf16" and dev.type == "cuda" else {}))

        # PyTorch-only variants of the tf32 step (no outputs of ours to compare, like sgd~fused): bf16
        # autocast and/or torch.compile. CUDA only; the compiled ones only where torch has torch.compile.
        if dev.type != "cuda" or "tf32" not in precisions or key not in TRAIN_VARIANT_ARCHS:
            continue
        for variant, bf16, compiled in TRAIN_VARIANTS:
            if compiled and not hasattr(torch, "compile"):
                continue

            def variant_row(key=key, groups=groups, input_shape=input_shape, bf16=bf16, compiled=compiled):
                rand, labels = inputs("train." + key)  # the eager row's inputs
                x, lab = rand("x", N, *input_shape), labels("labels", N)
                model = (paper_alexnet(geo, groups) if groups else torchvision_alexnet(C)).to(dev).train()
                opt = torch.optim.SGD(model.parameters(), lr=t["lr"], momentum=t["momentum"], weight_decay=t["weightDecay"])

                def forward(x, lab):
                    if bf16:  # AMP: bf16 convolutions and GEMMs, fp32 master weights, the loss in fp32
                        with torch.autocast("cuda", dtype=torch.bfloat16):
                            logits = model(x)
                            return logits, F.cross_entropy(logits, lab)
                    logits = model(x)
                    return logits, F.cross_entropy(logits, lab)

                def update():
                    opt.step()

                if compiled:
                    compiler_reset()  # a fresh cache per row: no recompile limit reached, no graph of the last row
                    # momentum buffers from the start (zeros: the first update is the same, buf = 0.9·0 + g),
                    # so the update compiles once instead of again at the second step
                    for prm in model.parameters():
                        opt.state[prm]["momentum_buffer"] = torch.zeros_like(prm)
                    forward, update = torch.compile(forward), torch.compile(update)

                def step():
                    opt.zero_grad(set_to_none=True)
                    with torch.enable_grad():
                        logits, loss = forward(x, lab)
                        loss.backward()
                    update()
                    correct = (logits.detach().argmax(1) == lab).sum()
                    return loss.item(), correct.item()

                return step, None

            what = " + ".join(w for w in ("bf16 autocast" if bf16 else "", "torch.compile" if compiled else "") if w)
            row("train.%s.tf32~%s" % (key, variant), "tf32", variant_row, batch=N, optin=True,
                autocast="bf16" if bf16 else None, compiled=compiled, warmups=COMPILED_WARMUPS if compiled else 0,
                note="PyTorch's step with %s%s" % (what, ", %d warm-up steps not timed" % COMPILED_WARMUPS if compiled else ""))
    return rows


# The PyTorch-only training-step variants: (key suffix, bf16 autocast, torch.compile), for these archs.
TRAIN_VARIANTS = [("bf16", True, False), ("compiled", False, True), ("bf16_compiled", True, True)]
TRAIN_VARIANT_ARCHS = ("g1", "tv")
COMPILED_WARMUPS = 2


def compiler_reset():
    """Drops torch.compile's caches (torch.compiler.reset on torch >= 2.1, torch._dynamo.reset on 2.0)."""
    reset = getattr(getattr(torch, "compiler", None), "reset", None)
    if reset is None:
        import torch._dynamo  # noqa: F401

        reset = torch._dynamo.reset
    reset()


# ---- timing ----------------------------------------------------------------------------------------


def cpu_snapshot():
    """Machine-wide busy CPU time (/proc/stat, Linux) and this process's own; None where unavailable."""
    try:
        import resource
        with open("/proc/stat", encoding="ascii") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        v += [0] * (8 - len(v))
        busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return dict(busy=busy, total=busy + v[3] + v[4], self_s=ru.ru_utime + ru.ru_stime)
    except (OSError, ValueError, ImportError):
        return None


def other_cpu_share(a, b):
    """Share of all CPUs' time that other processes used between two snapshots (USER_HZ = 100)."""
    if not a or not b or b["total"] <= a["total"]:
        return None
    others = (b["busy"] - a["busy"]) / 100.0 - (b["self_s"] - a["self_s"])
    return min(1.0, max(0.0, others / ((b["total"] - a["total"]) / 100.0)))


def quantile(sorted_vals, q):
    if not sorted_vals:
        return None
    pos = (len(sorted_vals) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def measure(call, dev, time_ms, iter_ms, max_inner, min_reps):
    cuda = dev.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    call()  # warm-up: cudnn.benchmark autotunes here, the caching allocator fills
    sync()
    t0 = time.perf_counter()  # calibrate (and warm up once more)
    call()
    sync()
    est = max((time.perf_counter() - t0) * 1e3, 1e-4)
    inner = max(1, min(max_inner, round(iter_ms / est)))
    samples, spent = [], 0.0
    start, end = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) if cuda else (None, None)
    while len(samples) < min_reps or spent < time_ms:
        if cuda:
            start.record()
            for _ in range(inner):
                call()
            end.record()
            end.synchronize()
            dt = start.elapsed_time(end)
        else:
            s = time.perf_counter()
            for _ in range(inner):
                call()
            dt = (time.perf_counter() - s) * 1e3
        samples.append(dt / inner)
        spent += dt
    samples.sort()
    return dict(ms=quantile(samples, 0.5), p10=quantile(samples, 0.1), p90=quantile(samples, 0.9),
                mean=sum(samples) / len(samples), samples=len(samples), inner=inner)


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer of bench/run.mjs (same keys, same shapes)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None,
                    help="default: cuda when torch sees a GPU, else cpu")
    ap.add_argument("--batch", type=int, default=None, help="default: 128 on cuda, 8 on cpu")
    ap.add_argument("--time", type=int, default=None, help="ms per row (default 200 on cuda, 500 on cpu)")
    ap.add_argument("--filter", default=None, help="only rows whose key matches this regular expression")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--list", action="store_true", help="print the row keys and exit")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    ap.add_argument("--outputs", default=None, help="write each row's outputs to DIR/<key>.safetensors (for bench/run.mjs)")
    ap.add_argument("--no-time", action="store_true", help="with --outputs: compute the outputs only, time nothing")
    ap.add_argument("--keys-file", default=None,
                    help="exactly these rows (one key a line; bench/run.mjs passes its own list), and when timing "
                         "their PyTorch-only variants (key~variant); outputs are written for the listed keys only")
    ap.add_argument("--train-variants", action="store_true", default=os.environ.get("PYTORCH_PEER_TRAIN_VARIANTS") == "1",
                    help="with --keys-file: time the training step's bf16/torch.compile variants too (key~bf16, ~compiled, "
                         "~bf16_compiled; they compile for tens of seconds); without --keys-file they run like any row (unless --filter "
                         "leaves them out). Env PYTORCH_PEER_TRAIN_VARIANTS=1 does the same (for bench/run.mjs --vs-pytorch)")
    ap.add_argument("--precisions", default=None,
                    help="row precisions, comma-separated (default: fp32,tf32,bf16 on cuda, fp32 on cpu; bf16: the training steps under "
                         "autocast); on the CPU a tf32 or bf16 "
                         "row computes in fp32 (a reference for CUDA rows where torch has no CUDA)")
    a = ap.parse_args()
    if a.no_time and not a.outputs:
        sys.exit("pytorch_peer: --no-time needs --outputs DIR")
    if a.device == "cuda" and not torch.cuda.is_available() and not a.list:
        sys.exit("pytorch_peer: --device cuda, but torch %s sees no CUDA device" % torch.__version__)
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch = a.batch or (128 if dev.type == "cuda" else 8)
    if batch < 1:
        sys.exit("pytorch_peer: --batch must be ≥ 1")
    precisions = a.precisions.split(",") if a.precisions else ["fp32", "tf32", "bf16"] if dev.type == "cuda" else ["fp32"]
    if any(p not in ("fp32", "tf32", "bf16") for p in precisions):
        sys.exit("pytorch_peer: --precisions takes fp32, tf32 and/or bf16 (training steps only), got %r" % a.precisions)
    try:
        filt = re.compile(a.filter) if a.filter else None
    except re.error as e:
        sys.exit("pytorch_peer: --filter is not a valid regular expression: %s" % e)
    if dev.type == "cpu":
        torch.set_num_threads(a.threads or os.cpu_count() or 1)
    torch.backends.cudnn.benchmark = True
    geo = load_geometry()
    rows = [r for r in build_rows(geo, dev, batch, precisions) if not filt or filt.search(r["key"])]
    listed = None
    if a.keys_file:
        with open(a.keys_file, encoding="utf-8") as f:
            listed = set(k.strip() for k in f if k.strip())
        rows = [r for r in rows if r["key"] in listed or (not a.no_time and r["key"].split("~")[0] in listed and (a.train_variants or not r.get("optin")))]
    if a.list:
        for r in rows:
            print(r["key"])
        return 0
    if not rows:
        sys.exit("pytorch_peer: --filter matches no row (see --list)")
    cuda = dev.type == "cuda"
    time_ms = a.time or (200 if cuda else 500)
    if a.outputs:
        philox_selftest()
        os.makedirs(a.outputs, exist_ok=True)
    meta = dict(
        tool="pytorch", date=datetime.datetime.now(datetime.timezone.utc).isoformat(), device=dev.type,
        batch=batch, precisions=precisions, torch=torch.__version__,
        cudnn=torch.backends.cudnn.version() if cuda else None,
        gpu=torch.cuda.get_device_name(0) if cuda else None, cpu=platform.processor() or platform.machine(),
        threads=torch.get_num_threads(), python=platform.python_version(), timeMs=time_ms,
        cudnnBenchmark=True, layout="NCHW (contiguous)", tf32Api=tf32_api(),
        loadavgStart=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    )
    print("pytorch peer: torch %s on %s%s, batch %d, %d rows, %s" % (
        torch.__version__, dev.type, " (%s, cuDNN %s)" % (meta["gpu"], meta["cudnn"]) if cuda else " (%d threads)" % meta["threads"],
        batch, len(rows), "outputs only" if a.no_time else "%d ms each%s" % (time_ms, ", outputs written" if a.outputs else "")), flush=True)
    cpu0 = cpu_snapshot()
    results, failed, t0 = [], 0, time.perf_counter()
    group = None
    with torch.no_grad():
        for i, r in enumerate(rows):
            g = r["key"].split(".")[0]
            if g != group and cuda:
                torch.cuda.empty_cache()
            group = g
            set_precision(r["precision"] or "fp32")
            out = dict(key=r["key"], precision=r["precision"])
            for k in ("note", "batch", "autocast", "compiled"):
                if r.get(k) is not None:
                    out[k] = r[k]
            try:
                call, ref = r["make"]()
                if a.outputs and ref is not None and (listed is None or r["key"] in listed):
                    outs = ref()
                    write_safetensors(os.path.join(a.outputs, r["key"] + ".safetensors"), outs)
                    outs = None
                if a.no_time:
                    print("  [%d/%d] %-28s %s" % (i + 1, len(rows), r["key"], "outputs written" if ref else "no outputs (PyTorch-only)"), flush=True)
                else:
                    warm = ""
                    if r.get("warmups"):  # torch.compile compiles here (and may recompile): not timed
                        w0 = time.perf_counter()
                        for _ in range(r["warmups"]):
                            call()
                        if cuda:
                            torch.cuda.synchronize()
                        out["warmupSeconds"] = time.perf_counter() - w0
                        warm = " (%d warm-up steps: %.1f s)" % (r["warmups"], out["warmupSeconds"])
                    out.update(measure(call, dev, time_ms, 4 if cuda else 20, 1000 if cuda else 200, 10 if cuda else 3))
                    print("  [%d/%d] %-28s %10.5f ms [%.5f–%.5f] ×%d%s" % (i + 1, len(rows), r["key"], out["ms"], out["p10"], out["p90"], out["inner"], warm), flush=True)
            except Exception as e:  # one failing row must not lose the others
                out["error"] = ("%s: %s" % (type(e).__name__, e)).splitlines()[0]
                failed += 1
                print("  [%d/%d] %-28s ERROR %s" % (i + 1, len(rows), r["key"], out["error"]), flush=True)
            finally:
                call = ref = None
            results.append(out)
    set_precision("fp32")
    meta["wallSeconds"] = time.perf_counter() - t0
    meta["loadavgEnd"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    meta["otherCpuShare"] = other_cpu_share(cpu0, cpu_snapshot())
    others = "" if meta["otherCpuShare"] is None else "; other processes used %.0f %% of the CPUs meanwhile" % (100 * meta["otherCpuShare"])
    print("%d rows in %.1f s%s%s" % (len(results), meta["wallSeconds"], others, ", %d FAILED" % failed if failed else ""))
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(dict(meta=meta, results=results), f, indent=1)
            f.write("\n")
        print("wrote %s" % os.path.abspath(a.json))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
