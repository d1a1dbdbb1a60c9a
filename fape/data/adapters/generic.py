"""Generic layouts: one folder per class, or a csv of ``path,label[,subject,pose,split]``."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

from fape.data.format import UNKNOWN, DatasetError, require_columns
from fape.data.adapters.base import Adapter, ImportOptions, Record, Scan, Skip, label_row, list_images, rel, subfolders

OPTIONAL = ("subject", "pose", "split")  # csv columns carried into the manifest


def scan_folder(src: Path, opts: ImportOptions) -> Scan:
    records, skipped, labels = [], [], []
    for folder in subfolders(src):
        files = list_images(folder)
        if not files:
            skipped.append(Skip(rel(folder, src) + "/", "class folder holds no images"))
            continue
        labels.append(folder.name)
        records += [Record(rel(f, src), {"expression": folder.name, "subject": UNKNOWN, "pose": UNKNOWN},
                          file=f)
                    for f in files]
    for r in records:
        r.row["label"] = labels.index(r.row["expression"])
    return Scan(labels, records, skipped)


def scan_csv(src: Path, opts: ImportOptions) -> Scan:
    table = _read_table(src)
    empty = table["label"].str.strip() == ""
    skipped = [Skip(f"{src.name}:{i + 2}", f"empty label for {p!r}") for i, p in table["path"][empty].items()]
    table = table[~empty].reset_index(drop=True)
    labels, codes = _labels(table["label"])
    poses = sorted(table["pose"].unique()) if "pose" in table else []
    records = []
    for i, r in table.iterrows():
        extra = {c: r[c] for c in OPTIONAL if c in table}
        records.append(Record(r["path"], label_row(labels, codes[i], **extra), file=src.parent / r["path"],
                              out=_inside_images(r["path"])))
    return Scan(labels, sorted(records, key=lambda rec: rec.rel), skipped, pose_names=poses)


def _inside_images(path: str) -> str:
    """images/<path>.png with ``..`` and a leading ``/`` defused, so every file lands under images/."""
    parts = ["__" if p == ".." else p for p in PurePosixPath(path.replace("\\", "/")).parts if p != "/"]
    return str(PurePosixPath("images", *parts).with_suffix(".png"))


def _read_table(src: Path) -> pd.DataFrame:
    if not src.is_file():
        raise DatasetError(f"csv: {src} is not a file (expected a csv with path,label columns)")
    try:
        table = pd.read_csv(src, dtype=str, keep_default_na=False)
    except Exception as e:  # pandas raises several types for malformed CSV
        raise DatasetError(f"{src} cannot be read as CSV: {e}") from None
    require_columns(table, ("path", "label"), str(src), " (expected path,label[,subject,pose,split])")
    dup = table["path"].duplicated()
    if dup.any():
        raise DatasetError(f"{src}: path {table['path'][dup].iat[0]!r} appears twice")
    return table


def _labels(column: pd.Series) -> tuple[list[str], list[str]]:
    """Integer labels keep their numbers (names "0".."max"); text labels are numbered in sorted order."""
    values = column.str.strip()
    if values.empty:
        return [], []
    if values.str.fullmatch(r"\d+").all():
        return [str(i) for i in range(int(values.astype(int).max()) + 1)], list(values.astype(int).astype(str))
    return sorted(values.unique()), list(values)


FOLDER = Adapter("folder", "generic: one sub-folder per class (labels in sorted folder order), any image "
                           "type, recursive", scan_folder)
CSV = Adapter("csv", "generic csv: path,label[,subject,pose,split]; paths relative to the csv's folder",
              scan_csv)
