"""Training-time augmentation on batches, on the training device (no per-image Python loop).

All draw from torch's global RNG, which the training loop re-seeds per step, so an augmented
run is as reproducible and resumable as an unaugmented one.

* ``flip``: horizontal flip with probability 1/2.
* ``mobilenet`` (MobileNet + center loss paper, 3.1.2): a random crop covering 0.85-1 of the
  area (aspect ratio 3/4-4/3), resized back, then the flip.
* ``cife`` (CIFE paper, 3.2): one of 5 appearance filters (disk, average, Gaussian, unsharp,
  motion) and one of 6 affine matrices (identity plus slight rotation/scale/shear/shift
  perturbations, one of them the horizontal mirror), i.e. one of the paper's 30 variants.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Apply affine ``theta [B, 2, 3]`` (normalised coordinates, output -> input) to ``x [B, C, H, W]``."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def flip(x: torch.Tensor) -> torch.Tensor:
    m = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(m[:, None, None, None], x.flip(-1), x)


def random_area_crop(x: torch.Tensor, area=(0.85, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    B = x.shape[0]
    dev = x.device
    a = torch.empty(B, device=dev).uniform_(*area)
    r = torch.exp(torch.empty(B, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    sw = torch.sqrt(a * r).clamp(max=1.0)  # crop width / image width
    sh = torch.sqrt(a / r).clamp(max=1.0)
    tx = (torch.rand(B, device=dev) * 2 - 1) * (1 - sw)  # centre stays inside the image
    ty = (torch.rand(B, device=dev) * 2 - 1) * (1 - sh)
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = sw, sh, tx, ty
    return _warp(x, theta)


def _kernels(channels: int, device) -> torch.Tensor:
    """The 5 CIFE appearance filters as 5x5 kernels ``[5, 1, 5, 5]`` (unsharp as identity + detail)."""
    k = 5
    yy, xx = torch.meshgrid(torch.arange(k) - 2.0, torch.arange(k) - 2.0, indexing="ij")
    disk = ((xx**2 + yy**2) <= 4.0).float()
    average = torch.ones(k, k)
    gauss = torch.exp(-(xx**2 + yy**2) / (2 * 1.0**2))
    motion = (yy == 0).float()  # horizontal motion blur, 5 px
    kernels = [disk / disk.sum(), average / average.sum(), gauss / gauss.sum(), None, motion / motion.sum()]
    ident = torch.zeros(k, k)
    ident[2, 2] = 1
    kernels[3] = ident + 0.8 * (ident - kernels[2])  # unsharp mask, amount 0.8
    return torch.stack(kernels)[:, None].to(device)


_AFFINES = torch.tensor([  # 6 matrices: slight perturbations of the identity, one mirror
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
    [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],  # horizontal mirror
    [[math.cos(0.1), -math.sin(0.1), 0.0], [math.sin(0.1), math.cos(0.1), 0.0]],  # rotate ~6 degrees
    [[math.cos(-0.1), -math.sin(-0.1), 0.0], [math.sin(-0.1), math.cos(-0.1), 0.0]],
    [[0.92, 0.0, 0.0], [0.0, 0.92, 0.0]],  # zoom in 8%
    [[1.0, 0.08, 0.04], [0.0, 1.0, -0.04]],  # shear + shift
])


def cife(x: torch.Tensor) -> torch.Tensor:
    B, C = x.shape[:2]
    kernels = _kernels(C, x.device).to(x.dtype)  # [5, 1, 5, 5]
    pick = torch.randint(0, 5, (B,), device=x.device)
    # depthwise conv of every image with its own kernel: fold the batch into channels
    w = kernels[pick].repeat_interleave(C, 0)  # [B*C, 1, 5, 5]
    filtered = F.conv2d(F.pad(x.reshape(1, B * C, *x.shape[2:]), (2, 2, 2, 2), mode="replicate"), w, groups=B * C)
    theta = _AFFINES.to(x.device)[torch.randint(0, 6, (B,), device=x.device)]
    return _warp(filtered.reshape_as(x), theta).clamp(-1, 1)


def augment(x: torch.Tensor, kind: str) -> torch.Tensor:
    """``x`` float ``[B, C, H, W]`` in [-1, 1] -> augmented, same shape."""
    if kind == "none":
        return x
    if kind == "flip":
        return flip(x)
    if kind == "mobilenet":
        return flip(random_area_crop(x))
    if kind == "cife":
        return cife(x)
    raise ValueError(f"unknown augmentation {kind!r}; choose none, flip, mobilenet or cife")
