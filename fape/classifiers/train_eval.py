"""One cell of a comparison: train (or resume, or reuse) a classifier run, then evaluate it once.

Above both ``fape.classifiers.train`` and ``fape.classifiers.evaluate``, so that neither of
those imports the other.
"""
from __future__ import annotations

import json
from pathlib import Path

from fape.classifiers import evaluate
from fape.classifiers import train as clf_train  # looked up at call time: tests replace clf_train.train
from fape.classifiers.config import ClfConfig
from fape.utils.io import exclusive_run


def train_and_eval(cfg: ClfConfig, run: Path, progress: bool = False, split: str = "test") -> dict:
    """Train (or resume, or reuse) one run and evaluate it on its ``split`` part once: with the
    test part, the cell of ``fape experiment``, ``fape quickstart`` and ``fape clf kfold``; with
    ``split="val"``, the cell of a recipe search, which must never read test. Returns the results."""
    from fape.config import load_config

    res_path = run / "eval" / split / "results.json"
    if not res_path.is_file():
        with exclusive_run(run):  # a second process on the same cell stops here, with the lock named
            if not (run / "done.json").is_file():
                resume = (run / "config.yaml").is_file()  # an interrupted cell continues with its own config
                clf_train.train(load_config(ClfConfig, run / "config.yaml") if resume else cfg, run, resume=resume,
                                progress=progress)
            evaluate.evaluate_run(run, split)
    return json.loads(res_path.read_text())
