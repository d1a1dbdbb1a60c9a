"""Paired metrics between a generated image and its true target: L1, PSNR, SSIM.

All in [0, 1] units: uint8 images are divided by 255, float images are taken in [-1, 1] (the GAN's
range) and mapped by ``(x + 1) / 2``. Per image:

* L1 = mean |x - y|
* PSNR = 10 log10(1 / MSE) dB (data range 1; identical images give +inf)
* SSIM = mean of ``kornia.metrics.ssim(x, y, window_size=11, max_val=1.0)`` (Gaussian window 11, sigma 1.5)

``face_region_metrics`` takes L1 and SSIM inside the target's face only (the convex hull of its 68
landmarks): with backgrounds drawn per image a target's background is unknowable, so a full-image
figure mostly measures the background guess (issue 15).

Intervals over pairs (``pair_resamples``, ``mean_interval``, ``ratio_interval``): a 95% percentile
bootstrap that resamples the n pairs with replacement, R times (one ``[R, n]`` index array shared by
every figure, so differences and ratios of runs scored on the same pairs stay paired). Pairs that
share subjects make it understate the uncertainty of a new set of subjects: it says how well the
pairs at hand pin a figure down.
"""
from __future__ import annotations

import numpy as np
import torch


def _unit(x) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.dtype == torch.uint8:
        return x.to(torch.float32) / 255.0
    return ((x.to(torch.float32) + 1.0) / 2.0).clamp(0.0, 1.0)


@torch.inference_mode()
def paired_metrics(generated, target) -> dict[str, np.ndarray]:
    """``[B, C, H, W]`` generated and target -> per-image ``{"l1", "psnr", "ssim"}`` float64 arrays ``[B]``."""
    import kornia

    x, y = _unit(generated), _unit(target)
    if x.shape != y.shape:
        raise ValueError(f"generated {tuple(x.shape)} and target {tuple(y.shape)} differ in shape")
    l1 = (x - y).abs().mean((1, 2, 3))
    mse = ((x - y) ** 2).mean((1, 2, 3)).double()
    psnr = torch.where(mse > 0, 10 * torch.log10(1.0 / mse.clamp_min(1e-300)), torch.full_like(mse, float("inf")))
    ssim = kornia.metrics.ssim(x, y, window_size=11, max_val=1.0).mean((1, 2, 3))
    return {"l1": l1.double().numpy(), "psnr": psnr.numpy(), "ssim": ssim.double().numpy()}


def face_region(landmarks, size: int) -> torch.Tensor:
    """``[B, 68, 2]`` pixels -> ``[B, 1, size, size]`` float, 1 inside each landmark set's convex hull."""
    from fape.data.audit import face_masks

    lm = np.asarray(torch.as_tensor(landmarks).float().cpu())
    return torch.from_numpy(face_masks(lm, size, 0)).float()[:, None]


@torch.inference_mode()
def face_region_metrics(generated, target, target_landmarks) -> dict[str, np.ndarray]:
    """Per image ``{"face_l1", "face_ssim"}`` ``[B]``: mean |x - y| and the mean of the SSIM map over
    the pixels inside the target's landmark hull (``target_landmarks [B, 68, 2]`` pixels)."""
    import kornia

    x, y = _unit(generated), _unit(target)
    if x.shape != y.shape:
        raise ValueError(f"generated {tuple(x.shape)} and target {tuple(y.shape)} differ in shape")
    m = face_region(target_landmarks, x.shape[-1])  # [B, 1, H, W]
    area = (m.sum((1, 2, 3)) * x.shape[1]).clamp_min(1)  # an empty hull gives 0, not NaN
    l1 = ((x - y).abs() * m).sum((1, 2, 3)) / area
    ssim = (kornia.metrics.ssim(x, y, window_size=11, max_val=1.0) * m).sum((1, 2, 3)) / area
    return {"face_l1": l1.double().numpy(), "face_ssim": ssim.double().numpy()}


@torch.inference_mode()
def nuisance_floor(target, redraws, target_landmarks) -> dict[str, np.ndarray]:
    """Per pair, the face-region L1 that no generator can beat without knowing the target's nuisance.

    ``target`` ``[N, C, H, W]`` uint8; ``redraws`` ``[N, K, C, H, W]`` uint8 (K >= 1): the same faces
    rendered again with the nuisance (lighting, background, pixel noise) drawn anew and everything
    else kept (``fape.data.synth.render_redraws``); ``target_landmarks`` ``[N, 68, 2]`` pixels.

    * ``floor_bound`` = 1/2 mean over the hull of |X - Y|, X the target and Y its first redraw: for
      X, Y i.i.d. given the face and any prediction p made without X's nuisance, per pixel
      E|X - Y| <= E|X - p| + E|p - Y| = 2 E|X - p|. A lower bound on the expected face-region L1 of
      every generator, whatever it knows of the face.
    * ``floor`` = mean over the hull of |X - median_k Y_k|: the error of a guess that knows the face,
      camera and nuisance distribution exactly (the median minimises expected L1), estimated from
      the K redraws (high by the median's sampling error, so an upper estimate of that oracle).
    """
    t = torch.as_tensor(target)
    r = torch.as_tensor(redraws)
    if r.ndim != 5 or r.shape[0] != t.shape[0] or r.shape[2:] != t.shape[1:]:
        raise ValueError(f"redraws {tuple(r.shape)} must be [N, K, C, H, W] for targets {tuple(t.shape)}")
    med = r.median(dim=1).values  # [N, C, H, W]; for even K the lower middle value: still a guess without X
    bound = face_region_metrics(r[:, 0], t, target_landmarks)["face_l1"] / 2.0
    return {"floor_bound": bound, "floor": face_region_metrics(med, t, target_landmarks)["face_l1"]}


def summarize(per_image: dict[str, np.ndarray]) -> dict[str, float]:
    """Means (PSNR mean over finite values; ``psnr_identical`` counts the infinite ones)."""
    out = {}
    for k, v in per_image.items():
        v = np.asarray(v, np.float64)
        fin = v[np.isfinite(v)]
        out[k] = float(fin.mean()) if len(fin) else float("nan")
        if k == "psnr":
            out["psnr_identical"] = int((~np.isfinite(v)).sum())
    out["n"] = int(len(next(iter(per_image.values())))) if per_image else 0
    return out


__all__ = ["face_region", "face_region_metrics", "nuisance_floor", "paired_metrics", "summarize"]


# ---------------------------------------------------------------- intervals over pairs
def pair_resamples(n: int, resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """``[R, n]`` indices of ``R`` bootstrap resamples of ``n`` pairs (with replacement)."""
    if n < 1:
        raise ValueError("pair_resamples: no pairs")
    return np.random.default_rng(seed).integers(0, n, (resamples, n))


def _band(point: float, boot: np.ndarray, level: float) -> tuple[float, float, float]:
    a = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(boot, [a, 100.0 - a])
    return float(point), float(lo), float(hi)


def mean_interval(x, idx: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)`` of per-pair values ``x`` ``[n]``; ``idx`` from :func:`pair_resamples`.
    A difference of two runs is ``mean_interval(a - b, idx)`` (paired)."""
    x = np.asarray(x, np.float64)
    return _band(x.mean(), x[idx].mean(1), level)


def ratio_interval(num, den, idx: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean(num) / mean(den), lo, hi)``, both ``[n]`` per pair, resampled together."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return _band(num.mean() / max(den.mean(), 1e-12), num[idx].mean(1) / np.maximum(den[idx].mean(1), 1e-12), level)
