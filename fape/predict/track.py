"""Carrying faces between detections, so the detector can run on every N-th frame only.

On a detection frame, detections are matched to existing tracks greedily by IoU (a match keeps
the track's id and smoothed probabilities). In between, each track's box is moved by normalised
cross-correlation of its last appearance in a window around it; the match runs at a reduced
scale (template ~``TEMPLATE_SIDE`` px) so following a face costs well under a millisecond. A
track whose best correlation falls under ``min_score`` is dropped until the next detection.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

TEMPLATE_SIDE = 24  # px: template side after downscaling
SEARCH = 0.35  # search window margin, as a fraction of the box side on each side


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``[A, 4]`` and ``[B, 4]`` boxes (x0, y0, x1, y1) -> ``[A, B]``."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match(a: np.ndarray, b: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of boxes by decreasing IoU (at least ``min_iou``)."""
    m = iou(a, b)
    pairs = []
    while m.size and m.max() >= min_iou:
        i, j = np.unravel_index(np.argmax(m), m.shape)
        pairs.append((int(i), int(j)))
        m[i, :] = -1
        m[:, j] = -1
    return pairs


@dataclass
class Track:
    id: int
    box: np.ndarray  # [4] float32 frame pixels
    template: np.ndarray  # uint8 gray appearance at the last update, downscaled by ``scale``
    scale: float
    probs: np.ndarray | None = None  # smoothed class probabilities
    score: float = 1.0  # last correlation (1 on detection frames)


def _template(gray: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
    x0, y0, x1, y1 = _clip(box, gray.shape)
    scale = min(1.0, TEMPLATE_SIDE / max(1, max(x1 - x0, y1 - y0)))
    patch = gray[y0:y1, x0:x1]
    if scale < 1:
        patch = cv2.resize(patch, (max(4, round(patch.shape[1] * scale)), max(4, round(patch.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    return patch, scale


def _clip(box: np.ndarray, shape) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    x0, y0 = int(max(0, np.floor(box[0]))), int(max(0, np.floor(box[1])))
    x1, y1 = int(min(w, np.ceil(box[2]))), int(min(h, np.ceil(box[3])))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


@dataclass
class Tracker:
    min_iou: float = 0.3
    min_score: float = 0.5
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 0

    def update(self, gray: np.ndarray, boxes: np.ndarray) -> list[Track]:
        """A detection frame: the tracks become exactly ``boxes``; matched ones keep their ids."""
        old = self.tracks
        pairs = dict((j, i) for i, j in match(np.array([t.box for t in old]).reshape(-1, 4), boxes, self.min_iou))
        new = []
        for j, box in enumerate(boxes):
            tmpl, scale = _template(gray, box)
            if j in pairs:
                t = old[pairs[j]]
                t.box, t.template, t.scale, t.score = box.astype(np.float32), tmpl, scale, 1.0
            else:
                t = Track(self.next_id, box.astype(np.float32), tmpl, scale)
                self.next_id += 1
            new.append(t)
        self.tracks = new
        return new

    def follow(self, gray: np.ndarray) -> list[Track]:
        """A frame without detection: move each track to its best match near its last box."""
        kept = []
        for t in self.tracks:
            w, h = t.box[2] - t.box[0], t.box[3] - t.box[1]
            win = np.array([t.box[0] - SEARCH * w, t.box[1] - SEARCH * h, t.box[2] + SEARCH * w,
                            t.box[3] + SEARCH * h])
            x0, y0, x1, y1 = _clip(win, gray.shape)
            region = gray[y0:y1, x0:x1]
            rw, rh = max(1, round(region.shape[1] * t.scale)), max(1, round(region.shape[0] * t.scale))
            if rw < t.template.shape[1] or rh < t.template.shape[0]:
                continue  # the face left the frame
            small = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA) if t.scale < 1 else region
            scores = cv2.matchTemplate(small, t.template, cv2.TM_CCOEFF_NORMED)
            _, best, _, (bx, by) = cv2.minMaxLoc(scores)
            if not np.isfinite(best) or best < self.min_score:
                continue
            nx0, ny0 = x0 + bx / t.scale, y0 + by / t.scale
            t.box = np.array([nx0, ny0, nx0 + w, ny0 + h], np.float32)
            t.score = float(best)
            kept.append(t)
        self.tracks = kept
        return kept
