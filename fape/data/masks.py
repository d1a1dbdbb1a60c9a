"""Pose masks: 68 landmarks -> image-like condition for the generator, batched in torch.

Two styles:

* ``lines`` (the F2ED paper's Fig. 4b): jaw, brows, nose, eyes and lips drawn as connected
  polylines. Each pixel p gets ``clamp(r + 1/2 - d(p), 0, 1)`` where ``d`` is the Euclidean
  distance from the pixel centre to the nearest segment and ``r = thickness / 2``: an
  anti-aliased line ``thickness`` pixels wide. One channel.
* ``heatmaps``: a Gaussian ``exp(-|p - l|^2 / (2 sigma^2))`` per landmark (68 channels) or the
  maximum over each part's landmarks (7 channels, ``per="part"``).

Everything is tensor maths over the whole batch on the landmarks' device: no Python loop per
image. Landmarks given as NaN (no face found) draw nothing.
"""
from __future__ import annotations

import numpy as np
import torch

from fape.data.landmarks68 import HEATMAP_PARTS, SEGMENTS

_MAX_ELEMS = 1 << 25  # ~128 MiB of float32 per chunk of the [B, S, H, W] distance tensor


def _scale(landmarks: torch.Tensor, image_size: tuple[int, int] | None, size: tuple[int, int]) -> torch.Tensor:
    """Pixel coords in an ``image_size`` [H, W] image -> pixel coords in a ``size`` [H, W] mask."""
    if image_size is None or tuple(image_size) == tuple(size):
        return landmarks
    sy, sx = size[0] / image_size[0], size[1] / image_size[1]
    scale = landmarks.new_tensor([sx, sy])
    return (landmarks + 0.5) * scale - 0.5  # pixel centres map to pixel centres


