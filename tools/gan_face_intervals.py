"""Issue 15's quality targets of GAN runs, with intervals: face-region L1 as a ratio of the copy
baseline, and face-region / full-image SSIM minus the copy baseline's, on each run's held-out pairs.

Per-pair values come from ``fape.metrics.paired`` (``face_region_metrics``, ``paired_metrics``) over
the pairs ``fape metrics gan`` scores (``generate_heldout``); the interval is a 95% percentile
bootstrap over pairs (2000 resamples, seed 0). Pairs share subjects, so it understates the
uncertainty of a new set of subjects; it says how much the pairs at hand pin the figure down.

    python tools/gan_face_intervals.py runs/gan/00000-quick runs/gan/00001-quick_warp
"""
from __future__ import annotations

import argparse

import numpy as np


def intervals(run: str, resamples: int = 2000, seed: int = 0) -> dict:
    from fape.metrics.gan_report import generate_heldout
    from fape.metrics.paired import (face_region_metrics, mean_interval, pair_resamples, paired_metrics,
                                     ratio_interval)

    g = generate_heldout(run, progress=False)
    face = {k: face_region_metrics(g[k], g["target"], g["target_landmarks"]) for k in ("fake", "source", "warp")}
    ssim = {k: paired_metrics(g[k], g["target"])["ssim"] for k in ("fake", "source")}
    n = len(g["fake"])
    idx = pair_resamples(n, resamples, seed)
    return {"pairs": n, "subjects": len(np.unique(g["subject_src"])),
            "warp_face_l1_ratio": face["warp"]["face_l1"].mean() / face["source"]["face_l1"].mean(),
            "face_l1_ratio": ratio_interval(face["fake"]["face_l1"], face["source"]["face_l1"], idx),
            "face_ssim_minus_copy": mean_interval(face["fake"]["face_ssim"] - face["source"]["face_ssim"], idx),
            "ssim_minus_copy": mean_interval(ssim["fake"] - ssim["source"], idx)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="GAN run folders (or checkpoints)")
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    for run in args.runs:
        r = intervals(run, args.resamples)
        parts = [f"{k} {v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]" for k, v in r.items() if isinstance(v, tuple)]
        print(f"{run}: {r['pairs']} pairs, {r['subjects']} held-out subjects; bare warp face L1 ratio "
              f"{r['warp_face_l1_ratio']:.3f}; " + "; ".join(parts))


if __name__ == "__main__":
    main()
