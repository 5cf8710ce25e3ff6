#!/usr/bin/env python3
"""PyTorch (+ cuDNN) peer of bench/run.mjs: the same ops of the paper AlexNet at the same shapes
(bench/alexnet.json), under the same row keys, and the same end-to-end training step, timed on the same
device. bench/summary.mjs puts the two side by side.

    python3 bench/pytorch_peer.py [--device cpu|cuda] [--batch N] [--time MS] [--filter REGEX]
                                  [--json FILE] [--list] [--threads N]

Timing: each row runs once to warm up (cudnn.benchmark picks its algorithms there), once more to
calibrate `inner` so that one timed repetition (`inner` calls) lasts a few ms, then is repeated until --time ms
have been spent (and at least 10 repetitions on CUDA, 3 on the CPU). On CUDA a repetition is timed with
CUDA events recorded around the `inner` calls on the current stream; on the CPU with perf_counter. The
row's figure is the median per call; p10 and p90 are kept too.

Precision: 'fp32' rows set torch.backends.cuda.matmul.allow_tf32 = False and
torch.backends.cudnn.allow_tf32 = False; 'tf32' rows set both True (on torch >= 2.9, which deprecates
those flags, the same through torch.backends.cuda.matmul.fp32_precision and
torch.backends.cudnn.conv.fp32_precision = 'ieee' | 'tf32'). Memory-bound rows run in fp32.
Works with torch 1.13 (CPU, the development machine) and torch 2.x (CUDA).
"""
import argparse
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
    """'fp32': strict fp32 in cuBLAS and cuDNN; 'tf32': TF32 tensor cores allowed in both."""
    on = p == "tf32"
    if tf32_api() == "fp32_precision":
        torch.backends.cuda.matmul.fp32_precision = "tf32" if on else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if on else "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


# ---- the paper AlexNet (as bench/alexnet.json and lib/models/alexnet.ts 'paper') -------------------


def paper_alexnet(geo, groups, dropout=0.5):
    c = {l["name"]: l for l in geo["conv"]}

    def conv(name):
        l = c[name]
        g = groups if groups in l["groups"] else 1
        return nn.Conv2d(l["C"], l["K"], l["k"], stride=l["stride"], padding=l["pad"], groups=g)

    p = geo["lrnParams"]

    def lrn():
        return nn.LocalResponseNorm(p["size"], alpha=p["alpha"], beta=p["beta"], k=p["k"])

    fc = geo["fc"]
    return nn.Sequential(
        conv("conv1"), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
        conv("conv2"), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
        conv("conv3"), nn.ReLU(inplace=True),
        conv("conv4"), nn.ReLU(inplace=True),
        conv("conv5"), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Dropout(dropout), nn.Linear(fc[0]["in"], fc[0]["out"]), nn.ReLU(inplace=True),
        nn.Dropout(dropout), nn.Linear(fc[1]["in"], fc[1]["out"]), nn.ReLU(inplace=True),
        nn.Linear(fc[2]["in"], fc[2]["out"]),
    )


