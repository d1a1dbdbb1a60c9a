"""The 68-point (iBUG / dlib) landmark scheme: parts, line segments, horizontal-flip permutation.

Index ranges (0-based), subject's right is image left in a frontal face:
jaw 0-16, right brow 17-21, left brow 22-26, nose bridge 27-30, nostrils 31-35,
right eye 36-41, left eye 42-47, outer lips 48-59, inner lips 60-67.
"""
from __future__ import annotations

import numpy as np

# part name -> (indices, closed polyline?)
PARTS: dict[str, tuple[tuple[int, ...], bool]] = {
    "jaw": (tuple(range(0, 17)), False),
    "right_brow": (tuple(range(17, 22)), False),
    "left_brow": (tuple(range(22, 27)), False),
    "nose_bridge": (tuple(range(27, 31)), False),
    "nostrils": ((30, 31, 32, 33, 34, 35, 30), False),
    "right_eye": (tuple(range(36, 42)), True),
    "left_eye": (tuple(range(42, 48)), True),
    "outer_lips": (tuple(range(48, 60)), True),
    "inner_lips": (tuple(range(60, 68)), True),
}

# heatmap channels "per part": the 7 regions a face-expression model cares about
HEATMAP_PARTS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose": tuple(range(27, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "mouth": tuple(range(48, 68)),
}


def _segments() -> np.ndarray:
    segs = []
    for idx, closed in PARTS.values():
        chain = list(idx) + ([idx[0]] if closed else [])
        segs += list(zip(chain[:-1], chain[1:]))
    return np.asarray(segs, dtype=np.int64)


SEGMENTS: np.ndarray = _segments()  # [S, 2] landmark index pairs drawn as lines (S = 64)

# FLIP_PERM[i] = index of the landmark that lands where landmark i was after a horizontal flip
_PAIRS = (
    [(i, 16 - i) for i in range(8)]
    + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]
    + [(60, 64), (61, 63), (65, 67)]
)


def _flip_perm() -> np.ndarray:
    perm = np.arange(68)
    for a, b in _PAIRS:
        perm[a], perm[b] = b, a
    return perm


FLIP_PERM: np.ndarray = _flip_perm()  # [68]


def flip_landmarks(landmarks: np.ndarray, width: float) -> np.ndarray:
    """Landmarks of the horizontally flipped image: ``x -> width - 1 - x``, then re-index.

    ``landmarks`` is ``[..., 68, 2]`` pixels (x, y) in an image ``width`` pixels wide, with pixel
    centres at integer coordinates.
    """
    out = np.array(landmarks, dtype=np.float32, copy=True)
    out[..., 0] = (width - 1) - out[..., 0]
    return out[..., FLIP_PERM, :]


def inter_ocular(landmarks: np.ndarray) -> np.ndarray:
    """Outer-eye-corner distance (points 36 and 45), ``[..., 68, 2] -> [...]`` pixels."""
    return np.linalg.norm(landmarks[..., 36, :] - landmarks[..., 45, :], axis=-1)
