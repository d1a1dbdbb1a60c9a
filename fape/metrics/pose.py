"""Pose accuracy: landmarks detected on generated images against the target pose's landmarks.

NME (inter-ocular normalised mean error) per image = mean_i |p_i - t_i| / |t_36 - t_45|, with p the
68 points found on the generated image and t the target landmarks (outer eye corners 36 and 45).
Detection is ``fape.data.landmarks.landmarks_of_images`` (dlib HOG with upsampling, OpenCV Haar fallback, then the
68-point shape predictor, which upsamples small faces itself):

* ``mode="detect"`` (default): a face must be found; images without one count as detection
  failures and are left out of the NME. The failure rate is itself a quality signal.
* ``mode="cropped"``: the face box is the fixed inset of the whole image (``--assume-cropped`` of
  ``fape data landmarks``), for small aligned crops (e.g. 48-64 px) on which HOG rarely fires;
  only blank images fail. NME is then comparable only between runs using the same mode.
"""
from __future__ import annotations

import numpy as np

from fape.data.landmarks import landmarks_of_images
from fape.data.landmarks68 import nme


def pose_accuracy(generated, target_landmarks, mode: str = "detect", upsample: int = 2) -> dict:
    """``{"nme", "nme_median", "failure_rate", "n", "detected", "mode", "per_image"}``."""
    pred = landmarks_of_images(generated, mode, upsample)  # [B, 68, 2] pixels, NaN: no face
    e = nme(pred, target_landmarks)
    ok = np.isfinite(e)
    return {"nme": float(e[ok].mean()) if ok.any() else float("nan"),
            "nme_median": float(np.median(e[ok])) if ok.any() else float("nan"),
            "failure_rate": float(1 - ok.mean()) if len(e) else float("nan"),
            "n": int(len(e)), "detected": int(ok.sum()), "mode": mode, "per_image": e}


__all__ = ["pose_accuracy"]
