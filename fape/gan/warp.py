"""A differentiable warp of a source face onto target landmarks (for the ``warp_unet`` generator).

Backward warp: every output pixel ``p`` (in the target's frame) reads the source at ``q(p)``, with
``q(t_k) ~= s_k`` at the 68 target landmarks ``t_k`` and their source partners ``s_k``. The map is

    q(p) = A p + b + sum_k w_k exp(-|p - t_k|^2 / (2 sigma^2))

- ``A, b``: the least-squares affine map from target to source landmarks. It carries the global
  shift, scale and shear, so a pure translation or scaling of the landmarks is reproduced
  exactly (the residuals below are then 0), and identical landmarks give the identity.
- ``w``: a *ridge-regularised* Gaussian RBF fit of the residuals ``r_k = s_k - (A t_k + b)``:
  ``(K + reg I) w = r`` with ``K_ij = exp(-|t_i - t_j|^2 / (2 sigma^2))``.

Why not kornia's thin-plate spline over the 68 points: on side views several target landmarks
nearly coincide (the far jaw and brow fold onto the nose), so the TPS system is ill-conditioned
and the spline swings wildly between the points (folds, pixels pulled from across the image).
Here ``K`` is positive semi-definite, so ``K + reg I`` has eigenvalues >= ``reg`` and a
condition number <= ``(68 + reg) / reg``: coincident landmarks with different residuals are
averaged instead of blowing up, and far from the face the Gaussians vanish and the warp falls
back to the affine map (a smooth, fold-free background). A piecewise-affine warp would need a
triangulation (not differentiable in the points, and it folds where triangles flip).

The field is evaluated on a coarse ``grid x grid`` lattice through the pixel centres and upsampled
bilinearly (``align_corners=True``): an affine field survives this exactly, and the Gaussian part
is smooth at the scale of ``sigma`` anyway. Coordinates are pixels with pixel ``i``'s centre at
``i`` (fape's landmark convention), normalised to [-1, 1] for ``grid_sample(align_corners=True)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["affine_fit", "rbf_weights", "landmark_grid", "warp_to_landmarks"]


def _to_unit(points: torch.Tensor, size: int) -> torch.Tensor:
    return points * (2.0 / (size - 1)) - 1.0  # pixels (centre of pixel i at i) -> [-1, 1]


def affine_fit(src: torch.Tensor, dst: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Least-squares ``dst ~= src @ A.T + b`` per batch: ``[B, K, 2]`` twice -> ``[B, 3, 2]`` (rows: A.T, then b).

    Normal equations with a tiny ridge ``eps`` so a degenerate (collinear) point set stays finite."""
    X = torch.cat([src, torch.ones_like(src[..., :1])], -1)  # [B, K, 3]
    XtX = X.transpose(1, 2) @ X + eps * torch.eye(3, dtype=X.dtype, device=X.device)  # [B, 3, 3]
    return torch.linalg.solve(XtX, X.transpose(1, 2) @ dst)  # [B, 3, 2]


def _gauss(a: torch.Tensor, b: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.exp(-torch.cdist(a, b).square() / (2 * sigma ** 2))  # [B, P, K]


def rbf_weights(centres: torch.Tensor, residuals: torch.Tensor, sigma: float, reg: float) -> torch.Tensor:
    """``(K + reg I)^-1 r``: ``[B, K, 2]`` centres and residuals -> ``[B, K, 2]`` RBF weights."""
    K = _gauss(centres, centres, sigma)  # [B, K, K], ones on the diagonal
    eye = torch.eye(K.shape[-1], dtype=K.dtype, device=K.device)
    return torch.linalg.solve(K + reg * eye, residuals)


def landmark_grid(source_landmarks: torch.Tensor, target_landmarks: torch.Tensor, size: int,
                  sigma: float = 0.1, reg: float = 0.1, grid: int = 32) -> torch.Tensor:
    """The sampling grid ``[B, size, size, 2]`` (x, y in [-1, 1]) that moves ``source_landmarks`` onto
    ``target_landmarks`` (both ``[B, K, 2]`` pixels at ``size``).

    ``sigma``: Gaussian width as a fraction of the image side; ``reg``: ridge on the RBF system
    (relative to its unit diagonal; larger = smoother, closer to the affine map); ``grid``: side of
    the coarse lattice the field is computed on (0 or >= size: every pixel)."""
    t = _to_unit(target_landmarks.float(), size)  # [B, K, 2]
    s = _to_unit(source_landmarks.float(), size)
    Ab = affine_fit(t, s)  # [B, 3, 2]
    affine = lambda p: p @ Ab[:, :2] + Ab[:, 2:]  # noqa: E731  [B, P, 2] -> [B, P, 2]
    sig = 2.0 * sigma  # fraction of the side -> [-1, 1] units
    w = rbf_weights(t, s - affine(t), sig, reg)  # [B, K, 2]
    n = size if grid <= 0 or grid >= size else grid
    lin = torch.linspace(-1.0, 1.0, n, device=t.device)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    p = torch.stack([xx, yy], -1).reshape(1, n * n, 2).expand(t.shape[0], -1, -1)  # [B, n*n, 2]
    q = affine(p) + _gauss(p, t, sig) @ w  # [B, n*n, 2]
    q = q.reshape(-1, n, n, 2)
    if n != size:  # exact for the affine part; align_corners keeps lattice points on pixel centres
        q = F.interpolate(q.permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                          align_corners=True).permute(0, 2, 3, 1)
    return q  # [B, size, size, 2]


def warp_to_landmarks(image: torch.Tensor, source_landmarks: torch.Tensor, target_landmarks: torch.Tensor,
                      sigma: float = 0.1, reg: float = 0.1, grid: int = 32) -> torch.Tensor:
    """``image [B, C, H, H]`` whose face has ``source_landmarks`` -> the same face moved onto
    ``target_landmarks`` (``[B, 68, 2]`` pixels); outside the source, border pixels repeat."""
    if image.shape[-1] != image.shape[-2]:
        raise ValueError(f"warp_to_landmarks needs square images, got {tuple(image.shape)}")
    g = landmark_grid(source_landmarks, target_landmarks, image.shape[-1], sigma, reg, grid)
    return F.grid_sample(image, g.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True)
