"""The collected crops as a fape dataset folder: ``DIR/images/<pseudonym>/<sample>.png`` and the
index (manifest.csv, landmarks.npy, landmarks_ok.npy, dataset.json) written from the database's
rows, so ``fape clf train --data DIR`` reads it directly.

Adding a crop writes the image, then rewrites the index files (each atomically, dataset.json
last with the manifest's hash). Deleting a player rebuilds the whole folder beside it from hard
links to the kept images and renames it into place, so the removed images are gone with the old
folder and a reader never sees a manifest that names a missing file.
"""
from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from fape.data.format import DatasetInfo, empty_landmarks, write_index
from fape.utils.io import DATASET_MARKERS, atomic_write_bytes, make_temp_dir, replace_dir

SAFE = re.compile(r"^[0-9a-z]{1,64}$")  # server-generated ids only; anything else is a bug
INDEX_FILES = ("manifest.csv", "landmarks.npy", "landmarks_ok.npy", "dataset.json")


def _safe(part: str) -> str:
    if not SAFE.match(part):
        raise ValueError(f"refusing to build a path from {part!r}")
    return part


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class DatasetStore:
    def __init__(self, root: str | Path, label_names: list[str], crop_size: int, origin: dict | None = None):
        self.root = Path(root)
        self.label_names, self.crop_size = list(label_names), crop_size
        self.origin = {"kind": "gamo", "crop": "square", "enlarge": 1.2, **(origin or {})}
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def rel_path(pseudonym: str, sample_id: str) -> str:
        return f"images/{_safe(pseudonym)}/{_safe(sample_id)}.png"

    def save_crop(self, rel: str, crop: np.ndarray) -> None:
        atomic_write_bytes(self.root / rel, png_bytes(crop))

    def info(self) -> DatasetInfo:
        return DatasetInfo(name="gamo", label_names=self.label_names, pose_names=["frontal"],
                           image_size=[self.crop_size, self.crop_size], channels=3, origin=self.origin,
                           landmarks_source="dlib")

    def write_index(self, rows: list[dict], root: Path | None = None) -> None:
        """The index for ``rows`` (``Repository.samples()``) in ``root`` (default the folder)."""
        root = root or self.root
        if not rows:  # the format has no empty dataset: no rows, no index
            for name in INDEX_FILES:
                (root / name).unlink(missing_ok=True)
            return
        manifest = manifest_of(rows)
        lm, ok = empty_landmarks(len(rows))
        for i, r in enumerate(rows):
            if r["landmarks"] is not None:
                lm[i], ok[i] = r["landmarks"], True
        write_index(root, manifest, self.info(), lm, ok)
        shutil.rmtree(root / "cache", ignore_errors=True)  # caches of older manifests (named by hash)

    def rebuild(self, rows: list[dict]) -> None:
        """Replace the folder by one holding exactly ``rows``' images and index (renames only)."""
        tmp = make_temp_dir(self.root.parent, self.root.name)
        try:
            for r in rows:
                dst = tmp / r["path"]
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.link(self.root / r["path"], dst)
            self.write_index(rows, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replace_dir(tmp, self.root, DATASET_MARKERS)


def manifest_of(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({
        "path": [r["path"] for r in rows], "subject": [r["pseudonym"] for r in rows],
        "expression": [r["expression"] for r in rows], "label": [int(r["label"]) for r in rows],
        "pose": "", "sequence": [r["session_id"] for r in rows], "frame": [int(r["bomb_id"]) for r in rows],
        "source": "gamo", "sample": [r["id"] for r in rows], "mode": [r["mode"] for r in rows],
        "model_version": [r["model_version"] for r in rows], "prob": [round(float(r["prob"]), 4) for r in rows],
        "threshold": [float(r["threshold"]) for r in rows],
        "distance": [("" if r["distance"] is None else round(float(r["distance"]), 4)) for r in rows],
        "created": [round(float(r["created"]), 3) for r in rows],
    })
