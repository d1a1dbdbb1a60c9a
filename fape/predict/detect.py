"""Face detection for ``fape predict``, with the two real-time options that do not change the
detector: detection on a downscaled frame, and a minimum face size (both cut the image pyramid
the detector scans). Boxes always come back in full-frame pixels."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fape.errors import UserError
from fape.data.faces import METHODS, detect_faces, to_gray


@dataclass(frozen=True)
class DetectOptions:
    method: str = "haar"  # haar | dlib | mtcnn
    scale: float = 1.0  # detect on the frame resized by this factor (0.5: a quarter of the pixels)
    min_face: int = 48  # px in the full frame; smaller faces would be upsampled into the model input

    def check(self) -> "DetectOptions":
        if self.method not in METHODS:
            raise UserError(f"unknown detector {self.method!r}; choose one of {', '.join(METHODS)}")
        if not 0 < self.scale <= 1:
            raise UserError(f"--detect-scale must be in (0, 1], got {self.scale}")
        if self.min_face < 1:
            raise UserError(f"--min-face must be a positive number of pixels, got {self.min_face}")
        return self


def detect(frame: np.ndarray, gray: np.ndarray, opts: DetectOptions) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` frame and its ``[H, W]`` gray -> ``[K, 4]`` float32 boxes
    (x0, y0, x1, y1) in frame pixels, largest first."""
    src = frame if opts.method == "mtcnn" else gray  # Haar and HOG work on gray
    if opts.scale != 1.0:
        h, w = gray.shape
        size = (max(1, round(w * opts.scale)), max(1, round(h * opts.scale)))
        src = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
    min_small = max(8, int(round(opts.min_face * opts.scale)))  # Haar's window is 24 px; below ~8 nothing fits
    boxes = detect_faces(src, opts.method, min_size=min_small)
    if opts.scale != 1.0:
        boxes = boxes / np.float32(opts.scale)
    return boxes.astype(np.float32)


def gray_of(frame: np.ndarray) -> np.ndarray:
    return to_gray(frame)
