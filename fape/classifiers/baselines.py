"""Baseline classifiers from the papers in /work/shared/papers.

* ``cnn3`` - CIFE/GaMo (Sec. 4.1): three 3x3 conv layers with 32/32/64 filters, each followed
  by 2:1 max pooling, 64x64 RGB input, "around 184,000" parameters. The paper does not give
  the fully connected part; we use one hidden FC layer of ``hidden=64`` units (the penultimate
  embedding) with unpadded convs, which gives 176,615 parameters for 7 classes at 64x64.
* ``alexnet`` - CIFE (Sec. 4.2): torchvision AlexNet body (ImageNet weights map), conv1-conv4
  frozen (``freeze_convs=4``), conv5 and fc6 kept, fc7 reduced to 2048 units (the penultimate
  layer) and a new ``num_classes`` head.
* ``vgg19`` - CIFE (Sec. 4.3): torchvision VGG-19 body, fc7 4096 (``fc7_dim``) penultimate.
  The paper only says "a similar fine-tuning approach" as AlexNet, so nothing is frozen by
  default; ``freeze_blocks=k`` freezes conv blocks 1..k.
* ``vgg_cnn_m_2048`` - cascaded fine-tuning paper (Chatfield et al. CNN-M-2048): conv1 96 7x7/2
  + LRN + pool, conv2 256 5x5/2 + LRN + pool, conv3-5 512 3x3, pool, fc6 4096, fc7 2048.

The ImageNet-family models (alexnet, vgg19, vgg_cnn_m_2048) always map the [-1, 1] input to
ImageNet normalisation as their first op and, with ``in_chans=1`` and ``gray_to_rgb=True``
(default), repeat gray to 3 channels so the pretrained first conv stays usable. Their
``AdaptiveAvgPool2d`` keeps the fc6 input size of the 224x224 layout, so 64x64 inputs work and
ImageNet fc6 weights still load.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision import models as tvm

from .models import ClassifierBase, InputNorm, probe_shape, register_classifier

__all__ = ["CNN3", "AlexNetFER", "VGG19FER", "VGGCNNM2048"]

_TV_KEY_MAP = [("classifier.6.", "head."), ("classifier.", "pre_logits.")]


def _conv_stages(features: nn.Sequential, per_block: bool) -> dict[str, list[str]]:
    """Stage map over a torchvision ``features`` Sequential: one stage per conv (AlexNet) or per
    pooling-delimited block (VGG), named ``conv1``, ``conv2``, ..."""
    stages: dict[str, list[str]] = {}
    idx = 1
    for i, m in enumerate(features):
        if isinstance(m, nn.Conv2d):
            stages.setdefault(f"conv{idx}", []).append(f"features.{i}.")
            if not per_block:
                idx += 1
        elif isinstance(m, nn.MaxPool2d) and per_block:
            idx += 1
    return stages


class CNN3(ClassifierBase):
    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        image_size: int = 64,
        hidden: int = 64,
        padding: int = 0,
        drop_rate: float = 0.5,
        widths: tuple[int, int, int] = (32, 32, 64),
    ):
        super().__init__(num_classes, in_chans, image_size, drop_rate)
        self.input_norm = InputNorm("none", in_chans)
        layers: list[nn.Module] = []
        c = in_chans
        for i, w in enumerate(widths, 1):
            layers += [nn.Conv2d(c, w, 3, padding=padding), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            self.stages[f"conv{i}"] = [f"features.{3 * (i - 1)}."]
            c = w
        self.features = nn.Sequential(*layers)
        flat = int(torch.tensor(probe_shape(self.features, in_chans, image_size)[1:]).prod())
        self.fc = nn.Sequential(nn.Flatten(1), nn.Linear(flat, hidden), nn.ReLU(inplace=True))
        self.stages["fc"] = ["fc."]
        self.num_features = hidden
        self._init_head("cnn3")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(self.input_norm(x)))


class _TorchvisionBody(ClassifierBase):
    """Shared logic of the AlexNet / VGG-19 wrappers around torchvision's ``features``."""

    def _setup_input(self, features: nn.Sequential, in_chans: int, gray_to_rgb: bool) -> None:
        self.input_norm = InputNorm("imagenet", in_chans, repeat_gray=gray_to_rgb)
        first = features[0]
        body_chans = 3 if (in_chans == 1 and gray_to_rgb) else in_chans
        if body_chans != first.in_channels:
            features[0] = nn.Conv2d(
                body_chans, first.out_channels, first.kernel_size, first.stride, first.padding
            )
        self.body_chans = body_chans

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.input_norm(x))
        return self.pre_logits(torch.flatten(self.avgpool(x), 1))


