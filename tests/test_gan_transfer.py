"""Expression transfer on a real-style set (subject ids, one pose, like an imported CK+48 or JAFFE):
plans that change the expression with retargeted landmarks, sources and donors from the allowed
rows only, provenance of every image."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _fixtures import make_multipose, tiny_generator_run
from fape.cli import main
from fape.data.format import read_index
from fape.data.retarget import METHOD, retarget
from fape.errors import UserError
from fape.gan import plans

LABELS = ["anger", "contempt", "happy"]


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    # 5 subjects x 3 expressions x 2 frames, pose "F"; contempt only for s3 and s4 (its rare class)
    return make_multipose(tmp_path_factory.mktemp("real") / "ckplus48", subjects=5, frames=2, poses=("F",),
                          label_names=LABELS, mouth_shift=1.5, skip={(0, 1), (1, 1), (2, 1)})


@pytest.fixture(scope="module")
def train_rows(real) -> np.ndarray:
    m = read_index(real).manifest
    return np.flatnonzero(m["subject"].to_numpy() != "s2")  # s2 is the test subject


def test_balance_expression_classes_transfers_from_training_rows_only(real, train_rows):
    index = read_index(real)
    m = index.manifest
    res = plans.resolve_plan(index, plans.parse_plan("balance-expression:contempt", index.info), train_rows, seed=0)
    assert res.report["landmark_method"] == METHOD
    # counted on the training rows: anger 8, contempt 4, happy 8 -> contempt up to the median 8
    assert [t.expression for t in res.targets] == ["contempt"] and len(res.jobs) == 4
    subj, expr = m["subject"].to_numpy(), m["expression"].to_numpy()
    for j in res.jobs:
        assert j.method == METHOD and j.expression == "contempt"
        assert len(j.donors) == 2  # 3 asked, 2 training subjects show contempt: one pair of each
        assert sorted(subj[b] for _, b in j.donors) == ["s3", "s4"]
        assert {j.source_row, j.landmarks_row, *[r for d in j.donors for r in d]} <= set(train_rows.tolist())
        assert expr[j.source_row] != "contempt" and expr[j.landmarks_row] == "contempt"
        for a, b in j.donors:
            assert expr[a] == expr[j.source_row]  # the donor's change starts where the source is
            assert expr[b] == "contempt" and subj[a] == subj[b]  # a donor pair is one subject
    # the subjects that never showed contempt get it (emptiest cells first); s2 is never touched
    assert sorted(subj[j.source_row] for j in res.jobs) == ["s0", "s0", "s1", "s1"]


def test_no_donor_pair_in_the_allowed_rows_leaves_the_target_unmet(real):
    index = read_index(real)
    m = index.manifest
    rows = np.flatnonzero(~np.isin(m["subject"].to_numpy(), ["s3", "s4"]))  # the subjects with contempt are tested
    res = plans.resolve_plan(index, plans.parse_plan("balance-expression:max:contempt,happy"), rows, seed=0)
    assert not res.jobs and res.report["unmet"] == 6 and "donor pair" in res.report["targets"][0]["reason"]


def test_donors_key_of_a_yaml_plan(real, train_rows, tmp_path):
    index = read_index(real)
    p = tmp_path / "plan.yaml"
    p.write_text("donors: 1\ntargets:\n  - {expression: contempt, count: 8}\n")
    res = plans.resolve_plan(index, plans.parse_plan(str(p), index.info), train_rows, seed=0)
    assert len(res.jobs) == 4 and all(len(j.donors) == 1 for j in res.jobs)
    p.write_text("donors: 0\ntargets:\n  - {expression: contempt, count: 8}\n")
    with pytest.raises(UserError, match="donors must be a positive integer"):
        plans.parse_plan(str(p))


def test_landmarks_mode_of_a_yaml_plan(real, tmp_path):
    index = read_index(real)
    p = tmp_path / "plan.yaml"
    p.write_text("landmarks: align\ntargets:\n  - {expression: contempt, count: 4}\n")
    res = plans.resolve_plan(index, plans.parse_plan(str(p), index.info), None, seed=0)
    assert res.report["landmark_method"] == plans.ALIGN  # the old redraw: contempt sources of s3 only
    assert all(j.method == plans.ALIGN and j.expression is None for j in res.jobs)
    p.write_text("landmarks: warp\ntargets:\n  - {expression: contempt, count: 4}\n")
    with pytest.raises(UserError, match="landmarks must be one of"):
        plans.parse_plan(str(p))


def test_without_subject_ids_auto_aligns_and_retarget_is_an_error(tmp_path):
    import pandas as pd

    from fape.data.format import write_index

    root = make_multipose(tmp_path / "fer", subjects=2, frames=2, poses=("F",), label_names=LABELS)
    index = read_index(root)
    m = index.manifest.assign(subject="")  # FER2013: no subject ids
    write_index(root, pd.DataFrame(m), index.info, index.landmarks, index.landmarks_ok)
    index = read_index(root)
    res = plans.resolve_plan(index, plans.parse_plan("balance-expression:contempt"), None, seed=0)
    assert res.report["landmark_method"] == plans.ALIGN
    p = tmp_path / "plan.yaml"
    p.write_text("landmarks: retarget\ntargets:\n  - {expression: contempt, count: 9}\n")
    with pytest.raises(UserError, match="no subject ids"):
        plans.resolve_plan(index, plans.parse_plan(str(p)), None, seed=0)


def test_builtin_plan_retargets_a_rare_expression_onto_other_subjects_in_each_pose(tmp_path):
    """F2ED's ER-UE: one training subject shows the rare expression (in every pose).
    ``balance-expression:max:retarget`` draws it on the other subjects, pose by pose; ``auto``
    (multi-pose) keeps the old redraw of that one subject."""
    poses = ("half_left", "front")
    root = make_multipose(tmp_path / "f2ed", subjects=4, frames=1, poses=poses, label_names=LABELS, mouth_shift=1.5,
                          skip={(0, 1), (1, 1), (2, 1)})  # contempt: s3 only
    index = read_index(root)
    m = index.manifest
    subj, expr, pose = (m[c].to_numpy() for c in ("subject", "expression", "pose"))
    old = plans.resolve_plan(index, plans.parse_plan("balance-expression:max", index.info), None, seed=0)
    assert old.report["landmark_method"] == plans.ALIGN and {subj[j.source_row] for j in old.jobs} == {"s3"}
    res = plans.resolve_plan(index, plans.parse_plan("balance-expression:max:retarget", index.info), None, seed=0)
    assert res.report["landmark_method"] == METHOD
    assert len(res.jobs) == 6  # contempt 2 real -> 8, the count of anger and happy
    for j in res.jobs:
        assert j.expression == "contempt" and expr[j.source_row] != "contempt"
        assert pose[j.source_row] == j.pose and all(pose[a] == pose[b] == j.pose for a, b in j.donors)
        assert all(subj[b] == "s3" and expr[b] == "contempt" for _, b in j.donors)
    # the emptiest cells first: each of the 3 other subjects gets contempt in each of the 2 poses
    assert sorted((subj[j.source_row], j.pose) for j in res.jobs) == sorted(
        (s, p) for s in ("s0", "s1", "s2") for p in poses)
    with pytest.raises(UserError, match="unknown part 'warp'"):
        plans.parse_plan("balance-pose:warp")


def test_unknown_class_in_a_plan_is_named(real):
    info = read_index(real).info
    with pytest.raises(UserError, match="disgust"):
        plans.parse_plan("balance-expression:contempt,disgust", info)
    with pytest.raises(UserError, match="unknown part"):
        plans.parse_plan("balance-pose:contempt", info)


def test_cli_synthesize_on_a_real_style_set_writes_provenance(real, train_rows, tmp_path, capsys):
    run = tiny_generator_run(tmp_path / "gan")
    rows = tmp_path / "train_rows.txt"
    np.savetxt(rows, train_rows, fmt="%d")
    out = tmp_path / "synth"
    code = main(["gan", "synthesize", "--run", str(run), "--data", str(real), "--plan", "balance-expression",
                 "--rows", str(rows), "--out", str(out), "--device", "cpu", "--batch-size", "3"])
    assert code == 0
    src = read_index(real)
    idx = read_index(out)
    m, sm = idx.manifest, src.manifest
    # balance-expression (median of 8, 4, 8) adds 4 contempt faces
    assert len(m) == 4 and (m["expression"] == "contempt").all() and (m["label"] == 1).all()
    assert (m["landmark_method"] == METHOD).all() and (m["generator"] == str(run)).all()
    pairs = [np.array([p.split(">") for p in cell.split(";")], np.int64) for cell in m["donor_pairs"]]  # [K, 2] each
    for col in ("source_row", "landmarks_row"):
        assert np.isin(m[col].to_numpy(), train_rows).all(), col
    assert all(np.isin(p, train_rows).all() and len(p) == 2 for p in pairs)
    assert (m["source_expression"] != "contempt").all()
    assert (m["subject"].to_numpy() == sm["subject"].to_numpy()[m["source_row"]]).all()
    paths = [[q.split(">") for q in cell.split(";")] for cell in m["donor_paths"]]
    assert all((sm["path"].to_numpy()[p] == np.array(q)).all() for p, q in zip(pairs, paths))
    k = 0  # the target landmarks fed to G are the retargeted ones (dataset and G both 32 px)
    want = retarget(src.landmarks[m["source_row"].iat[k]], src.landmarks[pairs[k][:, 0]], src.landmarks[pairs[k][:, 1]])
    assert np.allclose(idx.landmarks[k], want, atol=1e-4)
    assert idx.info.origin["landmark_method"] == METHOD
    assert METHOD in (out / "plan_report.md").read_text()
    # the sheet a reader checks the drawn expression on: a header row and one row per image
    assert main(["data", "show", str(out), "--sources", "-n", "3"]) == 0
    from PIL import Image

    with Image.open(out / "previews" / "sources.png") as im:
        assert im.size == (5 * 96 + 4 * 2, 4 * (96 + 2))
        sheet = np.asarray(im.convert("RGB"))
    from fape.data.dataset import FaceDataset
    from fape.data.preview import CELL, own_face, _pick

    # last column: a real face of the same subject in the drawn expression, blank when the subject
    # never shows it (here the contempt faces are drawn on s0-s2, who never show contempt)
    i = int(_pick(FaceDataset(out, cache=False), 3, 0)[0])
    assert own_face(sm, m["subject"].iat[i], "contempt", np.random.default_rng(0)) is None
    cell = sheet[CELL + 2:2 * CELL + 2, 4 * (CELL + 2):5 * (CELL + 2) - 2]  # row 1 (after the header), column 4
    assert (cell == 255).all()
    own = own_face(sm, "s3", "contempt", np.random.default_rng(0))
    assert sm["expression"].iat[own] == "contempt" and sm["subject"].iat[own] == "s3"
    assert own_face(sm, "nobody", "contempt", np.random.default_rng(0)) is None
    assert own_face(sm.assign(subject=""), "", "contempt") is None  # no subject id: no own face
    assert main(["data", "show", str(real), "--sources"]) == 2  # not a synthesized set: one clear line


def test_packaged_plan_resolves_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an experiment names its plan configs/plans/...: run from anywhere
    plan = plans.parse_plan("configs/plans/jaffe_transfer.yaml")
    assert plan.landmarks == "retarget" and [t.expression for t in plan.targets] == ["disgust", "fear"]


def test_sources_prefer_expressions_with_enough_donor_subjects():
    import pandas as pd

    from fape.gan.transfer import TransferPool

    # s0 shows anger and happy; anger -> contempt has donors s1 and s2, happy -> contempt only s1
    cells = {"s0": ["anger", "happy"], "s1": ["anger", "happy", "contempt"], "s2": ["anger", "contempt"]}
    m = pd.DataFrame([dict(subject=s, expression=e, pose="F") for s, es in cells.items() for e in es])
    pool = TransferPool(m, np.arange(len(m)))
    assert m["expression"].to_numpy()[pool.sources("contempt", "F", "s0", k=2)].tolist() == ["anger"]
    assert sorted(m["expression"].to_numpy()[pool.sources("contempt", "F", "s0", k=1)]) == ["anger", "happy"]
    assert sorted(m["expression"].to_numpy()[pool.sources("contempt", "F", "s0", k=3)]) == ["anger", "happy"]  # none has 3


def test_expression_figures_known_case():
    from fape.metrics.synth_report import expression_figures, label_lut

    # a 7-class FER2013 model on a merged set whose labels add contempt, in another order
    assert label_lut(["angry", "happy"], ["happy", "contempt", "angry"], "m").tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"\['contempt'\] are not among"):
        label_lut(["angry", "contempt"], ["angry", "happy"], "m")

    pred, target, source = np.array([1, 1, 0, 2]), np.array([1, 1, 1, 1]), np.array([0, 2, 0, 0])
    e = expression_figures(pred, target, source, ref_pred=np.array([0, 1, 2]), ref_label=np.array([0, 1, 1]))
    assert (e["agreement_target"], e["still_source"], e["accuracy_on_reference"]) == (0.5, 0.25, 2 / 3)
    assert (e["n"], e["n_reference"]) == (4, 3)


def test_cli_metrics_synth_reads_a_transfer_set_against_its_real_rows(real, train_rows, tmp_path, capsys):
    import json

    from fape.classifiers import train as clf_train
    from fape.classifiers.config import ClfConfig
    from fape.config import load_config

    rows = tmp_path / "train_rows.txt"
    np.savetxt(rows, train_rows, fmt="%d")
    out = tmp_path / "synth"
    assert main(["gan", "synthesize", "--run", str(tiny_generator_run(tmp_path / "gan")), "--data", str(real),
                 "--plan", "balance-expression", "--rows", str(rows), "--out", str(out), "--device", "cpu"]) == 0
    cfg = load_config(ClfConfig, None, [f"--data.root={real}", "--model.name=cnn3", "--data.split=random",
                                        "--data.image_size=32", "--data.channels=1", "--train.batch_size=8",
                                        "--train.epochs=1", "--optim.name=adam"])
    clf = clf_train.train(cfg, tmp_path / "clf", progress=False)
    test_rows = tmp_path / "test_rows.txt"
    np.savetxt(test_rows, np.setdiff1d(np.arange(len(read_index(real).manifest)), train_rows), fmt="%d")
    assert main(["metrics", "synth", str(out), "--data", str(real), "--rows", str(rows), "--features", f"run:{clf}",
                 "--reference-rows", str(test_rows), "--out", str(tmp_path / "m")]) == 0
    m = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert m["n_generated"] == 4 and m["n_real_rows"] == len(train_rows)
    e = m["expression"]
    # the reference is the held-out real faces of the drawn classes only (the classes the agreement is read on)
    labels = read_index(real).manifest["label"].to_numpy()
    held = np.setdiff1d(np.arange(len(labels)), train_rows)
    drawn = np.unique(read_index(out).manifest["label"].to_numpy())
    assert e["n"] == 4 and e["n_reference"] == int(np.isin(labels[held], drawn).sum()) < len(held)
    assert 0 <= e["agreement_target"] <= 1 and 0 <= e["still_source"] <= 1
    assert e["agreement_target"] + e["still_source"] <= 1  # a face is predicted as one class
    assert "generated faces are predicted as their drawn expression" in (tmp_path / "m" / "metrics.md").read_text()
    # a classifier of other classes is refused, naming both label lists
    from _fixtures import tiny_clf_run

    other, _ = tiny_clf_run(tmp_path / "other", epochs=1)
    capsys.readouterr()
    assert main(["metrics", "synth", str(out), "--data", str(real), "--features", f"run:{other}",
                 "--out", str(tmp_path / "m2")]) == 2
    assert "are not among the data's" in capsys.readouterr().err


@pytest.fixture(scope="module")
def merged(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A merged-style set: s0-s2 lose their subject ids (FER2013-like rows, no contempt), s3-s5
    keep theirs and show every expression (CK+-like donors)."""
    import pandas as pd

    from fape.data.format import write_index

    root = make_multipose(tmp_path_factory.mktemp("merged") / "fer_ck", subjects=6, frames=2, poses=("F",),
                          label_names=LABELS, mouth_shift=1.5, skip={(0, 1), (1, 1), (2, 1)})
    index = read_index(root)
    subj = index.manifest["subject"].to_numpy()
    fer = np.isin(subj, ["s0", "s1", "s2"])
    m = index.manifest.assign(subject=np.where(fer, "", subj))
    write_index(root, pd.DataFrame(m), index.info, index.landmarks, index.landmarks_ok)
    return root, np.flatnonzero(fer), np.flatnonzero(~fer)


