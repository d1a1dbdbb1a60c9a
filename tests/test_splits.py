import json

import numpy as np
import pandas as pd
import pytest

from _fixtures import SHARED_DATA, make_multipose
from fape.cli import main
from fape.data.format import read_index
from fape.data.splits import (VIEW, LeakError, SplitError, check_leaks, load_split, make_split, save_split,
                              subject_holdout)

JAFFE_CODES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
CK48 = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
CK8 = ["neutral"] + CK48


def f2ed_like(subjects=20, expressions=10, poses=("HL", "F", "HR", "BV"), frames=2):
    rows = [dict(path=f"{s}/{e}/{p}/{f}.png", subject=f"p{s:03d}", expression=f"x{e}", label=e, pose=p,
                 sequence=f"p{s:03d}_x{e}", frame=f)
            for s in range(subjects) for e in range(expressions) for p in poses for f in range(frames)]
    return pd.DataFrame(rows)


def jaffe_like():
    """213 rows, 10 subjects x 7 expressions, 3 takes each plus a 4th take of 3 (like JAFFE)."""
    rows = []
    for s in range(10):
        for e, name in enumerate(JAFFE_CODES):
            for t in range(4 if (s, e) in ((0, 0), (3, 2), (7, 5)) else 3):
                rows.append(dict(path=f"S{s}.{name}{t}.tiff", subject=f"S{s}", expression=name, label=e))
    assert len(rows) == 213
    return pd.DataFrame(rows)


def ck_like(subjects=30, names=CK8):
    rows = []
    rng = np.random.default_rng(1)
    for s in range(subjects):
        for q in range(int(rng.integers(1, 4))):
            lab = int(rng.integers(1, len(names))) if names[0] == "neutral" else int(rng.integers(0, len(names)))
            seq = f"S{s:03d}_{q:03d}"
            for f in range(3):
                rows.append(dict(path=f"{seq}_{f}.png", subject=f"S{s:03d}", expression=names[lab], label=lab,
                                 sequence=seq, frame=f))
            if names[0] == "neutral":
                rows.append(dict(path=f"{seq}_n.png", subject=f"S{s:03d}", expression="neutral", label=0,
                                 sequence=seq, frame=0))
    return pd.DataFrame(rows)


def _disjoint(parts):
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.intersect1d(parts[a], parts[b]).size


# ------------------------------------------------------------------ generic
def test_er_ss_proportions_and_sequences():
    m = f2ed_like()
    sp = make_split(m, "er-ss", seed=0)
    n = {p: len(r) for p, r in sp.parts.items()}
    assert sum(n.values()) == len(m)
    assert abs(n["train"] / len(m) - 175000 / 219719) < 0.03
    assert abs(n["test"] / len(m) - 25000 / 219719) < 0.03
    assert sp.summary()["leak_unit"] == "sequence" and "leaks" not in sp.meta
    _disjoint(sp.parts)
    # the paper's image-level protocol is an explicit option, and says that it leaks across views
    leaky = make_split(m, "er-ss", seed=0, leak_unit=VIEW)
    view = (m["sequence"] + "/" + m["pose"]).to_numpy()
    assert not set(view[leaky.parts["train"]]) & set(view[leaky.parts["test"]])
    seq = m["sequence"].to_numpy()
    assert set(seq[leaky.parts["train"]]) & set(seq[leaky.parts["test"]])  # other views of a tested face train
    assert "leak_unit=sequence+pose" in leaky.name and "other views" in leaky.summary()["leaks"]


@pytest.mark.parametrize("protocol, oracle", [("er-ss", False), ("er-ue", False), ("er-up", False), ("er-zid", False),
                                              ("er-ue", True), ("er-up", True)])  # only rare-cell tasks have an oracle
