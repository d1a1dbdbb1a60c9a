"""Classifier registry, factory and the shared base class.

Every registered classifier follows one contract (see :class:`ClassifierBase`):

* input ``[B, in_chans, image_size, image_size]`` float in ``[-1, 1]`` (fape's data range); models
  built for pretrained weights convert internally as their first op (``input_norm``);
* ``forward_features(x) -> [B, num_features]`` is the penultimate embedding (center loss,
  domain FID, ...); ``forward(x) = head(dropout(forward_features(x)))``;
* ``num_classes``, ``num_features``, ``default_cfg``, ``pretrained_cfg``;
* ``get_classifier()`` / ``reset_classifier(num_classes)`` for transfer chains;
* ``freeze_stages(names)`` / ``stage_names()``: stages are named groups of parameter-name prefixes
  (e.g. AlexNet ``conv1``..``conv5``, ``fc6``, ``fc7``, ``head``).

Architectures live in :mod:`.lightcnn`, :mod:`.mobilenet`, :mod:`.xception` and :mod:`.baselines`; they register
themselves with :func:`register_classifier` when :mod:`fape.classifiers` is imported.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, Iterable

import torch
from torch import nn

__all__ = [
    "ClassifierBase",
    "InputNorm",
    "create_classifier",
    "list_classifiers",
    "register_classifier",
    "is_classifier",
    "get_pretrained_cfg",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_PRETRAINED_CFGS: dict[str, dict[str, Any]] = {}


def register_classifier(
    name: str | Callable[..., nn.Module] | None = None,
    fn: Callable[..., nn.Module] | None = None,
    *,
    pretrained_cfg: dict[str, Any] | None = None,
):
    """Register a model constructor ``fn(num_classes, in_chans, image_size, **kwargs) -> nn.Module``.

    Usable as ``@register_classifier``, ``@register_classifier("name", pretrained_cfg={...})`` or
    ``register_classifier("name", fn)``. ``pretrained_cfg`` describes where weights come from and
    how their keys map (see :mod:`fape.classifiers.pretrained`). Re-registering a name replaces it.
    """

    def _add(f: Callable[..., nn.Module], n: str | None) -> Callable[..., nn.Module]:
        key = n or f.__name__
        _REGISTRY[key] = f
        _PRETRAINED_CFGS[key] = dict(pretrained_cfg or {})
        return f

    if callable(name) and fn is None:  # bare @register_classifier
        return _add(name, None)
    if fn is not None:
        return _add(fn, name)  # type: ignore[arg-type]
    return lambda f: _add(f, name)  # type: ignore[arg-type]


def _load_architectures() -> None:
    """Import the modules whose decorators fill the registry (lazily: see the package docstring)."""
    from fape.classifiers import baselines, lightcnn, mobilenet, xception  # noqa: F401


def list_classifiers(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a shell wildcard (``"fa_net_*"``)."""
    _load_architectures()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def is_classifier(name: str) -> bool:
    _load_architectures()
    return name in _REGISTRY


def get_pretrained_cfg(name: str) -> dict[str, Any]:
    _load_architectures()
    if name not in _REGISTRY:
        raise _unknown(name)
    return dict(_PRETRAINED_CFGS[name])


def _unknown(name: str) -> KeyError:
    return KeyError(f"unknown classifier {name!r}; registered: {', '.join(list_classifiers())}")


