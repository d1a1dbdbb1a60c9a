"""The generators, ``G(image, pose_mask, source_landmarks, target_landmarks) -> image`` in [-1, 1], and their
registered builders: ``unet`` (pix2pix's U-Net), ``resnet`` (CycleGAN's ResNet generator) and ``warp_unet``
(a landmark warp refined by a U-Net). ``create_generator`` builds one from a ``GeneratorConfig``."""
from __future__ import annotations

import math

import torch
from torch import nn

from fape.gan.config import GeneratorConfig
from fape.gan.networks.layers import check_pair, conv_bias, init_weights, layer_width, norm_layer, up_conv
from fape.gan.networks.registry import GENERATORS, list_generators, register_generator, resolve


class UNetGenerator(nn.Module):
    """pix2pix U-Net over ``concat(image, mask)``; ``forward(image, mask) -> image`` in [-1, 1].

    With ``n_down`` steps the encoder layer ``i`` (0-based) has ``width * min(2^i, 8)`` channels at
    ``image_size / 2^(i+1)`` pixels. Decoder layer ``i`` mirrors it and is concatenated with encoder layer
    ``i - 1`` (the skip), so fine detail of the source face reaches the output without the bottleneck.
    Pre-activation order as in pix2pix: encoder ``LeakyReLU(0.2) -> conv -> norm``, decoder
    ``ReLU -> convT -> norm -> dropout``. No norm on the first encoder layer (raw pixels) nor on the innermost
    (1x1 at full depth, where a norm would zero it out).
    """

    def __init__(self, in_chans: int = 3, mask_chans: int = 1, out_chans: int | None = None, n_down: int = 8,
                 width: int = 64, norm: str = "batch", dropout: float = 0.5, n_dropout: int = 3,
                 upsample: str = "deconv"):
        super().__init__()
        if n_down < 2:
            raise ValueError(f"unet needs at least 2 down-sampling steps, got {n_down}")
        out_chans = in_chans if out_chans is None else out_chans
        self.n_down = n_down
        chs = [layer_width(width, i) for i in range(n_down)]

        self.down = nn.ModuleList()
        for i in range(n_down):
            c_in = in_chans + mask_chans if i == 0 else chs[i - 1]
            normed = 0 < i < n_down - 1
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, inplace=False)]
            layers += [nn.Conv2d(c_in, chs[i], 4, stride=2, padding=1, bias=conv_bias(norm, normed))]
            if normed:
                layers.append(norm_layer(norm, chs[i]))
            self.down.append(nn.Sequential(*layers))

        # up[i] undoes down[i]; it reads up[i+1]'s output concatenated with down[i]'s (no skip at the innermost)
        self.up = nn.ModuleList()
        for i in range(n_down):
            c_in = chs[i] if i == n_down - 1 else 2 * chs[i]
            if i == 0:
                layers = [nn.ReLU(), *up_conv(c_in, out_chans, upsample), nn.Tanh()]
            else:
                layers = [nn.ReLU(), *up_conv(c_in, chs[i - 1], upsample, conv_bias(norm)),
                          norm_layer(norm, chs[i - 1])]
                # dropout in the 3 innermost decoder layers, as in the pix2pix paper (CD512-CD1024-CD1024-...)
                if dropout > 0 and i >= n_down - n_dropout:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, image: torch.Tensor, mask: torch.Tensor, source_landmarks: torch.Tensor | None = None,
                target_landmarks: torch.Tensor | None = None) -> torch.Tensor:
        # the landmarks are accepted (every generator takes the same inputs) and unused: the mask is the pose
        check_pair(image, mask)
        x = torch.cat([image, mask], dim=1)  # [B, C+M, H, W]
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)  # down[i]: [B, chs[i], H/2^(i+1), W/2^(i+1)]
        x = skips.pop()
        for i in reversed(range(self.n_down)):
            if i < self.n_down - 1:
                x = torch.cat([x, skips.pop()], dim=1)  # [B, 2*chs[i], H/2^(i+1), W/2^(i+1)]
            x = self.up[i](x)
        return x  # [B, C, H, W] in [-1, 1]


