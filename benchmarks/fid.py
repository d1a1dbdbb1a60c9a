"""End-to-end FID: fape.metrics against pytorch-fid's own code, same images, same weights.

    python benchmarks/fid.py [--n 1000] [--size 64] [--batch-size 50]

Both sides load the same randomly initialised FID-Inception weights (saved to a temp file; the real
weights cannot be downloaded here) and decode the same PNG files: pytorch-fid through its path API
(batch 50, one loader worker, its ``load_state_dict_from_url`` pointed at the temp file), fape
through its folder iterator (``fape.metrics.fid.iter_batches``: PIL, two decoding threads), NHWC +
inference mode, then its eigh-based distance. Prints both FIDs, the end-to-end time ratio, fape's
time from uint8 tensors already in memory (the comparison of earlier versions of this benchmark,
which left PNG decoding out of fape's time), and the distance alone at 2048-d (pytorch-fid's
``calculate_frechet_distance`` with ``sqrtm`` vs ``fape.metrics.fid.frechet_distance``).
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def make_images(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random colour images ``[n, size, size, 3]`` uint8 (blurred noise, per-set colour shift)."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        small = rng.normal(128 + 10 * seed, 60, (size // 8, size // 8, 3)).clip(0, 255).astype(np.float32)
        img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        out[i] = (img + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="images per set")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--dist-samples", type=int, default=4000, help="samples behind the 2048-d statistics")
    args = ap.parse_args()

    import pytorch_fid.fid_score as pfs
    import pytorch_fid.inception as pfi

    from fape.data.format import save_image
    from fape.metrics.fid import features_from, frechet_distance, iter_batches, statistics
    from fape.metrics.inception import load_inception, random_fid_weights

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.n} + {args.n} images {args.size}x{args.size}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = random_fid_weights(tmp / "pt_inception-random.pth", seed=0)
        sets = [make_images(args.n, args.size, s) for s in (0, 1)]
        for k, imgs in enumerate(sets):
            (tmp / f"set{k}").mkdir()
            for i, im in enumerate(imgs):
                save_image(tmp / f"set{k}" / f"{i:05d}.png", im)

        # ---- pytorch-fid, its own code path
        saved = pfi.load_state_dict_from_url
        pfi.load_state_dict_from_url = lambda url, *a, **k: torch.load(weights, map_location="cpu", weights_only=True)
        try:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fid_theirs = pfs.calculate_fid_given_paths([str(tmp / "set0"), str(tmp / "set1")],
                                                           args.batch_size, "cpu", 2048, num_workers=1)
            t_theirs = time.perf_counter() - t0
        finally:
            pfi.load_state_dict_from_url = saved

        # ---- fape, from the same PNG files
        t0 = time.perf_counter()
        model = load_inception(weights)
        stats = []
        for k in (0, 1):
            it, n = iter_batches(str(tmp / f"set{k}"), args.batch_size)
            stats.append(statistics(features_from(model, it, total=n, progress=False)))
        fid_ours = frechet_distance(*stats[0], *stats[1])
        t_ours = time.perf_counter() - t0

        # ---- fape, from uint8 tensors in memory (no decoding: the earlier comparison)
        t0 = time.perf_counter()
        model = load_inception(weights)
        stats = []
        for imgs in sets:
            x = torch.from_numpy(imgs).permute(0, 3, 1, 2)
            stats.append(statistics(features_from(model, x, progress=False)))
        fid_mem = frechet_distance(*stats[0], *stats[1])
        t_mem = time.perf_counter() - t0

    print(f"FID pytorch-fid          : {fid_theirs:.10e}   ({t_theirs:.1f} s, PNG files)")
    print(f"FID fape.metrics         : {fid_ours:.10e}   ({t_ours:.1f} s, the same PNG files)")
    print(f"FID fape.metrics, memory : {fid_mem:.10e}   ({t_mem:.1f} s, uint8 tensors, no decoding)")
    print(f"relative difference (same files): {abs(fid_ours - fid_theirs) / abs(fid_theirs):.2e}")
    print(f"end-to-end speed-up, same PNG files (pytorch-fid time / fape time): {t_theirs / t_ours:.2f}x")
    print(f"end-to-end speed-up, fape from memory (the earlier, unequal comparison): {t_theirs / t_mem:.2f}x")

    # ---- distance alone at 2048-d
    rng = np.random.default_rng(0)
    d = 2048
    a = rng.standard_normal((args.dist_samples, d))
    b = rng.standard_normal((args.dist_samples, d)) @ (np.eye(d) + 0.05 * rng.standard_normal((d, d))) + 0.1
    m1, s1 = statistics(a)
    m2, s2 = statistics(b)
    t0 = time.perf_counter()
    ours = frechet_distance(m1, s1, m2, s2)
    t_o = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = pfs.calculate_frechet_distance(m1, s1, m2, s2)
    except TypeError as e:  # SciPy >= 1.18 removed sqrtm(disp=...)
        print(f"pytorch-fid calculate_frechet_distance unavailable with this SciPy: {e}")
        return
    t_t = time.perf_counter() - t0
    print(f"distance alone, 2048-d from {args.dist_samples} samples: pytorch-fid (sqrtm) {theirs:.8f} in {t_t:.2f} s, "
          f"fape (Cholesky or eigh) {ours:.8f} in {t_o:.2f} s; rel diff {abs(ours - theirs) / abs(theirs):.2e}; "
          f"speed-up {t_t / t_o:.1f}x")


if __name__ == "__main__":
    main()
