#!/usr/bin/env python3
"""The peer of bench/data.mjs: torchvision's ImageFolder + DataLoader on the original files, the usual
ImageNet training transform (Resize(256), RandomCrop(224), RandomHorizontalFlip, ToTensor, Normalize),
PIL decoding, `workers` worker processes, batch 128. Prints one JSON line: images/s after the first batch
(warm-up), over `epochs` epochs.

    python3 bench/torchvision_data.py <image folder> [--workers N] [--batch N] [--epochs N]
"""
import argparse
import json
import time

import torch
import torchvision
from torchvision import datasets, transforms

p = argparse.ArgumentParser()
p.add_argument("root")
p.add_argument("--workers", type=int, default=2)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--epochs", type=int, default=2)
p.add_argument("--size", type=int, default=224)
a = p.parse_args()

torch.set_num_threads(1)
tf = transforms.Compose([
    transforms.Resize(256),
    transforms.RandomCrop(a.size),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
])
ds = datasets.ImageFolder(a.root, transform=tf)
dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, persistent_workers=a.workers > 0, drop_last=False)
n = 0
t0 = None
for e in range(a.epochs):
    for x, y in dl:
        if t0 is None:  # the first batch is the warm-up (workers start, caches fill)
            t0 = time.perf_counter()
            continue
        n += x.shape[0]
secs = time.perf_counter() - t0
print(json.dumps({"images": n, "seconds": secs, "rate": n / secs, "workers": a.workers, "batch": a.batch,
                  "torch": torch.__version__, "torchvision": torchvision.__version__}))
