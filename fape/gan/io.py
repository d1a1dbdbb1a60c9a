"""Loading a trained generator from a run, and the pose masks it was trained with."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from fape.config import from_dict
from fape.data.masks import mask_channels, render_pose_masks
from fape.gan.config import GANConfig, GANDataConfig
from fape.utils.checkpoint import latest_checkpoint, load_module_state, load_state
from fape.utils.io import sha256_file


def pose_masks(landmarks: torch.Tensor, data: GANDataConfig) -> torch.Tensor:
    """``[B, 68, 2]`` pixels at ``data.image_size`` -> the generator's condition ``[B, M, H, W]``."""
    return render_pose_masks(landmarks, data.image_size, data.mask_style,
                             thickness=data.mask_thickness or None, per=data.mask_per)


def num_mask_channels(data: GANDataConfig) -> int:
    return mask_channels(data.mask_style, data.mask_per)


def resolve_checkpoint(run_or_ckpt: str | Path) -> Path:
    p = Path(run_or_ckpt)
    if (p / "state.json").is_file():
        return p
    ckpt = latest_checkpoint(p)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint found in {p} (looked for {p / 'checkpoints' / 'latest'} "
                                f"and {p / 'checkpoints' / 'step_*'}/state.json)")
    return ckpt


def config_from_checkpoint(ckpt: Path) -> GANConfig:
    return from_dict(GANConfig, load_state(ckpt)["config"])


@dataclass
class LoadedGenerator:
    G: torch.nn.Module  # eval mode, on the requested device
    cfg: GANConfig
    checkpoint: Path
    weights: Path  # the safetensors file the weights came from
    sha256: str


def load_generator(run_or_ckpt: str | Path, use_ema: bool = True, device: str | torch.device = "cpu") -> LoadedGenerator:
    """The generator of a run's latest checkpoint (its EMA when it has one and ``use_ema``)."""
    from fape.gan.networks import create_generator

    ckpt = resolve_checkpoint(run_or_ckpt)
    cfg = config_from_checkpoint(ckpt)
    name = "G_ema" if use_ema and (ckpt / "G_ema.safetensors").is_file() else "G"
    G = create_generator(cfg.generator, in_chans=cfg.data.channels, mask_chans=num_mask_channels(cfg.data),
                         image_size=cfg.data.image_size)
    G.load_state_dict(load_module_state(ckpt, name))
    weights = ckpt / f"{name}.safetensors"
    return LoadedGenerator(G=G.to(device).eval(), cfg=cfg, checkpoint=ckpt, weights=weights,
                           sha256=sha256_file(weights))
