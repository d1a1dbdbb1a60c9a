import numpy as np
import pytest
import torch

from fape.data.landmarks68 import FLIP_PERM, SEGMENTS, flip_landmarks, template_face
from fape.data.masks import mask_channels, render_lines_opencv, render_pose_masks


def faces(B=8, size=64, seed=0):
    rng = np.random.default_rng(seed)
    base = template_face(size)[None]
    jitter = rng.normal(0, size / 64, (B, 68, 2)) + rng.uniform(-size / 16, size / 16, (B, 1, 2))
    return torch.from_numpy((base + jitter).astype(np.float32))


def test_flip_perm_is_an_involution_and_template_symmetric():
    assert sorted(FLIP_PERM.tolist()) == list(range(68))
    assert np.array_equal(FLIP_PERM[FLIP_PERM], np.arange(68))
    t = template_face(64)
    assert np.abs(flip_landmarks(t, 64) - t).max() < 1e-4
    assert SEGMENTS.shape[1] == 2 and SEGMENTS.max() == 67


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("cv_thickness,ours,min_iou", [(1, 1.0, 0.6), (2, 3.0, 0.9), (4, 5.0, 0.9)])
def test_lines_agree_with_opencv(size, cv_thickness, ours, min_iou):
    # OpenCV draws thick LINE_8 lines about one pixel wider than asked (3 and 4 come out alike); its 1-pixel
    # Bresenham line picks one pixel per step, so agreement there is lower by construction.
    lm = faces(8, size)
    mask = render_pose_masks(lm, size, "lines", thickness=ours)[:, 0].numpy() > 0.5
    ref = render_lines_opencv(lm.numpy(), size, thickness=cv_thickness) > 0
    iou = (mask & ref).sum() / (mask | ref).sum()
    assert iou > min_iou, iou


def test_splat_matches_exact_distance_field():
    lm = faces(4, 64)
    for th in (1.0, 2.0, 3.5):
        fast = render_pose_masks(lm, 64, "lines", thickness=th)
        exact = render_pose_masks(lm, 64, "lines", thickness=th, method="dense")
        assert (fast - exact).abs().max() < 0.3
        assert (fast - exact).abs().mean() < 0.005


def test_splat_matches_exact_field_for_faces_crossing_the_frame():
    """Segments leaving the frame on any side: the samples outside are clamped into the canvas
    border, which must not paint the image's edge rows and columns (it did, up to 1.0, on the
    right and bottom edges before the border was widened)."""
    lm = faces(4, 32) * 1.6 - 10  # [4, 68, 2] pixels, about -10..40 in a 32 px frame
    for th in (2.0, 4.0):
        fast = render_pose_masks(lm, 32, "lines", thickness=th)
        exact = render_pose_masks(lm, 32, "lines", thickness=th, method="dense")
        assert (fast - exact).abs().max() < 0.15


def test_line_pixel_values_analytic():
    lm = torch.full((1, 68, 2), float("nan"))
    lm[0, 36:42] = torch.tensor([[10.0, 10.0], [20.0, 10.0], [30.0, 10.0], [30.0, 10.0], [20.0, 10.0], [10.0, 10.0]])
    m = render_pose_masks(lm, 40, "lines", thickness=1.0)[0, 0]
    assert m[10, 10:31].min() == 1.0  # on the line
    assert m[11, 15] == 0.0 and m[9, 15] == 0.0  # one pixel away: outside a 1-px line
    assert m[:, :9].sum() == 0 and m.sum() == pytest.approx(21, abs=1e-4)  # only the eye segment drew


def test_nan_landmarks_draw_nothing_and_batch_independent():
    lm = faces(3, 64)
    lm[1] = float("nan")
    m = render_pose_masks(lm, 64, "lines")
    assert m[1].sum() == 0 and m[0].sum() > 50
    single = render_pose_masks(lm[2:3], 64, "lines")
    assert torch.equal(single[0], m[2])


@pytest.mark.parametrize("thickness", [1.0, 4.0, 9.0])
def test_missing_or_far_away_faces_first_in_batch_draw_nothing(thickness):
    """The first image of a batch all NaN (a dataset without landmarks), or a face far outside
    the frame: no index leaves the canvas and nothing reaches the image."""
    lm = faces(3, 64)
    lm[0] = float("nan")
    lm[1] = lm[1] + 500.0
    lm[2] = lm[2] - 500.0
    m = render_pose_masks(lm, 64, "lines", thickness=thickness)
    assert m.abs().sum() == 0


def test_heatmaps_shapes_and_peaks():
    lm = faces(2, 64)
    h = render_pose_masks(lm, 64, "heatmaps", sigma=1.5)
    assert h.shape == (2, mask_channels("heatmaps"), 64, 64) and h.max() <= 1
    k = 30
    x, y = lm[0, k].round().long()
    assert h[0, k].argmax() == y * 64 + x
    p = render_pose_masks(lm, 64, "heatmaps", per="part")
    assert p.shape == (2, 7, 64, 64)


def test_scaling_to_mask_size():
    lm = faces(2, 64)
    small = render_pose_masks(lm, 32, "lines", image_size=64, thickness=1)
    direct = render_pose_masks((lm + 0.5) / 2 - 0.5, 32, "lines", thickness=1)
    assert torch.allclose(small, direct)


def test_gradcheck_free_and_no_nan_on_degenerate_segments():
    lm = torch.zeros(1, 68, 2) + 5.0  # every segment has zero length
    m = render_pose_masks(lm, 16, "lines", thickness=2)
    assert torch.isfinite(m).all() and m[0, 0, 5, 5] == 1


def test_bad_shape_and_style():
    with pytest.raises(ValueError, match="68, 2"):
        render_pose_masks(torch.zeros(2, 5, 2), 16)
    with pytest.raises(ValueError, match="style"):
        render_pose_masks(torch.zeros(1, 68, 2), 16, style="dots")
