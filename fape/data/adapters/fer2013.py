"""FER2013: the Kaggle image-folder version and the original ``emotion,pixels,Usage`` csv."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fape.data.format import UNKNOWN, DatasetError
from fape.data.adapters.base import Adapter, ImportOptions, Record, Scan, Skip, label_row, list_images, rel

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # csv codes 0..6
# folder names seen in the many re-packagings of the Kaggle set -> canonical name
SYNONYMS = {"anger": "angry", "disgusted": "disgust", "disgusting": "disgust", "afraid": "fear",
            "fearful": "fear", "happiness": "happy", "sadness": "sad", "surprised": "surprise"}
SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}  # Usage / file prefix -> split
SIDE = 48  # pixels; the csv stores 48 x 48 = 2304 values per row


def _row(name: str, usage: str) -> dict:
    return label_row(LABELS, name, subject=UNKNOWN, pose=UNKNOWN, split=SPLITS[usage], usage=usage)


def scan_folders(src: Path, opts: ImportOptions) -> Scan:
    records, skipped = [], []
    for f in list_images(src):
        folder = f.parent.name if f.parent != src else ""
        name = SYNONYMS.get(folder.lower(), folder.lower())
        usage = f.name.split("_", 1)[0]
        if name not in LABELS:
            skipped.append(Skip(rel(f, src), f"unknown class folder {folder!r} "
                                             f"(known: {', '.join(LABELS)} and synonyms)"))
        elif usage not in SPLITS:
            skipped.append(Skip(rel(f, src), f"file name does not start with one of {', '.join(SPLITS)}_"))
        else:
            records.append(Record(rel(f, src), _row(name, usage), file=f))
    return Scan(LABELS, records, skipped, channels=1)


def scan_csv(src: Path, opts: ImportOptions) -> Scan:
    if not src.is_file():
        raise DatasetError(f"fer2013-csv: {src} is not a file (expected the emotion,pixels,Usage csv)")
    records, skipped = [], []
    with open(src, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{src}: missing column(s) {sorted(missing)} (expected emotion,pixels,Usage)")
        for line, r in enumerate(reader, start=2):  # line 1 is the header
            where = f"{src.name}:{line}"
            try:
                records.append(_csv_record(r, where))
            except ValueError as e:
                skipped.append(Skip(where, str(e)))
    return Scan(LABELS, records, skipped, channels=1)


def _csv_record(r: dict, where: str) -> Record:
    code, usage = r["emotion"].strip(), r["Usage"].strip()
    if not code.isdigit() or int(code) >= len(LABELS):
        raise ValueError(f"unknown emotion code {code!r} (expected 0..{len(LABELS) - 1})")
    if usage not in SPLITS:
        raise ValueError(f"unknown Usage {usage!r} (expected one of {', '.join(SPLITS)})")
    try:
        values = np.array(r["pixels"].split(), np.int32)
    except ValueError:
        values = np.empty(0, np.int32)  # non-numeric text: reported by the check below
    if values.size != SIDE * SIDE or values.min() < 0 or values.max() > 255:
        raise ValueError(f"pixels is not {SIDE * SIDE} integers in 0..255")
    pixels = values.astype(np.uint8).reshape(SIDE, SIDE)
    number = where.rsplit(":", 1)[1]
    return Record(where, _row(LABELS[int(code)], usage), pixels=pixels,
                  out=f"images/{SPLITS[usage]}/{usage}_{int(number):05d}.png")


FOLDERS = Adapter("fer2013-folders", "Kaggle FER2013: train/<class>/Training_*.jpg, test/<class>/"
                                     "{PublicTest,PrivateTest}_*.jpg", scan_folders)
CSV = Adapter("fer2013-csv", "original FER2013 csv: emotion,pixels,Usage (48x48 gray)", scan_csv)
