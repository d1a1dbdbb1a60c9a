"""Facial-expression classifiers: Fa-Net (LightCNN-9/29) and the paper baselines.

>>> from fape.classifiers import create_classifier, list_classifiers
>>> model = create_classifier("fa_net_lightcnn9", num_classes=7, in_chans=1, img_size=64)
>>> logits = model(x)                   # x in [-1, 1], [B, 1, 64, 64]
>>> emb = model.forward_features(x)     # [B, model.num_features]

See :mod:`fape.classifiers.models` for the model contract and
:mod:`fape.classifiers.pretrained` for where ``pretrained=True`` looks for weights.
"""

from .models import (
    ClassifierBase,
    create_classifier,
    get_pretrained_cfg,
    is_classifier,
    list_classifiers,
    register_classifier,
)
from . import baselines, lightcnn, mobilenet  # noqa: E402,F401  (register the architectures)
from .pretrained import LoadReport, load_pretrained

__all__ = [
    "ClassifierBase",
    "LoadReport",
    "create_classifier",
    "get_pretrained_cfg",
    "is_classifier",
    "list_classifiers",
    "load_pretrained",
    "register_classifier",
]
