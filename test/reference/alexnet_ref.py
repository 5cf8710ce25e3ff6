"""PyTorch reference for the model-level tests (test/models/*.test.ts).

Usage: python3 alexnet_ref.py IN.safetensors OUT.safetensors
IN holds the model's weights by name, `input.x` [N, C, H, W] and `input.labels` [N] (int32); its metadata
has `arch` ('torchvision' | 'paper'), `num_classes`, `groups`, and the SGD settings `lr`, `momentum`,
`weight_decay`. OUT receives `logits` and `loss` (before the step), every parameter's gradient of the
mean cross-entropy loss as `grad.<name>`, and every parameter after ONE SGD step under its own name. Dropout is disabled (p = 0): the logits and the step are
deterministic, so they must match to fp32 precision.
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
    write_safetensors(dst, out, {"torch": torch.__version__, "arch": arch, "meta": json.dumps(meta)})


if __name__ == "__main__":
    main()
