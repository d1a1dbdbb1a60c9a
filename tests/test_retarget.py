"""Landmark retargeting (fape.data.retarget) on cases whose answer is known."""
import numpy as np
import pytest

from fape.data.landmarks68 import template_face
from fape.data.retarget import RIGID, apply_similarity, fit_similarity, retarget
from fape.errors import DatasetError


def _faces():
    """A subject's expression a and b: b opens the mouth and raises the brows (rigid points fixed)."""
    a = template_face(64).astype(np.float64)  # [68, 2] pixels
    b = a.copy()
    b[48:68, 1] += np.linspace(0, 4, 20)  # mouth moves down, unevenly
    b[17:27, 1] -= 2.0  # brows up
    b[4:13, 1] += 3.0  # the chin drops with the mouth (not a rigid point)
    return a, b


def _similar(x, scale=1.3, degrees=20.0, shift=(7.0, -4.0)):
    return apply_similarity(scale * np.exp(1j * np.deg2rad(degrees)), complex(*shift), x)


def test_rigid_points_do_not_move_with_the_expression():
    a, b = _faces()
    assert np.allclose(a[list(RIGID)], b[list(RIGID)])
    assert not np.allclose(a, b)


@pytest.mark.parametrize("stabilise", [False, True])
def test_own_a_to_b_gives_back_b(stabilise):
    a, b = _faces()
    assert np.allclose(retarget(a, a, b, stabilise=stabilise), b, atol=1e-4)


@pytest.mark.parametrize("stabilise", [False, True])
def test_a_similar_copy_of_the_subject_as_donor_gives_back_b(stabilise):
    a, b = _faces()
    out = retarget(a, _similar(a), _similar(b), stabilise=stabilise)
    assert np.allclose(out, b, atol=1e-4)


def test_stabilising_removes_the_donors_head_motion():
    a, b = _faces()
    moved_b = _similar(b, scale=1.05, degrees=4.0, shift=(2.0, 1.0))  # the donor moved between the two photos
    assert np.allclose(retarget(a, a, moved_b, stabilise=True), b, atol=1e-4)
    assert np.allclose(retarget(a, a, moved_b, stabilise=False), moved_b, atol=1e-4)  # the head motion is copied


def test_change_is_carried_into_the_sources_frame():
    a, b = _faces()
    src = _similar(a, scale=0.5, degrees=-30.0, shift=(3.0, 3.0))  # a smaller, tilted face in its own image
    assert np.allclose(retarget(src, a, b), _similar(b, scale=0.5, degrees=-30.0, shift=(3.0, 3.0)), atol=1e-4)


def test_fit_similarity_recovers_a_known_transform():
    a, _ = _faces()
    k, t = fit_similarity(a, _similar(a))
    assert abs(k - 1.3 * np.exp(1j * np.deg2rad(20))) < 1e-9 and abs(t - complex(7, -4)) < 1e-6


def test_missing_or_degenerate_landmarks_are_named():
    a, b = _faces()
    bad = a.copy()
    bad[0] = np.nan
    with pytest.raises(DatasetError, match="donor_from"):
        retarget(a, bad, b)
    with pytest.raises(DatasetError, match="degenerate"):
        retarget(a, np.zeros((68, 2)), b, stabilise=False)


def test_k_donors_move_the_source_by_their_mean_change():
    a, b = _faces()
    c = a.copy()
    c[48:68, 1] += 1.0  # a second donor whose b only moves the mouth by 1 px
    donors_from = np.stack([_similar(a), a])  # [2, 68, 2]
    donors_to = np.stack([_similar(b), c])
    want = a + ((b - a) + (c - a)) / 2
    assert np.allclose(retarget(a, donors_from, donors_to), want, atol=1e-4)
    assert np.allclose(retarget(a, donors_from[:1], donors_to[:1]), b, atol=1e-4)  # K = 1 is one pair
    with pytest.raises(ValueError, match="K, 68, 2"):
        retarget(a, donors_from, donors_to[:1])
