"""KDEF: ``KDEF/AF01/AF01ANS.JPG`` = session, gender, subject, expression, angle."""
from __future__ import annotations

import re
from pathlib import Path

from fape.data.adapters.base import Adapter, ImportOptions, Record, Scan, Skip, label_row, list_images, rel

CODES = {"AF": "afraid", "AN": "angry", "DI": "disgusted", "HA": "happy", "NE": "neutral", "SA": "sad",
         "SU": "surprised"}
LABELS = list(CODES.values())
ANGLES = {"FL": "FL", "HL": "HL", "S": "F", "HR": "HR", "FR": "FR"}  # file code -> pose name
POSES = ["FL", "HL", "F", "HR", "FR"]  # left profile to right profile
NAME = re.compile(r"^(?P<session>[AB])(?P<gender>[FM])(?P<id>\d\d)(?P<code>[A-Z]{2})(?P<angle>FL|HL|S|HR|FR)$")


def scan(src: Path, opts: ImportOptions) -> Scan:
    records, skipped = [], []
    for f in list_images(src):
        m = NAME.match(f.stem.upper())
        if m is None:
            skipped.append(Skip(rel(f, src), "name is not <A|B><F|M><nn><EXPR><angle> (e.g. AF01ANS.JPG)"))
        elif m["code"] not in CODES:
            skipped.append(Skip(rel(f, src), f"unknown expression code {m['code']!r} (known: {' '.join(CODES)})"))
        else:
            subject = f"{m['gender']}{m['id']}"  # the same person sits in sessions A and B
            row = label_row(LABELS, CODES[m["code"]], subject=subject, pose=ANGLES[m["angle"]],
                            sequence=f"{m['session']}{subject}{m['code']}", session=m["session"],
                            gender=m["gender"])
            records.append(Record(rel(f, src), row, file=f))
    return Scan(LABELS, records, skipped, pose_names=POSES, channels=3)


ADAPTER = Adapter("kdef", "KDEF: <session><gender><id>/<session><gender><id><EXPR><angle>.JPG, 5 poses", scan)
