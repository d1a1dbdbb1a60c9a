"""The landmark warp of ``warp_unet`` on analytic cases (fape.gan.warp)."""
import math

import numpy as np
import pytest
import torch

from fape.gan.warp import landmark_grid, warp_to_landmarks

torch.set_num_threads(1)
S = 64


def _face(B=2, seed=0):
    # [B, 68, 2] pixels inside the middle of an S x S image
    g = torch.Generator().manual_seed(seed)
    return S * (0.3 + 0.4 * torch.rand(B, 68, 2, generator=g, dtype=torch.float64)).float()


def _identity_grid(B):
    lin = torch.linspace(-1, 1, S)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    return torch.stack([xx, yy], -1).expand(B, S, S, 2)


def _smooth(x, y):
    # a smooth image, so bilinear interpolation error stays small: [.., H, W] in [-1, 1]
    return 0.5 * torch.sin(0.21 * x + 0.3) * torch.cos(0.17 * y - 0.4)


def _pixels():
    r = torch.arange(S, dtype=torch.float32)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return xx, yy


@pytest.mark.parametrize("grid", [0, 16, 32])
def test_identical_landmarks_give_the_identity_warp(grid):
    lm = _face()
    g = landmark_grid(lm, lm, S, grid=grid)
    assert torch.allclose(g, _identity_grid(2), atol=1e-5)
    img = torch.rand(2, 3, S, S) * 2 - 1
    assert torch.allclose(warp_to_landmarks(img, lm, lm, grid=grid), img, atol=1e-4)


@pytest.mark.parametrize("grid", [0, 32])
def test_translation_moves_the_image_by_exactly_that_shift(grid):
    src = _face()
    dx, dy = 5.0, -3.0
    tgt = src + torch.tensor([dx, dy])
    g = landmark_grid(src, tgt, S, grid=grid)
    # output pixel p reads the source at p - (dx, dy), in [-1, 1] units
    expect = _identity_grid(2) - torch.tensor([dx, dy]) * 2 / (S - 1)
    assert torch.allclose(g, expect, atol=1e-5)
    img = torch.rand(2, 3, S, S) * 2 - 1
    out = warp_to_landmarks(img, src, tgt, grid=grid)
    # integer shift: bilinear sampling lands on pixel centres, so the interior is copied exactly
    assert torch.allclose(out[..., :-3, 5:], img[..., 3:, :-5], atol=1e-4)  # out(y, x) = img(y + 3, x - 5)


def test_scaling_about_a_point_warps_by_that_scaling():
    src = _face()
    c, a = torch.tensor([30.0, 34.0]), 1.3  # target = c + a (source - c)
    tgt = c + a * (src - c)
    xx, yy = _pixels()
    img = _smooth(xx, yy).expand(2, 1, S, S).contiguous()
    out = warp_to_landmarks(img, src, tgt)
    # output(p) = source(c + (p - c) / a): compare with the analytic image where that stays inside
    qx, qy = c[0] + (xx - c[0]) / a, c[1] + (yy - c[1]) / a
    inside = (qx >= 0) & (qx <= S - 1) & (qy >= 0) & (qy <= S - 1)
    expect = _smooth(qx, qy)
    err = (out[:, 0] - expect).abs()[:, inside]
    # bilinear interpolation error of this image is <= h^2 |f''| / 8 with h = 1 px: 0.5 * 0.21^2 / 8 * 2
    assert err.max() < 0.01, err.max()
    g = landmark_grid(src, tgt, S)
    ex = torch.stack([qx, qy], -1) * 2 / (S - 1) - 1
    assert torch.allclose(g, ex.expand(2, S, S, 2), atol=1e-4)


def test_local_deformation_moves_landmarks_towards_their_partners():
    # a non-affine change (one eye moves alone on a template face): the RBF part follows it
    from fape.data.landmarks68 import template_face

    src = torch.from_numpy(np.asarray(template_face(S), np.float32))[None]  # [1, 68, 2] pixels
    tgt = src.clone()
    tgt[0, 36:42] += torch.tensor([3.0, 2.0])
    g = landmark_grid(src, tgt, S, grid=0)
    ti = tgt[0].round().long()  # nearest pixel to each target landmark
    sent = (g[0, ti[:, 1], ti[:, 0]] + 1) * (S - 1) / 2  # where it reads the source, [68, 2] pixels
    err = (sent - src[0] - (ti - tgt[0])).norm(dim=1)  # minus the rounding offset (the map is ~identity there)
    assert err[36:42].mean() < 1.0  # the eye's 3.6-pixel move is followed within 1 px
    assert err.mean() < 0.3
    # a huge ridge leaves only the affine part, which cannot follow the eye alone
    g_aff = landmark_grid(src, tgt, S, reg=1e6, grid=0)
    sent_aff = (g_aff[0, ti[:, 1], ti[:, 0]] + 1) * (S - 1) / 2
    assert (sent_aff - src[0] - (ti - tgt[0])).norm(dim=1)[36:42].mean() > 2.5


def test_coincident_landmarks_of_a_side_view_stay_finite():
    # a side view folds half the face onto a few pixels: a 68-point TPS would be singular
    src = _face(2, seed=1).requires_grad_(True)
    tgt = src.detach().clone()
    tgt[:, :17] = tgt[:, 30:31]  # the whole jaw onto the nose tip
    tgt[:, 17:22] = tgt[:, 17:18]  # a brow onto one point
    img = (torch.rand(2, 3, S, S) * 2 - 1).requires_grad_(True)
    out = warp_to_landmarks(img, src, tgt)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert torch.isfinite(src.grad).all() and torch.isfinite(img.grad).all()
    g = landmark_grid(src.detach(), tgt, S)
    assert g.abs().max() < 3  # samples stay near the image, no wild swings
    assert not math.isnan(float(g.sum()))
