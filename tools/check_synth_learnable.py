"""Is a synthetic set learnable but not trivial? Train a small CNN on a split's train part and
score it on its VALIDATION part.

    python tools/check_synth_learnable.py /tmp/synth_small [--split er-ss] [--epochs 12] [--seed 0]

Prints per-epoch train loss and validation accuracy, and the final validation accuracy next to
chance (1 / number of classes). A good synthetic set is clearly above chance and clearly below
100%. The split is a protocol (made in memory with ``--seed``, as the quick start makes it) or a
split file; its test part is never loaded, so this check can be run while tuning the data without
spending the test part.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from fape.data.format import load_image, read_index


def search_parts(root: str, split: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The train and val manifest rows of ``split`` (a protocol or a split csv), nothing of test."""
    from fape.data import splits

    if split.endswith((".csv", ".json")):
        parts = splits.load_split(split)
    else:
        parts = splits.make_split(root, split, seed).parts
    return {"train": parts["train"], "val": parts["val"]}


def load_arrays(root: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Images of manifest ``rows`` as float32 [N, C, H, W] in 0..1, labels [N] int64, number of classes."""
    idx = read_index(root)
    imgs = np.stack([load_image(idx.image_path(int(i))) for i in rows])  # [N, H, W, C] uint8
    x = imgs.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return x, idx.manifest["label"].to_numpy(np.int64)[rows], idx.info.num_classes


def small_cnn(channels: int, classes: int) -> nn.Module:
    def block(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(inplace=True), nn.MaxPool2d(2)]

    return nn.Sequential(*block(channels, 32), *block(32, 64), *block(64, 128),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, classes))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((pred == y).float().mean())


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="synthetic dataset folder")
    ap.add_argument("--split", default="er-ss", help="split protocol or split file (its test part is not read)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0, help="split seed (for a protocol) and training seed")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    parts = search_parts(args.dir, args.split, args.seed)
    if not len(parts["val"]):
        raise SystemExit(f"{args.split}: no validation part to score on (the test part is not used here)")
    x, y, classes = load_arrays(args.dir, np.concatenate([parts["train"], parts["val"]]))
    cut = len(parts["train"])
    xt, yt = torch.from_numpy(x[:cut]), torch.from_numpy(y[:cut])
    xv, yv = torch.from_numpy(x[cut:]), torch.from_numpy(y[cut:])
    model = small_cnn(x.shape[1], classes)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * -(-cut // args.batch_size))
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        perm, total = torch.randperm(cut), 0.0
        for i in range(0, cut, args.batch_size):
            b = perm[i:i + args.batch_size]
            loss = loss_fn(model(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        print(f"epoch {epoch + 1:2d}/{args.epochs}  train loss {total / cut:.3f}  "
              f"val acc {accuracy(model, xv, yv):.3f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    acc = accuracy(model, xv, yv)
    print(f"validation accuracy {acc:.3f} vs chance {1 / classes:.3f} ({classes} classes, {cut} train and {len(xv)} "
          f"validation images of {args.split}, {args.epochs} epochs, {time.perf_counter() - t0:.0f} s)")
    return acc


if __name__ == "__main__":
    main()
