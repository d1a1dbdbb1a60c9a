"""Tiny fape datasets written by the tests themselves (no real data needed)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from fape.data.format import DatasetInfo, save_image, write_index
from fape.data.landmarks68 import template_face

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout; FAPE_SHARED_DATA points elsewhere (e.g. from a git worktree)
SHARED_DATA = Path(os.environ.get("FAPE_SHARED_DATA") or REPO.parent / "shared" / "data")


def make_multipose(root: Path, subjects=2, expressions=3, frames=2, poses=("half_left", "front", "half_right"),
                   size=32, channels=3, seed=0, missing_landmarks=()) -> Path:
    """A grid dataset: every subject x expression x frame in every pose, random pixels,
    template landmarks shifted per pose (so pose partners differ)."""
    rng = np.random.default_rng(seed)
    rows, lms = [], []
    labels = [f"expr{e}" for e in range(expressions)]
    for s in range(subjects):
        for e in range(expressions):
            for f in range(frames):
                for pi, pose in enumerate(poses):
                    path = f"images/s{s}/e{e}/f{f}_{pose}.png"
                    save_image(root / path, rng.integers(0, 256, (size, size, channels), dtype=np.uint8))
                    rows.append(dict(path=path, subject=f"s{s}", expression=labels[e], label=e, pose=pose,
                                     sequence=f"s{s}_e{e}", frame=f, source="fixture"))
                    lms.append(template_face(size) + [2.0 * (pi - 1), 0.0])
    lm = np.asarray(lms, np.float32)
    ok = np.ones(len(rows), bool)
    for i in missing_landmarks:
        lm[i], ok[i] = np.nan, False
    info = DatasetInfo(name=root.name, label_names=labels, pose_names=list(poses), image_size=[size, size],
                       channels=channels, origin={"kind": "test-fixture"}, landmarks_source="test-fixture")
    write_index(root, pd.DataFrame(rows), info, lm, ok)
    return root
