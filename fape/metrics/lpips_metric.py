"""LPIPS through the ``lpips`` package, offline-aware.

``lpips.LPIPS(net=...)`` needs (1) its linear-layer weights, shipped inside the package
(``lpips/weights/v0.1/<net>.pth``) and (2) the torchvision ImageNet backbone, normally downloaded
into ``torch.hub.get_dir()/checkpoints/``. Offline the backbone is missing: ``load_lpips`` checks for
the file before constructing and raises naming it, unless ``allow_random_backbone=True``, which
builds ``LPIPS(pretrained=True, net=..., pnet_rand=True)`` (calibrated linear layers on a random
backbone: numbers are NOT comparable with published LPIPS; every output says ``calibrated: false``).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

NETS = ("alex", "vgg", "squeeze")


def backbone_file(net: str) -> Path:
    import torchvision.models as tvm

    enum = {"alex": tvm.AlexNet_Weights, "vgg": tvm.VGG16_Weights, "squeeze": tvm.SqueezeNet1_1_Weights}[net]
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.IMAGENET1K_V1.url)


def linear_file(net: str) -> Path:
    import lpips

    return Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"


@dataclass
class LPIPSModel:
    model: torch.nn.Module
    net: str
    calibrated: bool

    @property
    def description(self) -> str:
        return f"lpips {self.net} v0.1" + ("" if self.calibrated else " (random backbone: NOT calibrated)")


def load_lpips(net: str = "alex", allow_random_backbone: bool = False) -> LPIPSModel:
    if net not in NETS:
        raise ValueError(f"net must be one of {NETS}, got {net!r}")
    import lpips

    lin = linear_file(net)
    if not lin.is_file():
        raise FileNotFoundError(f"LPIPS linear weights missing: {lin} (reinstall lpips)")
    bb = backbone_file(net)
    calibrated = bb.is_file()
    if not calibrated and not allow_random_backbone:
        raise FileNotFoundError(
            f"LPIPS {net} backbone weights not found: {bb} (torchvision ImageNet weights; nothing can be "
            "downloaded here). Copy the file there, or pass --allow-random-backbone for uncalibrated numbers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated"
        model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=not calibrated, verbose=False)
    return LPIPSModel(model.eval().requires_grad_(False), net, calibrated)


def _pm1(x) -> torch.Tensor:
    x = torch.as_tensor(x)
    x = x.to(torch.float32) / 127.5 - 1.0 if x.dtype == torch.uint8 else x.to(torch.float32)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@torch.inference_mode()
def lpips_distances(m: LPIPSModel, generated, target, batch_size: int = 64) -> np.ndarray:
    """Per-image LPIPS ``[B]`` (inputs uint8, or float in [-1, 1]; gray repeated to 3 channels)."""
    out = []
    for i in range(0, len(generated), batch_size):
        d = m.model(_pm1(generated[i:i + batch_size]), _pm1(target[i:i + batch_size]))
        out.append(d.reshape(-1).double().numpy())
    return np.concatenate(out)


__all__ = ["LPIPSModel", "backbone_file", "load_lpips", "lpips_distances"]
