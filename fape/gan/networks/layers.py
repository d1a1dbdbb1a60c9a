"""Building blocks shared by the generators and the discriminator: norms, conv biases, channel widths,
up-sampling, the pix2pix init, and the image/mask check every generator makes."""
from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "instance", "none")
MAX_WIDTH_MULT = 8  # pix2pix caps channel doubling at 8x the first layer (512 for width 64)


def norm_layer(kind: str, ch: int) -> nn.Module:
    # instance norm: affine, and no running stats, so train and eval normalise the same way (pix2pix/CycleGAN)
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "instance":
        return nn.InstanceNorm2d(ch, affine=True, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; expected one of {list(NORMS)}")


def conv_bias(norm: str, normed: bool = True) -> bool:
    # batch norm subtracts the per-channel mean, which cancels a conv bias. Instance norm cancels it too, but
    # pix2pix keeps it there (a few redundant parameters, same function) and we follow it. A conv that no
    # norm follows (first, innermost, output) always needs its bias.
    return norm != "batch" or not normed


def layer_width(width: int, i: int) -> int:
    return width * min(2 ** i, MAX_WIDTH_MULT)


UPSAMPLES = ("deconv", "resize")


def up_conv(c_in: int, c_out: int, kind: str, bias: bool = True, kernel: int = 4) -> list[nn.Module]:
    """Layers that double the side: ``deconv`` is the transposed conv (pix2pix; ``kernel`` 4, or 3 with
    output padding); ``resize`` is nearest-neighbour x2 then a 3x3 conv (Odena et al. 2016,
    "Deconvolution and checkerboard artifacts": a stride-2 transposed conv whose kernel is not a
    multiple of the stride overlaps unevenly and draws a checkerboard; resizing first cannot)."""
    if kind == "deconv":
        if kernel == 4:
            return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=bias)]
        return [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=bias)]
    if kind == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)]
    raise ValueError(f"unknown upsample {kind!r}; expected one of {list(UPSAMPLES)}")


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix/DCGAN init: conv and linear weights ~ N(0, std), biases 0, norm scales ~ N(1, std)."""
    def _init(m: nn.Module):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    module.apply(_init)
    return module


def num_params(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def check_pair(image: torch.Tensor, mask: torch.Tensor) -> None:
    # a pose mask rendered at another resolution than the image is the likely mistake; say so plainly
    if image.ndim != 4 or mask.ndim != 4 or image.shape[0] != mask.shape[0] or image.shape[2:] != mask.shape[2:]:
        raise ValueError(f"image {tuple(image.shape)} and mask {tuple(mask.shape)} must be [B, C, H, W] and "
                         f"[B, M, H, W] with the same B, H, W")
