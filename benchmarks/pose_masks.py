"""Pose-mask rendering: fape's batched torch renderer against per-image OpenCV drawing.

Both draw the same 68-point line masks for the same batch of face-like landmark sets; the
script prints images/s of each, the ratio (ours / OpenCV), and their agreement (IoU of the
binary masks, OpenCV thickness t against ours t + 1, see tests/test_masks.py).

    python benchmarks/pose_masks.py [--batch 64] [--sizes 64 128 256] [--repeats 20]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fape.data.landmarks68 import template_face
from fape.data.masks import render_lines_opencv, render_pose_masks


def faces(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    jitter = rng.normal(0, size / 64, (batch, 68, 2)) + rng.uniform(-size / 16, size / 16, (batch, 1, 2))
    return torch.from_numpy((template_face(size)[None] + jitter).astype(np.float32))  # [B, 68, 2] pixels


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}")
    print("| size | cv thickness | ours img/s | OpenCV img/s | ratio ours/OpenCV | IoU |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        lm = faces(args.batch, size)
        cv_t = max(1, size // 64) if size < 128 else 2 * (size // 128)
        ours_t = float(cv_t + (cv_t > 1))
        t_ours = best_of(lambda: render_pose_masks(lm, size, "lines", thickness=ours_t), args.repeats)
        t_cv = best_of(lambda: render_lines_opencv(lm.numpy(), size, cv_t), args.repeats)
        a = render_pose_masks(lm, size, "lines", thickness=ours_t)[:, 0].numpy() > 0.5
        b = render_lines_opencv(lm.numpy(), size, cv_t) > 0
        iou = (a & b).sum() / (a | b).sum()
        print(f"| {size} | {cv_t} | {args.batch / t_ours:,.0f} | {args.batch / t_cv:,.0f} | "
              f"{t_cv / t_ours:.2f} | {iou:.3f} |")


if __name__ == "__main__":
    main()
