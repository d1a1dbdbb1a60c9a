"""``fape gamo evaluate``: the paper's self and cross evaluation (section 6.2) as an experiment.

Two models, two test sets, four cells:

- the **base model**: the registry's ``v0000``, trained on the base data only (for the shipped
  model, FER2013 Training, selected on PublicTest);
- the **game model**: a retrained version (default: the newest), fine-tuned from its parent on
  the game training part, its epoch selected on the game validation part;
- the **base test**: the test part of the base dataset by the base model's own split protocol
  (FER2013: PrivateTest);
- the **game test**: the collection's fixed held-out part (``models/heldout.json``): units no
  version ever trained or selected on.

Each model is scored on both (self: its own data's test part; cross: the other one), with an
exact binomial interval, and the paired difference game - base on each test set with a paired
bootstrap interval over its images (the same images for both models). Unlike the paper, where both models start from the same pretrained network, the game
model here starts from the base model (it is fine-tuned on the game data): the cross cell
"game model on base test" measures what fine-tuning on game faces keeps of the base task.

The held-out images are scored on a hard-linked snapshot of the collection (as ``retrain``
does; a running server may add faces meanwhile), whose images are removed afterwards.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from fape.utils.io import atomic_write_json, atomic_write_text

CELLS = (("base", "base"), ("base", "game"), ("game", "game"), ("game", "base"))  # (model, test set)


def accuracy_interval(correct: np.ndarray, level: float = 0.95) -> dict:
    """Accuracy of 0/1 ``correct [N]`` and its exact (Clopper-Pearson) binomial interval. Unlike a
    bootstrap over images, it stays honest at 0/N and N/N (20 of 20 right: [83.2%, 100%], not
    [100%, 100%]), where the few game images put it. Images are taken as independent: several
    faces of one player are not, so the interval is, if anything, too narrow."""
    from scipy.stats import binomtest

    k, n = int(np.sum(correct)), int(len(correct))
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return {"accuracy": k / n, "ci_low": float(ci.low), "ci_high": float(ci.high), "n": n, "level": level,
            "interval": "Clopper-Pearson exact binomial"}


def game_model_version(registry: dict, version: str | None) -> dict:
    """The card of ``version``, or of the newest retrained version (any version but ``v0000``)."""
    from fape.errors import UserError

    trained = [v for v in registry["versions"] if v["version"] != "v0000"]
    if not trained:
        raise UserError("no retrained version yet: run `fape gamo retrain` first")
    if version is None:
        return trained[-1]
    card = next((v for v in trained if v["version"] == version), None)
    if card is None:
        raise UserError(f"--version {version!r} is not a retrained version (have {[v['version'] for v in trained]})")
    return card


def game_test_split(root: Path, snap: Path, card: dict) -> tuple[Path, int]:
    """The held-out rule applied to the snapshot ``snap``: its split file and held-out count.
    Checks that no held-out image was in the game model's training or validation part."""
    from fape.data.format import read_index
    from fape.errors import UserError
    from fape.gamo.retrain import HELDOUT_FILE, VAL_FRACTION, split_rows, write_split

    rule = json.loads((root / "models" / HELDOUT_FILE).read_text())
    index = read_index(snap)
    parts = split_rows(index.manifest, rule, VAL_FRACTION)
    split = write_split(snap, index.manifest, parts, index.info.label_names, rule)
    seen = pd.read_csv(root / "models" / card["version"] / "data" / "splits" / "gamo-heldout.csv")
    held = set(index.manifest["path"][parts == "test"])
    leaked = held & set(seen["path"][seen["split"] != "test"])
    if leaked:
        raise UserError(f"{len(leaked)} held-out image(s) were in {card['version']}'s training data, e.g. "
                        f"{sorted(leaked)[0]}: the held-out rule changed?")
    return split, len(held)


