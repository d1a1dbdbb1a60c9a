import warnings

import numpy as np
import pytest
import torch

from _fixtures import make_multipose
from fape.data.dataset import FaceDataset
from fape.data.landmarks68 import flip_landmarks
from fape.data.pairs import EXPRESSION, IDENTITY, MIRROR, POSE, PairConfig, PairDataset, PairSampler
from fape.errors import ConfigError


def _sampler(root, **kw):
    ds = FaceDataset(root, progress=False)
    return ds, PairSampler(ds.index.manifest, ds.index.landmarks_ok, PairConfig(**kw))


def test_pose_pairs_share_subject_expression_frame_and_differ_in_pose(tmp_path):
    ds, sampler = _sampler(make_multipose(tmp_path / "d"))
    m = ds.index.manifest
    assert (sampler.num_partners() == 2).all()  # 3 poses -> 2 partners each
    pairs = sampler.draw(seed=0)
    assert (pairs["kind"] == POSE).all()
    s, t = pairs["src"], pairs["tgt"]
    for col in ("subject", "expression", "sequence", "frame"):
        assert (m[col].to_numpy()[s] == m[col].to_numpy()[t]).all(), col
    assert (m["pose"].to_numpy()[s] != m["pose"].to_numpy()[t]).all()


def test_any_frame_option(tmp_path):
    ds, sampler = _sampler(make_multipose(tmp_path / "d"), same_frame=False)
    assert (sampler.num_partners() == 4).all()  # 2 other poses x 2 frames


def test_ratios_and_determinism(tmp_path):
    root = make_multipose(tmp_path / "d", subjects=4, expressions=5)
    ds, sampler = _sampler(root, pose=0.5, mirror=0.25, identity=0.25)
    a, b, c = sampler.draw(1), sampler.draw(1), sampler.draw(2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["tgt"], c["tgt"])
    frac = np.bincount(np.concatenate([sampler.draw(s)["kind"] for s in range(20)]), minlength=3) / (20 * len(a["src"]))
    assert np.allclose(frac, [0.5, 0.25, 0.25], atol=0.04)
    assert (a["tgt"][a["kind"] != POSE] == a["src"][a["kind"] != POSE]).all()
    assert (a["flip"] == (a["kind"] == MIRROR)).all()


def test_single_pose_set_needs_mirror_or_identity(tmp_path):
    root = make_multipose(tmp_path / "d", poses=("front",))
    ds = FaceDataset(root, progress=False)
    with pytest.raises(ValueError, match="mirror or pairs.identity"):
        PairSampler(ds.index.manifest, ds.index.landmarks_ok, PairConfig())
    s = PairSampler(ds.index.manifest, ds.index.landmarks_ok, PairConfig(pose=1, mirror=1))
    kinds = s.draw(0)["kind"]
    assert set(kinds.tolist()) == {MIRROR}  # pose weight falls back: no partner exists


def test_source_without_partner_under_pose_only_weights_is_its_own_target(tmp_path):
    root = make_multipose(tmp_path / "d", missing_landmarks=(1, 2))  # row 0's pose partners have no landmarks
    ds, sampler = _sampler(root, pose=1)
    assert sampler.num_partners()[0] == 0 and sampler.num_partners()[3] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NaN weights on the way
        p = sampler.draw(0)
    at = int(np.flatnonzero(p["src"] == 0)[0])
    assert p["tgt"][at] == 0 and p["kind"][at] == IDENTITY and not p["flip"][at]
    assert (p["kind"][p["src"] != 0] == POSE).all()


def test_missing_landmarks_are_never_targets_or_sources(tmp_path):
    root = make_multipose(tmp_path / "d", missing_landmarks=(0, 5))
    ds, sampler = _sampler(root, pose=1, identity=1)
    for seed in range(5):
        p = sampler.draw(seed)
        assert not np.isin([0, 5], p["src"]).any() and not np.isin([0, 5], p["tgt"]).any()


def test_pair_dataset_mirror_item(tmp_path):
    root = make_multipose(tmp_path / "d")
    ds = FaceDataset(root, progress=False)
    sampler = PairSampler(ds.index.manifest, ds.index.landmarks_ok, PairConfig(pose=0, mirror=1))
    pd_ = PairDataset(ds, sampler, seed=3)
    item = pd_[4]
    s = item["src"]
    assert item["kind"] == MIRROR and item["tgt"] == s
    assert torch.equal(item["target"], item["source"].flip(-1))
    assert np.allclose(item["target_landmarks"].numpy(), flip_landmarks(ds.landmarks[s], 32))
    batch = next(iter(torch.utils.data.DataLoader(pd_, batch_size=5)))
    assert batch["source"].shape == (5, 3, 32, 32) and batch["target_landmarks"].shape == (5, 68, 2)


