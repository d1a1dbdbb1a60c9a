"""One epoch over a dataset: memory-mapped decoded cache against decoding each file per item.

The reference is what a plain ``ImageFolder``-style loader does (open + decode every file every
epoch). Both run the same ``DataLoader`` (batch size, workers) in the same process; the script
prints images/s for each and the ratio. Use a real import (e.g. FER2013, 35,887 48x48 images):

    fape data import fer2013-folders ../shared/data/fer2013 --out /tmp/fer2013
    python benchmarks/dataset_epoch.py --data /tmp/fer2013 [--workers 0 2] [--batch 256]

Without ``--data`` it writes N random 48x48 PNGs to a temporary folder first.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from fape.data.dataset import FaceDataset
from fape.data.format import DatasetInfo, save_image, write_index


def random_dataset(root: Path, n: int, size: int = 48) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        p = f"images/{i % 7}/{i:06d}.png"
        save_image(root / p, rng.integers(0, 256, (size, size), dtype=np.uint8))
        rows.append({"path": p, "expression": str(i % 7), "label": i % 7})
    write_index(root, pd.DataFrame(rows), DatasetInfo(name="random", label_names=[str(k) for k in range(7)],
                                                     image_size=[size, size], channels=1))
    return root


def epoch_seconds(ds, batch: int, workers: int) -> float:
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0), persistent_workers=False)
    t = time.perf_counter()
    n = 0
    for b in loader:
        n += b["image"].shape[0]
    assert n == len(ds)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--n", type=int, default=35887, help="random images when --data is absent")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or random_dataset(Path(tmp) / "random", args.n)
        cached = FaceDataset(root)
        files = FaceDataset(root, cache=False)
        print(f"{root}: {len(cached)} images {cached.size} x{cached.channels}, batch {args.batch}")
        print("| workers | cached img/s | per-file img/s | ratio cached/per-file |")
        print("|---|---|---|---|")
        for w in args.workers:
            epoch_seconds(cached, args.batch, w)  # warm the page cache for a fair comparison
            tc = epoch_seconds(cached, args.batch, w)
            tf = epoch_seconds(files, args.batch, w)
            print(f"| {w} | {len(cached) / tc:,.0f} | {len(files) / tf:,.0f} | {tf / tc:.1f} |")


if __name__ == "__main__":
    main()
