"""CK+ (original sequences with Emotion files) and CK+48 (the 48x48 crops of the last three frames)."""
from __future__ import annotations

import re
from pathlib import Path

from fape.data.format import DatasetError
from fape.data.adapters.base import Adapter, ImportOptions, Record, Scan, Skip, label_row, list_images, rel

LABELS = ["neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]  # = CK+ codes
LABELS48 = LABELS[1:]  # CK+48 has no neutral class; same order as the CK+ codes 1..7
NAME = re.compile(r"^S(?P<subject>\d+)_(?P<sequence>\d+)_(?P<frame>\d+)$")  # S005_001_00000011


def _row(labels: list[str], name: str, m: re.Match) -> dict:
    subject = f"S{m['subject']}"
    return label_row(labels, name, subject=subject, pose="F", sequence=f"{subject}_{m['sequence']}",
                     frame=int(m["frame"]))


def scan48(src: Path, opts: ImportOptions) -> Scan:
    records, skipped = [], []
    for f in list_images(src):
        parts = f.relative_to(src).parts
        m = NAME.match(f.stem)
        if len(parts) < 2 or parts[-2] not in LABELS48:
            skipped.append(Skip(rel(f, src), f"not in a class folder ({', '.join(LABELS48)})"))
        elif m is None:
            skipped.append(Skip(rel(f, src), "name is not S<subject>_<sequence>_<frame>"))
        else:
            records.append(Record(rel(f, src), _row(LABELS48, parts[-2], m), file=f))
    return Scan(LABELS48, records, skipped, pose_names=["F"])


def scan(src: Path, opts: ImportOptions) -> Scan:
    images, emotion = src / "cohn-kanade-images", src / "Emotion"
    for folder in (images, emotion):
        if not folder.is_dir():
            raise DatasetError(f"ckplus: {folder} not found (SRC must hold cohn-kanade-images/ and Emotion/)")
    records, skipped = [], []
    keep = 1 if opts.ckplus_frames == "last" else 3
    for label_file in sorted(emotion.rglob("*_emotion.txt")):
        seq_dir = images / label_file.parent.relative_to(emotion)
        try:
            name = _read_emotion(label_file)
            frames = _sequence(seq_dir, src)
        except ValueError as e:
            skipped.append(Skip(rel(label_file, src), str(e)))
            continue
        chosen = [(f, m, name) for f, m in frames[-keep:]]
        if opts.ckplus_neutral and len(frames) > keep:
            chosen.insert(0, (*frames[0], "neutral"))
        records += [Record(rel(f, src), _row(LABELS, n, m), file=f) for f, m, n in chosen]
    return Scan(LABELS, records, skipped, pose_names=["F"])


def _read_emotion(path: Path) -> str:
    text = path.read_text().strip()
    try:
        code = float(text)
    except ValueError:
        raise ValueError(f"emotion file does not hold a number: {text[:40]!r}") from None
    if code != int(code) or not 0 <= code < len(LABELS):
        raise ValueError(f"unknown emotion code {text!r} (expected 0..{len(LABELS) - 1})")
    return LABELS[int(code)]


def _sequence(seq_dir: Path, src: Path) -> list[tuple[Path, re.Match]]:
    """Frames of one sequence sorted by frame number; an empty or missing folder is an error."""
    frames = [(f, NAME.match(f.stem)) for f in list_images(seq_dir)] if seq_dir.is_dir() else []
    frames = sorted(((f, m) for f, m in frames if m), key=lambda fm: int(fm[1]["frame"]))
    if not frames:
        raise ValueError(f"no S<subject>_<sequence>_<frame> images in {rel(seq_dir, src)}")
    return frames


ADAPTER48 = Adapter("ckplus48", "CK+48: <class>/S<subject>_<sequence>_<frame>.png (7 classes)", scan48)
ADAPTER = Adapter("ckplus", "CK+: cohn-kanade-images/S005/001/*.png + Emotion/S005/001/*_emotion.txt "
                            "(last or last3 frames, first frame as neutral)", scan)