def test_pair_dataset_epochs_redraw(tmp_path):
    root = make_multipose(tmp_path / "d")
    ds = FaceDataset(root, progress=False)
    pd_ = PairDataset(ds, PairSampler(ds.index.manifest, ds.index.landmarks_ok, PairConfig()), seed=0)
    first = pd_.pairs["tgt"].copy()
    pd_.set_epoch(1)
    assert not np.array_equal(first, pd_.pairs["tgt"])
    pd_.set_epoch(0)
    assert np.array_equal(first, pd_.pairs["tgt"])
    assert IDENTITY == 2


# ---------------------------------------------------------------- expression-transfer pairs
def _real_style_manifest(per_expression=(8, 4, 2), subjects=4, missing=()):
    """A single-pose manifest (no images): every subject shows expression e in
    ``per_expression[e]`` rows; ``missing``: (subject, expression) cells left out."""
    import pandas as pd

    rows = []
    for s in range(subjects):
        for e, n in enumerate(per_expression):
            if (s, e) in missing:
                continue
            rows += [dict(path=f"s{s}_e{e}_{k}.png", subject=f"s{s}", expression=f"e{e}", label=e, pose="F",
                          sequence=f"s{s}_e{e}", frame=k) for k in range(n)]
    return pd.DataFrame(rows)


def test_expression_pairs_stay_within_subject_and_pose_and_change_expression(tmp_path):
    root = make_multipose(tmp_path / "d", subjects=3, expressions=3, poses=("half_left", "front"))
    ds, sampler = _sampler(root, pose=0, expression=1)
    m = ds.index.manifest
    for seed in range(10):
        p = sampler.draw(seed)
        assert (p["kind"] == EXPRESSION).all() and not p["flip"].any()
        s, t = p["src"], p["tgt"]
        assert (m["subject"].to_numpy()[s] == m["subject"].to_numpy()[t]).all()
        assert (m["pose"].to_numpy()[s] == m["pose"].to_numpy()[t]).all()
        assert (m["expression"].to_numpy()[s] != m["expression"].to_numpy()[t]).all()


def test_expression_pairs_never_cross_subjects_even_when_a_subject_has_one_expression():
    m = _real_style_manifest(subjects=3, missing={(2, 1), (2, 2)})  # s2 shows only e0
    sampler = PairSampler(m, np.ones(len(m), bool), PairConfig(pose=0, expression=1))
    s2 = np.flatnonzero(m["subject"] == "s2")
    assert (sampler.num_expression_partners()[s2] == 0).all()
    for seed in range(10):
        p = sampler.draw(seed)
        subj, expr = m["subject"].to_numpy(), m["expression"].to_numpy()
        pairs = p["kind"] == EXPRESSION
        assert (subj[p["src"]] == subj[p["tgt"]]).all()
        assert (expr[p["src"][pairs]] != expr[p["tgt"][pairs]]).all()
        at = np.isin(p["src"], s2)
        assert (p["tgt"][at] == p["src"][at]).all() and (p["kind"][at] == IDENTITY).all()  # the fallback


def test_expression_pairs_see_rare_targets_about_as_often_as_common_ones():
    m = _real_style_manifest(per_expression=(8, 4, 2))  # rows 8:4:2 per subject
    sampler = PairSampler(m, np.ones(len(m), bool), PairConfig(pose=0, expression=1))
    tgt = np.concatenate([sampler.draw(seed)["tgt"] for seed in range(40)])
    freq = np.bincount(m["label"].to_numpy()[tgt], minlength=3) / len(tgt)
    assert np.allclose(freq, 1 / 3, atol=0.04), freq  # a uniform draw over partner rows gives ~(.5, .33, .17)


def test_expression_pairs_need_subject_ids():
    m = _real_style_manifest()
    m["subject"] = ""  # FER2013: no subject ids
    with pytest.raises(ConfigError, match="no within-subject expression pairs"):
        PairSampler(m, np.ones(len(m), bool), PairConfig(pose=0, expression=1))
    p = PairSampler(m, np.ones(len(m), bool), PairConfig(pose=0, expression=1, mirror=1)).draw(0)
    assert set(p["kind"].tolist()) == {MIRROR}  # falls back as the pose kind does