def create_classifier(
    name: str,
    num_classes: int,
    in_chans: int = 3,
    image_size: int | None = None,
    pretrained: bool | str | Any = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered classifier.

    ``image_size=None`` uses the model's natural size (64 for all models except ``mobilenet_v1``,
    48). ``pretrained``: ``False`` random init; ``True`` the model's default weights file
    (torchvision's cache for ImageNet models, ``$FAPE_WEIGHTS`` / ``~/.cache/fape/weights``
    otherwise; never downloads); a path loads that file. The load report is stored in
    ``model.pretrained_report``.
    """
    _load_architectures()
    if name not in _REGISTRY:
        raise _unknown(name)
    kw = dict(kwargs)
    if pretrained is True:  # fail fast, before building a possibly large model
        from .pretrained import find_pretrained_file

        find_pretrained_file(_PRETRAINED_CFGS[name], kw, name)
    if image_size is not None:
        kw["image_size"] = int(image_size)
    model = _REGISTRY[name](num_classes=int(num_classes), in_chans=int(in_chans), **kw)
    model.pretrained_cfg = dict(_PRETRAINED_CFGS[name])
    model.default_cfg["name"] = name
    model.pretrained_report = None
    if pretrained:
        from .pretrained import load_pretrained

        load_pretrained(model, pretrained, model_name=name)
    return model


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------


class InputNorm(nn.Module):
    """Map fape's ``[-1, 1]`` input to what the network's (pretrained) weights expect.

    ``mode``: ``"none"`` identity; ``"unit"`` ``(x+1)/2`` (LightCNN's released weights take
    gray images in [0, 1]); ``"imagenet"`` ``(x+1)/2`` then ImageNet mean/std. ``repeat_gray``:
    a 1-channel input is repeated to 3 channels first (keeps a pretrained RGB first conv usable).
    Mean/std are non-persistent buffers, so state dicts are unaffected.
    """

    def __init__(self, mode: str = "none", in_chans: int = 3, repeat_gray: bool = False):
        super().__init__()
        if mode not in ("none", "unit", "imagenet"):
            raise ValueError(f"InputNorm mode must be none/unit/imagenet, got {mode!r}")
        self.mode = mode
        self.repeat_gray = bool(repeat_gray and in_chans == 1)
        chans = 3 if self.repeat_gray else in_chans
        if mode == "imagenet":
            if chans == 3:
                mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
            else:  # gray or exotic channel counts: channel-averaged statistics
                mean = torch.full((chans,), sum(IMAGENET_MEAN) / 3)
                std = torch.full((chans,), sum(IMAGENET_STD) / 3)
            self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat_gray and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.mode == "none":
            return x
        x = (x + 1.0) * 0.5
        if self.mode == "imagenet":
            x = (x - self.mean) / self.std
        return x

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, repeat_gray={self.repeat_gray}"


# ---------------------------------------------------------------------------------------------
# base class
# ---------------------------------------------------------------------------------------------


class ClassifierBase(nn.Module):
    """Shared head / freezing / config logic.

    Subclasses build their body, set ``self.num_features`` and ``self.stages`` (ordered
    ``{stage_name: [param-name prefixes]}``), implement :meth:`forward_features`, then call
    :meth:`_init_head`.
    """

    stages: dict[str, list[str]]

    def __init__(self, num_classes: int, in_chans: int, image_size: int, drop_rate: float):
        super().__init__()
        if num_classes < 0:
            raise ValueError("num_classes must be >= 0")
        self.num_classes = int(num_classes)
        self.in_chans = int(in_chans)
        self.image_size = int(image_size)
        self.drop_rate = float(drop_rate)
        self.num_features = 0
        self.stages = {}
        self.default_cfg: dict[str, Any] = {}
        self.pretrained_cfg: dict[str, Any] = {}
        self.pretrained_report = None

    def _init_head(self, name: str) -> None:
        self.head_drop = nn.Dropout(self.drop_rate)
        self.head = self._make_head(self.num_classes)
        self.stages["head"] = ["head."]
        self.default_cfg = {
            "name": name,
            "image_size": self.image_size,
            "in_chans": self.in_chans,
            "input_range": [-1, 1],
            "feature_dim": self.num_features,
            "num_classes": self.num_classes,
        }

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    # -- API ------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The final ``nn.Linear`` (``nn.Identity`` when ``num_classes == 0``)."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one for ``num_classes`` (0: identity)."""
        old = self.head
        self.num_classes = int(num_classes)
        self.head = self._make_head(self.num_classes)
        if isinstance(old, nn.Linear) and isinstance(self.head, nn.Linear):
            self.head.to(device=old.weight.device, dtype=old.weight.dtype)
        self.default_cfg["num_classes"] = self.num_classes

    def stage_names(self) -> list[str]:
        return list(self.stages)

    def _stage_params(self, names: Iterable[str]) -> list[tuple[str, nn.Parameter]]:
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self.stages]
        if unknown:
            raise KeyError(f"unknown stage(s) {unknown}; stages: {self.stage_names()}")
        prefixes = tuple(p for n in names for p in self.stages[n])
        return [(k, p) for k, p in self.named_parameters() if k.startswith(prefixes)]

    def freeze_stages(self, names: Iterable[str], freeze: bool = True) -> list[str]:
        """Set ``requires_grad = not freeze`` on every parameter of the named stages.

        Returns the affected parameter names. Only gradients are affected: BatchNorm running
        statistics in frozen stages still update in ``train()`` mode.
        """
        hit = self._stage_params(names)
        for _, p in hit:
            p.requires_grad_(not freeze)
        return [k for k, _ in hit]

    def unfreeze_stages(self, names: Iterable[str]) -> list[str]:
        return self.freeze_stages(names, freeze=False)

    def frozen_stages(self) -> list[str]:
        out = []
        for n in self.stages:
            params = [p for _, p in self._stage_params([n])]
            if params and not any(p.requires_grad for p in params):
                out.append(n)
        return out


def probe_shape(module: Callable[[torch.Tensor], torch.Tensor], in_chans: int, image_size: int) -> torch.Size:
    """Output shape of ``module`` (a module or a callable) on a ``[1, in_chans, S, S]`` zero
    tensor; raises ``ValueError`` when ``image_size`` is too small for the architecture."""
    is_mod = isinstance(module, nn.Module)
    training = module.training if is_mod else False
    try:
        if is_mod:
            module.eval()
        with torch.no_grad():
            out = module(torch.zeros(1, in_chans, image_size, image_size))
    except RuntimeError as exc:
        raise ValueError(f"image_size={image_size} is too small for this architecture: {exc}") from exc
    finally:
        if is_mod:
            module.train(training)
    if out.numel() == 0 or min(out.shape[1:]) < 1:
        raise ValueError(f"image_size={image_size} is too small for this architecture")
    return out.shape
