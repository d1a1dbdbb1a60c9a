"""Landmark alignment of the pose plans (landmark method ``align-centroid-scale``): a real landmark set in
the target pose moved onto the source face (``fape.gan.plans``, Jobs)."""
from __future__ import annotations

import numpy as np

ALIGN = "align-centroid-scale"


def align_landmarks(target_lm: np.ndarray, source_lm: np.ndarray) -> np.ndarray:
    """Move a target-pose landmark set onto the source face: ``[68, 2] -> [68, 2]``.

    Similarity transform without rotation: the output has the source's centroid and overall
    scale (RMS distance of the points to their centroid), and the target's shape. The overall
    scale (not the inter-ocular distance) is used because eye distance shrinks with yaw.
    """
    t = np.asarray(target_lm, np.float64)
    s = np.asarray(source_lm, np.float64)
    if t.shape != (68, 2) or s.shape != (68, 2):
        raise ValueError(f"align_landmarks needs two [68, 2] arrays, got {t.shape} and {s.shape}")
    if not (np.isfinite(t).all() and np.isfinite(s).all()):
        raise ValueError("align_landmarks: landmarks contain NaN/inf")
    ct, cs = t.mean(0), s.mean(0)
    st = np.sqrt(((t - ct) ** 2).sum(1).mean())
    ss = np.sqrt(((s - cs) ** 2).sum(1).mean())
    if st <= 1e-9 or ss <= 1e-9:
        raise ValueError("align_landmarks: degenerate landmark set (all points coincide)")
    return ((t - ct) * (ss / st) + cs).astype(np.float32)
