"""Pose accuracy: landmarks detected on generated images against the target pose's landmarks.

NME (inter-ocular normalised mean error) per image = mean_i |p_i - t_i| / |t_36 - t_45|, with p the
68 points found on the generated image and t the target landmarks (outer eye corners 36 and 45).
Detection reuses ``fape.data.landmarks`` (dlib HOG with upsampling, OpenCV Haar fallback, then the
68-point shape predictor, which upsamples small faces itself):

* ``mode="detect"`` (default): a face must be found; images without one count as detection
  failures and are left out of the NME. The failure rate is itself a quality signal.
* ``mode="cropped"``: the face box is the fixed inset of the whole image (``--assume-cropped`` of
  ``fape data landmarks``), for small aligned crops (e.g. 48-64 px) on which HOG rarely fires;
  only blank images fail. NME is then comparable only between runs using the same mode.
"""
from __future__ import annotations

import numpy as np

from fape.data.landmarks68 import inter_ocular

MODES = ("detect", "cropped")


def detect_landmarks(images: np.ndarray, mode: str = "detect", upsample: int = 2) -> np.ndarray:
    """uint8 ``[B, H, W, C]`` (or ``[B, C, H, W]`` tensors/arrays) -> ``[B, 68, 2]`` pixels, NaN where no face."""
    from fape.data.landmarks import DlibLandmarker

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    imgs = _hwc(images)
    lm = DlibLandmarker(assume_cropped=mode == "cropped", upsample=upsample)
    return np.stack([lm(im)[0] for im in imgs]).astype(np.float32)


def _hwc(images) -> np.ndarray:
    a = np.asarray(images.cpu() if hasattr(images, "cpu") else images)
    if a.dtype != np.uint8:
        raise ValueError("pose metrics take uint8 images")
    if a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)
    return a


def nme(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-image inter-ocular NME ``[B]`` (NaN where ``pred`` has NaN, i.e. no detection)."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    err = np.linalg.norm(pred - target, axis=-1).mean(-1)
    return err / np.maximum(inter_ocular(target), 1e-9)


def pose_accuracy(generated, target_landmarks, mode: str = "detect", upsample: int = 2) -> dict:
    """``{"nme", "nme_median", "failure_rate", "n", "detected", "mode", "per_image"}``."""
    pred = detect_landmarks(generated, mode, upsample)
    e = nme(pred, target_landmarks)
    ok = np.isfinite(e)
    return {"nme": float(e[ok].mean()) if ok.any() else float("nan"),
            "nme_median": float(np.median(e[ok])) if ok.any() else float("nan"),
            "failure_rate": float(1 - ok.mean()) if len(e) else float("nan"),
            "n": int(len(e)), "detected": int(ok.sum()), "mode": mode, "per_image": e}


__all__ = ["detect_landmarks", "nme", "pose_accuracy"]