def test_f2ed_tasks_keep_every_view_of_a_sequence_on_one_side_by_default(protocol, oracle):
    m = f2ed_like()
    sp = make_split(m, protocol, seed=0, **({"oracle": True} if oracle else {}))
    seq = m["sequence"].to_numpy()
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        assert not set(seq[sp.parts[a]]) & set(seq[sp.parts[b]]), (a, b)
    assert sp.summary()["leak_unit"] == "sequence"
    with pytest.raises(SplitError, match="leak_unit"):
        make_split(m, protocol, seed=0, leak_unit="subject")


@pytest.mark.parametrize("protocol", ["er-ue", "er-up"])
def test_oracle_trains_the_held_back_rare_rows_with_the_same_val_and_test(protocol):
    m = f2ed_like()
    base = make_split(m, protocol, seed=3)
    orc = make_split(m, protocol, seed=3, oracle=True)
    for p in ("val", "test"):
        assert np.array_equal(base.parts[p], orc.parts[p])
    assert np.isin(base.parts["train"], orc.parts["train"]).all()
    extra = np.setdiff1d(orc.parts["train"], base.parts["train"])
    assert len(extra) == base.meta["held_back"] > 0
    assert "oracle=true" in orc.name and orc.meta["oracle"] and not base.meta["oracle"]
    # the held-back rows are rare cells only, and no part of the split without the oracle has them
    if protocol == "er-ue":
        assert np.isin(m["label"].to_numpy()[extra], base.meta["rare_labels"]).all()
    else:
        assert set(m["pose"].to_numpy()[extra]) == {base.meta["rare_pose"]}
    assert not np.isin(extra, np.concatenate(list(base.parts.values()))).any()
    with pytest.raises(SplitError, match="oracle=true needs leak_unit=sequence"):
        make_split(m, protocol, seed=3, oracle=True, leak_unit=VIEW)


@pytest.mark.parametrize("protocol", ["er-ss", "er-ue", "er-up"])
def test_no_synthesis_plan_targets_a_sequence_outside_the_training_part(tmp_path, protocol):
    from fape.gan.plans import parse_plan, resolve_plan

    root = make_multipose(tmp_path / "d", subjects=6, expressions=5, frames=2)
    idx = read_index(root)
    sp = make_split(idx, protocol, seed=0)
    train = sp.parts["train"]
    seq = idx.manifest["sequence"].to_numpy()
    train_seqs = set(seq[train])
    held_out = set(seq[np.concatenate([sp.parts["val"], sp.parts["test"]])])
    made = 0
    for plan in ("balance-pose", "balance-expression:max", "balance-identity:max"):
        jobs = resolve_plan(idx, parse_plan(plan, idx.info), train, seed=0).jobs
        made += len(jobs)
        for j in jobs:  # the drawn face is (source's subject, expression, frame) in the target pose
            assert seq[j.source_row] in train_seqs and seq[j.source_row] not in held_out
            assert j.landmarks_row in set(train.tolist())
    assert made > 0


def test_determinism_same_seed_same_hash(tmp_path):
    root = make_multipose(tmp_path / "d", subjects=4, expressions=5, frames=2)
    idx = read_index(root)
    a = save_split(root, make_split(idx, "random", seed=3))
    h1 = json.loads(a.with_suffix(".json").read_text())["split_sha256"]
    b = save_split(root, make_split(idx, "random", seed=3))
    assert a == b and json.loads(b.with_suffix(".json").read_text())["split_sha256"] == h1
    c = save_split(root, make_split(idx, "random", seed=4))
    assert c.name == "random-seed4.csv" and json.loads(c.with_suffix(".json").read_text())["split_sha256"] != h1
    meta = json.loads(a.with_suffix(".json").read_text())
    assert meta["manifest_sha256"] == idx.info.manifest_sha256
    assert meta["counts"]["train"] + meta["counts"]["val"] + meta["counts"]["test"] == len(idx)
    assert set(meta["counts_per_pose"]["train"]) <= {"half_left", "front", "half_right"}
    assert sum(meta["counts_per_class"]["test"].values()) == meta["counts"]["test"]
    parts = load_split(a)
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(len(idx)))
    d = save_split(root, make_split(idx, "random", seed=3, fractions="0.5,0.5"))
    assert d.name == "random-fractions=0.5,0,0.5-seed3.csv" and len(load_split(d)["val"]) == 0


