"""Facial-expression classifiers: Fa-Net (LightCNN-9/29) and the paper baselines.

>>> from fape.classifiers import create_classifier, list_classifiers
>>> model = create_classifier("fa_net_lightcnn9", num_classes=7, in_chans=1, image_size=64)
>>> logits = model(x)                   # x in [-1, 1], [B, 1, 64, 64]
>>> emb = model.forward_features(x)     # [B, model.num_features]

See :mod:`fape.classifiers.models` for the model contract and
:mod:`fape.classifiers.pretrained` for where ``pretrained=True`` looks for weights.

The names below load on first use (PEP 562), so ``fape --help`` does not pay for torchvision.
"""

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


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'fape.classifiers' has no attribute {name!r}")
    from . import baselines, lightcnn, mobilenet, xception  # noqa: F401  (register the architectures)
    from . import models, pretrained

    return getattr(models, name, None) or getattr(pretrained, name)
