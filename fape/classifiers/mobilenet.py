"""MobileNetV1 (Howard et al. 2017) as used by the real-time FER paper
(mobilenet-center-loss-realtime.txt): 48x48 input normalised to [-1, 1], depthwise separable
convolutions with a width multiplier, global average pooling -> the embedding used for center
loss (``1024 * width_mult`` dims), dropout 0.5, then the classification layer.

The input is mapped to ImageNet normalisation as the first op (so ImageNet-pretrained weights
see what they were trained on). The paper re-initialises the first conv when fine-tuning at
48x48 from 224x224 ImageNet weights; :mod:`.pretrained` does the same (``reinit_first_conv``
defaults to ``image_size != 224``).

State-dict layout (also what a pretrained file must use): ``stem.0`` conv 3x3/2, ``stem.1`` BN,
``blocks.{i}.dw`` / ``dw_bn`` / ``pw`` / ``pw_bn``, ``head``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .models import ClassifierBase, InputNorm, probe_shape, register_classifier

__all__ = ["MobileNetV1", "DepthwiseSeparable"]

# (out_channels, stride) of the 13 depthwise-separable blocks
_CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [
    (1024, 2),
    (1024, 1),
]


def _ch(c: int, mult: float, min_ch: int = 8) -> int:
    return max(min_ch, int(c * mult + 0.5))


class DepthwiseSeparable(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__(
            OrderedDict(
                dw=nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
                dw_bn=nn.BatchNorm2d(cin),
                dw_act=nn.ReLU(inplace=True),
                pw=nn.Conv2d(cin, cout, 1, bias=False),
                pw_bn=nn.BatchNorm2d(cout),
                pw_act=nn.ReLU(inplace=True),
            )
        )


class MobileNetV1(ClassifierBase):
    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        image_size: int = 48,
        width_mult: float = 1.0,
        drop_rate: float = 0.5,
        gray_to_rgb: bool = True,
        reinit_first_conv: bool | None = None,
    ):
        super().__init__(num_classes, in_chans, image_size, drop_rate)
        self.width_mult = float(width_mult)
        self.input_norm = InputNorm("imagenet", in_chans, repeat_gray=gray_to_rgb)
        c = 3 if (in_chans == 1 and gray_to_rgb) else in_chans
        stem = _ch(32, width_mult)
        self.stem = nn.Sequential(
            nn.Conv2d(c, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)
        )
        blocks, cin = [], stem
        for cout, s in _CFG:
            cout = _ch(cout, width_mult)
            blocks.append(DepthwiseSeparable(cin, cout, s))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        probe_shape(nn.Sequential(self.stem, self.blocks), c, image_size)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.stages = {"stem": ["stem."]}
        for i in range(len(blocks)):
            self.stages[f"block{i + 1}"] = [f"blocks.{i}."]
        self.num_features = cin
        self._init_head("mobilenet_v1")
        self.default_cfg["width_mult"] = self.width_mult
        # MobileNet-FER paper: the 224x224 ImageNet first conv is re-initialised at 48x48.
        self.reinit_first_conv = (image_size != 224) if reinit_first_conv is None else bool(reinit_first_conv)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(self.input_norm(x)))
        return torch.flatten(self.pool(x), 1)


@register_classifier(
    "mobilenet_v1",
    pretrained_cfg={
        # Not in torchvision: an ImageNet MobileNetV1 converted to this module's layout.
        "source": "fape",
        "filenames": ["mobilenet_v1_{width_mult}.pth", "mobilenet_v1_{width_mult}.safetensors"],
        "key_map": [("classifier.", "head."), ("fc.", "head.")],
        "format_defaults": {"width_mult": 1.0},
        "first_conv": "stem.0.",
        "classifier": "head.",
        "input_size": 224,
    },
)
def mobilenet_v1(num_classes: int, in_chans: int = 3, image_size: int = 48, **kwargs) -> MobileNetV1:
    return MobileNetV1(num_classes, in_chans, image_size, **kwargs)
