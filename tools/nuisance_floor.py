"""The face-region L1 floor of a GAN run's pairs on a fape synthetic set, as K redraws grow.

Each target is rendered again K times with only its lighting, background and pixel noise drawn anew
(``fape.data.synth.render_redraws``); ``fape.metrics.paired.nuisance_floor`` reads the floor (the
median guess of a model that knows the face exactly) and a bound no guess can beat. Printed as
ratios to copying the source, with G and the bare warp beside them, and the share of the reachable
gap (copy -> floor at the largest K) that each closes. 95% bootstrap over the pairs.

    python tools/nuisance_floor.py RUN --data DATA [--clf-val CLF_RUN | --pair-rows ROWS] [--draws 4 8 16 32]

``--clf-val``: the pairs come from the validation part of that classifier run's split (the quick
start's choice: images neither G nor the classifier trained on).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def floors(run: str, data: str | None, pair_rows=None, draws=(4, 8, 16, 32), max_pairs: int = 256) -> list[str]:
    from fape.metrics.gan_report import generate_heldout, nuisance_redraws
    from fape.metrics.paired import face_region_metrics, nuisance_floor, pair_resamples, ratio_interval

    g = generate_heldout(run, data, max_pairs=max_pairs, progress=False, pair_rows=pair_rows)
    lm, tgt = g["target_landmarks"], g["target"]
    l1 = {k: face_region_metrics(g[k], tgt, lm)["face_l1"] for k in ("source", "warp", "fake")}  # [n] each
    red = nuisance_redraws(g["faces"], g["tgt"], draws=max(draws), progress=False)  # [n, K, C, H, W]
    if red is None:
        raise SystemExit(f"{g['cfg'].data.root} is not a fape synthetic set: its nuisance cannot be redrawn")
    idx = pair_resamples(len(tgt))
    copy = l1["source"]

    def ratio(x) -> str:
        r = ratio_interval(x, copy, idx)
        return f"{x.mean():.4f} | {r[0]:.3f} [{r[1]:.3f}, {r[2]:.3f}]"

    out = [f"{len(tgt)} pairs; face-region L1 (0-1 units) | / copy", "|---|---|---|",
           f"| copy the source | {copy.mean():.4f} | 1 |", f"| bare landmark warp | {ratio(l1['warp'])} |",
           f"| G | {ratio(l1['fake'])} |"]
    for k in draws:
        f = nuisance_floor(tgt, red[:, :k], lm)
        out.append(f"| floor, K = {k} | {ratio(f['floor'])} |")
    out.append(f"| bound | {ratio(f['floor_bound'])} |")
    gap = copy.mean() - f["floor"].mean()
    out.append(f"share of the reachable gap closed (copy -> floor at K = {max(draws)}): "
               f"G {(copy.mean() - l1['fake'].mean()) / gap:.2f}, warp {(copy.mean() - l1['warp'].mean()) / gap:.2f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a fape gan run directory")
    ap.add_argument("--data", default=None, help="the synthetic set (default: the run's data.root)")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--clf-val", default=None, help="pairs from the validation part of this classifier run's split")
    src.add_argument("--pair-rows", default=None, help="pairs among these manifest rows (a rows file)")
    ap.add_argument("--draws", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--max-pairs", type=int, default=256)
    args = ap.parse_args()
    rows = args.pair_rows
    if args.clf_val:
        from fape.classifiers.evaluate import eval_split_file
        from fape.data.splits import load_split

        rows = load_split(eval_split_file(Path(args.clf_val), None, None))["val"]
    print("\n".join(floors(args.run, args.data, rows, sorted(args.draws), args.max_pairs)))


if __name__ == "__main__":
    main()