def test_load_split_detects_edit_and_fold_misuse(tmp_path):
    root = make_multipose(tmp_path / "d", subjects=4)
    p = save_split(root, make_split(read_index(root), "subject", seed=0))
    with pytest.raises(SplitError, match="no folds"):
        load_split(p, fold=0)
    p.write_bytes(p.read_bytes().replace(b",train", b",test", 1))
    with pytest.raises(SplitError, match="split_sha256"):
        load_split(p)


def test_check_leaks_refuses():
    m = f2ed_like(subjects=3, expressions=2)
    seq = m["sequence"].to_numpy()
    s0 = np.flatnonzero(seq == "p000_x0")
    with pytest.raises(ValueError, match=r"sequence 'p000_x0' is in both train and test"):
        check_leaks(m, {"train": s0[:2], "test": s0[2:]}, "random")
    subj = m["subject"].to_numpy()
    a = np.flatnonzero((subj == "p001") & (m["label"].to_numpy() == 0))
    b = np.flatnonzero((subj == "p001") & (m["label"].to_numpy() == 1))
    check_leaks(m, {"train": a, "test": b}, "random")  # subject-dependent protocol: fine
    with pytest.raises(LeakError, match=r"subject 'p001' is in both train and val"):
        check_leaks(m, {"train": a, "val": b}, "er-zid")
    with pytest.raises(LeakError, match="row"):
        check_leaks(m, {"train": a, "test": a[:1]}, "random")
    # er-up: no view of a tested sequence may train; with the paper's view-level units, other views may
    pose = m["pose"].to_numpy()
    with pytest.raises(LeakError, match="p000_x0"):
        check_leaks(m, {"train": s0[pose[s0] == "F"], "test": s0[pose[s0] == "HL"]}, "er-up")
    check_leaks(m, {"train": s0[pose[s0] == "F"], "test": s0[pose[s0] == "HL"]}, "er-up", {"leak_unit": VIEW})
    hl = s0[pose[s0] == "HL"]
    with pytest.raises(LeakError, match="pose HL"):
        check_leaks(m, {"train": hl[:1], "test": hl[1:]}, "er-up", {"leak_unit": VIEW})


# ------------------------------------------------------------------ F2ED tasks
def test_er_ue_rare_classes():
    m = f2ed_like(subjects=20, expressions=10)
    sp = make_split(m, "er-ue", seed=1)
    rare = sp.meta["rare_labels"]
    assert len(rare) == 2  # 20% of 10
    labels = m["label"].to_numpy()
    tv = np.concatenate([sp.parts["train"], sp.parts["val"]])
    for r in rare:
        n = (labels == r).sum()
        assert abs((labels[sp.parts["test"]] == r).sum() / n - 0.5) < 0.05  # rare_test_fraction
        assert 0 < (labels[sp.parts["train"]] == r).sum() / n < 0.1  # 10% of the other half
    assert set(labels[sp.parts["test"]]) == set(rare)
    common = ~np.isin(labels, rare)
    assert np.isin(np.flatnonzero(common), tv).all()
    assert 0.05 < len(sp.parts["val"]) / len(tv) < 0.15
    assert make_split(m, "er-ue", seed=1).meta["rare_labels"] == rare
    assert any(make_split(m, "er-ue", seed=k).meta["rare_labels"] != rare for k in range(2, 6))
    assert len(make_split(f2ed_like(subjects=2, expressions=54, frames=1), "er-ue", 0).meta["rare_labels"]) == 11


