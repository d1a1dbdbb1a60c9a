"""How well landmark retargeting predicts a real face's other expression (issue 16).

For every subject s and ordered pair of expressions (a, b) it shows, the *source* is s's first
image of a and the *truth* its first image of b. Every other subject d with both a and b is a
donor (its first image of each). Each method predicts s's b landmarks from the source and the
donor; the error is the inter-ocular NME against the truth (``landmarks68.nme``), averaged over
donors, then over (s, a, b):

* ``retarget``: ``fape.data.retarget.retarget`` (similarity on the rigid points, stabilised);
* ``retarget-unstabilised``: the same without removing the donor's head motion;
* ``align``: the donor's b landmarks moved onto the source by centroid and scale
  (``fape.gan.plans.align_landmarks``, the pose plans' method): the donor's shape, not the
  source's;
* ``unchanged``: the source's own a landmarks (no expression change).

* ``retarget-3``: the mean change of 3 donors (``donors: 3``, the plans' default), 10 random
  draws of 3 per case (cases with at least 3 donors);
* ``retarget-mean``: the source moved by the mean of every donor's retargeted change (one
  prediction per case: how much of the single-donor error is the donors' detection noise).

The truth is a different photo (its own crop and head position), so it is first moved into the
source's frame by a similarity on the rigid points (``retarget.RIGID``), and the error is taken
on the other, expression-bearing points (brows, eyes, nose, mouth, chin: 52 of 68), normalised
by the source's outer-eye distance. ``unchanged`` then measures how far b's shape is from a's.
Landmarks are the dataset's detections (``fape data landmarks``), not ground truth: their noise
is in the truth and, twice, in every donor's change.

    python tools/retarget_check.py data/ckplus48 [--per-expression]
"""
from __future__ import annotations

import argparse

import numpy as np

from fape.data.format import read_index
from fape.data.landmarks68 import inter_ocular
from fape.data.retarget import RIGID as _RIGID, apply_similarity, fit_similarity, retarget
from fape.gan.plans import align_landmarks


def first_rows(root: str) -> tuple[dict[tuple[str, str], int], np.ndarray]:
    """``{(subject, expression): its first row with landmarks}`` and the landmarks ``[N, 68, 2]``."""
    idx = read_index(root)
    m = idx.manifest
    first: dict[tuple[str, str], int] = {}
    for i in np.flatnonzero(idx.landmarks_ok & (m["subject"].to_numpy() != "")):
        first.setdefault((m["subject"].iat[i], m["expression"].iat[i]), int(i))
    return first, idx.landmarks


RIGID = list(_RIGID)
FREE = [i for i in range(68) if i not in _RIGID]  # the expression-bearing points


def _error(pred: np.ndarray, truth: np.ndarray, src: np.ndarray) -> float:
    """Mean distance over the non-rigid points / the source's outer-eye distance."""
    return float(np.linalg.norm(pred[FREE] - truth[FREE], axis=-1).mean() / inter_ocular(src))


def measure(root: str) -> dict[str, dict[str, float]]:
    """Mean NME per method, overall and per target expression b."""
    first, lm = first_rows(root)
    by_subject: dict[str, dict[str, int]] = {}
    for (s, e), r in first.items():
        by_subject.setdefault(s, {})[e] = r
    errs: dict[str, dict[str, list[float]]] = {}
    rng = np.random.default_rng(0)
    for s, rows in by_subject.items():
        for a in rows:
            for b in rows:
                if a == b:
                    continue
                src = lm[rows[a]].astype(np.float64)  # [68, 2] pixels
                truth = apply_similarity(*fit_similarity(lm[rows[b]][RIGID], src[RIGID]), lm[rows[b]])  # in src's frame
                donors = [(d[a], d[b]) for t, d in by_subject.items() if t != s and a in d and b in d]
                if not donors:
                    continue
                moved = [retarget(src, lm[da], lm[db]) for da, db in donors]
                d = np.asarray(donors)  # [D, 2] rows
                threes = [rng.choice(len(d), 3, replace=False) for _ in range(10)] if len(d) >= 3 else []
                pred = {"retarget": moved,
                        "retarget-3": [retarget(src, lm[d[t, 0]], lm[d[t, 1]]) for t in threes],
                        "retarget-unstabilised": [retarget(src, lm[da], lm[db], stabilise=False) for da, db in donors],
                        "align": [align_landmarks(lm[db], src) for _, db in donors],
                        "retarget-mean": [np.mean(moved, 0)],
                        "unchanged": [src]}
                for method, p in pred.items():
                    if not p:
                        continue
                    e = float(np.mean([_error(x, truth, src) for x in p]))
                    for key in ("all", b):
                        errs.setdefault(method, {}).setdefault(key, []).append(e)
    return {m: {k: float(np.mean(v)) for k, v in d.items()} | {"n": len(d["all"])} for m, d in errs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="an imported dataset with subject ids and landmarks")
    ap.add_argument("--per-expression", action="store_true", help="also the mean NME per target expression")
    args = ap.parse_args()
    res = measure(args.data)
    n = res["retarget"]["n"]
    print(f"{args.data}: {n} (subject, a, b) cases; mean error of the non-rigid points / outer-eye distance, over donors, then cases")
    keys = ["all"] + (sorted(k for k in res["retarget"] if k not in ("all", "n")) if args.per_expression else [])
    print("| method | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for method, d in res.items():
        print(f"| {method} | " + " | ".join(f"{d[k]:.4f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
