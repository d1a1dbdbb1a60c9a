"""FaPE-GAN networks: generators ``G(image, pose_mask, source_landmarks, target_landmarks) -> image``
(only ``warp_unet`` reads the landmarks) and patch discriminators.

The paper (F2ED, sec. 4.2) writes the generator as ``I_hat = G_Dec(G_Enc(I_i, I_P))``: an encoder over the
source face and the target pose image, and a decoder that draws the face in that pose. Two classic
image-to-image families implement it, both over ``concat(image, mask)``, and a third keeps the source's pixels:

- ``unet``: pix2pix's U-Net (Isola et al. 2017): strided 4x4 convs down to 1x1, transposed convs up,
  skip connections between mirrored layers, dropout as the only noise source.
- ``warp_unet``: warp the source onto the target landmarks, then a U-Net refines and blends
  (``WarpUNetGenerator``); it also needs the source and target landmarks.
- ``resnet``: the ResNet generator of CycleGAN / Johnson et al., used by pose-normalised GANs (Qian et al.
  2018): two strided convs, residual blocks at 1/4 resolution, transposed convs back.

The discriminator is pix2pix's PatchGAN: a fully convolutional classifier whose every output logit sees a
70x70 patch (3 strided layers). What it sees (image, + pose mask, + source) is the caller's concatenation,
built by ``discriminator_input`` so the training loop and evaluation agree on the channel order.

Networks are plain modules; they know nothing of losses or optimizers. Builders are registered by name
and created from the config dataclasses with ``create_generator`` / ``create_discriminator``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
from torch import nn

from fape.gan.config import DiscriminatorConfig, GeneratorConfig

__all__ = [
    "GENERATORS", "DISCRIMINATORS", "register_generator", "register_discriminator", "list_generators",
    "list_discriminators", "create_generator", "create_discriminator", "discriminator_in_chans",
    "discriminator_input", "init_weights", "num_params", "UNetGenerator", "ResNetGenerator", "WarpUNetGenerator",
    "up_conv",
    "PatchDiscriminator", "patchgan_out_size", "patchgan_receptive_field", "spectral_norm_convs",
]

# name -> builder(cfg, in_chans, mask_chans, image_size) -> nn.Module
GENERATORS: dict[str, Callable[..., nn.Module]] = {}
# name -> builder(cfg, in_chans, image_size) -> nn.Module
DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {}

NORMS = ("batch", "instance", "none")
MAX_WIDTH_MULT = 8  # pix2pix caps channel doubling at 8x the first layer (512 for width 64)


def register_generator(name: str):
    def deco(fn):
        if name in GENERATORS:
            raise ValueError(f"generator {name!r} is already registered")
        GENERATORS[name] = fn
        return fn
    return deco


def register_discriminator(name: str):
    def deco(fn):
        if name in DISCRIMINATORS:
            raise ValueError(f"discriminator {name!r} is already registered")
        DISCRIMINATORS[name] = fn
        return fn
    return deco


def list_generators() -> list[str]:
    return sorted(GENERATORS)


def list_discriminators() -> list[str]:
    return sorted(DISCRIMINATORS)


# ---------------------------------------------------------------------------------------------------------
# building blocks


def norm_layer(kind: str, ch: int) -> nn.Module:
    # instance norm: affine, and no running stats, so train and eval normalise the same way (pix2pix/CycleGAN)
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "instance":
        return nn.InstanceNorm2d(ch, affine=True, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; expected one of {list(NORMS)}")


def _bias(norm: str, normed: bool = True) -> bool:
    # batch norm subtracts the per-channel mean, which cancels a conv bias. Instance norm cancels it too, but
    # pix2pix keeps it there (a few redundant parameters, same function) and we follow it. A conv that no
    # norm follows (first, innermost, output) always needs its bias.
    return norm != "batch" or not normed


def _width(width: int, i: int) -> int:
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


def _check_pair(image: torch.Tensor, mask: torch.Tensor) -> None:
    # a pose mask rendered at another resolution than the image is the likely mistake; say so plainly
    if image.ndim != 4 or mask.ndim != 4 or image.shape[0] != mask.shape[0] or image.shape[2:] != mask.shape[2:]:
        raise ValueError(f"image {tuple(image.shape)} and mask {tuple(mask.shape)} must be [B, C, H, W] and "
                         f"[B, M, H, W] with the same B, H, W")


# ---------------------------------------------------------------------------------------------------------
# generators


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
        chs = [_width(width, i) for i in range(n_down)]

        self.down = nn.ModuleList()
        for i in range(n_down):
            c_in = in_chans + mask_chans if i == 0 else chs[i - 1]
            normed = 0 < i < n_down - 1
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, inplace=False)]
            layers += [nn.Conv2d(c_in, chs[i], 4, stride=2, padding=1, bias=_bias(norm, normed))]
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
                layers = [nn.ReLU(), *up_conv(c_in, chs[i - 1], upsample, _bias(norm)), norm_layer(norm, chs[i - 1])]
                # dropout in the 3 innermost decoder layers, as in the pix2pix paper (CD512-CD1024-CD1024-...)
                if dropout > 0 and i >= n_down - n_dropout:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, image: torch.Tensor, mask: torch.Tensor, source_landmarks: torch.Tensor | None = None,
                target_landmarks: torch.Tensor | None = None) -> torch.Tensor:
        # the landmarks are accepted (every generator takes the same inputs) and unused: the mask is the pose
        _check_pair(image, mask)
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
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=_bias(norm)),
                                   norm_layer(norm, ch), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=_bias(norm)), norm_layer(norm, ch)]
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
                                   nn.Conv2d(in_chans + mask_chans, width, 7, bias=_bias(norm)),
                                   norm_layer(norm, width), nn.ReLU()]
        for i in range(n_down):
            c_in, c_out = _width(width, i), _width(width, i + 1)
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=_bias(norm)),
                       norm_layer(norm, c_out), nn.ReLU()]
        self.encoder = nn.Sequential(*layers)
        c = _width(width, n_down)
        self.blocks = nn.Sequential(*[ResBlock(c, norm, dropout) for _ in range(n_blocks)])
        layers = []
        for i in reversed(range(n_down)):
            c_in, c_out = _width(width, i + 1), _width(width, i)
            # output_padding=1 makes the transposed conv exactly double the size (H/2 -> H, not H - 1)
            layers += [*up_conv(c_in, c_out, upsample, _bias(norm), kernel=3), norm_layer(norm, c_out), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_chans, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, source_landmarks: torch.Tensor | None = None,
                target_landmarks: torch.Tensor | None = None) -> torch.Tensor:
        _check_pair(image, mask)  # landmarks unused, as in UNetGenerator
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
        _check_pair(image, mask)
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


def _resolve(cfg, cls, overrides: dict):
    if isinstance(cfg, str):
        cfg = cls(name=cfg)
    elif not isinstance(cfg, cls):
        raise TypeError(f"expected a {cls.__name__} or a registry name, got {type(cfg).__name__}")
    if overrides:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
        cfg = dataclasses.replace(cfg, **overrides)
    if cfg.norm not in NORMS:
        raise ValueError(f"unknown norm {cfg.norm!r}; expected one of {list(NORMS)}")
    return cfg


def create_generator(cfg: GeneratorConfig | str, in_chans: int, mask_chans: int, image_size: int,
                     **overrides) -> nn.Module:
    """Build and initialise the generator ``cfg.name`` for ``in_chans``-channel images at ``image_size``
    conditioned on ``mask_chans`` pose-mask channels. ``overrides`` replace fields of ``cfg``."""
    cfg = _resolve(cfg, GeneratorConfig, overrides)
    if cfg.name not in GENERATORS:
        raise ValueError(f"unknown generator {cfg.name!r}; registered: {list_generators()}")
    return init_weights(GENERATORS[cfg.name](cfg, in_chans=in_chans, mask_chans=mask_chans, image_size=image_size))


# ---------------------------------------------------------------------------------------------------------
# discriminators


def patchgan_out_size(size: int, layers: int = 3) -> int:
    """Logit-map side for a ``size``-pixel input: ``layers`` stride-2 4x4 convs (pad 1) halve it, the two
    stride-1 4x4 convs (pad 1) remove 1 each: ``size / 2^layers - 2`` for sizes divisible by ``2^layers``
    (6 at 64, 30 at 256 for 3 layers)."""
    for _ in range(layers):
        size = (size + 2 - 4) // 2 + 1
    return size - 2


def patchgan_receptive_field(layers: int = 3) -> int:
    """Input pixels seen by one logit: 70 for 3 layers, 34 for 2, 142 for 4 (pix2pix)."""
    rf = 1
    for _ in range(2):  # the two stride-1 4x4 convs, walked from the output back
        rf += 3
    for _ in range(layers):
        rf = 2 * rf + 2  # stride 2, kernel 4: rf -> (rf - 1) * 2 + 4
    return rf


class PatchDiscriminator(nn.Module):
    """pix2pix ``NLayerDiscriminator``: ``forward(x [B, in_chans, H, W]) -> logits [B, 1, h, w]``.

    Every logit classifies one ``patchgan_receptive_field(layers)`` patch as real or fake; raw logits (no
    sigmoid) so the losses can use softplus / squares / hinges stably.
    """

    def __init__(self, in_chans: int, width: int = 64, layers: int = 3, norm: str = "batch"):
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(in_chans, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for i in range(1, layers):
            seq += [nn.Conv2d(_width(width, i - 1), _width(width, i), 4, stride=2, padding=1, bias=_bias(norm)),
                    norm_layer(norm, _width(width, i)), nn.LeakyReLU(0.2)]
        c_prev, c = _width(width, layers - 1), _width(width, layers)
        seq += [nn.Conv2d(c_prev, c, 4, stride=1, padding=1, bias=_bias(norm)), norm_layer(norm, c), nn.LeakyReLU(0.2),
                nn.Conv2d(c, 1, 4, stride=1, padding=1)]
        self.layers = layers
        self.net = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Logits ``[B, 1, patchgan_out_size(H), patchgan_out_size(W)]``; with ``return_features`` also
        the activations after every LeakyReLU (``layers + 1`` maps, coarse to fine order reversed:
        first layer first), for a feature-matching loss (pix2pixHD) computed by the caller."""
        if not return_features:
            return self.net(x)
        feats = []
        for m in self.net:
            x = m(x)
            if isinstance(m, nn.LeakyReLU):
                feats.append(x)  # [B, width * 2^i, h_i, w_i]
        return x, feats


