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


def nme(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Inter-ocular normalised mean error ``[B, 68, 2], [B, 68, 2] -> [B]``:
    mean_i |p_i - t_i| / |t_36 - t_45| (NaN where ``pred`` has NaN, i.e. no detection)."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    err = np.linalg.norm(pred - target, axis=-1).mean(-1)
    return err / np.maximum(inter_ocular(target), 1e-9)


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int) -> np.ndarray:
    t = np.linspace(a0, a1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def template_face(size: float = 1.0) -> np.ndarray:
    """A schematic frontal 68-point face in a ``size`` x ``size`` image, ``[68, 2]`` pixels.

    Not a statistical mean shape: a parametric drawing (ellipse arcs) with the right topology
    and proportions, for tests, benchmarks and previews that need a face-like landmark set.
    """
    pi = np.pi
    pts = np.concatenate([
        _arc(0.5, 0.42, 0.36, 0.5, pi, 0, 17),  # jaw, chin at the bottom
        _arc(0.33, 0.36, 0.12, 0.05, pi, 2 * pi, 5),  # right brow (image left)
        _arc(0.67, 0.36, 0.12, 0.05, pi, 2 * pi, 5),  # left brow
        np.stack([np.full(4, 0.5), np.linspace(0.42, 0.58, 4)], 1),  # nose bridge
        _arc(0.5, 0.6, 0.07, 0.03, pi, 0, 5),  # nostrils
        _arc(0.34, 0.44, 0.075, 0.03, pi, 3 * pi, 7)[:6],  # right eye
        _arc(0.66, 0.44, 0.075, 0.03, pi, 3 * pi, 7)[:6],  # left eye
        _arc(0.5, 0.74, 0.15, 0.06, pi, 3 * pi, 13)[:12],  # outer lips
        _arc(0.5, 0.74, 0.10, 0.025, pi, 3 * pi, 9)[:8],  # inner lips
    ])
    return (pts * size - 0.5).astype(np.float32)  # symmetric about the centre pixel (size - 1) / 2
