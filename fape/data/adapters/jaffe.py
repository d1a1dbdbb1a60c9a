"""JAFFE: ``<subject>.<EXPR><take>.<id>.tiff``, e.g. ``KA.AN1.39.tiff``; 256x256 gray, some palette TIFFs."""
from __future__ import annotations

import re
from pathlib import Path

from fape.data.adapters.base import Adapter, ImportOptions, Record, Scan, Skip, label_row, list_images, rel

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # the FER2013 order
CODES = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "SA": "sad", "SU": "surprise",
         "NE": "neutral"}
NAME = re.compile(r"^(?P<subject>[A-Za-z]+)\.(?P<code>[A-Za-z]+)(?P<take>\d+)\.(?P<id>\d+)$")


def scan(src: Path, opts: ImportOptions) -> Scan:
    records, skipped = [], []
    for f in list_images(src):
        m = NAME.match(f.stem)
        if m is None:
            skipped.append(Skip(rel(f, src), "name is not <subject>.<EXPR><n>.<id> (e.g. KA.AN1.39.tiff)"))
        elif m["code"].upper() not in CODES:
            skipped.append(Skip(rel(f, src), f"unknown expression code {m['code']!r} "
                                             f"(known: {' '.join(CODES)})"))
        else:
            row = label_row(LABELS, CODES[m["code"].upper()], subject=m["subject"].upper(), pose="F",
                            take=int(m["take"]), image_id=int(m["id"]))
            records.append(Record(rel(f, src), row, file=f))
    # channels=1: the palette TIFFs hold gray levels and must not become RGB
    return Scan(LABELS, records, skipped, pose_names=["F"], channels=1)


ADAPTER = Adapter("jaffe", "JAFFE: <subject>.<EXPR><n>.<id>.tiff, EXPR in AN DI FE HA NE SA SU", scan)