@register_discriminator("patchgan")
def _build_patchgan(cfg: DiscriminatorConfig, in_chans: int, image_size: int) -> nn.Module:
    if cfg.layers < 1:
        raise ValueError(f"patchgan: layers must be >= 1, got {cfg.layers}")
    if patchgan_out_size(image_size, cfg.layers) < 1:
        raise ValueError(f"patchgan: {cfg.layers} layers leave no output at image_size {image_size} "
                         f"(needs image_size >= {3 * 2 ** cfg.layers}); use fewer layers")
    return PatchDiscriminator(in_chans, width=cfg.width, layers=cfg.layers, norm=cfg.norm)


def create_discriminator(cfg: DiscriminatorConfig | str, in_chans: int, image_size: int, **overrides) -> nn.Module:
    """Build and initialise the discriminator ``cfg.name`` over ``in_chans`` channels (the total of what it
    sees, see ``discriminator_in_chans``) at ``image_size``. ``overrides`` replace fields of ``cfg``."""
    cfg = _resolve(cfg, DiscriminatorConfig, overrides)
    if cfg.name not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator {cfg.name!r}; registered: {list_discriminators()}")
    D = init_weights(DISCRIMINATORS[cfg.name](cfg, in_chans=in_chans, image_size=image_size))
    return spectral_norm_convs(D) if cfg.spectral_norm else D


