"""Quality gates for synthesis: which generated faces are good enough to train on.

A gate is called once per batch by :func:`fape.gan.synthesize.synthesize` as
``gate(generated, source, target_landmarks, jobs) -> [B] bool`` (images ``[B, C, H, W]`` in
[-1, 1], landmarks ``[B, 68, 2]`` pixels, ``jobs`` the batch's manifest records: ``expression``
is the drawn (target) expression's name, ``label`` its id in the data) and the faces it rejects are
not written. A gate may also have ``check_labels(names)``, which synthesis calls once with the
drawn expression names before any image is made, so a judge that cannot read one fails first.

``PoseGate`` keeps a face when the 68 points found on it lie near the pose it was asked for:
inter-ocular NME (``fape.data.landmarks68.nme``) between the landmarks dlib finds on the generated
image and the target landmarks at most ``max_nme``. A face drawn in the wrong pose, or so smeared
that no face shape can be fitted, is dropped; NME says nothing of expression or identity.

``ExpressionGate`` keeps a face when a judge classifier (a finished ``fape clf train`` run, trained
on real rows only) reads it as the drawn expression. With softmax probabilities ``p`` over the
judge's K classes and ``d`` the drawn class (matched to the judge's labels by name, so a judge whose
label order differs from the data's reads the same classes; a drawn expression the judge does not
know is an error naming it), the face is kept when

* ``argmax_k p_k = d`` (default), or
* ``p_d >= min_prob`` (``min_prob`` in (0, 1]): above 0.5 it implies the argmax and is stricter;
  below, it also keeps faces whose drawn class is likely but not the judge's first choice.

The judge sees the face as written to disk (uint8) and as a classifier trained on the synthesized
set would load it: the dataset cache's resize (area when shrinking, bilinear when growing) and
channel conversion (``fape.data.dataset.decode``), then the value range of the judge's checkpoint
(``fape.data.preprocess.from_state``). No crop: generated faces are already framed as the data's.
(``fape metrics synth`` reads a written set at 64 px first, so its agreement can differ from the
gate's decisions for faces near a class boundary.) The judge runs on the CPU, in eval mode.
On JAFFE and CK+48 a classifier trained on a fold's real training rows reads only 5-24% of
expression-transfer faces as the drawn expression (docs/results.md): expect most faces dropped.

Gates are named by a short spec so configs and the command line can ask for them:

* ``pose:0.15`` (cropped mode, for aligned crops of 48-128 px) or ``pose:0.15:detect``;
* ``expression:RUN`` (argmax rule) or ``expression:RUN:0.5`` (``min_prob``); RUN is a classifier
  run folder (its ``best`` checkpoint) or a checkpoint folder, and may not contain ``:`` or ``+``;
* ``A+B``: every gate of the list; a face is kept only when all keep it (each sees every face).

In ``fape experiment``, ``expression:@NAME`` names the experiment's own cell of setting NAME for
the same task, fold and seed as the judge (``fape.experiment``); :func:`judge_settings` lists those
names and ``parse_gate(spec, judges={NAME: run})`` resolves them.

Every gate's ``repr`` goes into the synthesis fingerprint, so a resumed synthesis with another gate
(for the expression gate: other judge weights, another rule) is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from fape.errors import ConfigError


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


class ExpressionGate:
    """Keep generated faces that a judge classifier reads as their drawn expression (module docstring)."""

    def __init__(self, run: str | Path, min_prob: float | None = None):
        from fape.classifiers.io import load_run
        from fape.utils.io import sha256_file

        if min_prob is not None and not 0 < min_prob <= 1:
            raise ValueError(f"expression gate: min_prob must be in (0, 1], got {min_prob}")
        loaded = load_run(run)  # FileNotFoundError naming the missing checkpoint
        self.run, self.checkpoint, self.min_prob = Path(run), loaded.checkpoint, min_prob
        self.model, self.label_names = loaded.model, list(loaded.label_names)
        self.prep = loaded.preprocess  # image_size, channels, value_range
        self.sha256 = sha256_file(loaded.checkpoint / "model.safetensors")
        self.seen: list[float] = []  # softmax probability of the drawn class, every face judged, for the report

    def check_labels(self, names) -> None:
        """Every drawn expression name must be one of the judge's classes."""
        unknown = sorted({str(n) for n in names} - set(self.label_names))
        if unknown:
            raise ValueError(f"expression gate {self.run}: the judge does not know the drawn expression(s) "
                             f"{unknown}; its classes are {self.label_names}")

    def drawn_probability(self, generated, jobs) -> tuple[np.ndarray, np.ndarray]:
        """``([B] p of the drawn class, [B] True where the drawn class is the judge's argmax)``."""
        import torch

        from fape.data.dataset import convert_channels, resize_image, to_uint8
        from fape.data.format import labels_by_name
        from fape.data.preprocess import to_input

        drawn = [str(j["expression"]) for j in jobs]
        self.check_labels(drawn)
        cls = labels_by_name(drawn, self.label_names)  # [B] the judge's id of each drawn class
        s, c = self.prep.image_size, self.prep.channels
        imgs = to_uint8(generated).permute(0, 2, 3, 1).cpu().numpy()  # [B, H, W, C] uint8, as written
        crops = np.stack([convert_channels(resize_image(im, (s, s)), c) for im in imgs])  # [B, s, s, c], as decoded
        with torch.inference_mode():
            p = torch.softmax(self.model(to_input(crops, self.prep)).float(), 1).numpy()  # [B, K]
        rows = np.arange(len(cls))
        return p[rows, cls], p.argmax(1) == cls

    def __call__(self, generated, source, target_landmarks, jobs) -> np.ndarray:
        p_drawn, is_argmax = self.drawn_probability(generated, jobs)
        self.seen.extend(p_drawn.tolist())
        return is_argmax if self.min_prob is None else p_drawn >= self.min_prob

    def __repr__(self) -> str:  # the synthesis fingerprint: another judge or rule is another gate
        rule = "argmax" if self.min_prob is None else f"min_prob={self.min_prob:g}"
        return (f"ExpressionGate({rule}, model_sha256={self.sha256}, labels={self.label_names}, "
                f"input={self.prep.image_size}x{self.prep.image_size}x{self.prep.channels})")