def param_shapes(geo, groups):
    out = []
    for l in geo["conv"]:
        g = groups if groups in l["groups"] else 1
        out += [(l["K"], l["C"] // g, l["k"], l["k"]), (l["K"],)]
    for l in geo["fc"]:
        out += [(l["out"], l["in"]), (l["out"],)]
    return out


# ---- rows ------------------------------------------------------------------------------------------
# A row: key, precision, and make() -> (call, cleanup). call() runs the op once; make() allocates inputs.


def build_rows(geo, dev, batch, precisions):
    N = batch
    torch.manual_seed(1)  # inputs are drawn on the device itself (fast for the 224 M-element GEMM operands)

    def rand(*shape, lo=-1.0, hi=1.0):
        return torch.rand(*shape, device=dev).mul_(hi - lo).add_(lo)

    def labels(n):
        return torch.randint(0, geo["classes"], (n,), device=dev)

    rows = []

    def row(key, precision, make, **extra):
        rows.append(dict(key=key, precision=precision, make=make, **extra))

    for l in geo["conv"]:
        for g in l["groups"]:
            ho = out_side(l["H"], l["k"], l["stride"], l["pad"])
            xs, ws, ys = (N, l["C"], l["H"], l["H"]), (l["K"], l["C"] // g, l["k"], l["k"]), (N, l["K"], ho, ho)
            M, Kg, Ng = l["K"] // g, (l["C"] // g) * l["k"] ** 2, N * ho * ho
            base = "%s.g%d" % (l["name"], g)
            s, p = [l["stride"]] * 2, [l["pad"]] * 2
            for prec in precisions:

                def fwd(xs=xs, ws=ws, l=l, g=g):
                    x, w, b = rand(*xs), rand(*ws, lo=-0.01, hi=0.01), rand(l["K"])
                    return (lambda: F.conv2d(x, w, b, l["stride"], l["pad"], 1, g)), None

                def gemm(M=M, Kg=Kg, Ng=Ng, g=g):
                    ab = [(rand(M, Kg, lo=-0.01, hi=0.01), rand(Kg, Ng)) for _ in range(g)]

                    def call():
                        for a, b in ab:
                            torch.mm(a, b)

                    return call, None

                def bwd(mask, xs=xs, ws=ws, ys=ys, l=l, g=g, s=s, p=p):
                    x, w, dy = rand(*xs), rand(*ws, lo=-0.01, hi=0.01), rand(*ys)
                    return (lambda: aten.convolution_backward(dy, x, w, [l["K"]], s, p, [1, 1], False, [0, 0], g, mask)), None

                row("%s.fwd.%s" % (base, prec), prec, fwd)
                row("%s.gemm.%s" % (base, prec), prec, gemm)
                row("%s.bwd_dw.%s" % (base, prec), prec, lambda bwd=bwd: bwd([False, True, False]))
                row("%s.bwd_dwdx.%s" % (base, prec), prec, lambda bwd=bwd: bwd([True, True, False]))
                row("%s.bwd_all.%s" % (base, prec), prec, lambda bwd=bwd: bwd([True, True, True]))

    for l in geo["fc"]:
        for prec in precisions:

            def fc_fwd(l=l):
                x, w, b = rand(N, l["in"]), rand(l["out"], l["in"], lo=-0.01, hi=0.01), rand(l["out"])
                return (lambda: F.linear(x, w, b)), None

            def fc_bwd(need_dx, need_db, l=l):
                # what autograd runs for addmm: dx = dy·w, dw = dyᵀ·x, db = Σ_N dy
                x, w, dy = rand(N, l["in"]), rand(l["out"], l["in"], lo=-0.01, hi=0.01), rand(N, l["out"])

                def call():
                    torch.mm(dy.t(), x)
                    if need_dx:
                        torch.mm(dy, w)
                    if need_db:
                        dy.sum(0)

                return call, None

            row("%s.fwd.%s" % (l["name"], prec), prec, fc_fwd)
            row("%s.bwd_dw.%s" % (l["name"], prec), prec, lambda f=fc_bwd: f(False, False))
            row("%s.bwd_dwdx.%s" % (l["name"], prec), prec, lambda f=fc_bwd: f(True, False))
            row("%s.bwd_all.%s" % (l["name"], prec), prec, lambda f=fc_bwd: f(True, True))

    for pl in geo["pool"]:
        xs = (N, pl["C"], pl["H"], pl["H"])
        ho = out_side(pl["H"], pl["k"], pl["stride"], 0)
        k, st = [pl["k"]] * 2, [pl["stride"]] * 2

        def pool_fwd(xs=xs, pl=pl):
            x = rand(*xs)
            return (lambda: F.max_pool2d(x, pl["k"], pl["stride"], return_indices=True)), None

        def pool_bwd(xs=xs, ho=ho, pl=pl, k=k, st=st):
            x = rand(*xs)
            _, idx = F.max_pool2d(x, pl["k"], pl["stride"], return_indices=True)
            dy = rand(N, pl["C"], ho, ho)
            return (lambda: aten.max_pool2d_with_indices_backward(dy, x, k, st, [0, 0], [1, 1], False, idx)), None

        row("%s.fwd" % pl["name"], None, pool_fwd)
        row("%s.bwd" % pl["name"], None, pool_bwd)

    lp = geo["lrnParams"]
    for s in geo["lrn"]:
        xs = (N, s["C"], s["H"], s["H"])

        def lrn_fwd(xs=xs):
            x = rand(*xs, lo=0.0, hi=4.0)
            return (lambda: F.local_response_norm(x, lp["size"], lp["alpha"], lp["beta"], lp["k"])), None

        def lrn_bwd(xs=xs):
            # F.local_response_norm is a composite op: its backward is whatever autograd records.
            x = rand(*xs, lo=0.0, hi=4.0).requires_grad_(True)
            with torch.enable_grad():
                y = F.local_response_norm(x, lp["size"], lp["alpha"], lp["beta"], lp["k"])
            dy = rand(*xs)
            return (lambda: torch.autograd.grad(y, x, dy, retain_graph=True)), None

        row("%s.fwd" % s["name"], None, lrn_fwd)
        row("%s.bwd" % s["name"], None, lrn_bwd)

    r = geo["relu"]
    rs = (N, r["C"], r["H"], r["H"])

    def relu_fwd():
        x = rand(*rs)
        return (lambda: F.relu(x)), None

    def relu_bwd():
        y = F.relu(rand(*rs))
        dy = rand(*rs)
        return (lambda: aten.threshold_backward(dy, y, 0)), None

    row("relu1.fwd", None, relu_fwd)
    row("relu1.bwd", None, relu_bwd)

    d = geo["dropout"]
    ds = (N, d["features"])

    def drop_fwd():
        x = rand(*ds)
        return (lambda: aten.native_dropout(x, d["p"], True)), None

    def drop_bwd():
        _, mask = aten.native_dropout(rand(*ds), d["p"], True)
        dy = rand(*ds)
        return (lambda: aten.native_dropout_backward(dy, mask, 1.0 / (1.0 - d["p"]))), None

    row("%s.fwd" % d["name"], None, drop_fwd)
    row("%s.bwd" % d["name"], None, drop_bwd)

    C = geo["classes"]

    def xent_fwd():
        logits, lab = rand(N, C, lo=-3.0, hi=3.0), labels(N)
        return (lambda: F.cross_entropy(logits, lab)), None

    def xent_bwd():
        logits, lab = rand(N, C, lo=-3.0, hi=3.0).requires_grad_(True), labels(N)
        with torch.enable_grad():
            loss = F.cross_entropy(logits, lab)
        return (lambda: torch.autograd.grad(loss, logits, retain_graph=True)), None

    def topk():
        logits, lab = rand(N, C, lo=-3.0, hi=3.0), labels(N)

        def call():
            hit = logits.topk(5, 1).indices.eq(lab[:, None])
            return hit[:, :1].sum(), hit.sum()

        return call, None

    row("xent.fwd", None, xent_fwd)
    row("xent.bwd", None, xent_bwd)
    row("topk", None, topk)

    sg = geo["sgd"]
    shapes = param_shapes(geo, sg["groups"])

    def sgd(**kw):
        def make():
            params = [rand(*s, lo=-0.01, hi=0.01) for s in shapes]
            for prm in params:
                prm.grad = rand(*prm.shape, lo=-0.001, hi=0.001)
            opt = torch.optim.SGD(params, lr=sg["lr"], momentum=sg["momentum"], weight_decay=sg["weightDecay"], **kw)
            opt.step()  # creates the momentum buffers
            return opt.step, None

        return make

    row("sgd", None, sgd(), note="torch.optim.SGD default implementation")
    if "foreach" in torch.optim.SGD.__init__.__code__.co_varnames:
        row("sgd~foreach_off", None, sgd(foreach=False), note="torch.optim.SGD(foreach=False): a few kernels per tensor")
    if "fused" in torch.optim.SGD.__init__.__code__.co_varnames and dev.type == "cuda":
        row("sgd~fused", None, sgd(fused=True), note="torch.optim.SGD(fused=True)")

    t = geo["train"]
    for groups in t["groups"]:
        for prec in precisions:

            def train(groups=groups):
                model = paper_alexnet(geo, groups).to(dev).train()
                opt = torch.optim.SGD(model.parameters(), lr=t["lr"], momentum=t["momentum"], weight_decay=t["weightDecay"])
                x, lab = rand(N, *geo["input"]), labels(N)

                def step():
                    opt.zero_grad(set_to_none=True)
                    with torch.enable_grad():
                        logits = model(x)
                        loss = F.cross_entropy(logits, lab)
                        loss.backward()
                    opt.step()
                    correct = (logits.detach().argmax(1) == lab).sum()
                    # read back loss and top-1 count, as alexnet-cuda's model.step does
                    return loss.item(), correct.item()

                return step, None

            row("train.g%d.%s" % (groups, prec), prec, train, batch=N)
    return rows


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
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available() and not a.list:
        sys.exit("pytorch_peer: --device cuda, but torch %s sees no CUDA device" % torch.__version__)
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch = a.batch or (128 if dev.type == "cuda" else 8)
    if batch < 1:
        sys.exit("pytorch_peer: --batch must be ≥ 1")
    precisions = ["fp32", "tf32"] if dev.type == "cuda" else ["fp32"]
    try:
        filt = re.compile(a.filter) if a.filter else None
    except re.error as e:
        sys.exit("pytorch_peer: --filter is not a valid regular expression: %s" % e)
    if dev.type == "cpu":
        torch.set_num_threads(a.threads or os.cpu_count() or 1)
    torch.backends.cudnn.benchmark = True
    geo = load_geometry()
    rows = [r for r in build_rows(geo, dev, batch, precisions) if not filt or filt.search(r["key"])]
    if a.list:
        for r in rows:
            print(r["key"])
        return 0
    if not rows:
        sys.exit("pytorch_peer: --filter matches no row (see --list)")
    cuda = dev.type == "cuda"
    time_ms = a.time or (200 if cuda else 500)
    meta = dict(
        tool="pytorch", date=datetime.datetime.now(datetime.timezone.utc).isoformat(), device=dev.type,
        batch=batch, precisions=precisions, torch=torch.__version__,
        cudnn=torch.backends.cudnn.version() if cuda else None,
        gpu=torch.cuda.get_device_name(0) if cuda else None, cpu=platform.processor() or platform.machine(),
        threads=torch.get_num_threads(), python=platform.python_version(), timeMs=time_ms,
        cudnnBenchmark=True, layout="NCHW (contiguous)", tf32Api=tf32_api(),
        loadavgStart=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    )
    print("pytorch peer: torch %s on %s%s, batch %d, %d rows, %d ms each" % (
        torch.__version__, dev.type, " (%s, cuDNN %s)" % (meta["gpu"], meta["cudnn"]) if cuda else " (%d threads)" % meta["threads"],
        batch, len(rows), time_ms))
    cpu0 = cpu_snapshot()
    results, failed, t0 = [], 0, time.perf_counter()
    group = None
    with torch.no_grad():
        for r in rows:
            g = r["key"].split(".")[0]
            if g != group and cuda:
                torch.cuda.empty_cache()
            group = g
            set_precision(r["precision"] or "fp32")
            out = dict(key=r["key"], precision=r["precision"])
            for k in ("note", "batch"):
                if k in r:
                    out[k] = r[k]
            try:
                call, _ = r["make"]()
                out.update(measure(call, dev, time_ms, 4 if cuda else 20, 1000 if cuda else 200, 10 if cuda else 3))
                print("  %-28s %10.5f ms [%.5f–%.5f] ×%d" % (r["key"], out["ms"], out["p10"], out["p90"], out["inner"]), flush=True)
            except Exception as e:  # one failing row must not lose the others
                out["error"] = ("%s: %s" % (type(e).__name__, e)).splitlines()[0]
                failed += 1
                print("  %-28s ERROR %s" % (r["key"], out["error"]), flush=True)
            finally:
                call = None
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
