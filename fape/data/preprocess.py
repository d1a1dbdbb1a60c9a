"""Face crops for a trained classifier, made exactly as its training images were (shared by training,
``fape predict`` and GaMo, so it lives in the data room).

The recipe travels with the model: ``preprocess_spec`` is computed at training time from the
dataset's import options and saved in every checkpoint's ``state.json`` (``"preprocess"``), so
``fape predict`` never asks the user to re-type a size, a channel count or a crop.

Crops: ``square`` is the importer's ``--crop`` (a square of ``enlarge`` x the detected box's
longest side, centred on it); ``eye`` is the eye-distance crop (dlib landmarks in the box). For
datasets that came already cropped (FER2013), the square crop of an OpenCV Haar box reproduces
their framing at ``enlarge`` = 1.2: over 1,500 FER2013 training images upsampled 4x (846 with
exactly one Haar face), image side / box side has median 1.200 (IQR 1.164-1.289) and the box
centre lies a median 2.1% of the side from the image centre (``tools/calibrate_crop.py``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from fape.data.dataset import convert_channels, resize_image, to_float
from fape.data.format import crop_of_origin
from fape.data.faces import (CROP_ENLARGE, crop_face, eye_crop_transform, landmarks_in_box, predictor_box,
                             square_crop_transform, warp_crop)

CROPS = ("square", "eye")


@dataclass(frozen=True)
class Preprocess:
    image_size: int  # model input side, pixels
    channels: int  # 1 (ITU-R 601 luma, as the dataset cache) or 3 (RGB)
    crop: str = "square"
    enlarge: float = CROP_ENLARGE  # square crop side / longest side of the detected box
    value_range: tuple[float, float] = (-1.0, 1.0)  # uint8 0..255 mapped linearly onto it

    def to_dict(self) -> dict:
        d = asdict(self)
        d["value_range"] = list(self.value_range)
        return d


def preprocess_spec(image_size: int, channels: int, origin: dict | None) -> dict:
    """The recipe for a model trained at ``image_size``/``channels`` on a dataset imported with
    ``origin`` (``dataset.json``'s): the importer's crop when it cropped, else the square crop
    calibrated on pre-cropped FER2013 (the module docstring)."""
    return Preprocess(int(image_size), int(channels), crop_of_origin(origin), CROP_ENLARGE).to_dict()



def from_state(state: dict) -> Preprocess:
    """The recipe saved in a checkpoint's ``state.json``; checkpoints older than the field fall
    back to the config's size/channels with the default square crop."""
    spec = state.get("preprocess")
    if spec is None:
        data = state["config"]["data"]
        spec = preprocess_spec(data["image_size"], data["channels"], None)
    spec = dict(spec)
    if spec.get("crop") not in CROPS:
        raise ValueError(f"unknown crop {spec.get('crop')!r} in the checkpoint's preprocess (known: {CROPS})")
    spec["value_range"] = tuple(spec.get("value_range", (-1.0, 1.0)))
    return Preprocess(**spec)


def crop_faces(frame: np.ndarray, boxes: np.ndarray, spec: Preprocess, detector: str = "haar") -> np.ndarray:
    """uint8 RGB frame ``[H, W, 3]`` and ``[K, 4]`` boxes (x0, y0, x1, y1 pixels) found by
    ``detector`` -> uint8 ``[K, S, S, C]`` model-ready crops: crop, resize (area when shrinking,
    bilinear when growing), then channels, in the dataset cache's order (``fape.data.dataset.decode``)."""
    s = spec.image_size
    out = np.empty((len(boxes), s, s, spec.channels), np.uint8)
    for k, box in enumerate(boxes):
        if spec.crop == "eye":
            matrix, size = eye_crop_transform(landmarks_in_box(frame, predictor_box(box, detector)))
        else:
            matrix, size = square_crop_transform(box, spec.enlarge)
        face = warp_crop(frame, matrix, size)  # [h, w, 3]
        out[k] = convert_channels(resize_image(face, (s, s)), spec.channels)
    return out


def precropped_faces(faces: np.ndarray, spec: Preprocess) -> tuple[np.ndarray, np.ndarray]:
    """Faces that are already crops (FER2013's 48x48), uint8 ``[N, H, W, C]`` -> model-ready uint8
    ``[N, S, S, C]`` and a bool ``[N]`` of which ones got the model's crop. ``square``: resized as
    they are (the square crop was calibrated to reproduce their framing). ``eye``: the eye-distance
    crop from dlib landmarks in the fixed inset (``fape data import --eye-crop --assume-cropped``, the
    way such a model's training images were made); a blank face keeps its whole-image resize."""
    s = spec.image_size
    out = np.empty((len(faces), s, s, spec.channels), np.uint8)
    done = np.ones(len(faces), bool)
    for k, face in enumerate(faces):
        if spec.crop == "eye":
            crop = crop_face(face, "dlib", eye_crop=True, assume_cropped=True)
            done[k] = crop is not None
            face = face if crop is None else crop
        out[k] = convert_channels(resize_image(face, (s, s)), spec.channels)
    return out, done


def to_input(crops: np.ndarray, spec: Preprocess) -> torch.Tensor:
    """uint8 ``[K, S, S, C]`` -> float32 ``[K, C, S, S]`` in ``spec.value_range``."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2)
    if tuple(spec.value_range) == (-1.0, 1.0):
        return to_float(x).contiguous()
    lo, hi = spec.value_range
    return (x.float() / 255.0 * (hi - lo) + lo).contiguous()


def to_model_input(x: torch.Tensor, size: int | tuple[int, int] | None, channels: int) -> torch.Tensor:
    """A batch ``[B, C, H, W]`` (uint8 in [0, 255], or float in [-1, 1]) -> float32 ``[B, channels,
    size, size]`` in [-1, 1], the classifiers' input: RGB to ITU-R 601 luma (as the dataset's own
    gray conversion) or gray repeated to RGB, then an antialiased bilinear resize when the side
    differs (``size=None`` keeps it). Differentiable for float input (GAN feature losses use it)."""
    import torch.nn.functional as F

    x = to_float(x) if x.dtype == torch.uint8 else x.to(torch.float32)
    if channels == 1 and x.shape[1] == 3:
        x = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    elif channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if size is not None:
        size = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x
