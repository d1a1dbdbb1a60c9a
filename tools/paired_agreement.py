"""Do two generators draw the expression equally often? A paired test on the same planned faces.

Two synthesized sets made by ``fape gan synthesize`` with the same plan, rows and seed (so the
same sources, drawn expressions and target landmarks; only the generator differs) are read by a
judge: a classifier trained on real rows only (``run:RUN``, its labels matched to the data's by
name). Per face: is it predicted as its drawn expression, and is it still predicted as its
source's? The difference B - A of both shares comes with a 95% paired bootstrap over the faces
(``fape.metrics.paired``). Several groups (e.g. folds, each with its own judge) pool their faces.

    python tools/paired_agreement.py --group JUDGE_RUN SYNTH_A SYNTH_B [--group ...] [--names A B]
"""
from __future__ import annotations

import argparse

import numpy as np


def judge_set(judge, synth: str) -> tuple[np.ndarray, np.ndarray, "object"]:
    """``([N] drawn hit, [N] source hit, manifest)`` of a synthesized set read by ``judge``."""
    from fape.data.dataset import FaceDataset
    from fape.data.format import read_index
    from fape.metrics.synth_report import SIZE, _predictions, label_lut

    idx = read_index(synth)
    m = idx.manifest
    if "source_expression" not in m.columns:
        raise SystemExit(f"{synth}: no source_expression column: not a `fape gan synthesize` output")
    ds = FaceDataset(idx, size=SIZE, cache=False)  # read as fape metrics synth reads them
    names = list(idx.info.label_names)
    pred = label_lut(list(judge.label_names), names, "judge")[_predictions(judge, ds, np.arange(len(m)), synth, False)]
    src = np.array([names.index(e) for e in m["source_expression"]])
    return pred == m["label"].to_numpy(), pred == src, m


def paired_shares(groups: list[tuple[str, str, str]]) -> dict:
    """Per-face hits of A and B over every group, checked to be the same planned faces."""
    from fape.metrics.gan_report import load_classifier

    out = {k: [] for k in ("drawn_a", "drawn_b", "source_a", "source_b")}
    for judge_run, a, b in groups:
        judge = load_classifier(f"run:{judge_run}")
        da, sa, ma = judge_set(judge, a)
        db, sb, mb = judge_set(judge, b)
        keys = ["source_row", "label"]
        if len(ma) != len(mb) or not (ma[keys].to_numpy() == mb[keys].to_numpy()).all():
            raise SystemExit(f"{a} and {b} are not the same planned faces (source rows and drawn expressions differ)")
        for k, v in (("drawn_a", da), ("drawn_b", db), ("source_a", sa), ("source_b", sb)):
            out[k].append(v.astype(float))
    return {k: np.concatenate(v) for k, v in out.items()}


def main() -> None:
    from fape.metrics.paired import mean_interval, pair_resamples

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", nargs=3, action="append", required=True, metavar=("JUDGE_RUN", "SYNTH_A", "SYNTH_B"))
    ap.add_argument("--names", nargs=2, default=["A", "B"])
    args = ap.parse_args()
    h = paired_shares([tuple(g) for g in args.group])
    idx = pair_resamples(len(h["drawn_a"]))
    a, b = args.names
    print(f"{len(h['drawn_a'])} faces in {len(args.group)} group(s)")
    for what in ("drawn", "source"):
        lo = mean_interval(h[f"{what}_b"] - h[f"{what}_a"], idx)
        print(f"read as the {what} expression: {a} {h[f'{what}_a'].mean():.3f}, {b} {h[f'{what}_b'].mean():.3f}; "
              f"{b} - {a} {100 * lo[0]:+.1f} [{100 * lo[1]:+.1f}, {100 * lo[2]:+.1f}] points")


if __name__ == "__main__":
    main()