class AlexNetFER(_TorchvisionBody):
    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        image_size: int = 64,
        fc7_dim: int = 2048,
        freeze_convs: int = 4,
        drop_rate: float = 0.5,
        gray_to_rgb: bool = True,
    ):
        super().__init__(num_classes, in_chans, image_size, drop_rate)
        tv = tvm.alexnet(weights=None)
        self._setup_input(tv.features, in_chans, gray_to_rgb)
        self.features = tv.features
        self.avgpool = tv.avgpool  # AdaptiveAvgPool2d(6): fc6 keeps its 9216 inputs
        probe_shape(self.features, self.body_chans, image_size)
        self.pre_logits = nn.Sequential(  # indices match torchvision's classifier.0-5
            nn.Dropout(0.5),
            tv.classifier[1],  # fc6 9216 -> 4096
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(4096, fc7_dim),  # fc7 reduced to 2048 (CIFE)
            nn.ReLU(inplace=True),
        )
        self.stages = _conv_stages(self.features, per_block=False)
        self.stages["fc6"] = ["pre_logits.1."]
        self.stages["fc7"] = ["pre_logits.4."]
        self.num_features = fc7_dim
        self._init_head("alexnet")
        self.default_cfg["freeze_convs"] = int(freeze_convs)
        if freeze_convs:
            self.freeze_stages([f"conv{i}" for i in range(1, int(freeze_convs) + 1)])


class VGG19FER(_TorchvisionBody):
    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        image_size: int = 64,
        fc7_dim: int = 4096,
        freeze_blocks: int = 0,
        drop_rate: float = 0.5,
        gray_to_rgb: bool = True,
    ):
        super().__init__(num_classes, in_chans, image_size, drop_rate)
        tv = tvm.vgg19(weights=None)
        self._setup_input(tv.features, in_chans, gray_to_rgb)
        self.features = tv.features
        self.avgpool = tv.avgpool  # AdaptiveAvgPool2d(7): fc6 keeps its 25088 inputs
        probe_shape(self.features, self.body_chans, image_size)
        fc7 = tv.classifier[3] if fc7_dim == 4096 else nn.Linear(4096, fc7_dim)
        self.pre_logits = nn.Sequential(  # indices match torchvision's classifier.0-4
            tv.classifier[0],  # fc6 25088 -> 4096
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            fc7,
            nn.ReLU(inplace=True),
        )
        self.stages = _conv_stages(self.features, per_block=True)
        self.stages["fc6"] = ["pre_logits.0."]
        self.stages["fc7"] = ["pre_logits.3."]
        self.num_features = fc7_dim
        self._init_head("vgg19")
        self.default_cfg["freeze_blocks"] = int(freeze_blocks)
        if freeze_blocks:
            self.freeze_stages([f"conv{i}" for i in range(1, int(freeze_blocks) + 1)])


