"""Summary of a k-fold protocol (e.g. ckplus-10fold): accuracy pooled over every test image of
every fold (each image is tested exactly once), and mean +- std of the per-fold accuracies, from
each fold run's ``eval/test/predictions.csv`` (run ``fape clf eval --run RUN --split test`` first).

    python tools/kfold_summary.py runs/clf/ckplus_fold{0..9}
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def summary(runs: list[Path]) -> dict:
    frames = []
    for r in runs:
        p = r / "eval" / "test" / "predictions.csv"
        if not p.is_file():
            raise SystemExit(f"{p} not found: run `fape clf eval --run {r} --split test` first")
        frames.append(pd.read_csv(p))
    rows = np.concatenate([f["row"].to_numpy() for f in frames])
    if len(np.unique(rows)) != len(rows):
        raise SystemExit("an image is in the test part of two folds: these runs are not one k-fold protocol")
    accs = np.array([(f["label"] == f["pred"]).mean() for f in frames])
    allf = pd.concat(frames)
    res = json.loads((runs[0] / "eval" / "test" / "results.json").read_text())
    names = list(res["per_class"])
    per_class = {n: float((allf.loc[allf["label"] == i, "pred"] == i).mean()) for i, n in enumerate(names)
                 if (allf["label"] == i).any()}
    return {"folds": len(runs), "images": int(len(allf)), "pooled_accuracy": float((allf["label"] == allf["pred"]).mean()),
            "fold_mean": float(accs.mean()), "fold_std": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
            "fold_accuracies": [round(float(a), 4) for a in accs], "per_class_pooled": per_class}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    print(json.dumps(summary(ap.parse_args().runs), indent=1))


if __name__ == "__main__":
    main()
