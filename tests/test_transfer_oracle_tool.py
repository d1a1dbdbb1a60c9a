"""tools/transfer_oracle.py: the subject's own landmarks of the drawn expression, moved onto the
source by a similarity on the rigid points (a known case), and None when the subject never shows it."""
import numpy as np
import pandas as pd

from _fixtures import load_tool
from fape.data.landmarks68 import template_face


def test_own_landmarks_recovers_a_known_similarity():
    t = load_tool("transfer_oracle")
    face = template_face(64).astype(np.float64)  # [68, 2]
    m = pd.DataFrame({"subject": ["s0", "s0", "s1"], "expression": ["happy", "sad", "sad"]})
    # s0's sad face: the template moved by a similarity (scale 1.1, 10 degrees, shift), mouth opened
    th = np.deg2rad(10)
    rot = 1.1 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    sad = face.copy()
    sad[48:68, 1] += 2.0  # the expression: non-rigid points only
    lms = np.stack([face, sad @ rot.T + [3.0, -2.0], face + 5])
    got = t.own_landmarks(m, lms, np.arange(3), "s0", "sad", face)
    assert np.allclose(got, sad, atol=1e-6)  # back in the source's frame: only the expression remains
    assert t.own_landmarks(m, lms, np.arange(3), "s1", "happy", face) is None
    assert t.own_landmarks(m, lms, np.array([0, 2]), "s0", "sad", face) is None  # not among the allowed rows
