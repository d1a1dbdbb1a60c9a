"""LightCNN backbones for Fa-Net (F2ED paper Sec. 4.2; Wu et al., "A Light CNN for Deep Face
Representation with Noisy Labels").

Max-Feature-Map (MFM): a conv / linear layer with ``2*out`` outputs followed by the element-wise
max of its two channel halves. Module and parameter names follow the authors' released code
(``light_cnn.py``), so ``LightCNN_9Layers_checkpoint.pth.tar`` and
``LightCNN_29Layers_V2_checkpoint.pth.tar`` load after stripping ``module.`` (their ``fc2``
is our ``head`` and is skipped for a different class count).

* ``fa_net_lightcnn9``: conv1 5x5 MFM 48, pool, group(1x1, 3x3) 96, pool, group 192, pool,
  group 128, group 128, pool, fc1 MFM 256 (the 256-d embedding), dropout, head.
* ``fa_net_lightcnn29`` (LightCNN-29 v2): conv1 MFM 48, pool, 1 res block, group 96, pool,
  2 res blocks, group 192, pool, 3 res blocks, group 128, 4 res blocks, group 128, pool, fc 256
  (plain linear, the embedding), dropout, head. Pools are ``max + avg`` as in v2.

Input: the released weights take 128x128 gray images in [0, 1], so the first op maps [-1, 1] to
[0, 1]. Other sizes (64, 48, ...) work: after the four /2 pools the flatten size is computed
(``128 * (image_size/16)**2``; pools round up), so fc1 / fc is only loadable from the 128x128
checkpoints at ``image_size=128`` (it is skipped and reported otherwise). ``in_chans=3`` makes a
3-channel conv1 (skipped when loading the gray checkpoints).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .models import ClassifierBase, InputNorm, probe_shape, register_classifier

__all__ = ["MFM", "Group", "ResBlock", "LightCNN9", "LightCNN29"]


class MFM(nn.Module):
    """Max-Feature-Map: ``filter`` outputs ``2*out_channels``; keep the max of the two halves."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, linear: bool = False, norm: str = "none"):
        super().__init__()
        self.out_channels = out_channels
        if linear:
            self.filter = nn.Linear(in_channels, 2 * out_channels)
        else:
            self.filter = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding)
        # norm="batch" (not in the paper): batch norm of the 2*out filter outputs, before the max.
        # From scratch, the paper's un-normalised net sits at ln(classes) for epochs at Adam 3e-3
        # on the synthetic set (docs/results.md); the released weights load with norm="none" only
        self.norm = nn.Identity() if norm == "none" else (nn.BatchNorm1d if linear else nn.BatchNorm2d)(2 * out_channels)
        # LightCNN has no normalisation layers: with PyTorch's default init the activations
        # halve at every layer (std 0.28 -> 0.02 over LightCNN-9) and SGD barely moves the
        # logits; He init keeps the scale (the max of two halves passes about half the energy, like ReLU)
        nn.init.kaiming_normal_(self.filter.weight, nonlinearity="relu")
        nn.init.zeros_(self.filter.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.norm(self.filter(x)), self.out_channels, dim=1)
        return torch.max(a, b)


class Group(nn.Module):
    """1x1 MFM (``conv_a``) then k x k MFM (``conv``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, norm: str = "none"):
        super().__init__()
        self.conv_a = MFM(in_channels, in_channels, 1, 1, 0, norm=norm)
        self.conv = MFM(in_channels, out_channels, kernel_size, stride, padding, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv_a(x))


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = MFM(channels, channels, 3, 1, 1)
        self.conv2 = MFM(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class _MaxAvgPool(nn.Module):
    """LightCNN-29 v2 pooling: ``max_pool2d(x, 2) + avg_pool2d(x, 2)`` (rounding up)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 2, ceil_mode=True) + F.avg_pool2d(x, 2, ceil_mode=True)


