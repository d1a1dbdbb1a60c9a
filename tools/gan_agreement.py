"""Expression agreement of GAN runs on the same pairs, with paired intervals (issue 15's ablations).

For each run, the pairs come from ``--pair-rows`` (rows none of the runs trained on, e.g. a
classifier's validation part; ``generate_heldout`` refuses a row a GAN trained on). One classifier
(``--features``, trained on real rows) labels the generated faces, the bare landmark warp and the
real targets; a pair agrees when the prediction is the pair's expression. Printed per run:
agreement, its ratio to the accuracy on the real targets (issue 15's target: at least 0.8x), and
the difference from the first run; each with a 95% percentile bootstrap over pairs (2000
resamples, seed 0), paired because every run scores the same pairs (checked). Pairs share
subjects, so the interval says how well these pairs pin a figure down, not how it would move on
new subjects.

    python tools/gan_agreement.py RUN_A RUN_B --data DIR --features CLF_RUN --pair-rows ROWS [--max-pairs 300]
"""
from __future__ import annotations

import argparse

import numpy as np


def paired_interval(hits: dict[str, np.ndarray], ref: np.ndarray, resamples: int = 2000, seed: int = 0) -> dict:
    """``hits``: name -> ``[n]`` bool per pair (a run's generated faces agree), ``ref``: ``[n]`` bool
    (the classifier is right on the real target). Returns, per name, the agreement, its ratio to
    ``ref``'s mean and its difference from the first name, each as ``(value, lo, hi)``."""
    from fape.metrics.paired import mean_interval, pair_resamples, ratio_interval

    idx = pair_resamples(len(ref), resamples, seed)
    base = next(iter(hits.values())).astype(float)
    return {k: {"agreement": mean_interval(h, idx), "ratio_to_targets": ratio_interval(h, ref, idx),
                "minus_first": mean_interval(h.astype(float) - base, idx)} for k, h in hits.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="GAN run folders; differences are taken from the first")
    ap.add_argument("--data", required=True, help="dataset folder the pairs come from")
    ap.add_argument("--features", required=True, help="classifier run folder (trained on real rows)")
    ap.add_argument("--pair-rows", required=True, help="rows file: draw pairs only among these rows")
    ap.add_argument("--max-pairs", type=int, default=300)
    args = ap.parse_args(argv)

    from fape.metrics.gan_report import classifier_pass, generate_heldout, load_classifier

    clf = load_classifier(args.features)
    hits, pairs, ref, warp = {}, None, None, None
    for run in args.runs:
        g = generate_heldout(run, args.data, max_pairs=args.max_pairs, progress=False, pair_rows=args.pair_rows)
        key = np.stack([g["src"], g["tgt"]], 1)  # [n, 2] rows of each pair
        if pairs is None:
            pairs = key
            ref = classifier_pass(clf, g["target"])[1] == g["label"]
            warp = classifier_pass(clf, g["warp"])[1] == g["label"]
        elif not np.array_equal(key, pairs):
            raise SystemExit(f"{run} scored other pairs than {args.runs[0]}: the comparison would not be paired")
        hits[run] = classifier_pass(clf, g["fake"])[1] == g["label"]
    hits["bare landmark warp"] = warp
    res = paired_interval(hits, ref)
    print(f"{len(ref)} pairs from {args.pair_rows}; classifier {args.features}; accuracy on real targets "
          f"{ref.mean():.3f}\n")
    print("| run | agreement | / accuracy on targets | minus first run |\n|---|---|---|---|")
    for k, r in res.items():
        cells = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in r.values()]
        print(f"| {k} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