def test_donor_rows_draw_a_rare_expression_on_faces_without_subject_ids(merged):
    root, fer, donors = merged
    index = read_index(root)
    m = index.manifest
    expr, subj = m["expression"].to_numpy(), m["subject"].to_numpy()
    plan = plans.parse_plan("balance-expression:contempt", index.info)
    # FER-like rows alone have no donor pair: auto aligns, retarget names the way out
    assert plans.resolve_plan(index, plan, fer, seed=0).report["landmark_method"] == plans.ALIGN
    with pytest.raises(UserError, match="--donor-rows"):
        plans.resolve_plan(index, plans.parse_plan("balance-expression:retarget:contempt", index.info), fer, seed=0)
    res = plans.resolve_plan(index, plan, fer, seed=0, donor_rows=donors)
    assert res.report["landmark_method"] == METHOD
    # counted on the FER-like rows only (anger 6, contempt 0, happy 6: median 6), not the donors' 6 contempt
    assert len(res.jobs) == 6 and res.report["counted_rows"] == len(fer)
    assert [s for s in res.report["per_subject"]] == [""]
    for j in res.jobs:
        assert j.source_row in fer and j.expression == "contempt" and expr[j.source_row] != "contempt"
        assert len(j.donors) == 3 and {subj[b] for _, b in j.donors} == {"s3", "s4", "s5"}
        for a, b in j.donors:
            assert a in donors and b in donors and expr[a] == expr[j.source_row] and expr[b] == "contempt"
        # the donors' change (mouth 1.5 px per expression step) lands on the source: a known answer
        out = retarget(index.landmarks[j.source_row], index.landmarks[[a for a, _ in j.donors]],
                       index.landmarks[[b for _, b in j.donors]])
        step = LABELS.index("contempt") - LABELS.index(expr[j.source_row])
        assert np.allclose(out[48:, 1] - index.landmarks[j.source_row][48:, 1], 1.5 * step, atol=1e-3)
        assert np.allclose(out[:48], index.landmarks[j.source_row][:48], atol=1e-3)