def _grid(size: tuple[int, int], device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    ys = torch.arange(size[0], device=device, dtype=dtype)
    xs = torch.arange(size[1], device=device, dtype=dtype)
    return ys, xs


def _segment_ends(landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, 68, 2]`` -> segment ends ``a, b`` ``[B, S, 2]``; segments touching a NaN are moved far away."""
    seg = torch.as_tensor(SEGMENTS, device=landmarks.device)
    a, b = landmarks[:, seg[:, 0]], landmarks[:, seg[:, 1]]
    valid = (torch.isfinite(a).all(-1) & torch.isfinite(b).all(-1))[..., None]  # [B, S, 1]
    far = torch.full_like(a, -1e4)
    return torch.where(valid, a, far), torch.where(valid, b, far)


def render_lines_dense(landmarks: torch.Tensor, size: tuple[int, int], thickness: float = 1.0) -> torch.Tensor:
    """Exact distance field over every pixel and segment: ``O(B S H W)``; the reference for ``splat``."""
    B, (H, W) = landmarks.shape[0], size
    a, b = _segment_ends(landmarks)
    ys, xs = _grid(size, landmarks.device, landmarks.dtype)
    r = thickness / 2 + 0.5
    out = landmarks.new_zeros(B, H, W)
    S = a.shape[1]
    step = max(1, _MAX_ELEMS // max(1, B * H * W))
    for s0 in range(0, S, step):  # loop over segment chunks (bounded memory), never over images
        ax, ay = a[:, s0:s0 + step, 0, None, None], a[:, s0:s0 + step, 1, None, None]  # [B, s, 1, 1]
        dx, dy = b[:, s0:s0 + step, 0, None, None] - ax, b[:, s0:s0 + step, 1, None, None] - ay
        px, py = xs[None, None, None, :] - ax, ys[None, None, :, None] - ay  # [B, s, 1, W], [B, s, H, 1]
        len2 = (dx * dx + dy * dy).clamp_min(1e-12)
        t = ((px * dx + py * dy) / len2).clamp(0, 1)  # [B, s, H, W] projection onto the segment
        d = torch.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2)
        out = torch.maximum(out, (r - d).clamp(0, 1).amax(1))
    return out[:, None]


def render_lines_splat(landmarks: torch.Tensor, size: tuple[int, int], thickness: float = 1.0,
                       spacing: float | None = None) -> torch.Tensor:
    """Sample each segment every ``spacing`` pixels and scatter-max a small anti-aliased disc.

    Cost ``O(total line length / spacing * w^2)`` with a ``w x w`` window per sample, instead
    of ``O(B S H W)``: the distance to the nearest sample overestimates the distance to the
    segment by at most ``spacing / 2`` along the line, nothing across it, and at the line's
    edge (distance ``r``) by about ``spacing^2 / (8 r)``: the default ``max(0.5, thickness / 4)``
    keeps that under 0.1 pixel.
    """
    B, (H, W) = landmarks.shape[0], size
    a, b = _segment_ends(landmarks)
    r = thickness / 2 + 0.5
    spacing = spacing or max(0.5, thickness / 4)
    # samples per segment in proportion to its length: n = ceil(L / spacing) + 1
    seg_len = (b - a).norm(dim=-1).masked_fill((a < -1e3).any(-1), 0).reshape(-1)  # [B*S] pixels
    n = (seg_len / spacing).ceil().long() + 1
    seg_id = torch.repeat_interleave(torch.arange(n.numel(), device=a.device), n)  # [P] one per sample
    start = torch.cumsum(n, 0) - n
    t = (torch.arange(seg_id.numel(), device=a.device) - start[seg_id]).to(a.dtype)
    t = t / (n[seg_id] - 1).clamp_min(1).to(a.dtype)
    a_, b_ = a.reshape(-1, 2)[seg_id], b.reshape(-1, 2)[seg_id]
    q = a_ + t[:, None] * (b_ - a_)  # [P, 2] sample points
    img = seg_id // a.shape[1]  # [P] image index of each sample
    R = int(np.ceil(r))
    off = torch.arange(-R + 1, R + 1, device=a.device)
    oy, ox = (o.reshape(-1) for o in torch.meshgrid(off, off, indexing="ij"))  # [w*w] window offsets
    # draw on a canvas with a (2R+1)-pixel border so no window needs bounds checks: points farther
    # out (and the far-away stand-ins of missing landmarks) are clamped to R pixels from the canvas
    # edge, where their windows stay on the canvas and their discs (radius r <= R) end before the image
    E = 2 * R + 1
    Hp, Wp = H + 2 * E, W + 2 * E
    q = q + E
    q = torch.stack([q[:, 0].clamp(R, Wp - R - 1), q[:, 1].clamp(R, Hp - R - 1)], 1)
    base = q.floor()
    fx, fy = base[:, 0] - q[:, 0], base[:, 1] - q[:, 1]  # [P] in (-1, 0]
    d = torch.sqrt((fx[:, None] + ox) ** 2 + (fy[:, None] + oy) ** 2)  # [P, w*w] pixels
    val = (r - d).clamp_(0, 1)
    flat = (img * (Hp * Wp) + base[:, 1].long() * Wp + base[:, 0].long())[:, None] + (oy * Wp + ox)
    out = landmarks.new_zeros(B * Hp * Wp)
    out.scatter_reduce_(0, flat.reshape(-1), val.reshape(-1), reduce="amax")
    out = out.view(B, 1, Hp, Wp)[:, :, E:E + H, E:E + W]
    return out.contiguous()


def render_heatmaps(landmarks: torch.Tensor, size: tuple[int, int], sigma: float = 1.0,
                    per: str = "landmark") -> torch.Tensor:
    """``[B, 68, 2]`` pixels -> ``[B, 68, H, W]`` (per landmark) or ``[B, 7, H, W]`` (per part)."""
    ys, xs = _grid(size, landmarks.device, landmarks.dtype)
    lm = torch.nan_to_num(landmarks, nan=-1e4)
    gx = torch.exp(-((xs[None, None, :] - lm[..., 0:1]) ** 2) / (2 * sigma**2))  # [B, 68, W]
    gy = torch.exp(-((ys[None, None, :] - lm[..., 1:2]) ** 2) / (2 * sigma**2))  # [B, 68, H]
    maps = gy[..., :, None] * gx[..., None, :]  # [B, 68, H, W], separable Gaussian
    if per == "landmark":
        return maps
    if per != "part":
        raise ValueError(f"per must be 'landmark' or 'part', got {per!r}")
    return torch.stack([maps[:, list(idx)].amax(1) for idx in HEATMAP_PARTS.values()], 1)


def mask_channels(style: str, per: str = "landmark") -> int:
    if style == "lines":
        return 1
    if style == "heatmaps":
        return 68 if per == "landmark" else len(HEATMAP_PARTS)
    raise ValueError(f"unknown pose-mask style {style!r}; choose 'lines' or 'heatmaps'")


def render_pose_masks(landmarks: torch.Tensor | np.ndarray, size: int | tuple[int, int], style: str = "lines",
                      image_size: int | tuple[int, int] | None = None, thickness: float | None = None,
                      sigma: float | None = None, per: str = "landmark", method: str = "splat") -> torch.Tensor:
    """Render a batch of pose masks.

    Args:
        landmarks: ``[B, 68, 2]`` (x, y) pixels in an ``image_size`` image (NaN = no face).
        size: mask side or ``(H, W)``.
        style: ``"lines"`` or ``"heatmaps"``.
        image_size: size the landmarks refer to; ``None`` means the mask's size.
        thickness: line width in mask pixels (default ``max(1, W / 64)``).
        sigma: Gaussian std in mask pixels (default ``max(1, W / 64)``).
        per: heatmaps per ``"landmark"`` or per ``"part"``.
        method: lines drawn by ``"splat"`` (fast) or ``"dense"`` (exact distance field).

    Returns:
        float tensor ``[B, C, H, W]`` in [0, 1] on the landmarks' device; C from ``mask_channels``.
    """
    lm = torch.as_tensor(landmarks)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be [B, 68, 2], got {tuple(lm.shape)}")
    if not lm.is_floating_point():
        lm = lm.float()
    size = (size, size) if isinstance(size, int) else tuple(size)
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    lm = _scale(lm, image_size, size)
    default = max(1.0, size[1] / 64)
    if style == "lines":
        draw = render_lines_splat if method == "splat" else render_lines_dense
        return draw(lm, size, thickness if thickness is not None else default)
    if style == "heatmaps":
        return render_heatmaps(lm, size, sigma if sigma is not None else default, per)
    raise ValueError(f"unknown pose-mask style {style!r}; choose 'lines' or 'heatmaps'")


def render_lines_opencv(landmarks: np.ndarray, size: int | tuple[int, int], thickness: int = 1) -> np.ndarray:
    """Reference: per-image OpenCV polylines, ``[B, 68, 2]`` pixels -> ``[B, H, W]`` uint8 {0, 255}.

    Used by the benchmark and the agreement test; not on any training path.
    """
    import cv2

    size = (size, size) if isinstance(size, int) else tuple(size)
    out = np.zeros((len(landmarks), *size), np.uint8)
    shift = 4  # sub-pixel precision: coordinates in 1/16 pixel
    for i, lm in enumerate(np.asarray(landmarks, np.float64)):
        if not np.isfinite(lm).all():
            continue
        pts = np.round(lm * (1 << shift)).astype(np.int32)
        for a, b in SEGMENTS:
            cv2.line(out[i], tuple(pts[a]), tuple(pts[b]), 255, thickness, cv2.LINE_8, shift)
    return out
