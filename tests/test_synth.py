"""The synthetic multi-pose face set: format, pairing, landmark geometry, determinism, CLI, atomicity."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fape.cli import main as fape_main
from fape.data.format import read_index
from fape.data.landmarks68 import FLIP_PERM, flip_landmarks, inter_ocular
from fape.data.synth import SynthConfig, synthesize

REPO = Path(__file__).resolve().parents[1]
POSES = ["half_left", "front", "half_right", "bird_view"]
# small, geometry-clean set: no head jitter, no expression noise, so neutral faces are symmetric
TINY = SynthConfig(identities=2, expressions=6, frames=2, image_size=32, render_scale=2,
                   head_jitter_deg=0.0, expression_noise=0.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return synthesize(TINY, tmp_path_factory.mktemp("synth") / "tiny", progress=False)


def _group(idx, **sel) -> dict:
    """pose -> landmarks [68, 2] of the rows matching ``sel`` (one frame of one sequence)."""
    m = idx.manifest
    rows = np.flatnonzero(np.logical_and.reduce([m[k].to_numpy() == v for k, v in sel.items()]))
    return {m["pose"].iat[i]: idx.landmarks[i] for i in rows}


def test_format_and_counts(tiny):
    idx = read_index(tiny)
    assert len(idx) == 2 * 6 * 2 * 4
    assert idx.info.pose_names == POSES
    assert idx.info.image_size == [32, 32] and idx.info.channels == 3
    assert idx.info.origin["kind"] == "synth" and idx.info.origin["config"]["identities"] == 2
    assert idx.info.landmarks_source == "synthetic-projection"
    assert set(idx.info.extra["families"].values()) <= {0, 1, 2, 3}
    assert idx.landmarks_ok.all()
    assert (tiny / "synth_config.yaml").is_file()
    assert all(idx.image_path(i).is_file() for i in range(0, len(idx), 7))


def test_every_group_has_all_poses(tiny):
    m = read_index(tiny).manifest
    for _, g in m.groupby(["subject", "expression", "frame"]):
        assert sorted(g["pose"]) == sorted(POSES)
        assert g["sequence"].nunique() == 1 and g["label"].nunique() == 1
    assert (m["sequence"] == m["subject"] + "_" + m["expression"]).all()


def test_landmarks_inside_and_plausible(tiny):
    idx = read_index(tiny)
    lm = idx.landmarks
    assert np.isfinite(lm).all()
    assert (lm >= 0).all() and (lm <= 31).all()
    iod = inter_ocular(lm)
    assert (iod > 0.2 * 32).all() and (iod < 0.8 * 32).all()


def test_front_neutral_is_symmetric(tiny):
    idx = read_index(tiny)
    lm = _group(idx, subject="s000", expression="acceptance", frame=0)["front"]
    # acceptance is near neutral: no asymmetry control, so the mirror image matches itself
    err = np.abs(flip_landmarks(lm, 32) - lm).max()
    assert err < 0.5, err


def test_half_left_mirrors_half_right(tiny):
    idx = read_index(tiny)
    for ex in ("acceptance", "admiration"):
        g = _group(idx, subject="s001", expression=ex, frame=1)
        err = np.abs(flip_landmarks(g["half_left"], 32) - g["half_right"]).max()
        assert err < 0.5, (ex, err)
    # half_left turns the face to image left: the nose tip is left of the face centre
    assert g["half_left"][30, 0] < g["half_left"][:, 0].mean() < g["half_right"][30, 0]


def test_bird_view_compresses_vertically(tiny):
    g = _group(read_index(tiny), subject="s000", expression="amusement", frame=0)

    def brow_to_chin(lm):
        return lm[8, 1] - lm[17:27, 1].mean()

    assert brow_to_chin(g["bird_view"]) < 0.95 * brow_to_chin(g["front"])
    assert abs(inter_ocular(g["bird_view"]) - inter_ocular(g["front"])) < 0.1 * inter_ocular(g["front"])


def test_deterministic_and_seeded(tiny, tmp_path):
    again = synthesize(TINY, tmp_path / "again", progress=False, workers=2)  # the fixture: in this process
    other = synthesize(dataclasses.replace(TINY, seed=1), tmp_path / "other", progress=False)
    a, b, c = read_index(tiny), read_index(again), read_index(other)
    assert (tiny / "manifest.csv").read_bytes() == (again / "manifest.csv").read_bytes()
    assert np.array_equal(a.landmarks, b.landmarks)
    paths = a.manifest["path"]
    assert all((tiny / p).read_bytes() == (again / p).read_bytes() for p in paths)
    assert any((tiny / p).read_bytes() != (other / p).read_bytes() for p in paths[:8])
    assert not np.array_equal(a.landmarks, c.landmarks)


def test_seven_class_mode(tmp_path):
    cfg = dataclasses.replace(TINY, classes=7, expressions=54, identities=1, frames=1, image_size=24)
    idx = read_index(synthesize(cfg, tmp_path / "seven", progress=False))
    assert idx.info.label_names == ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert sorted(set(idx.manifest["label"])) == list(range(7))
    assert len(idx) == 7 * 4 and idx.info.extra["classes"] == 7


def test_gray_channel(tmp_path):
    cfg = dataclasses.replace(TINY, identities=1, expressions=1, frames=1, channels=1)
    idx = read_index(synthesize(cfg, tmp_path / "gray", progress=False))
    from fape.data.format import load_image

    assert idx.info.channels == 1 and load_image(idx.image_path(0)).shape == (32, 32, 1)


def test_cli_with_override_and_existing_out(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["data", "synth", "-c", str(REPO / "configs/data/synth_tiny.yaml"), "--out", str(out),
            "--identities=1", "--expressions=2", "--image_size=24"]
    assert fape_main(args) == 0
    idx = read_index(out)
    assert len(idx) == 1 * 2 * 1 * 4 and idx.info.origin["config"]["identities"] == 1
    assert fape_main(args) == 2
    assert str(out) in capsys.readouterr().err
    assert fape_main(args + ["--overwrite"]) == 0


def test_interrupted_synth_leaves_nothing(tmp_path, monkeypatch):
    import fape.data.synth as synth

    calls = {"n": 0}
    real = synth.render_face

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("renderer crashed")
        return real(*a, **k)

    monkeypatch.setattr(synth, "render_face", flaky)
    out = tmp_path / "broken"
    with pytest.raises(RuntimeError):
        synthesize(TINY, out, progress=False, workers=1)  # in this process, where the patch is (and the default here)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_config_is_rejected(tmp_path):
    from fape.config import ConfigError

    with pytest.raises(ConfigError, match="pose_angles"):
        synthesize(dataclasses.replace(TINY, poses=["front", "profile"]), tmp_path / "x", progress=False)


def test_flip_perm_used_consistently():
    # sanity of the mirror test itself: flipping twice is the identity
    lm = np.random.default_rng(0).uniform(0, 31, (68, 2)).astype(np.float32)
    assert np.allclose(flip_landmarks(flip_landmarks(lm, 32), 32), lm)
    assert (FLIP_PERM[FLIP_PERM] == np.arange(68)).all()


def test_redraws_change_the_nuisance_only(tiny):
    """``render_redraws`` keeps the face: with lighting and pixel noise switched off, a redraw's face
    region equals the stored image's (only the background is drawn anew); with them on it differs."""
    import torch

    from fape.data.format import load_image
    from fape.data.synth import render_redraws
    from fape.metrics.paired import nuisance_floor

    idx = read_index(tiny)
    row = idx.manifest.iloc[5]
    args = (row["subject"], row["expression"], int(row["frame"]), row["pose"], 3)
    lm = torch.from_numpy(idx.landmarks[5:6])  # [1, 68, 2] pixels
    stored = load_image(tiny / row["path"])  # [S, S, 3]
    red = render_redraws(TINY, *args)  # [3, S, S, 3]
    assert red.shape == (3, *stored.shape) and len({r.tobytes() for r in red}) == 3
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    lit = nuisance_floor(to_t(stored[None]), to_t(red)[None], lm)["floor"][0]
    flat_cfg = dataclasses.replace(TINY, lighting_variation=0.0, noise_std=0.0)
    flat = synthesize(flat_cfg, tiny.parent / "flat", progress=False)
    flat_img = load_image(flat / row["path"])
    dark = nuisance_floor(to_t(flat_img[None]), to_t(render_redraws(flat_cfg, *args))[None], lm)["floor"][0]
    assert lit > 0.02 and dark < lit / 4  # the hull's rim still shows a little background
    with pytest.raises(ValueError, match="not among"):
        render_redraws(TINY, row["subject"], row["expression"], 0, "profile", 1)