class LightCNN9(ClassifierBase):
    def __init__(self, num_classes: int, in_chans: int = 1, image_size: int = 64,
                 drop_rate: float = 0.5, embed_dim: int = 256, width: float = 1.0, norm: str = "none"):
        super().__init__(num_classes, in_chans, image_size, drop_rate)
        if norm not in ("none", "batch"):
            raise ValueError(f"LightCNN norm must be 'none' (the paper's) or 'batch', got {norm!r}")
        self.input_norm = InputNorm("unit", in_chans)
        # width < 1 narrows every layer (48/96/192/128/128 channels at 1.0, the paper's network):
        # for CPU-sized quick runs only; pretrained LightCNN weights need width 1.0
        c = lambda n: max(4, int(round(n * width)))  # noqa: E731
        self.features = nn.Sequential(
            MFM(in_chans, c(48), 5, 1, 2, norm=norm),
            nn.MaxPool2d(2, 2, ceil_mode=True),
            Group(c(48), c(96), 3, 1, 1, norm),
            nn.MaxPool2d(2, 2, ceil_mode=True),
            Group(c(96), c(192), 3, 1, 1, norm),
            nn.MaxPool2d(2, 2, ceil_mode=True),
            Group(c(192), c(128), 3, 1, 1, norm),
            Group(c(128), c(128), 3, 1, 1, norm),
            nn.MaxPool2d(2, 2, ceil_mode=True),
        )
        flat = int(torch.tensor(probe_shape(self.features, in_chans, image_size)[1:]).prod())
        self.fc1 = MFM(flat, embed_dim, linear=True, norm=norm)
        self.stages = {
            "conv1": ["features.0."],
            "group1": ["features.2."],
            "group2": ["features.4."],
            "group3": ["features.6."],
            "group4": ["features.7."],
            "fc1": ["fc1."],
        }
        self.num_features = embed_dim
        self._init_head("fa_net_lightcnn9")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.input_norm(x))
        return self.fc1(torch.flatten(x, 1))


class LightCNN29(ClassifierBase):
    def __init__(self, num_classes: int, in_chans: int = 1, image_size: int = 64,
                 drop_rate: float = 0.5, layers: tuple[int, ...] = (1, 2, 3, 4),
                 embed_dim: int = 256):
        super().__init__(num_classes, in_chans, image_size, drop_rate)
        self.input_norm = InputNorm("unit", in_chans)
        self.pool = _MaxAvgPool()
        self.conv1 = MFM(in_chans, 48, 5, 1, 2)
        self.block1 = nn.Sequential(*[ResBlock(48) for _ in range(layers[0])])
        self.group1 = Group(48, 96, 3, 1, 1)
        self.block2 = nn.Sequential(*[ResBlock(96) for _ in range(layers[1])])
        self.group2 = Group(96, 192, 3, 1, 1)
        self.block3 = nn.Sequential(*[ResBlock(192) for _ in range(layers[2])])
        self.group3 = Group(192, 128, 3, 1, 1)
        self.block4 = nn.Sequential(*[ResBlock(128) for _ in range(layers[3])])
        self.group4 = Group(128, 128, 3, 1, 1)
        flat = int(torch.tensor(probe_shape(self._body, in_chans, image_size)[1:]).prod())
        self.fc = nn.Linear(flat, embed_dim)
        self.stages = {"conv1": ["conv1."]}
        for i in range(1, 5):
            self.stages[f"block{i}"] = [f"block{i}."]
            self.stages[f"group{i}"] = [f"group{i}."]
        self.stages["fc"] = ["fc."]
        self.num_features = embed_dim
        self._init_head("fa_net_lightcnn29")

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv1(x))
        x = self.pool(self.group1(self.block1(x)))
        x = self.pool(self.group2(self.block2(x)))
        x = self.group3(self.block3(x))
        x = self.pool(self.group4(self.block4(x)))
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self._body(self.input_norm(x)), 1))


_LIGHTCNN_NOTE = "authors' release (github.com/AlfredXiangWu/LightCNN), 128x128 gray in [0, 1]"


@register_classifier(
    "fa_net_lightcnn9",
    pretrained_cfg={
        "source": "fape",
        "filenames": ["LightCNN_9Layers_checkpoint.pth.tar"],
        "key_map": [("fc2.", "head.")],
        "first_conv": "features.0.",
        "classifier": "head.",
        "input_size": 128,
        "note": _LIGHTCNN_NOTE,
    },
)
def fa_net_lightcnn9(num_classes: int, in_chans: int = 1, image_size: int = 64, **kwargs) -> LightCNN9:
    return LightCNN9(num_classes, in_chans, image_size, **kwargs)


@register_classifier(
    "fa_net_lightcnn29",
    pretrained_cfg={
        "source": "fape",
        "filenames": ["LightCNN_29Layers_V2_checkpoint.pth.tar"],
        "key_map": [("fc2.", "head.")],
        "first_conv": "conv1.",
        "classifier": "head.",
        "input_size": 128,
        "note": _LIGHTCNN_NOTE,
    },
)
def fa_net_lightcnn29(num_classes: int, in_chans: int = 1, image_size: int = 64, **kwargs) -> LightCNN29:
    return LightCNN29(num_classes, in_chans, image_size, **kwargs)
