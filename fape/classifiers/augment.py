"""Training-time augmentation on batches, on the training device (no per-image Python loop).

All draw from torch's global RNG, which the training loop re-seeds per step, so an augmented
run is as reproducible and resumable as an unaugmented one.

* ``flip``: horizontal flip with probability 1/2.
* ``mobilenet`` (MobileNet + center loss paper, 3.1.2): a random crop covering 0.85-1 of the
  area (aspect ratio 3/4-4/3), resized back, then the flip.
* ``cife`` (CIFE paper, 3.2): one of 5 appearance filters (disk, average, Gaussian, unsharp,
  motion) and one of 6 affine matrices (identity plus slight rotation/scale/shear/shift
  perturbations, one of them the horizontal mirror), i.e. one of the paper's 30 variants.
* ``robust`` (for faces from other datasets and cameras): per image a random affine (scale
  0.85-1.15, rotation +-10 degrees, shift +-6% of the side), the flip, illumination (contrast
  x0.6-1.4, brightness +-0.2 of the range, gamma 0.7-1.4) and, for 30% of images, a Gaussian blur
  of sigma 0.3-1.2 px.
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


def random_affine(x: torch.Tensor, scale=(0.85, 1.15), degrees: float = 10.0, shift: float = 0.06) -> torch.Tensor:
    B, dev = x.shape[0], x.device
    s = torch.empty(B, device=dev).uniform_(*scale)
    a = torch.empty(B, device=dev).uniform_(-degrees, degrees) * math.pi / 180
    t = torch.empty(B, 2, device=dev).uniform_(-2 * shift, 2 * shift)  # normalised coordinates span 2
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = a.cos() / s, -a.sin() / s, a.sin() / s, a.cos() / s
    theta[:, :, 2] = t
    return _warp(x, theta)


def illumination(x: torch.Tensor, contrast=(0.6, 1.4), brightness: float = 0.2, gamma=(0.7, 1.4)) -> torch.Tensor:
    """Per image, on [-1, 1] images: gamma on [0, 1], then contrast about the image mean, then a shift."""
    B, dev = x.shape[0], x.device
    shape = (B, 1, 1, 1)
    g = torch.exp(torch.empty(shape, device=dev).uniform_(math.log(gamma[0]), math.log(gamma[1])))
    y = ((x + 1) / 2).clamp(0, 1).pow(g) * 2 - 1
    c = torch.empty(shape, device=dev).uniform_(*contrast)
    m = y.mean((1, 2, 3), keepdim=True)
    b = torch.empty(shape, device=dev).uniform_(-2 * brightness, 2 * brightness)  # the range spans 2
    return ((y - m) * c + m + b).clamp(-1, 1)


def gaussian_blur(x: torch.Tensor, p: float = 0.3, sigma=(0.3, 1.2)) -> torch.Tensor:
    """5x5 Gaussian of a random sigma on a random ``p`` of the images (the others unchanged)."""
    B, C = x.shape[:2]
    dev = x.device
    sig = torch.empty(B, device=dev).uniform_(*sigma)
    r = torch.arange(5, device=dev, dtype=x.dtype) - 2
    k1 = torch.exp(-r[None] ** 2 / (2 * sig[:, None] ** 2))  # [B, 5]
    k1 = k1 / k1.sum(1, keepdim=True)
    k = (k1[:, :, None] * k1[:, None, :]).to(x.dtype)  # [B, 5, 5]
    w = k[:, None].repeat_interleave(C, 0)  # [B*C, 1, 5, 5]
    blurred = F.conv2d(F.pad(x.reshape(1, B * C, *x.shape[2:]), (2, 2, 2, 2), mode="replicate"), w, groups=B * C)
    on = torch.rand(B, device=dev) < p
    return torch.where(on[:, None, None, None], blurred.reshape_as(x), x)


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
    if kind == "robust":
        return gaussian_blur(illumination(flip(random_affine(x))))
    raise ValueError(f"unknown augmentation {kind!r}; choose none, flip, mobilenet, cife or robust")