class AllGates:
    """Several gates: a face is kept only when every gate keeps it (each gate judges every face,
    so each one's ``seen`` covers the whole set)."""

    def __init__(self, gates: list):
        self.gates = list(gates)

    def check_labels(self, names) -> None:
        for g in self.gates:
            if hasattr(g, "check_labels"):
                g.check_labels(names)

    def __call__(self, generated, source, target_landmarks, jobs) -> np.ndarray:
        keep = np.ones(len(jobs), bool)
        for g in self.gates:
            keep &= np.asarray(g(generated, source, target_landmarks, jobs), bool).reshape(-1)
        return keep

    def __repr__(self) -> str:
        return " + ".join(map(repr, self.gates))


# ---------------------------------------------------------------- specs
@dataclass(frozen=True)
class PoseSpec:
    max_nme: float
    mode: str = "cropped"


@dataclass(frozen=True)
class ExpressionSpec:
    run: str  # a run folder, or "@NAME": an experiment setting's cell
    min_prob: float | None = None

    @property
    def setting(self) -> str | None:
        """The experiment setting named by ``@NAME``, else None."""
        return self.run[1:] if self.run.startswith("@") else None


USAGE = "pose:MAX_NME[:detect|cropped], expression:RUN[:MIN_PROB], or several joined by +"


def _number(spec: str, what: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"gate {spec!r}: the {what} {text!r} is not a number") from None


def gate_specs(spec: str | None) -> list[PoseSpec | ExpressionSpec]:
    """The gates a spec asks for, checked for form but nothing loaded (``""``/None -> ``[]``)."""
    if not spec:
        return []
    out: list[PoseSpec | ExpressionSpec] = []
    for part in str(spec).split("+"):
        kind, *args = part.strip().split(":")
        if kind == "pose" and 1 <= len(args) <= 2:
            out.append(PoseSpec(_number(spec, "NME threshold", args[0]), *args[1:]))
        elif kind == "expression" and 1 <= len(args) <= 2 and args[0]:
            min_prob = _number(spec, "minimum probability", args[1]) if len(args) == 2 else None
            if min_prob is not None and not 0 < min_prob <= 1:
                raise ConfigError(f"gate {spec!r}: the minimum probability must be in (0, 1], got {args[1]}")
            if args[0] == "@":
                raise ConfigError(f"gate {spec!r}: '@' must be followed by an experiment setting's name")
            out.append(ExpressionSpec(args[0], min_prob))
        else:
            hint = " (a run or setting named there may not contain ':' or '+')" if "@" in spec or "/" in spec else ""
            raise ConfigError(f"unknown quality gate {part.strip()!r} in {spec!r}; expected {USAGE}{hint}")
    return out


def judge_settings(spec: str | None) -> list[str]:
    """The experiment settings a spec names as judges (``expression:@NAME``), in order, once each."""
    names = [g.setting for g in gate_specs(spec) if isinstance(g, ExpressionSpec) and g.setting]
    return list(dict.fromkeys(names))


def parse_gate(spec: str | None, judges: Mapping[str, str | Path] | None = None):
    """``""``/None -> None; ``"pose:T[:MODE]"`` -> :class:`PoseGate`; ``"expression:RUN[:P]"`` ->
    :class:`ExpressionGate`; ``"A+B"`` -> :class:`AllGates`. ``judges``: ``{setting name: run}``
    for ``expression:@NAME`` (``fape experiment``); outside an experiment ``@NAME`` is an error."""
    gates = []
    for g in gate_specs(spec):
        if isinstance(g, PoseSpec):
            gates.append(PoseGate(g.max_nme, g.mode))
            continue
        run = g.run
        if g.setting is not None:
            if judges is None or g.setting not in judges:
                raise ConfigError(f"gate {spec!r}: @{g.setting} names an experiment setting's cell, which only "
                                  f"`fape experiment` resolves" + (f" (known: {sorted(judges)})" if judges else ""))
            run = str(judges[g.setting])
        try:
            gates.append(ExpressionGate(run, g.min_prob))
        except FileNotFoundError as e:
            raise ConfigError(f"gate {spec!r}: the judge {run} has no checkpoint: {e}") from None
    if not gates:
        return None
    return gates[0] if len(gates) == 1 else AllGates(gates)


__all__ = ["AllGates", "ExpressionGate", "ExpressionSpec", "PoseGate", "PoseSpec", "gate_specs", "judge_settings",
           "parse_gate"]
