"""F2ED: ``<root>/<subject>/<expression>/<pose>/<frame>.jpg`` with optional ``<frame>.txt`` landmarks.

The layout is ours (the paper publishes no file layout); docs/datasets.md describes it.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fape.data.format import NUM_LANDMARKS, DatasetError
from fape.data.adapters.base import Adapter, ImportOptions, Record, Scan, Skip, label_row, list_images, rel

POSES = ["HL", "F", "HR", "BV"]  # half left, front, half right, bird view (paper, Table 1)
ORDER_FILE = "expressions.txt"
DIGITS = re.compile(r"(\d+)$")


def scan(src: Path, opts: ImportOptions) -> Scan:
    files = [(f, f.relative_to(src).parts) for f in list_images(src)]
    labels = _label_names(src, files)
    records, skipped = [], []
    for f, parts in files:
        try:
            records.append(_record(f, parts, labels, src))
        except ValueError as e:
            skipped.append(Skip(rel(f, src), str(e)))
    source = "dlib" if any(r.landmarks is not None for r in records) else None  # the paper used Dlib
    return Scan(labels, records, skipped, pose_names=POSES, channels=3, landmarks_source=source)


def _label_names(src: Path, files: list[tuple[Path, tuple[str, ...]]]) -> list[str]:
    """``expressions.txt`` (one name a line) if present, else the sorted expression folder names."""
    order = src / ORDER_FILE
    if order.is_file():
        names = [s.strip() for s in order.read_text().splitlines() if s.strip()]
        if len(set(names)) != len(names) or not names:
            raise DatasetError(f"{order}: expression names must be unique, one per line")
        return names
    return sorted({parts[1] for _, parts in files if len(parts) == 4})


def _record(f: Path, parts: tuple[str, ...], labels: list[str], src: Path) -> Record:
    if len(parts) != 4:
        raise ValueError("not at <subject>/<expression>/<pose>/<frame>.<ext>")
    subject, expression, pose, _ = parts
    if expression not in labels:
        raise ValueError(f"expression {expression!r} is not listed in {ORDER_FILE}")
    if pose not in POSES:
        raise ValueError(f"unknown pose folder {pose!r} (expected one of {', '.join(POSES)})")
    digits = DIGITS.search(f.stem)
    row = label_row(labels, expression, subject=subject, pose=pose, sequence=f"{subject}_{expression}",
                    frame=int(digits[1]) if digits else -1)
    lm_file = f.with_suffix(".txt")
    landmarks = _read_landmarks(lm_file, src) if lm_file.is_file() else None
    return Record(rel(f, src), row, file=f, landmarks=landmarks)


def _read_landmarks(path: Path, src: Path) -> np.ndarray:
    """68 lines ``x y`` (pixels of the image beside it) -> [68, 2] float32."""
    try:
        pts = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except ValueError as e:
        raise ValueError(f"landmark file {rel(path, src)} is not numbers: {e}") from None
    if pts.shape != (NUM_LANDMARKS, 2) or not np.isfinite(pts).all():
        raise ValueError(f"landmark file {rel(path, src)} holds shape {pts.shape}, expected "
                         f"{NUM_LANDMARKS} lines of 'x y'")
    return pts


ADAPTER = Adapter("f2ed", "F2ED: <subject>/<expression>/<pose HL|F|HR|BV>/<frame>.jpg [+ <frame>.txt 68 "
                          "landmarks]; see docs/datasets.md", scan)
