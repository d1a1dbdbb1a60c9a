"""Quality gates: the pose gate keeps faces drawn in the asked pose and drops the others."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fape.gan.gates import PoseGate, parse_gate


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """24 rendered synthetic faces at 64 px ([B, 3, H, W] in [-1, 1]) and their landmarks [B, 68, 2]."""
    from fape.data.dataset import FaceDataset, to_float
    from fape.data.format import read_index
    from fape.data.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("gate") / "synth"
    cfg = dataclasses.replace(SynthConfig(), out=str(out), identities=2, expressions=3, frames=1, image_size=64,
                              poses=["front", "half_right"])
    synthesize(cfg, out, overwrite=True, progress=False)
    idx = read_index(out)
    ds = FaceDataset(idx, size=(64, 64), channels=3, cache=False, progress=False)
    imgs = np.stack([ds.load(i) for i in range(len(idx.manifest))])  # [B, 64, 64, 3] uint8
    return to_float(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()), torch.from_numpy(ds.landmarks)


def test_pose_gate_keeps_faces_in_the_target_pose_and_drops_others(faces):
    x, lm = faces
    gate = PoseGate(0.3)
    keep = gate(x, x, lm, [{}] * len(x))
    assert keep.dtype == bool and keep.shape == (len(x),)
    assert keep.mean() >= 0.5  # a real face judged against its own landmarks
    assert len(gate.seen) == len(x)
    # the same faces asked for a pose 10 px (a third of the face) away: every one fails
    wrong = PoseGate(0.3)(x, x, lm + 10.0, [{}] * len(x))
    assert not wrong.any()
    # a blank image has no face to fit in detect mode
    blank = PoseGate(0.3, "detect")(torch.zeros_like(x[:2]), x[:2], lm[:2], [{}] * 2)
    assert not blank.any()


def test_parse_gate():
    assert parse_gate("") is None and parse_gate(None) is None
    g = parse_gate("pose:0.2")
    assert isinstance(g, PoseGate) and g.max_nme == 0.2 and g.mode == "cropped"
    assert parse_gate("pose:0.1:detect").mode == "detect"
    assert repr(parse_gate("pose:0.2")) == repr(g)  # the synthesis fingerprint depends on it
    with pytest.raises(ValueError, match="'x'"):
        parse_gate("pose:x")
    with pytest.raises(ValueError, match="unknown quality gate 'blur:1'"):
        parse_gate("blur:1")
    with pytest.raises(ValueError, match="mode"):
        parse_gate("pose:0.1:guess")
    with pytest.raises(ValueError, match="max_nme"):
        PoseGate(0.0)
