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

Files: ``registry.py`` (the two registries, ``register_*``, ``list_*``, and ``resolve``: a config or a
registry name -> the config), ``layers.py`` (norms, conv biases, channel widths, ``up_conv``,
``init_weights``, ``num_params``), ``generators.py`` (the generators and their builders,
``create_generator``), ``discriminators.py`` (PatchGAN, ``create_discriminator``, ``discriminator_input``).
Importing this package imports the last two, which fills the registries.
"""
from __future__ import annotations

from fape.gan.networks.discriminators import (PatchDiscriminator, create_discriminator, discriminator_in_chans,
                                              discriminator_input, patchgan_out_size, patchgan_receptive_field,
                                              spectral_norm_convs)
from fape.gan.networks.generators import ResBlock, ResNetGenerator, UNetGenerator, WarpUNetGenerator, create_generator
from fape.gan.networks.layers import MAX_WIDTH_MULT, NORMS, UPSAMPLES, init_weights, norm_layer, num_params, up_conv
from fape.gan.networks.registry import (DISCRIMINATORS, GENERATORS, list_discriminators, list_generators,
                                        register_discriminator, register_generator)

__all__ = ["DISCRIMINATORS", "GENERATORS", "MAX_WIDTH_MULT", "NORMS", "UPSAMPLES", "PatchDiscriminator", "ResBlock",
           "ResNetGenerator", "UNetGenerator", "WarpUNetGenerator", "create_discriminator", "create_generator",
           "discriminator_in_chans", "discriminator_input", "init_weights", "list_discriminators", "list_generators",
           "norm_layer", "num_params", "patchgan_out_size", "patchgan_receptive_field", "register_discriminator",
           "register_generator", "spectral_norm_convs", "up_conv"]