def test_cli_synthesize_with_donor_rows_records_them(merged, tmp_path):
    root, fer, donors = merged
    run = tiny_generator_run(tmp_path / "gan")
    np.savetxt(tmp_path / "fer.txt", fer, fmt="%d")
    np.savetxt(tmp_path / "donors.txt", donors, fmt="%d")
    out = tmp_path / "synth"
    args = ["gan", "synthesize", "--run", str(run), "--data", str(root), "--plan", "balance-expression:contempt",
            "--rows", str(tmp_path / "fer.txt"), "--out", str(out), "--device", "cpu"]
    assert main(args + ["--donor-rows", str(tmp_path / "nowhere.txt")]) == 2  # named in one line, nothing written
    assert not out.exists()
    assert main(args + ["--donor-rows", str(tmp_path / "donors.txt")]) == 0
    idx = read_index(out)
    sm = idx.manifest
    assert idx.info.origin["donor_rows"] == str(tmp_path / "donors.txt")
    assert len(sm) == 6 and (sm["subject"] == "").all() and np.isin(sm["source_row"], fer).all()
    rows = [int(r) for cell in sm["donor_pairs"] for pair in cell.split(";") for r in pair.split(">")]
    assert np.isin(rows, donors).all()


@pytest.mark.realdata
def test_cli_synthesize_on_imported_jaffe_writes_provenance_for_every_image(tmp_path):
    """The issue's acceptance on real faces: ``fape gan synthesize --plan balance-expression`` on an
    imported JAFFE folder (Haar crop, dlib landmarks), one subject held out; every image names its
    source row, donor rows, generator and landmark method, and none comes from the held-out subject."""
    from _fixtures import SHARED_DATA

    src = SHARED_DATA / "jaffe"
    if not src.is_dir():
        pytest.skip(f"real data not available: {src}")
    data = tmp_path / "jaffe48"
    assert main(["data", "import", "jaffe", str(src), "--out", str(data), "--gray", "--crop", "haar",
                 "--image-size", "48"]) == 0
    assert main(["data", "landmarks", str(data), "--assume-cropped"]) == 0
    real = read_index(data)
    sm = real.manifest
    held_out = sorted(sm["subject"].unique())[0]
    train_rows = np.flatnonzero((sm["subject"].to_numpy() != held_out) & real.landmarks_ok)
    rows = tmp_path / "train_rows.txt"
    np.savetxt(rows, train_rows, fmt="%d")
    run = tiny_generator_run(tmp_path / "gan", size=64, channels=1)  # 64 px gray, as configs/gan/real_expression.yaml
    out = tmp_path / "synth"
    assert main(["gan", "synthesize", "--run", str(run), "--data", str(data), "--plan", "balance-expression:max:disgust,fear",
                 "--rows", str(rows), "--out", str(out), "--device", "cpu"]) == 0
    m = read_index(out).manifest
    counts = sm.iloc[train_rows]["expression"].value_counts()
    want = {e: counts.max() - counts[e] for e in ("disgust", "fear")}
    assert len(m) == sum(want.values()) > 0
    assert m["expression"].value_counts().reindex(list(want)).fillna(0).astype(int).to_dict() == want
    assert (m["landmark_method"] == METHOD).all() and (m["generator"] == str(run)).all()
    assert np.isin(m["source_row"].to_numpy(), train_rows).all()
    assert (m["source_expression"] != m["expression"]).all()
    pairs = [np.array([p.split(">") for p in cell.split(";")], np.int64) for cell in m["donor_pairs"]]  # [K, 2] each
    assert all(len(p) and np.isin(p, train_rows).all() for p in pairs)
    assert held_out not in set(m["subject"])