def test_er_up_rare_pose_aliases(tmp_path):
    m = f2ed_like(subjects=20, expressions=5)
    sp = make_split(m, "er-up", seed=0)
    assert sp.meta["rare_pose"] == "HL"
    pose = m["pose"].to_numpy()
    seq = m["sequence"].to_numpy()
    hl = (pose == "HL").sum()
    assert set(pose[sp.parts["test"]]) == {"HL"}
    assert abs(len(sp.parts["test"]) / hl - 0.3) < 0.05  # rare_test_fraction of the sequences
    untested = ~np.isin(seq, seq[sp.parts["test"]])
    tv = np.concatenate([sp.parts["train"], sp.parts["val"]])
    assert ((pose == "F") & untested).sum() == (pose[tv] == "F").sum()  # every other view of those trains
    assert 0 < (pose[sp.parts["train"]] == "HL").sum() < 0.15 * ((pose == "HL") & untested).sum()
    assert make_split(m, "er-up", 0, rare_pose="bird_view").meta["rare_pose"] == "BV"
    with pytest.raises(SplitError, match="rare_pose"):
        make_split(m, "er-up", 0, rare_pose="nope")
    root = make_multipose(tmp_path / "d", subjects=3, expressions=3, frames=4)
    assert make_split(read_index(root), "er-up", 0).meta["rare_pose"] == "half_left"
    assert make_split(read_index(root), "er-up", 0, rare_pose="HR").meta["rare_pose"] == "half_right"


def test_er_zid_subject_disjoint():
    m = f2ed_like(subjects=119, expressions=2, poses=("F",), frames=1)
    sp = make_split(m, "er-zid", seed=0)
    subj = m["subject"].to_numpy()
    s = {p: set(subj[r]) for p, r in sp.parts.items()}
    assert len(s["test"]) == 21 and len(s["train"]) + len(s["val"]) == 98 and len(s["val"]) >= 1
    assert not (s["train"] & s["test"]) and not (s["val"] & s["test"]) and not (s["train"] & s["val"])


def test_fer2013_official():
    m = pd.DataFrame(dict(path=[f"{i}.png" for i in range(6)], expression="angry", label=0,
                          split=["train", "train", "val", "test", "train", "test"]))
    sp = make_split(m, "fer2013-official")
    assert sp.parts["val"].tolist() == [2] and sp.parts["test"].tolist() == [3, 5]
    m2 = m.drop(columns="split").assign(usage=["Training", "Training", "PublicTest", "PrivateTest"] * 1 + ["x"] * 2)
    with pytest.raises(SplitError, match="usage"):
        make_split(m2, "fer2013-official")
    with pytest.raises(SplitError, match="'split' column"):
        make_split(m.drop(columns="split"), "fer2013-official")


# ------------------------------------------------------------------ JAFFE / CK+
def test_jaffe_deep_emotion_counts():
    m = jaffe_like()
    sp = make_split(m, "jaffe-deep-emotion", seed=0)
    assert {p: len(r) for p, r in sp.parts.items()} == {"train": 120, "val": 23, "test": 70}
    t = m.iloc[sp.parts["test"]]
    assert (t.groupby("subject").size() == 7).all() and t.groupby(["subject", "label"]).size().max() == 1
    _disjoint(sp.parts)
    other = make_split(m, "jaffe-deep-emotion", seed=1)
    assert not np.array_equal(other.parts["test"], sp.parts["test"])


def test_jaffe_loso():
    sp = make_split(jaffe_like(), "jaffe-loso", seed=0)
    assert len(sp.folds) == 10
    subj = jaffe_like()["subject"].to_numpy()
    for k, f in enumerate(sp.folds):
        assert set(subj[f["test"]]) == {f"S{k}"} and set(subj[f["val"]]) == {f"S{(k + 1) % 10}"}
        assert len(f["train"]) + len(f["val"]) + len(f["test"]) == 213
    sp2 = make_split(jaffe_like(), "jaffe-loso", seed=0, val="none")
    assert all(len(f["val"]) == 0 for f in sp2.folds) and sp2.name == "jaffe-loso-val=none-seed0"


