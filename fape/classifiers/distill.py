"""The frozen teacher of a distillation run (``ClfConfig.distill``, Hinton et al. 2015).

The teacher is a trained classifier, loaded like ``model.init_from`` (a run folder or a packaged
checkpoint such as ``checkpoints/fanet_fer2013_48``). It sees the student's own batch after
augmentation and mixup, converted to its input recipe (``state.json``'s ``preprocess``: size,
channels, value range), in eval mode and without gradients. Training images come already
cropped by the dataset, so a teacher trained on another crop (``eye`` against ``square``) sees
faces framed differently from its training images; that is warned about, not refused.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fape.classifiers.config import DistillConfig
from fape.classifiers.io import load_run
from fape.data.preprocess import Preprocess, to_model_input
from fape.errors import ConfigError
from fape.utils.io import sha256_file


@dataclass
class Teacher:
    model: nn.Module  # eval mode, parameters frozen, on the training device
    prep: Preprocess  # the teacher's own input recipe
    path: str  # distill.teacher as configured
    checkpoint: Path  # the checkpoint folder the weights came from
    sha256: str  # of the checkpoint's model.safetensors

    def record(self) -> dict:
        """What a checkpoint's ``state.json`` keeps of the teacher (a resume checks the sha256)."""
        return {"teacher": self.path, "checkpoint": str(self.checkpoint.resolve()), "sha256": self.sha256}

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Student batch float ``[B, C, H, W]`` in [-1, 1] -> teacher logits float32 ``[B, K]``."""
        return self.model(teacher_input(x, self.prep)).float()


def teacher_input(x: torch.Tensor, prep: Preprocess) -> torch.Tensor:
    """A float batch in [-1, 1] at the student's size and channels -> the teacher's input: luma or
    gray-to-RGB, antialiased bilinear resize to ``prep.image_size``, then ``prep.value_range``."""
    x = to_model_input(x, prep.image_size, prep.channels)
    lo, hi = prep.value_range
    if (lo, hi) != (-1.0, 1.0):
        x = (x + 1.0) * 0.5 * (hi - lo) + lo
    return x


def teacher_path(teacher: str) -> Path:
    """``teacher`` itself when it exists; else a relative ``checkpoints/NAME`` is the model shipped
    in the package (``fape/checkpoints/NAME``), so the preset works outside a checkout too."""
    from importlib.resources import files

    p = Path(teacher)
    if p.exists() or p.is_absolute() or len(p.parts) != 2 or p.parts[0] != "checkpoints":
        return p
    shipped = Path(str(files("fape") / "checkpoints" / p.parts[1]))
    return shipped if shipped.exists() else p


def load_teacher(dc: DistillConfig, label_names: list[str], student_run: Path, student_prep: dict,
                 device) -> Teacher | None:
    """The frozen teacher of ``dc`` (None when ``dc.teacher`` is ""). Its label names must equal the
    student's, in the same order, else ``ConfigError`` naming both runs."""
    if not dc.teacher:
        return None
    try:
        loaded = load_run(teacher_path(dc.teacher), device)
    except FileNotFoundError as e:
        raise ConfigError(f"distill.teacher: {e}") from None
    if loaded.label_names != list(label_names):
        raise ConfigError(f"distill.teacher {dc.teacher} predicts {loaded.label_names}, but the student run "
                          f"{student_run} has {list(label_names)}: the label names must be equal, in order")
    prep = loaded.preprocess
    if prep.crop != student_prep.get("crop"):
        warnings.warn(f"distill.teacher {dc.teacher} was trained on {prep.crop!r} crops, the student's data has "
                      f"{student_prep.get('crop')!r} crops: the teacher sees faces framed differently", stacklevel=2)
    loaded.model.requires_grad_(False)
    return Teacher(loaded.model, prep, dc.teacher, loaded.checkpoint,
                   sha256_file(loaded.checkpoint / "model.safetensors"))


def check_resumed_teacher(teacher: Teacher | None, state: dict, ckpt: Path) -> None:
    """A resumed run must distil from the same teacher weights its checkpoint was made with."""
    before = (state.get("distill") or {}).get("sha256")
    now = teacher.sha256 if teacher else None
    if before != now:
        raise ConfigError(f"distill.teacher: {ckpt} was made with teacher weights sha256 {before}, now "
                          f"{now} ({teacher.checkpoint if teacher else 'no teacher'}): start a new run")