class ResBlock(nn.Module):
    """``x + F(x)`` with F = pad -> conv3x3 -> norm -> ReLU -> (dropout) -> pad -> conv3x3 -> norm."""

    def __init__(self, ch: int, norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=conv_bias(norm)),
                                   norm_layer(norm, ch), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=conv_bias(norm)), norm_layer(norm, ch)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """ResNet generator over ``concat(image, mask)``; ``forward(image, mask) -> image`` in [-1, 1].

    ``7x7 conv`` -> ``n_down`` stride-2 3x3 convs (doubling width, capped at 8x) -> ``n_blocks`` residual blocks
    at ``image_size / 2^n_down`` -> transposed convs back -> ``7x7 conv`` -> tanh. Reflection padding avoids
    border artefacts at the image edge (CycleGAN). Dropout, when > 0, sits inside the residual blocks
    (pix2pix's ``resnet`` option); 0 gives CycleGAN's deterministic generator.
    """

    def __init__(self, in_chans: int = 3, mask_chans: int = 1, out_chans: int | None = None, n_down: int = 2,
                 n_blocks: int = 6, width: int = 64, norm: str = "batch", dropout: float = 0.0,
                 upsample: str = "deconv"):
        super().__init__()
        out_chans = in_chans if out_chans is None else out_chans
        layers: list[nn.Module] = [nn.ReflectionPad2d(3),
                                   nn.Conv2d(in_chans + mask_chans, width, 7, bias=conv_bias(norm)),
                                   norm_layer(norm, width), nn.ReLU()]
        for i in range(n_down):
            c_in, c_out = layer_width(width, i), layer_width(width, i + 1)
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=conv_bias(norm)),
                       norm_layer(norm, c_out), nn.ReLU()]
        self.encoder = nn.Sequential(*layers)
        c = layer_width(width, n_down)
        self.blocks = nn.Sequential(*[ResBlock(c, norm, dropout) for _ in range(n_blocks)])
        layers = []
        for i in reversed(range(n_down)):
            c_in, c_out = layer_width(width, i + 1), layer_width(width, i)
            # output_padding=1 makes the transposed conv exactly double the size (H/2 -> H, not H - 1)
            layers += [*up_conv(c_in, c_out, upsample, conv_bias(norm), kernel=3), norm_layer(norm, c_out), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_chans, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, source_landmarks: torch.Tensor | None = None,
                target_landmarks: torch.Tensor | None = None) -> torch.Tensor:
        check_pair(image, mask)  # landmarks unused, as in UNetGenerator
        x = torch.cat([image, mask], dim=1)  # [B, C+M, H, W]
        x = self.encoder(x)  # [B, width*2^n_down, H/2^n_down, W/2^n_down]
        x = self.blocks(x)
        return self.decoder(x)  # [B, C, H, W] in [-1, 1]


class WarpUNetGenerator(nn.Module):
    """Warp, then refine: ``forward(image, mask, source_landmarks, target_landmarks) -> image`` in [-1, 1].

    The source face is moved onto the target landmarks by a differentiable landmark warp
    (``fape.gan.warp``: affine + ridge-regularised Gaussian RBF; its docstring says why not a
    68-point thin-plate spline). A U-Net over ``concat(warped, source, mask)`` then draws what the
    warp cannot (the far side of a turned face, occlusions, folds) and a per-pixel blend
    ``alpha`` keeps the warped pixels where they are right:

        out = alpha * warped + (1 - alpha) * drawn

    (PG2, Ma et al. 2017; Deformable GAN, Siarohin et al. 2018; First-Order Motion, Siarohin et al.
    2019.) ``blend_bias`` starts at 2 (alpha ~ 0.88), so an untrained G already returns mostly the
    warp, the no-learning baseline, and training only has to learn the corrections.
    """

    def __init__(self, in_chans: int = 3, mask_chans: int = 1, n_down: int = 6, width: int = 16,
                 norm: str = "batch", dropout: float = 0.0, upsample: str = "deconv", warp_sigma: float = 0.1,
                 warp_reg: float = 0.1, warp_grid: int = 32):
        super().__init__()
        self.chans = in_chans
        self.warp_kw = dict(sigma=warp_sigma, reg=warp_reg, grid=warp_grid)
        self.refine = UNetGenerator(2 * in_chans, mask_chans, out_chans=in_chans + 1, n_down=n_down, width=width,
                                    norm=norm, dropout=dropout, upsample=upsample)
        self.refine.up[0][-1] = nn.Identity()  # raw outputs: tanh for the colours, sigmoid for the blend
        self.blend_bias = nn.Parameter(torch.tensor(2.0))

    def warp(self, image: torch.Tensor, source_landmarks: torch.Tensor, target_landmarks: torch.Tensor) -> torch.Tensor:
        from fape.gan.warp import warp_to_landmarks

        return warp_to_landmarks(image, source_landmarks, target_landmarks, **self.warp_kw)  # [B, C, H, W]

    def forward(self, image: torch.Tensor, mask: torch.Tensor, source_landmarks: torch.Tensor | None = None,
                target_landmarks: torch.Tensor | None = None) -> torch.Tensor:
        check_pair(image, mask)
        if source_landmarks is None or target_landmarks is None:
            raise ValueError("warp_unet needs source_landmarks and target_landmarks ([B, 68, 2] pixels)")
        warped = self.warp(image, source_landmarks, target_landmarks)  # [B, C, H, W] in [-1, 1]
        out = self.refine(torch.cat([warped, image], dim=1), mask)  # [B, C+1, H, W] raw
        drawn = torch.tanh(out[:, :self.chans])
        alpha = torch.sigmoid(out[:, self.chans:] + self.blend_bias)  # [B, 1, H, W] in (0, 1)
        return alpha * warped + (1 - alpha) * drawn