def test_ckplus_10fold_classes(tmp_path):
    m = ck_like(subjects=30)
    subj, labels = m["subject"].to_numpy(), m["label"].to_numpy()
    for classes, allowed in ((6, {1, 3, 4, 5, 6, 7}), (7, set(range(1, 8))), (8, set(range(8)))):
        sp = make_split(m, "ckplus-10fold", seed=0, classes=classes)
        assert len(sp.folds) == 10 and len(sp.meta["label_names"]) == classes
        assert sp.meta["label_names"] == [n for n in CK8 if n not in ("neutral", "contempt")[:8 - classes]]
        tests = np.concatenate([f["test"] for f in sp.folds])
        assert sorted(tests.tolist()) == np.flatnonzero(np.isin(labels, list(allowed))).tolist()
        for f in sp.folds:
            assert not set(subj[f["train"]]) & set(subj[f["test"]])
            assert not set(subj[f["val"]]) & set(subj[f["test"]])
        sizes = [len(f["test"]) for f in sp.folds]
        assert max(sizes) - min(sizes) <= 6
    p = save_split(tmp_path, sp)
    assert p.name == "ckplus-10fold-classes=8-seed0.csv"
    with pytest.raises(SplitError, match="fold="):
        load_split(p)
    assert np.array_equal(load_split(p, fold=3)["test"], sp.folds[3]["test"])
    meta = json.loads(p.with_suffix(".json").read_text())
    assert meta["num_folds"] == 10 and len(meta["folds"]) == 10 and meta["label_names"] == CK8
    with pytest.raises(SplitError, match="classes"):
        make_split(m, "ckplus-10fold", classes=5)


# ------------------------------------------------------------------ CLI
def test_cli_split_writes_files(tmp_path, capsys):
    root = make_multipose(tmp_path / "d", subjects=6, expressions=5, frames=2)
    assert main(["data", "split", str(root), "--protocol", "er-ue", "--seed", "2",
                 "--option", "rare_fraction=0.4"]) == 0
    p = root / "splits" / "er-ue-rare_fraction=0.4-seed2.csv"
    assert p.is_file() and p.with_suffix(".json").is_file()
    meta = json.loads(p.with_suffix(".json").read_text())
    assert len(meta["rare_labels"]) == 2 and meta["seed"] == 2 and meta["options"]["rare_fraction"] == 0.4
    out = tmp_path / "z.csv"
    assert main(["data", "split", str(root), "--protocol", "er-zid", "--out", str(out)]) == 0
    assert out.is_file() and (tmp_path / "z.json").is_file()
    assert main(["data", "split", str(root), "--protocol", "er-up", "--option", "rare_pose=HL"]) == 0
    assert (root / "splits" / "er-up-rare_pose=HL-seed0.csv").is_file()
    assert "split_sha256" in capsys.readouterr().out


