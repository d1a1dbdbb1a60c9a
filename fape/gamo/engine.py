"""One uploaded frame -> the largest face, the model's probabilities and its CNN features.

Detection, crop and normalisation are fape.predict's (the recipe saved with the model), so the
game sees faces exactly as ``fape predict`` does. Features are the model's ``forward_features``
(the layer before the classifier head): the customized version compares them by L2 distance
with the player's 7 templates (paper section 5.2).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fape.data.faces import CROP_ENLARGE, landmarks_in_box, square_crop_transform, warp_crop
from fape.predict.detect import DetectOptions, detect, gray_of
from fape.data.preprocess import crop_faces, to_input


@dataclass
class Face:
    box: np.ndarray  # [4] x0, y0, x1, y1 frame pixels
    probs: np.ndarray  # [K] softmax over the model's label names
    features: np.ndarray  # [D] float32, the model's penultimate features
    crop: np.ndarray  # uint8 [S, S, 3]: the square crop (CROP_ENLARGE x box) that is stored
    landmarks: np.ndarray | None  # [68, 2] float32 in crop pixels, None when dlib failed


class Engine:
    def __init__(self, model_path: str | Path, version: str, detect_opts: DetectOptions, crop_size: int = 96):
        from fape.classifiers.io import load_run

        loaded = load_run(model_path)
        self.model, self.label_names = loaded.model, loaded.label_names
        self.spec = loaded.preprocess
        self.version, self.path = version, Path(model_path)
        self.detect_opts, self.crop_size = detect_opts, crop_size
        self._lock = threading.Lock()  # one forward pass at a time: torch threads are shared anyway

    def analyze(self, frame: np.ndarray) -> Face | None:
        boxes = detect(frame, gray_of(frame), self.detect_opts)
        if len(boxes) == 0:
            return None
        box = boxes[0]
        x = to_input(crop_faces(frame, box[None], self.spec, self.detect_opts.method), self.spec)  # [1, C, S, S]
        with self._lock, torch.inference_mode():
            feats = self.model.forward_features(x)  # [1, D]
            probs = torch.softmax(self.model.forward_head(feats).float(), 1)[0].numpy()
        crop, lm = stored_crop(frame, box, self.crop_size)
        return Face(box, probs, feats[0].float().numpy(), crop, lm)

    def decide(self, face: Face, templates: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores to verify bombs against: the probabilities (general version), or with all 7
        templates, softmax(-L2 distance) over the templates (customized version) and the distances."""
        if len(templates) < len(self.label_names):
            return face.probs, None
        d = l2_distances(face.features, templates, self.label_names)
        return softmax(-d), d


def l2_distances(features: np.ndarray, templates: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """``[K]`` L2 distance from ``features [D]`` to each class's template, in ``names`` order."""
    t = np.stack([templates[n] for n in names])  # [K, D]
    return np.linalg.norm(t - features[None], axis=1)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def stored_crop(frame: np.ndarray, box: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The square crop the model's recipe uses, at ``size`` px RGB, and dlib landmarks in it."""
    import cv2

    matrix, (side, _) = square_crop_transform(box, CROP_ENLARGE)
    crop = cv2.resize(warp_crop(frame, matrix, (side, side)), (size, size),
                      interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    try:
        pts = landmarks_in_box(frame, box).astype(np.float64)  # [68, 2] frame pixels
    except Exception:  # dlib may fail on a degenerate box; the row is then stored with ok=False
        return crop, None
    # frame -> crop pixels (matrix is a translation) -> resized crop (pixel centres scale about -0.5)
    pts = pts @ matrix[:, :2].T + matrix[:, 2]
    pts = (pts + 0.5) * (size / side) - 0.5
    return crop, pts.astype(np.float32)