class VGGCNNM2048(ClassifierBase):
    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        image_size: int = 64,
        drop_rate: float = 0.5,
        gray_to_rgb: bool = True,
        freeze_convs: int = 0,
    ):
        super().__init__(num_classes, in_chans, image_size, drop_rate)
        self.input_norm = InputNorm("imagenet", in_chans, repeat_gray=gray_to_rgb)
        c = 3 if (in_chans == 1 and gray_to_rgb) else in_chans

        def lrn() -> nn.Module:  # Caffe CNN-M: local_size 5, alpha 5e-4, beta 0.75, k 2
            return nn.LocalResponseNorm(5, alpha=0.0005, beta=0.75, k=2.0)

        def pool() -> nn.Module:  # Caffe pooling rounds up
            return nn.MaxPool2d(3, 2, ceil_mode=True)

        self.features = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(c, 96, 7, stride=2),
                relu1=nn.ReLU(inplace=True),
                norm1=lrn(),
                pool1=pool(),
                conv2=nn.Conv2d(96, 256, 5, stride=2, padding=1),
                relu2=nn.ReLU(inplace=True),
                norm2=lrn(),
                pool2=pool(),
                conv3=nn.Conv2d(256, 512, 3, padding=1),
                relu3=nn.ReLU(inplace=True),
                conv4=nn.Conv2d(512, 512, 3, padding=1),
                relu4=nn.ReLU(inplace=True),
                conv5=nn.Conv2d(512, 512, 3, padding=1),
                relu5=nn.ReLU(inplace=True),
                pool5=pool(),
            )
        )
        probe_shape(self.features, c, image_size)
        self.avgpool = nn.AdaptiveAvgPool2d(6)  # 6x6x512 = the 224x224 layout's fc6 input
        self.pre_logits = nn.Sequential(
            OrderedDict(
                fc6=nn.Linear(6 * 6 * 512, 4096),
                relu6=nn.ReLU(inplace=True),
                drop6=nn.Dropout(0.5),
                fc7=nn.Linear(4096, 2048),
                relu7=nn.ReLU(inplace=True),
            )
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.stages = {f"conv{i}": [f"features.conv{i}."] for i in range(1, 6)}
        self.stages["fc6"] = ["pre_logits.fc6."]
        self.stages["fc7"] = ["pre_logits.fc7."]
        self.num_features = 2048
        self._init_head("vgg_cnn_m_2048")
        if freeze_convs:
            self.freeze_stages([f"conv{i}" for i in range(1, int(freeze_convs) + 1)])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.input_norm(x))
        return self.pre_logits(torch.flatten(self.avgpool(x), 1))


# ---------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------


@register_classifier("cnn3", pretrained_cfg={})
def cnn3(num_classes: int, in_chans: int = 3, image_size: int = 64, **kwargs) -> CNN3:
    return CNN3(num_classes, in_chans, image_size, **kwargs)


@register_classifier(
    "alexnet",
    pretrained_cfg={
        "source": "torchvision",
        "torchvision_weights": ("AlexNet_Weights", "IMAGENET1K_V1"),
        "filenames": ["alexnet-owt-7be5be79.pth"],
        "key_map": _TV_KEY_MAP,
        "first_conv": "features.0.",
        "classifier": "head.",
        "input_size": 224,
    },
)
def alexnet(num_classes: int, in_chans: int = 3, image_size: int = 64, **kwargs) -> AlexNetFER:
    return AlexNetFER(num_classes, in_chans, image_size, **kwargs)


@register_classifier(
    "vgg19",
    pretrained_cfg={
        "source": "torchvision",
        "torchvision_weights": ("VGG19_Weights", "IMAGENET1K_V1"),
        "filenames": ["vgg19-dcbb9e9d.pth"],
        "key_map": _TV_KEY_MAP,
        "first_conv": "features.0.",
        "classifier": "head.",
        "input_size": 224,
    },
)
def vgg19(num_classes: int, in_chans: int = 3, image_size: int = 64, **kwargs) -> VGG19FER:
    return VGG19FER(num_classes, in_chans, image_size, **kwargs)


@register_classifier(
    "vgg_cnn_m_2048",
    pretrained_cfg={
        # Not in torchvision: a conversion of the Caffe VGG_CNN_M_2048 model to this module's
        # state-dict layout (features.conv1..conv5, pre_logits.fc6/fc7, head), RGB with
        # torchvision ImageNet normalisation.
        "source": "fape",
        "filenames": ["vgg_cnn_m_2048.pth", "vgg_cnn_m_2048.safetensors"],
        "key_map": [("classifier.fc8.", "head."), ("fc8.", "head."), ("fc6.", "pre_logits.fc6."),
                    ("fc7.", "pre_logits.fc7.")],
        "first_conv": "features.conv1.",
        "classifier": "head.",
        "input_size": 224,
    },
)
def vgg_cnn_m_2048(num_classes: int, in_chans: int = 3, image_size: int = 64, **kwargs) -> VGGCNNM2048:
    return VGGCNNM2048(num_classes, in_chans, image_size, **kwargs)