def test_cli_split_missing_columns(tmp_path, capsys):
    from fape.data.format import DatasetInfo, write_index

    root = tmp_path / "nolabels"
    m = pd.DataFrame(dict(path=[f"images/{i}.png" for i in range(8)], expression="a", label=0))
    write_index(root, m, DatasetInfo(name="x", label_names=["a"], pose_names=[]))
    for proto, col in (("er-zid", "'subject'"), ("er-up", "'pose'"), ("fer2013-official", "'split'"),
                       ("jaffe-loso", "'subject'")):
        assert main(["data", "split", str(root), "--protocol", proto]) == 2
        assert col in capsys.readouterr().err
    assert main(["data", "split", str(root), "--protocol", "nope"]) == 2
    assert "unknown split protocol" in capsys.readouterr().err
    assert main(["data", "split", str(root), "--protocol", "random", "--option", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_gan_rows_protocol_is_what_the_gan_trains_on_and_holds_out(tmp_path):
    """The classifier of the GAN's expression term may see only the GAN's training rows: the
    gan-rows split's train + val must be exactly those, and its test the GAN's held-out rows."""
    from fape.config import load_config
    from fape.gan.config import GANConfig
    from fape.gan.data import gan_rows

    m = f2ed_like(subjects=10, expressions=3, frames=1)
    rows = np.flatnonzero(m["expression"].to_numpy() != "x2")  # the GAN may not see expression x2
    rows_file = tmp_path / "rows.txt"
    np.savetxt(rows_file, rows, fmt="%d")
    cfg = load_config(GANConfig, None, [f"--data.rows={rows_file}", "--data.heldout_subjects=0.3",
                                        "--data.split_seed=4"])
    train, held = gan_rows(cfg, m)
    s = make_split(m, "gan-rows", 1, rows=str(rows_file), heldout_subjects=0.3, holdout_seed=4)
    p = s.parts
    np.testing.assert_array_equal(np.sort(np.concatenate([p["train"], p["val"]])), np.sort(train))
    np.testing.assert_array_equal(p["test"], np.sort(held))
    assert len(p["val"]) and len(p["test"]) and not set(m["sequence"][p["val"]]) & set(m["sequence"][p["train"]])
    assert set(m["subject"][p["test"]]).isdisjoint(m["subject"][train])  # held-out subjects, unseen
    assert not np.isin(np.flatnonzero(m["expression"].to_numpy() == "x2"), np.concatenate(list(p.values()))).any()


def test_subject_holdout_still_works():
    m = f2ed_like(subjects=10, expressions=2)
    tr, ho = subject_holdout(m, 0.2, seed=0)
    assert len(set(m["subject"].to_numpy()[ho])) == 2 and len(tr) + len(ho) == len(m)


# ------------------------------------------------------------------ real data
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real datasets not found at {SHARED_DATA}")


@needs_data
def test_real_jaffe_deep_emotion(tmp_path):
    from fape.data.adapters import import_dataset

    if not (SHARED_DATA / "jaffe").is_dir():
        pytest.skip("no jaffe in shared data")
    root = import_dataset("jaffe", SHARED_DATA / "jaffe", tmp_path / "jaffe", {"image_size": 32})
    idx = read_index(root)
    sp = make_split(idx, "jaffe-deep-emotion", seed=0)
    assert {p: len(r) for p, r in sp.parts.items()} == {"train": 120, "val": 23, "test": 70}
    t = idx.manifest.iloc[sp.parts["test"]]
    assert t["subject"].nunique() == 10 and (t.groupby("subject").size() == 7).all()
    p = save_split(root, sp)
    assert np.array_equal(load_split(p)["test"], sp.parts["test"])
    assert len(make_split(idx, "jaffe-loso", 0).folds) == 10


@needs_data
def test_real_ckplus48_10fold(tmp_path):
    from fape.data.adapters import import_dataset

    if not (SHARED_DATA / "ckplus48").is_dir():
        pytest.skip("no ckplus48 in shared data")
    root = import_dataset("ckplus48", SHARED_DATA / "ckplus48", tmp_path / "ck", {"image_size": 16})
    idx = read_index(root)
    sp = make_split(idx, "ckplus-10fold", seed=0)
    assert len(sp.folds) == 10 and sp.meta["label_names"] == CK48
    subj, seq = idx.manifest["subject"].to_numpy(), idx.manifest["sequence"].to_numpy()
    assert sum(len(f["test"]) for f in sp.folds) == len(idx)
    for f in sp.folds:
        assert not set(subj[f["train"]]) & set(subj[f["test"]])
        assert not set(seq[f["train"]]) & set(seq[f["test"]])
    sizes = [len(f["test"]) for f in sp.folds]
    assert max(sizes) - min(sizes) <= 0.2 * np.mean(sizes)
    sp6 = make_split(idx, "ckplus-10fold", seed=0, classes=6)
    assert "contempt" not in sp6.meta["label_names"] and len(sp6.meta["label_names"]) == 6
    p = save_split(root, sp6)
    assert p.name == "ckplus-10fold-classes=6-seed0.csv"
    assert len(load_split(p, fold=0)["test"]) > 0
