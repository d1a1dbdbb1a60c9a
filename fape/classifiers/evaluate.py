"""Evaluation of a trained classifier on a part of its split, and the ledger of test reads.

``evaluate_run`` writes the metrics (``fape.classifiers.metrics``) with the per-image predictions
(so comparisons can pair images, ``fape.classifiers.compare``), a confusion matrix as CSV and PNG;
every evaluation of a test part is recorded (``record_test_read``).
"""
from __future__ import annotations

import json
import shlex
import warnings
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fape.classifiers.metrics import classification_metrics, confusion_png
from fape.utils.io import append_jsonl, atomic_write_json, atomic_write_text, sha256_file

TEST_READS = "test_reads.jsonl"  # RUN/test_reads.jsonl: one line per evaluation of the run's test part


def record_test_read(run: Path, split_file: str | Path, **extra) -> int:
    """Append a line to ``RUN/test_reads.jsonl`` (UTC time, the split file and its sha256, the
    command line, and ``extra``) and return how many reads it now lists. Git-free, and atomic per
    line, so concurrent evaluations of one run each leave their own line."""

    split_file = Path(split_file)
    append_jsonl(Path(run) / TEST_READS, {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "split_file": str(split_file),
        "split_sha256": sha256_file(split_file) if split_file.is_file() else None,
        "command": shlex.join(sys.argv), **extra})
    return len(list_test_reads(run))


def list_test_reads(run: str | Path) -> list[dict]:
    """Every recorded evaluation of ``run``'s test part, oldest first (empty: never read)."""
    from fape.utils.runs import read_jsonl

    return read_jsonl(Path(run) / TEST_READS)


def eval_split_file(run: Path, cfg, index, split_file: str | Path | None = None) -> Path:
    """The split to evaluate on: ``split_file`` when given; else the run's own (``labels.json``);
    else, for a checkpoint folder without its run (a packaged model), the split its config names,
    made on ``index`` by the recorded protocol and seed exactly as training makes it."""
    if split_file is not None:
        return Path(split_file)
    if (run / "labels.json").is_file():
        return Path(json.loads((run / "labels.json").read_text())["split"])
    from fape.classifiers.data import resolve_split

    return resolve_split(cfg, index)[3]


def test_reads_dir(run: Path) -> Path:
    """Where the reads of ``run``'s test part are recorded: the run folder, or for a packaged
    checkpoint (never written into) its eval folder under the current folder."""
    return run if (run / "labels.json").is_file() else default_eval_dir(run, "test").parent


def default_eval_dir(run: Path, split: str, tag: str = "") -> Path:
    """RUN/eval/SPLIT for a training run; a packaged checkpoint (perhaps inside site-packages) is
    never written into: runs/eval/NAME/SPLIT under the current folder. ``tag`` (``eval_tag``) names
    an evaluation on other data or another split: SPLIT@TAG."""
    name = f"{split}@{tag}" if tag else split
    return run / "eval" / name if (run / "labels.json").is_file() else Path("runs") / "eval" / run.name / name


def eval_tag(run: Path, cfg, root: str | Path, split_file: Path, data_given: bool, split_given: bool) -> str:
    """``""`` for an evaluation on the run's own data and split, else ``DATA.SPLIT`` (the folder
    names). Why: RUN/eval/SPLIT is what experiments, ``fape clf compare`` and the k-fold pooling read
    as the run's result (a finished cell is one whose eval/test exists), so an evaluation on another
    dataset or split must never replace it."""
    if not (data_given or split_given):
        return ""
    own_root = Path(root).resolve() == Path(cfg.data.root).resolve()
    labels = run / "labels.json"
    own_split = not split_given or (labels.is_file() and
                                    Path(split_file).resolve() == Path(json.loads(labels.read_text())["split"]).resolve())
    return "" if own_root and own_split else f"{Path(root).resolve().name}.{Path(split_file).stem}"


