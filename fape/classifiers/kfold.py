"""K-fold protocols as one command: ``fape clf kfold -c CFG --out DIR [overrides]``.

Makes the split once (e.g. ``ckplus-10fold``: subject-independent, the next fold is each run's
validation part), trains one run per fold into ``DIR/fold{k}`` (finished folds are reused, an
interrupted one resumes), evaluates each fold's test part once, and writes ``DIR/summary.json``
and ``DIR/summary.md``: accuracy pooled over every test image of every fold (each image is
tested exactly once), mean +- std of the per-fold accuracies, and pooled per-class accuracy.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fape.classifiers.evaluate import read_predictions
from fape.utils.io import atomic_write_json, atomic_write_text, claim_dir


def summary(runs: list[Path]) -> dict:
    """Pooled and per-fold accuracy from each fold run's ``eval/test/predictions.csv``."""
    import pandas as pd

    frames = []
    for r in runs:
        p = Path(r) / "eval" / "test" / "predictions.csv"
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: run `fape clf eval --run {r} --split test` first")
        frames.append(read_predictions(p))
    rows = np.concatenate([f["row"].to_numpy() for f in frames])
    if len(np.unique(rows)) != len(rows):
        raise ValueError("an image is in the test part of two folds: these runs are not one k-fold protocol")
    accs = np.array([(f["label"] == f["pred"]).mean() for f in frames])
    allf = pd.concat(frames)
    names = list(json.loads((Path(runs[0]) / "eval" / "test" / "results.json").read_text())["per_class"])
    per_class = {n: float((allf.loc[allf["label"] == i, "pred"] == i).mean()) for i, n in enumerate(names)
                 if (allf["label"] == i).any()}
    return {"folds": len(runs), "images": int(len(allf)),
            "pooled_accuracy": float((allf["label"] == allf["pred"]).mean()),
            "fold_mean": float(accs.mean()), "fold_std": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
            "fold_accuracies": [round(float(a), 4) for a in accs], "per_class_pooled": per_class}


def summary_markdown(s: dict, title: str) -> str:
    lines = [f"# {title}", "",
             f"{s['folds']} folds, {s['images']} test images (each tested once): pooled accuracy "
             f"**{100 * s['pooled_accuracy']:.2f}%**, per-fold mean {100 * s['fold_mean']:.2f}% +- "
             f"{100 * s['fold_std']:.2f}% (std over folds).", "",
             "| fold | " + " | ".join(str(k) for k in range(s["folds"])) + " |",
             "|---|" + "---|" * s["folds"],
             "| accuracy (%) | " + " | ".join(f"{100 * a:.1f}" for a in s["fold_accuracies"]) + " |", "",
             "| class | pooled accuracy (%) |", "|---|---|"]
    lines += [f"| {n} | {100 * a:.1f} |" for n, a in s["per_class_pooled"].items()]
    return "\n".join(lines) + "\n"


def run_kfold(cfg, out: Path) -> dict:
    """Train and evaluate every fold of ``cfg.data.split`` (a k-fold protocol or split file)."""
    import dataclasses

    from fape.data import splits
    from fape.data.format import read_index
    from fape.classifiers.train_eval import train_and_eval

    d = cfg.data
    path = Path(d.split)
    if path.suffix != ".csv":
        index = read_index(d.root)
        path = splits.save_split(index.root, splits.make_split(index, d.split, d.split_seed, **d.split_options))
    meta = splits.split_meta(path)
    k = meta.get("num_folds")
    if not k:
        raise ValueError(f"{path}: not a k-fold split (protocol {meta.get('protocol')!r})")
    claim_dir(out, ("fold0", "summary.json"))  # a user-named --out: empty, or this command's own folder
    runs = []
    for fold in range(k):
        run = out / f"fold{fold}"
        fold_cfg = dataclasses.replace(cfg, name=f"{cfg.name}-fold{fold}",
                                       data=dataclasses.replace(d, split=str(path), fold=fold))
        res = train_and_eval(fold_cfg, run, progress=True)
        print(f"  fold {fold}/{k - 1}: test accuracy {res['accuracy']:.4f} (n={res['n']})", flush=True)
        runs.append(run)
    s = summary(runs)
    s.update(split_file=str(path), config=cfg.name)
    atomic_write_json(out / "summary.json", s)
    atomic_write_text(out / "summary.md", summary_markdown(s, f"{cfg.name}: {Path(path).stem}"))
    return s


def cli_kfold(args, overrides) -> int:
    from fape.classifiers.config import ClfConfig
    from fape.config import load_config

    cfg = load_config(ClfConfig, args.config, list(overrides))
    s = run_kfold(cfg, Path(args.out or Path(cfg.runs_dir) / f"{cfg.name}-kfold"))
    print(f"pooled accuracy {s['pooled_accuracy']:.4f} over {s['images']} images; per fold "
          f"{s['fold_mean']:.4f} +- {s['fold_std']:.4f}")
    return 0