def _log2_size(image_size: int, name: str) -> int:
    if not isinstance(image_size, int) or image_size < 32 or image_size & (image_size - 1):
        raise ValueError(f"{name}: image_size must be a power of two >= 32 (32, 64, 128, 256, ...), got {image_size!r}")
    return int(math.log2(image_size))


@register_generator("unet")
def _build_unet(cfg: GeneratorConfig, in_chans: int, mask_chans: int, image_size: int) -> nn.Module:
    full = _log2_size(image_size, "unet")
    n_down = cfg.depth or full  # 0 = down to 1x1 (pix2pix's unet_256 has 8 steps)
    if not 2 <= n_down <= full:
        raise ValueError(f"unet: depth must be 0 (down to 1x1) or in [2, {full}] at image_size {image_size}, "
                         f"got {cfg.depth}")
    return UNetGenerator(in_chans, mask_chans, n_down=n_down, width=cfg.width, norm=cfg.norm, dropout=cfg.dropout,
                         upsample=cfg.upsample)


@register_generator("resnet")
def _build_resnet(cfg: GeneratorConfig, in_chans: int, mask_chans: int, image_size: int) -> nn.Module:
    n_down = cfg.depth or 2
    if image_size % (2 ** n_down) or image_size // 2 ** n_down < 2:
        raise ValueError(f"resnet: image_size {image_size} must be divisible by 2^depth = {2 ** n_down} "
                         f"with a bottleneck of at least 2x2")
    return ResNetGenerator(in_chans, mask_chans, n_down=n_down, n_blocks=cfg.n_blocks, width=cfg.width,
                           norm=cfg.norm, dropout=cfg.dropout, upsample=cfg.upsample)


@register_generator("warp_unet")
def _build_warp_unet(cfg: GeneratorConfig, in_chans: int, mask_chans: int, image_size: int) -> nn.Module:
    full = _log2_size(image_size, "warp_unet")
    n_down = cfg.depth or full
    if not 2 <= n_down <= full:
        raise ValueError(f"warp_unet: depth must be 0 (down to 1x1) or in [2, {full}] at image_size {image_size}, "
                         f"got {cfg.depth}")
    return WarpUNetGenerator(in_chans, mask_chans, n_down=n_down, width=cfg.width, norm=cfg.norm,
                             dropout=cfg.dropout, upsample=cfg.upsample, warp_sigma=cfg.warp_sigma,
                             warp_reg=cfg.warp_reg, warp_grid=cfg.warp_grid)

def create_generator(cfg: GeneratorConfig | str, in_chans: int, mask_chans: int, image_size: int,
                     **overrides) -> nn.Module:
    """Build and initialise the generator ``cfg.name`` for ``in_chans``-channel images at ``image_size``
    conditioned on ``mask_chans`` pose-mask channels. ``overrides`` replace fields of ``cfg``."""
    cfg = resolve(cfg, GeneratorConfig, overrides)
    if cfg.name not in GENERATORS:
        raise ValueError(f"unknown generator {cfg.name!r}; registered: {list_generators()}")
    return init_weights(GENERATORS[cfg.name](cfg, in_chans=in_chans, mask_chans=mask_chans, image_size=image_size))

