"""PyTorch reference for the model-level tests (test/models/*.test.ts).

Usage: python3 alexnet_ref.py IN.safetensors OUT.safetensors
IN holds the model's weights by name, `input.x` [N, C, H, W] and `input.labels` [N] (int32); its metadata
has `arch` ('torchvision' | 'paper'), `num_classes`, `groups`, and the SGD settings `lr`, `momentum`,
`weight_decay`. OUT receives `logits` and `loss` (before the step), every parameter's gradient of the
mean cross-entropy loss as `grad.<name>`, and every parameter after ONE SGD step under its own name. Dropout is disabled (p = 0): the logits and the step are
deterministic, so they must match to fp32 precision.

Optional `input.pool.<k>` (int32 [N, C, Ho, Wo]): the argmax the implementation under test chose at the
k-th max pooling of `features` (flat index into the input plane, PyTorch's return_indices). The reference
then routes its gradient through those elements: where a window holds two values within float32
rounding of each other, float32 implementations may legitimately choose either, and a different choice
moves a whole gradient. Each given index must select a value within 1e-5 (relative) of the window's
maximum in this reference's own arithmetic, else the run fails; OUT's metadata `pool_choices` says how
many windows chose other than the reference would have.
"""
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from fixturelib import read_safetensors, write_safetensors  # noqa: E402


def paper_alexnet(num_classes, groups, in_channels):
    """The 2012 paper's network with the same layer indices as alexnet-cuda's 'paper' arch."""
    features = nn.Sequential(
        nn.Conv2d(in_channels, 96, 11, stride=4), nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=groups), nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )
    classifier = nn.Sequential(
        nn.Dropout(0.0), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
        nn.Dropout(0.0), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )

    class Paper(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = features
            self.classifier = classifier

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    return Paper()


class GivenArgmaxPool(nn.Module):
    """Max pooling whose argmax is given (see the module docstring); records how it compares."""

    def __init__(self, pool, indices, report):
        super().__init__()
        self.pool, self.indices, self.report = pool, indices, report

    def forward(self, x):
        n, c, h, w = x.shape
        best, ref_idx = nn.functional.max_pool2d(x, self.pool.kernel_size, self.pool.stride, self.pool.padding,
                                                 self.pool.dilation, self.pool.ceil_mode, return_indices=True)
        idx = self.indices.to(torch.int64)
        if idx.shape != best.shape:
            raise SystemExit(f"input.pool: indices of shape {tuple(idx.shape)} for an output of {tuple(best.shape)}")
        if idx.min() < 0 or idx.max() >= h * w:
            raise SystemExit(f"input.pool: an index outside the {h}x{w} input plane")
        y = x.flatten(2).gather(2, idx.flatten(2)).view_as(best)
        gap = (best - y).detach()
        bad = gap > 1e-5 * best.detach().abs().clamp_min(1e-30)
        if bad.any():
            raise SystemExit(f"input.pool: {int(bad.sum())} given argmax(es) are not a window maximum (largest gap {float(gap.max()):.3g})")
        self.report.append(int((idx != ref_idx).sum()))
        return y


def main():
    src, dst = sys.argv[1], sys.argv[2]
    tensors, meta = read_safetensors(src)
    arch = meta["arch"]
    num_classes = int(meta["num_classes"])
    if arch == "torchvision":
        import torchvision
        model = torchvision.models.alexnet(num_classes=num_classes, dropout=0.0)
    elif arch == "paper":
        model = paper_alexnet(num_classes, int(meta.get("groups", "1")), int(meta.get("in_channels", "3")))
    else:
        raise SystemExit(f"unknown arch {arch}")
    state = {k: v for k, v in tensors.items() if not k.startswith("input.")}
    model.load_state_dict(state, strict=True)
    model.train()
    x = tensors["input.x"]
    double = meta.get("dtype") == "float64"
    if double:
        # The same computation in float64: the ground truth against which fp32 implementations are judged.
        model = model.double()
        x = x.double()
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    given = [tensors.get(f"input.pool.{k}") for k in range(len(pools))]
    report = []
    if any(g is not None for g in given):
        if any(g is None for g in given):
            raise SystemExit("input.pool: give the argmax of every max pooling or of none")
        for i, m in enumerate(model.features):
            if isinstance(m, nn.MaxPool2d):
                model.features[i] = GivenArgmaxPool(m, given[pools.index(m)], report)
    labels = tensors["input.labels"].to(torch.int64)
    opt = torch.optim.SGD(model.parameters(), lr=float(meta["lr"]), momentum=float(meta["momentum"]),
                          weight_decay=float(meta["weight_decay"]))
    torch.use_deterministic_algorithms(True)
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, labels)
    opt.zero_grad()
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    opt.step()
    out = {"logits": logits.detach().float().contiguous(), "loss": loss.detach().float().reshape(1)}
    for name, g in grads.items():
        out["grad." + name] = g.float().contiguous()
    for name, p in model.state_dict().items():
        out[name] = p.detach().float().contiguous()
    write_safetensors(dst, out, {"torch": torch.__version__, "arch": arch, "meta": json.dumps(meta),
                                 "pool_choices": json.dumps(report)})


if __name__ == "__main__":
    main()
