"""``fape data merge``: several imported datasets as one, for training across sources and for the
``leave-one-dataset-out`` protocol.

    fape data merge data/fer2013 data/ckplus48 data/jaffe --out data/fer_ck_jaffe

Rows keep everything the split protocols read: the ``dataset`` column names the source dataset
(``dataset.json``'s name, or ``NAME=DIR``), ``subject`` and ``sequence`` are prefixed with it (so
two sources never share a leak unit), any ``split`` column (FER2013's Training / PublicTest /
PrivateTest) is kept, and landmarks travel with their rows. Expression names are unified
(``anger`` -> ``angry``, ``sadness`` -> ``sad``: FER2013's names) and label numbers follow the
first dataset's order, new names appended. Image files are hard-linked when the file system
allows, else copied; the output folder appears complete or not at all.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from fape.data.adapters.fer2013 import SYNONYMS
from fape.data.format import DatasetError, DatasetInfo, crop_of_origin, read_index, write_index
from fape.utils.io import atomic_dir


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def merge(sources: list[tuple[str, Path]], out: Path, overwrite: bool = False) -> Path:
    """``[(name, dataset folder)]`` -> one dataset folder ``out``."""
    names = [n for n, _ in sources]
    if len(set(names)) != len(names):
        raise DatasetError(f"merge: two sources are named alike ({', '.join(names)}); name them NAME=DIR")
    indexes = [(n, read_index(p)) for n, p in sources]
    labels: list[str] = []
    for _, idx in indexes:
        labels += [e for e in (SYNONYMS.get(x, x) for x in idx.info.label_names) if e not in labels]
    channels = max(idx.info.channels for _, idx in indexes)
    crops = {n: crop_of_origin(idx.info.origin) for n, idx in indexes}
    if len(set(crops.values())) > 1:  # a model trained on the mix would have no one crop to record
        raise DatasetError("merge: the sources were cropped differently ("
                           + ", ".join(f"{n}: {c}" for n, c in crops.items())
                           + "); import them all with --eye-crop, or all without it")
    frames, lms, oks = [], [], []
    with atomic_dir(out, overwrite) as tmp:
        for name, idx in indexes:
            m = idx.manifest.copy()
            expr = m["expression"].map(lambda x: SYNONYMS.get(x, x))
            for i, p in enumerate(m["path"]):
                _link(idx.root / p, tmp / "images" / name / p)
            m = m.assign(path=[f"images/{name}/{p}" for p in m["path"]], expression=expr,
                         label=expr.map(labels.index).astype(np.int64), dataset=name,
                         subject=[f"{name}/{s}" if s else "" for s in m["subject"]],
                         sequence=[f"{name}/{s}" if s else "" for s in m["sequence"]])
            frames.append(m)
            lms.append(idx.landmarks)
            oks.append(idx.landmarks_ok)
        manifest = pd.concat(frames, ignore_index=True)
        if "split" in manifest:
            manifest["split"] = manifest["split"].fillna("").astype(str)
        sizes = {tuple(idx.info.image_size or ()) for _, idx in indexes}
        info = DatasetInfo(name=out.name, label_names=labels, pose_names=["F"],
                           image_size=list(sizes.pop()) if len(sizes) == 1 and () not in sizes else None,
                           channels=channels, landmarks_source=None,
                           origin={"kind": "merge", "sources": {n: str(p) for n, p in sources},
                                   "options": {"eye_crop": crops[names[0]] == "eye"},
                                   "manifest_sha256": {n: idx.info.manifest_sha256 for n, idx in indexes}})
        manifest["pose"] = manifest["pose"].where(manifest["pose"] != "", "F")
        write_index(tmp, manifest, info, np.concatenate(lms), np.concatenate(oks))
    return out


def cli_merge(args, overrides) -> int:
    sources = []
    for item in args.datasets:
        name, _, path = item.rpartition("=")
        path = Path(path)
        sources.append((name or read_index(path, check_hash=False).info.name or path.name, path))
    out = merge(sources, Path(args.out), args.overwrite)
    m = read_index(out).manifest
    print(f"{out}: {len(m)} images; " + ", ".join(f"{k} {v}" for k, v in m["dataset"].value_counts(sort=False).items()))
    return 0
