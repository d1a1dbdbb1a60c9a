"""The discriminator, pix2pix's PatchGAN, its registered builder ``patchgan``, ``create_discriminator``
(with optional spectral normalisation), and what D sees: ``discriminator_input`` and its channel count."""
from __future__ import annotations

import torch
from torch import nn

from fape.gan.config import DiscriminatorConfig
from fape.gan.networks.layers import conv_bias, init_weights, layer_width, norm_layer
from fape.gan.networks.registry import DISCRIMINATORS, list_discriminators, register_discriminator, resolve


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
            seq += [nn.Conv2d(layer_width(width, i - 1), layer_width(width, i), 4, stride=2, padding=1,
                              bias=conv_bias(norm)),
                    norm_layer(norm, layer_width(width, i)), nn.LeakyReLU(0.2)]
        c_prev, c = layer_width(width, layers - 1), layer_width(width, layers)
        seq += [nn.Conv2d(c_prev, c, 4, stride=1, padding=1, bias=conv_bias(norm)), norm_layer(norm, c),
                nn.LeakyReLU(0.2), nn.Conv2d(c, 1, 4, stride=1, padding=1)]
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
    cfg = resolve(cfg, DiscriminatorConfig, overrides)
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
