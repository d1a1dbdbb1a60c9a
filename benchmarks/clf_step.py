"""Classifier training step: fape's step against a plain reference loop, same model, batch, size.

Reference: the usual loop (torchvision-style per-image random flip in the data path, the
model's ``forward``, cross-entropy, ``zero_grad`` / ``backward`` / SGD ``step``). Ours: the
step of ``fape.classifiers.train`` (batched flip on the device, features and logits in one
forward as center loss needs, ``zero_grad(set_to_none=True)``), plus variants with bf16
autocast and channels-last memory. Rounds interleave the variants; medians are printed.

    python benchmarks/clf_step.py [--steps 5] [--rounds 3]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from fape.classifiers import create_classifier
from fape.classifiers.augment import augment
from fape.classifiers.train import WithFeatures
from fape.data.dataset import to_float

# (model, size, channels, batch, model kwargs); the last is the Table 5 presets' Fa-Net (width 0.25, 56 px)
CASES = [("fa_net_lightcnn9", 64, 1, 64, {}), ("fa_net_lightcnn9", 128, 1, 32, {}), ("mobilenet_v1", 48, 1, 64, {}),
         ("fa_net_lightcnn9", 56, 1, 64, {"width": 0.25})]
VARIANTS = ("reference", "ours", "ours+bf16", "ours+channels_last", "ours+norm_batch")


def reference_step(model, opt, imgs_u8, labels):
    x = torch.stack([im.flip(-1) if torch.rand(()) < 0.5 else im for im in imgs_u8])  # per image, as a worker
    x = x.float() / 127.5 - 1
    opt.zero_grad()
    F.cross_entropy(model(x), labels).backward()
    opt.step()


def ours_step(net, opt, imgs_u8, labels, dtype=None, channels_last=False):
    x = augment(to_float(imgs_u8), "flip")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        logits, _ = net(x)
        loss = F.cross_entropy(logits.float(), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def images_per_s(steps: dict, rounds: int, n_steps: int, batch: int) -> dict:
    """``{name: step()}`` -> median over rounds of training images/s; one warm-up step each, then
    the variants alternate every round so that load on the shared machine falls on all alike."""
    rates = {k: [] for k in steps}
    for fn in steps.values():
        fn()  # warm-up
    for _ in range(rounds):
        for k, fn in steps.items():
            t0 = time.perf_counter()
            for _ in range(n_steps):
                fn()
            rates[k].append(n_steps * batch / (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in rates.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", type=int, nargs="+", default=None, help="indices into CASES (default: all)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                    help="ours+norm_batch: LightCNN with norm: batch (the Table 5 recipe), same seed and batch")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| model | size | batch | step | images/s (median) | ratio to reference |")
    print("|---|---|---|---|---|---|")
    for ci, (name, size, chans, batch, kwargs) in enumerate(CASES):
        if args.cases is not None and ci not in args.cases:
            continue
        torch.manual_seed(0)
        base = create_classifier(name, num_classes=7, in_chans=chans, image_size=size, **kwargs)
        imgs = torch.randint(0, 256, (batch, chans, size, size), dtype=torch.uint8)
        labels = torch.randint(0, 7, (batch,))
        variants = {}
        for v in ["reference", *(v for v in args.variants if v != "reference")]:
            if v == "ours+norm_batch" and not name.startswith("fa_net_lightcnn"):
                continue
            torch.manual_seed(0)
            m = create_classifier(name, num_classes=7, in_chans=chans, image_size=size, **kwargs, norm="batch") \
                if v == "ours+norm_batch" else copy.deepcopy(base)
            if v == "ours+channels_last":
                m = m.to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
            if v == "reference":
                variants[v] = lambda m=m, o=opt: reference_step(m, o, imgs, labels)
            else:
                net = WithFeatures(m)
                kw = {"dtype": torch.bfloat16} if v == "ours+bf16" else {"channels_last": v.endswith("last")}
                variants[v] = lambda n=net, o=opt, kw=kw: ours_step(n, o, imgs, labels, **kw)
        rates = images_per_s(variants, args.rounds, args.steps, batch)
        ref = rates["reference"]
        for v in variants:
            med = rates[v]
            label = name + (f" {kwargs}" if kwargs else "")
            print(f"| {label} | {size} | {batch} | {v} | {med:,.1f} | {med / ref:.2f} |")


if __name__ == "__main__":
    main()