def spectral_norm_convs(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every conv weight, after ``init_weights`` (the
    parametrisation divides the initialised weight by its largest singular value, estimated by one
    power iteration per training forward). It bounds D's Lipschitz constant, which keeps D from
    overpowering a small G and the adversarial gradient smooth (SAGAN, BigGAN use it in D)."""
    from torch.nn.utils.parametrizations import spectral_norm

    for m in [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]:
        spectral_norm(m)
    return module


def discriminator_in_chans(cfg: DiscriminatorConfig, img_chans: int, mask_chans: int) -> int:
    """Channels of ``discriminator_input``: image (+ pose mask) (+ source image)."""
    return img_chans + (mask_chans if cfg.condition_on_mask else 0) + (img_chans if cfg.condition_on_source else 0)


def discriminator_input(cfg: DiscriminatorConfig, image: torch.Tensor, mask: torch.Tensor | None = None,
                        source: torch.Tensor | None = None) -> torch.Tensor:
    """What D sees, in this channel order: ``[image, mask?, source?]`` -> ``[B, discriminator_in_chans, H, W]``.

    ``image`` is the real or generated face; ``mask`` the target pose it should be in (conditioning on it lets
    D punish a face in the wrong pose); ``source`` the input face (pix2pix conditioning: D can then punish a
    change of identity). Real and fake must be built with the same ``mask``/``source`` so only the image
    differs.
    """
    parts = [image]
    for flag, t, what in ((cfg.condition_on_mask, mask, "mask"), (cfg.condition_on_source, source, "source")):
        if flag:
            if t is None:
                raise ValueError(f"discriminator config has condition_on_{what}=True but no {what} was given")
            if t.shape[0] != image.shape[0] or t.shape[2:] != image.shape[2:]:
                raise ValueError(f"{what} {tuple(t.shape)} does not match image {tuple(image.shape)} in B, H, W")
            parts.append(t.to(image.dtype))
    return torch.cat(parts, dim=1) if len(parts) > 1 else image
