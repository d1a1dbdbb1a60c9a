"""Audits of a dataset split: does anything but the face predict the label?

``background_probe`` blanks each image's face (the convex hull of its 68 landmarks, dilated) and
matches every test image to its nearest training image (1-NN, most background pixels within the
noise of each other, `match_fraction`) on the pixels that are
left. If backgrounds, lighting or noise are shared between a tested image and its training
neighbours (e.g. one scene reused for every view of a frame), the match's label agrees with the
test label far above chance. With nothing outside the face tied to the label, agreement stays
within a binomial interval around chance, the label frequency of the training part.
"""
from __future__ import annotations

import cv2
import numpy as np


def face_masks(landmarks: np.ndarray, size: int, dilate_px: int) -> np.ndarray:
    """``[N, S, S]`` bool: inside the convex hull of each ``[68, 2]`` landmark set, grown by ``dilate_px``."""
    out = np.zeros((len(landmarks), size, size), np.uint8)
    kernel = np.ones((2 * dilate_px + 1, 2 * dilate_px + 1), np.uint8) if dilate_px > 0 else None
    for i, lm in enumerate(landmarks):
        hull = cv2.convexHull(np.round(lm).astype(np.int32))
        cv2.fillConvexPoly(out[i], hull, 1)
        if kernel is not None:
            out[i] = cv2.dilate(out[i], kernel)
    return out.astype(bool)


def match_fraction(query: np.ndarray, qmask: np.ndarray, ref: np.ndarray, rmask: np.ndarray,
                   tol: float, chunk: int = 8) -> np.ndarray:
    """``[Q, R]`` similarity: the fraction of pixels outside both faces whose values differ by at
    most ``tol`` grey levels in every channel.

    ``query`` ``[Q, P, C]`` and ``ref`` ``[R, P, C]`` uint8 pixels, ``qmask`` ``[Q, P]`` /
    ``rmask`` ``[R, P]`` True inside the face. A shared scene makes most jointly visible background
    pixels agree within the noise; independent scenes make few agree, whatever the person looks like.
    """
    import torch

    q, r = torch.from_numpy(query).to(torch.int16), torch.from_numpy(ref).to(torch.int16)  # grey levels
    qv, rv = torch.from_numpy(~qmask), torch.from_numpy(~rmask)  # visible background
    out = torch.empty(len(query), len(ref))
    for a in range(0, len(query), chunk):
        close = ((q[a:a + chunk, None] - r[None]).abs() <= tol).all(-1)  # [q, R, P]
        both = qv[a:a + chunk, None] & rv[None]
        out[a:a + chunk] = (close & both).sum(-1) / both.sum(-1).clamp(min=1)
    return out.numpy()


def background_probe(images: np.ndarray, landmarks: np.ndarray, labels: np.ndarray, train: np.ndarray,
                     test: np.ndarray, dilate_px: int = 2, tol: float = 10.0, alpha: float = 0.001) -> dict:
    """1-NN label agreement on background pixels only (similarity: ``match_fraction``), against chance.

    ``images`` ``[N, S, S, C]`` uint8, ``landmarks`` ``[N, 68, 2]`` pixels, ``labels`` ``[N]``;
    ``train`` / ``test`` row indices. Chance is ``p = sum_k f_train(k) f_test(k)``, the probability
    that a training image drawn at random shares a test image's label. ``upper`` is the one-sided
    ``1 - alpha`` binomial quantile of the agreement count under chance, as a fraction: agreement
    above it means the background predicts the label.
    """
    from scipy.stats import binom

    n_px = images.shape[1] * images.shape[2]
    masks = face_masks(landmarks, images.shape[1], dilate_px).reshape(len(images), n_px)
    px = images.reshape(len(images), n_px, -1)  # [N, P, C] uint8
    sim = match_fraction(px[test], masks[test], px[train], masks[train], tol)
    nn = train[sim.argmax(1)]
    agree = int((labels[nn] == labels[test]).sum())
    k = int(max(labels.max(), 0)) + 1
    f_train = np.bincount(labels[train], minlength=k) / max(len(train), 1)
    f_test = np.bincount(labels[test], minlength=k) / max(len(test), 1)
    p = float((f_train * f_test).sum())
    n = len(test)
    return {"agreement": agree / max(n, 1), "agree": agree, "n": n, "chance": p,
            "upper": float(binom.ppf(1 - alpha, n, p)) / max(n, 1), "alpha": alpha, "dilate_px": dilate_px}
