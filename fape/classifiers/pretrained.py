"""Loading pretrained weights into fape classifiers. Never downloads anything.

``pretrained=True`` looks for the model's default file (``model.pretrained_cfg["filenames"]``):

* ImageNet models from torchvision (``alexnet``, ``vgg19``): torchvision's cache
  ``torch.hub.get_dir()/checkpoints/<file>`` (``$TORCH_HOME/hub/checkpoints``; file name from
  the torchvision weight enum URL, e.g. ``alexnet-owt-7be5be79.pth``, ``vgg19-dcbb9e9d.pth``),
  then ``$FAPE_WEIGHTS/<file>`` and ``~/.cache/fape/weights/<file>``;
* other models (LightCNN release checkpoints, ``mobilenet_v1_<width>.pth``,
  ``vgg_cnn_m_2048.pth``): ``$FAPE_WEIGHTS/<file>`` then ``~/.cache/fape/weights/<file>``.

``pretrained="path"`` loads that file (e.g. stage N of a transfer chain). ``.safetensors`` files
are read with safetensors, anything else with ``torch.load(weights_only=True)``. Checkpoint
dicts holding ``state_dict`` / ``model`` / ``model_state_dict`` are unwrapped; ``module.`` /
``model.`` prefixes are stripped; the model's ``key_map`` renames source layouts (e.g.
torchvision ``classifier.6`` -> ``head``).

Skipped (kept at their random init): the first conv when its shape differs (``in_chans``) or,
for ``pretrained=True``, when the model asks for it (``mobilenet_v1`` below 224x224, as in the
MobileNet-FER paper); the classifier head when ``num_classes`` differs; any other tensor whose
shape differs (e.g. AlexNet fc7 2048 vs 4096, LightCNN fc1 at image_size != 128), with a warning.
The :class:`LoadReport` is returned and stored as ``model.pretrained_report``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

log = logging.getLogger(__name__)

__all__ = [
    "LoadReport",
    "candidate_paths",
    "find_pretrained_file",
    "load_pretrained",
    "load_state_dict_file",
    "fape_weights_dirs",
]

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema")
_STRIP_PREFIXES = ("module.", "model.", "_orig_mod.")


@dataclass
class LoadReport:
    source: str
    loaded: list[str] = field(default_factory=list)
    skipped_first_conv: list[str] = field(default_factory=list)
    skipped_classifier: list[str] = field(default_factory=list)
    skipped_shape: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # model keys absent from the file
    unexpected: list[str] = field(default_factory=list)  # file keys the model lacks

    @property
    def skipped(self) -> list[str]:
        return self.skipped_first_conv + self.skipped_classifier + self.skipped_shape

    def summary(self) -> str:
        return (
            f"{self.source}: loaded {len(self.loaded)}, skipped first conv "
            f"{len(self.skipped_first_conv)}, skipped classifier {len(self.skipped_classifier)}, "
            f"skipped shape {self.skipped_shape}, missing {self.missing}, "
            f"unexpected {len(self.unexpected)}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# ---------------------------------------------------------------------------------------------
# locating files
# ---------------------------------------------------------------------------------------------


def fape_weights_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("FAPE_WEIGHTS")
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(Path.home() / ".cache" / "fape" / "weights")
    return dirs


def _format_fields(cfg: Mapping[str, Any], fmt: nn.Module | Mapping[str, Any] | None) -> dict[str, Any]:
    fields = dict(cfg.get("format_defaults", {}))
    if isinstance(fmt, nn.Module):
        fields.update(getattr(fmt, "default_cfg", {}) or {})
    elif fmt:
        fields.update(fmt)
    for k, default in dict(cfg.get("format_defaults", {})).items():  # width_mult=1 -> "1.0"
        try:
            fields[k] = type(default)(fields[k])
        except (TypeError, ValueError):
            pass
    return fields


def _filenames(cfg: Mapping[str, Any], fmt: nn.Module | Mapping[str, Any] | None) -> list[str]:
    names: list[str] = []
    tvw = cfg.get("torchvision_weights")
    if tvw:
        try:  # the exact file name torchvision's own loader would use
            import torchvision.models as tvm

            url = getattr(getattr(tvm, tvw[0]), tvw[1]).url
            names.append(url.rsplit("/", 1)[-1])
        except Exception:  # pragma: no cover - older/newer torchvision
            pass
    fields = _format_fields(cfg, fmt)
    for n in cfg.get("filenames", []):
        try:
            n = n.format(**fields)
        except (KeyError, IndexError, ValueError):
            pass
        if n not in names:
            names.append(n)
    return names


def candidate_paths(cfg: Mapping[str, Any], fmt: nn.Module | Mapping[str, Any] | None = None) -> list[Path]:
    """Every path ``pretrained=True`` looks at, in order. ``fmt``: the model (its
    ``default_cfg``) or the constructor kwargs, to fill file-name templates such as
    ``mobilenet_v1_{width_mult}.pth``."""
    names = _filenames(cfg, fmt)
    dirs: list[Path] = []
    if cfg.get("source") == "torchvision":
        dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    dirs += fape_weights_dirs()
    return [d / n for d in dirs for n in names]


def find_pretrained_file(
    cfg: Mapping[str, Any], fmt: nn.Module | Mapping[str, Any] | None = None, name: str = ""
) -> Path:
    if not cfg.get("filenames") and not cfg.get("torchvision_weights"):
        raise ValueError(
            f"classifier {name!r} has no default pretrained weights; pass pretrained='path/to/file'"
        )
    from fape.utils.weights import first_file

    how = (
        "copy the torchvision checkpoint into torch.hub.get_dir()/checkpoints (TORCH_HOME) or "
        if cfg.get("source") == "torchvision"
        else ""
    )
    note = f" ({cfg['note']})" if cfg.get("note") else ""
    return first_file(candidate_paths(cfg, fmt), f"pretrained weights for {name!r}{note}",
                      f"Provide the file: {how}put it in $FAPE_WEIGHTS or ~/.cache/fape/weights under that "
                      "name, or pass pretrained='path/to/file' (.pth/.pth.tar/.pt or .safetensors).")


# ---------------------------------------------------------------------------------------------
# reading and mapping
# ---------------------------------------------------------------------------------------------


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict (safetensors or ``torch.load(weights_only=True)``), unwrap checkpoint
    dicts and strip ``module.`` / ``model.`` prefixes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: Any = load_file(str(path), device="cpu")
    else:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(sd, Mapping):
        for k in _WRAPPER_KEYS:
            if k in sd and isinstance(sd[k], Mapping):
                sd = sd[k]
                break
    if not isinstance(sd, Mapping):
        raise ValueError(f"{path} does not hold a state dict (got {type(sd).__name__})")
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            continue
        for pre in _STRIP_PREFIXES:
            while k.startswith(pre):
                k = k[len(pre):]
        out[k] = v
    return out


def _map_key(k: str, key_map: list[tuple[str, str]], model_keys: set[str]) -> str:
    if k in model_keys:
        return k
    for src, dst in key_map:
        if k.startswith(src):
            return dst + k[len(src):]
    return k


def load_pretrained(
    model: nn.Module,
    pretrained: bool | str | os.PathLike = True,
    model_name: str | None = None,
    reinit_first_conv: bool | None = None,
) -> LoadReport:
    """Load ``pretrained`` (``True`` -> default file, or a path) into ``model`` non-strictly and
    return/store the :class:`LoadReport` (``model.pretrained_report``).

    ``reinit_first_conv``: skip the first conv even when shapes match. Default: the model's
    ``reinit_first_conv`` attribute for ``pretrained=True`` (ImageNet weights), False for paths.
    """
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    name = model_name or (getattr(model, "default_cfg", {}) or {}).get("name", type(model).__name__)
    if pretrained is True:
        path = find_pretrained_file(cfg, model, name)
        if reinit_first_conv is None:
            reinit_first_conv = bool(getattr(model, "reinit_first_conv", False))
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(
                f"pretrained weights file for {name!r} not found: {path} (nothing is downloaded)"
            )
        reinit_first_conv = bool(reinit_first_conv)
    src = load_state_dict_file(path)

    target = model.state_dict()
    model_keys = set(target)
    key_map = [tuple(m) for m in cfg.get("key_map", [])]
    first_conv = cfg.get("first_conv")
    classifier = cfg.get("classifier", "head.")
    report = LoadReport(source=str(path))
    to_load: dict[str, torch.Tensor] = {}
    for k, v in src.items():
        mk = _map_key(k, key_map, model_keys)
        if mk not in model_keys:
            report.unexpected.append(k)
            continue
        is_first = bool(first_conv) and mk.startswith(first_conv)
        is_head = bool(classifier) and mk.startswith(classifier)
        same = tuple(v.shape) == tuple(target[mk].shape)
        if is_first and (reinit_first_conv or not same):
            report.skipped_first_conv.append(mk)
        elif is_head and not same:
            report.skipped_classifier.append(mk)
        elif not same:
            report.skipped_shape.append(mk)
        else:
            to_load[mk] = v
    # a head whose weight was skipped must not keep a loaded bias (and vice versa)
    for group, bucket in ((classifier, report.skipped_classifier), (first_conv, report.skipped_first_conv)):
        if group and bucket:
            for mk in [m for m in to_load if m.startswith(group)]:
                bucket.append(mk)
                del to_load[mk]
    # a layer whose weight shape differs is re-initialised as a whole (no loaded bias alone)
    bad_layers = {k.rsplit(".", 1)[0] for k in report.skipped_shape}
    for mk in [m for m in to_load if m.rsplit(".", 1)[0] in bad_layers]:
        report.skipped_shape.append(mk)
        del to_load[mk]
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    done = set(to_load) | set(report.skipped)
    report.missing = sorted(k for k in model_keys if k not in done)
    if report.skipped_shape:
        log.warning("%s: shape mismatch, kept random init for %s", name, report.skipped_shape)
    log.info("pretrained %s", report.summary())
    model.pretrained_report = report
    return report
