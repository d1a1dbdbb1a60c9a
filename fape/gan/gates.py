"""Quality gates for synthesis: which generated faces are good enough to train on.

A gate is called once per batch by :func:`fape.gan.synthesize.synthesize` as
``gate(generated, source, target_landmarks, jobs) -> [B] bool`` (images ``[B, C, H, W]`` in
[-1, 1], landmarks ``[B, 68, 2]`` pixels) and the faces it rejects are not written.

``PoseGate`` keeps a face when the 68 points found on it lie near the pose it was asked for:
inter-ocular NME (``fape.data.landmarks68.nme``) between the landmarks dlib finds on the generated
image and the target landmarks at most ``max_nme``. A face drawn in the wrong pose, or so smeared
that no face shape can be fitted, is dropped; NME says nothing of expression or identity.

Gates are named by a short spec so configs and the command line can ask for them:
``pose:0.15`` (cropped mode, for aligned crops of 48-128 px) or ``pose:0.15:detect``.
"""
from __future__ import annotations

import numpy as np


class PoseGate:
    """Keep generated faces whose detected landmarks are within ``max_nme`` of the target."""

    def __init__(self, max_nme: float, mode: str = "cropped", upsample: int = 1):
        from fape.data.landmarks import MODES

        if not max_nme > 0:
            raise ValueError(f"pose gate: max_nme must be > 0, got {max_nme}")
        if mode not in MODES:
            raise ValueError(f"pose gate: mode must be one of {MODES}, got {mode!r}")
        self.max_nme, self.mode, self.upsample = float(max_nme), mode, int(upsample)
        self.seen: list[float] = []  # NME of every face judged (NaN: no face found), for the report

    def __call__(self, generated, source, target_landmarks, jobs) -> np.ndarray:
        from fape.data.dataset import to_uint8
        from fape.data.landmarks import landmarks_of_images
        from fape.data.landmarks68 import nme

        imgs = to_uint8(generated).permute(0, 2, 3, 1).cpu().numpy()  # [B, H, W, C] uint8
        err = nme(landmarks_of_images(imgs, self.mode, self.upsample), np.asarray(target_landmarks.cpu()))  # [B]
        self.seen.extend(err.tolist())
        return np.isfinite(err) & (err <= self.max_nme)

    def __repr__(self) -> str:  # the synthesis fingerprint: a resumed run must use the same gate
        return f"PoseGate(max_nme={self.max_nme:g}, mode={self.mode}, upsample={self.upsample})"


def parse_gate(spec: str | None):
    """``""``/None -> None; ``"pose:T"`` or ``"pose:T:MODE"`` -> :class:`PoseGate`."""
    if not spec:
        return None
    kind, *args = str(spec).split(":")
    if kind == "pose" and 1 <= len(args) <= 2:
        try:
            threshold = float(args[0])
        except ValueError:
            raise ValueError(f"gate {spec!r}: the NME threshold {args[0]!r} is not a number") from None
        return PoseGate(threshold, *args[1:])
    raise ValueError(f"unknown quality gate {spec!r}; expected pose:MAX_NME or pose:MAX_NME:detect|cropped")


__all__ = ["PoseGate", "parse_gate"]