def score(pred_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """0/1 correctness ``[N]`` and manifest rows ``[N]`` of an evaluation's predictions.csv."""
    df = pd.read_csv(pred_dir / "predictions.csv")
    return (df["label"] == df["pred"]).to_numpy(np.int64), df["row"].to_numpy()


def cross_evaluate(root: Path, base_data: Path, version: str | None = None, out: Path | None = None,
                   n_boot: int = 2000, seed: int = 0) -> dict:
    """The four cells and the paired differences; written to ``out`` as results.json and table.md."""
    from fape.classifiers.evaluate import evaluate_run
    from fape.classifiers.intervals import hierarchical_bootstrap
    from fape.errors import UserError
    from fape.gamo.retrain import snapshot

    root = Path(root)
    reg_path = root / "models" / "registry.json"
    if not reg_path.is_file():
        raise UserError(f"{reg_path} is missing: play and run `fape gamo retrain --data {root}` first")
    reg = json.loads(reg_path.read_text())
    card = game_model_version(reg, version)
    models = {"base": Path(reg["versions"][0]["model"]), "game": Path(card["model"])}
    out = Path(out) if out else root / "models" / "crosseval" / card["version"]
    snap = out / "game-data"
    shutil.rmtree(snap, ignore_errors=True)
    snapshot(root / "dataset", snap)
    try:
        game_split, n_held = game_test_split(root, snap, card)
        if n_held == 0:
            raise UserError(f"the held-out part of {root / 'dataset'} is empty: collect from more players first")
        base_res = evaluate_run(models["base"], "test", data=str(base_data), out=out / "base-on-base")
        splits = {"base": (str(base_data), base_res["split_file"]), "game": (str(snap), str(game_split))}
        results = {("base", "base"): base_res}
        for m, t in CELLS[1:]:
            results[m, t] = evaluate_run(models[m], "test", data=splits[t][0], split_file=splits[t][1],
                                         out=out / f"{m}-on-{t}")
    finally:
        shutil.rmtree(snap / "images", ignore_errors=True)  # a deleted player's faces must not live on here
        shutil.rmtree(snap / "cache", ignore_errors=True)
    cells, correct, rows = {}, {}, {}
    for (m, t), r in results.items():
        correct[m, t], rows[m, t] = score(Path(r["out"]))
        cells[f"{m}_on_{t}"] = {**accuracy_interval(correct[m, t]), "macro_f1": r["macro_f1"],
                                "checkpoint": r["checkpoint"], "split_file": r["split_file"],
                                "recall": {k: v["recall"] for k, v in r["per_class"].items()},
                                "support": {k: v["support"] for k, v in r["per_class"].items()}}
    for t in ("base", "game"):  # the two models are paired image by image on each test set
        assert np.array_equal(rows["base", t], rows["game", t]), f"{t} test: the models scored different images"
    diffs = {t: hierarchical_bootstrap(correct["game", t][None], correct["base", t][None], n_boot, seed)
             for t in ("base", "game")}
    res = {"base_model": str(models["base"]), "game_model": str(models["game"]), "version": card["version"],
           "parent": card["parent"], "base_data": str(base_data), "base_split": splits["base"][1],
           "game_data": str(root / "dataset"), "heldout": json.loads((root / "models" / "heldout.json").read_text()),
           "cells": cells, "game_minus_base": diffs, "n_boot": n_boot, "seed": seed}
    atomic_write_json(out / "results.json", res)
    atomic_write_text(out / "table.md", table_markdown(res))
    return res


def table_markdown(res: dict) -> str:
    """The 2 x 2 table (accuracy [95% interval], n; macro-F1) and per-class recall."""
    c, d = res["cells"], res["game_minus_base"]

    def cell(k: str) -> str:
        x = c[k]
        return (f"{100 * x['accuracy']:.1f}% [{100 * x['ci_low']:.1f}, {100 * x['ci_high']:.1f}] (n={x['n']}; "
                f"macro-F1 {100 * x['macro_f1']:.1f}%)")

    def diff(t: str) -> str:
        x = d[t]
        return f"{100 * x['diff']:+.1f} [{100 * x['ci_low']:+.1f}, {100 * x['ci_high']:+.1f}] points"

    names = list(c["base_on_base"]["recall"])
    lines = ["| model | base test | game test (held-out) |", "|---|---|---|",
             f"| base model v0000 | {cell('base_on_base')} (self) | {cell('base_on_game')} (cross) |",
             f"| game model {res['version']} | {cell('game_on_base')} (cross) | {cell('game_on_game')} (self) |",
             f"| game - base (paired) | {diff('base')} | {diff('game')} |", "",
             f"95% intervals: accuracy Clopper-Pearson exact binomial; game - base paired bootstrap over the test "
             f"images ({res['n_boot']} replicates, seed {res['seed']}).", "",
             "| recall | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in ("base_on_base", "base_on_game", "game_on_game", "game_on_base"):
        rec, sup = c[k]["recall"], c[k]["support"]
        lines.append(f"| {k.replace('_', ' ')} | " + " | ".join(
            f"{100 * rec[n]:.0f}% ({sup[n]})" if sup[n] else "- (0)" for n in names) + " |")
    return "\n".join(lines) + "\n"