def evaluate_run(run: str | Path, split: str = "test", data: str | None = None, out: str | Path | None = None,
                 device: str = "cpu", checkpoint: str | Path | None = None,
                 split_file: str | Path | None = None) -> dict:
    """Evaluate a run's selected model on a part of its split; writes results.json,
    predictions.csv, confusion.csv and confusion.png into ``out`` (default: ``default_eval_dir``;
    RUN/eval/SPLIT@DATA.SPLIT on other data or another split, ``eval_tag``).
    ``run`` may be a training run or a packaged checkpoint folder (``state.json``, no run files).
    Each evaluation of the test part is appended to ``test_reads.jsonl`` beside the eval folder
    (``RUN/test_reads.jsonl`` for a training run; ``record_test_read``).
    ``checkpoint``: other weights of the same model to evaluate on the run's split (e.g. the
    packaged copy of a shipped model). ``split_file``: a split csv of ``data`` to use instead of
    the run's (see ``eval_split_file``)."""
    import pandas as pd

    from fape.classifiers.io import load_run, predict
    from fape.data import splits
    from fape.data.dataset import FaceDataset
    from fape.data.format import crop_of_origin, read_index

    run = Path(run)
    loaded = load_run(checkpoint or run, device)
    cfg = loaded.cfg
    root = data or cfg.data.root
    index = read_index(root)
    split_given = split_file is not None
    split_file = eval_split_file(run, cfg, index, split_file)
    parts = splits.load_split(split_file, fold=cfg.data.fold if cfg.data.fold >= 0 else None)
    if split not in parts:
        raise ValueError(f"split part {split!r} not in {split_file} (has {sorted(parts)})")
    model_crop = loaded.preprocess.crop
    data_crop = crop_of_origin(index.info.origin)
    if model_crop != data_crop:  # allowed (a robustness check), but the number is not the model's own
        warnings.warn(f"{loaded.checkpoint} was trained on {model_crop!r} crops and {root} has {data_crop!r} crops: "
                      f"the faces are framed differently from its training images", stacklevel=2)
    lut = {n: i for i, n in enumerate(loaded.label_names)}
    label_map = np.array([lut.get(n, -1) for n in index.info.label_names], np.int64)
    faces = FaceDataset(index, size=cfg.data.image_size, channels=cfg.data.channels, progress=False)
    rows = parts[split]
    rows = rows[label_map[faces.labels[rows]] >= 0]
    probs = predict(loaded.model, faces, rows, device)
    if split == "test":  # every path that scores a test part comes through here, so every read is on record
        record_test_read(test_reads_dir(run), split_file, data=str(root), checkpoint=str(loaded.checkpoint),
                         n=int(len(rows)))
    labels, preds = label_map[faces.labels[rows]], probs.argmax(1)
    m = index.manifest.iloc[rows]
    groups = {"pose": m["pose"].to_numpy()} if (m["pose"] != "").any() else {}
    res = classification_metrics(labels, preds, loaded.label_names, groups)
    res.update(run=str(run), split=split, split_file=str(split_file), data=str(root),
               checkpoint=str(loaded.checkpoint), model_crop=model_crop, data_crop=data_crop)
    out = Path(out) if out else default_eval_dir(
        run, split, eval_tag(run, cfg, root, split_file, data is not None, split_given))
    res["out"] = str(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", res)
    pred_df = pd.DataFrame({"row": rows, "path": m["path"].to_numpy(), "label": labels, "pred": preds,
                            "prob": probs[np.arange(len(rows)), preds]})
    atomic_write_text(out / "predictions.csv", pred_df.to_csv(index=False))
    cm = np.asarray(res["confusion"])
    atomic_write_text(out / "confusion.csv", pd.DataFrame(cm, index=loaded.label_names,
                                                           columns=loaded.label_names).to_csv())
    confusion_png(cm, loaded.label_names, out / "confusion.png",
                  f"{run.name} {split}: acc {res['accuracy']:.3f}")
    return res


def read_predictions(path: Path) -> "pd.DataFrame":  # noqa: F821
    """A ``predictions.csv`` of ``fape clf eval``, checked for the columns compare / k-fold read."""
    import pandas as pd

    from fape.data.format import require_columns

    df = pd.read_csv(path)
    require_columns(df, ("row", "label", "pred"), str(path))
    return df
