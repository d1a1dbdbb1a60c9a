"""Split files: write a :class:`Split` as csv + JSON, read its JSON, load its parts (hash-checked)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from fape.data.splits.protocols import PARTS
from fape.data.splits.split import Split
from fape.errors import SplitError


def save_split(root: str | Path, split: Split, out: str | Path | None = None) -> Path:
    """Write ``root/splits/<split.name>.csv`` (or ``out``) and the JSON beside it; returns the csv path.

    Refuses when ``root`` holds a dataset whose manifest is not the one the split was made from.
    """
    from fape.data.format import read_info
    from fape.utils.io import atomic_write_bytes, atomic_write_json, sha256_bytes

    root = Path(root)
    if (root / "dataset.json").is_file() and split.manifest_sha256:
        have = read_info(root).manifest_sha256
        if have and have != split.manifest_sha256:
            raise SplitError(f"{root}: the split was made from another manifest "
                             f"(manifest_sha256 {split.manifest_sha256[:12]}..., dataset has {have[:12]}...)")
    path = Path(out) if out is not None else root / "splits" / f"{split.name}.csv"
    if path.suffix != ".csv":
        path = path.with_name(path.name + ".csv")
    data = split.csv_bytes()
    atomic_write_bytes(path, data)
    atomic_write_json(path.with_suffix(".json"), split.summary(sha256_bytes(data), path.name))
    return path


def split_meta(path: str | Path) -> dict:
    """The JSON written beside a split csv (protocol, options, label_names, counts, hashes)."""
    import json

    p = Path(path).with_suffix(".json")
    if not p.is_file():
        raise SplitError(f"split description not found: {p}")
    return json.loads(p.read_text())


def load_split(path: str | Path, fold: int | None = None) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` -> sorted int64 manifest rows of a split file (csv or its json).

    Checks the csv against the ``split_sha256`` of the JSON beside it when there is one. k-fold
    files need ``fold``; other files refuse one.
    """
    from fape.utils.io import sha256_bytes

    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".csv")
    if not path.is_file():
        raise SplitError(f"split file not found: {path}")
    data = path.read_bytes()
    meta_path = path.with_suffix(".json")
    if meta_path.is_file():
        want = json.loads(meta_path.read_text()).get("split_sha256")
        if want and sha256_bytes(data) != want:
            raise SplitError(f"{path} does not match the split_sha256 in {meta_path}: it was edited")
    try:
        df = pd.read_csv(io.BytesIO(data), dtype={"path": str, "split": str}, keep_default_na=False)
    except Exception as e:
        raise SplitError(f"{path} cannot be read as CSV: {e}") from None
    for col in ("row", "split"):
        if col not in df.columns:
            raise SplitError(f"{path}: missing column {col!r}")
    bad = ~df["split"].isin(PARTS)
    if bad.any():
        raise SplitError(f"{path}: split value {df['split'][bad].iat[0]!r} is not one of {', '.join(PARTS)}")
    if "fold" in df.columns:
        folds = sorted(int(f) for f in df["fold"].unique())
        if fold is None:
            raise SplitError(f"{path} is a k-fold split ({len(folds)} folds): pass fold= one of 0..{folds[-1]}")
        if int(fold) not in folds:
            raise SplitError(f"{path}: no fold {fold} (folds 0..{folds[-1]})")
        df = df[df["fold"] == int(fold)]
    elif fold is not None:
        raise SplitError(f"{path} has no folds (fold={fold} given)")
    return {p: np.sort(df.loc[df["split"] == p, "row"].to_numpy(np.int64)) for p in PARTS}
