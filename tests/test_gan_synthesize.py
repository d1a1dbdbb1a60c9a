"""fape gan synthesize: plans, landmark alignment, the batched resumable loop, the CLI."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from _fixtures import make_multipose, tiny_generator_run
from fape.cli import UserError, main
from fape.data.format import read_index
from fape.gan import plans
from fape.gan import synthesize as syn
from fape.gan.config import GANConfig

POSES = ("half_left", "front", "half_right")


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # 3 subjects x 3 expressions x 2 frames x 3 poses = 54 images, 32x32
    return make_multipose(tmp_path_factory.mktemp("src") / "multi", subjects=3, expressions=3, frames=2,
                          poses=POSES, size=32)


@pytest.fixture(scope="module")
def manifest(data) -> pd.DataFrame:
    return read_index(data).manifest


def _rows_without(manifest: pd.DataFrame, col: str, value: str, keep: int) -> np.ndarray:
    """All rows except those with ``col == value``, of which only the first ``keep`` stay
    (for poses: one per expression, of subject s0 frame 0)."""
    hit = np.flatnonzero(manifest[col].to_numpy() == value)
    if col == "pose":
        first = (manifest["subject"].to_numpy()[hit] == "s0") & (manifest["frame"].to_numpy()[hit] == 0)
        hit = np.concatenate([hit[first], hit[~first]])
    drop = set(hit[keep:].tolist())
    return np.array([i for i in range(len(manifest)) if i not in drop], np.int64)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real checkpoint of a tiny real generator (unet width 8, 32x32), written like training does."""
    return tiny_generator_run(tmp_path_factory.mktemp("runs") / "gan")


def _counts(df: pd.DataFrame, col: str) -> dict:
    return df[col].value_counts().to_dict()


# ---------------------------------------------------------------- align_landmarks
def test_align_landmarks_recovers_similarity_and_matches_centroid_scale():
    from fape.data.landmarks68 import template_face

    src = template_face(64).astype(np.float32)
    tgt = src * 0.37 + np.array([11.0, -5.0], np.float32)  # a scaled+shifted copy
    out = plans.align_landmarks(tgt, src)
    np.testing.assert_allclose(out, src, atol=1e-4)

    other = template_face(64).astype(np.float32)
    other[:, 0] *= 0.7  # a different (narrower, "turned") shape
    other += [3.0, 9.0]
    out = plans.align_landmarks(other * 2.0, src)
    np.testing.assert_allclose(out.mean(0), src.mean(0), atol=1e-4)

    def rms(x):
        return np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean())

    assert rms(out) == pytest.approx(rms(src), rel=1e-5)
    # the shape is the target's: aligned output is a similarity of the target
    np.testing.assert_allclose(plans.align_landmarks(out, other), other, atol=1e-3)
    with pytest.raises(ValueError):
        plans.align_landmarks(np.full((68, 2), np.nan), src)
    with pytest.raises(ValueError):
        plans.align_landmarks(np.zeros((68, 2)), src)


def test_waterfill_fills_emptiest_first():
    rng = np.random.default_rng(0)
    # 8 additions raise the three emptiest cells (5, 0, 2) to one level, 5: 0 + 5 and 2 + 3
    add = plans.waterfill(np.array([5, 0, 2, 9]), 8, rng)
    assert add.tolist() == [0, 5, 3, 0]
    # one more cannot be split: it goes to one of the three cells at level 5, chosen at random
    picks = set()
    for seed in range(20):
        add = plans.waterfill(np.array([5, 0, 2, 9]), 9, np.random.default_rng(seed))
        after = np.array([5, 0, 2, 9]) + add
        assert sorted(after[:3].tolist()) == [5, 5, 6] and after[3] == 9
        picks.add(int(np.argmax(after[:3])))
    assert picks == {0, 1, 2}  # no cell is favoured by its position
    add = plans.waterfill(np.array([1, 1, 1]), 2, rng)
    assert add.sum() == 2 and add.max() == 1


# ---------------------------------------------------------------- plan resolution
def _resolve(data, plan, rows, seed=0):
    idx = read_index(data)
    return idx, plans.resolve_plan(idx, plans.parse_plan(plan, idx.info), rows, seed)


def _job_frame(idx, jobs) -> pd.DataFrame:
    m = idx.manifest
    return pd.DataFrame({"expression": [m["expression"].iat[j.source_row] for j in jobs],
                         "subject": [m["subject"].iat[j.source_row] for j in jobs],
                         "pose": [j.pose for j in jobs],
                         "src_pose": [m["pose"].iat[j.source_row] for j in jobs],
                         "lm_pose": [m["pose"].iat[j.landmarks_row] for j in jobs],
                         "source_row": [j.source_row for j in jobs],
                         "lm_row": [j.landmarks_row for j in jobs]})


def test_balance_pose_tops_up_rare_pose_per_expression(data, manifest):
    rows = _rows_without(manifest, "pose", "half_left", keep=3)  # 3 half-left images left (one per expr)
    idx, res = _resolve(data, "balance-pose", rows)
    jf = _job_frame(idx, res.jobs)
    # each expression: half_left 1 real -> 6 (the count of front/half_right)
    assert len(jf) == 3 * 5
    assert set(jf["pose"]) == {"half_left"}
    assert jf.groupby("expression").size().to_dict() == {"expr0": 5, "expr1": 5, "expr2": 5}
    assert (jf["src_pose"] != "half_left").all()  # sources in other poses
    assert (jf["lm_pose"] == "half_left").all()  # pose landmarks from real half-left images
    assert set(jf["lm_row"]) <= set(rows.tolist())  # only allowed rows
    assert set(jf["source_row"]) <= set(rows.tolist())
    after = res.report["per_expression_pose"]
    for e in ("expr0", "expr1", "expr2"):
        assert {after[f"{e}/{p}"]["after"] for p in POSES} == {6}
    # the same subject/expression in the source: subjects balanced inside each cell (2,2,1 or so)
    assert jf.groupby(["expression", "subject"]).size().max() <= 2


def test_balance_expression_tops_up_rare_expression_to_median(data, manifest):
    rows = _rows_without(manifest, "expression", "expr2", keep=4)
    idx, res = _resolve(data, "balance-expression", rows)
    jf = _job_frame(idx, res.jobs)
    assert len(jf) == 18 - 4 and set(jf["expression"]) == {"expr2"}
    assert res.report["per_expression"]["expr2"] == {"before": 4, "added": 14, "after": 18}
    _, res_max = _resolve(data, "balance-expression:max", rows)
    assert len(res_max.jobs) == 14  # median == max here
    # the 4 real expr2 rows are the only possible sources
    assert set(jf["source_row"]) <= set(rows[manifest["expression"].to_numpy()[rows] == "expr2"].tolist())


def test_balance_identity_tops_up_rare_subject(data, manifest):
    rows = _rows_without(manifest, "subject", "s1", keep=6)
    idx, res = _resolve(data, "balance-identity", rows)
    jf = _job_frame(idx, res.jobs)
    assert len(jf) == 18 - 6 and set(jf["subject"]) == {"s1"}
    assert res.report["per_subject"]["s1"]["after"] == 18
    # s1 keeps only its first 6 rows (expr0, both frames): new images spread over the poses
    assert set(jf["expression"]) == {"expr0"}
    assert res.report["unmet"] == 0


def test_yaml_plan_targets_and_overlap(data, manifest, tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text("targets:\n"
                 "  - {pose: half_left, count: 20}\n"
                 "  - {expression: expr1, count: 20}\n"
                 "  - {expression: expr0, pose: front, subject: s2, count: 5}\n")
    idx, res = _resolve(data, str(p), None)
    jf = _job_frame(idx, res.jobs)
    t = res.report["targets"]
    assert [x["real"] for x in t] == [18, 18, 2]
    assert t[0]["deficit"] == 2 and t[2]["deficit"] == 3
    # later targets count what earlier ones planned: expr1 half-left images count toward expr1
    assert t[1]["planned_before"] == int((jf.iloc[:2]["expression"] == "expr1").sum())
    assert t[1]["deficit"] == 2 - t[1]["planned_before"]
    assert len(jf) == 2 + t[1]["deficit"] + 3
    last = jf.iloc[-3:]
    assert (last["subject"] == "s2").all() and (last["expression"] == "expr0").all() and (last["pose"] == "front").all()
    assert (last["src_pose"] != "front").all()
    assert (jf.iloc[:2]["pose"] == "half_left").all()


def test_yaml_plan_errors_name_the_problem(data, tmp_path):
    info = read_index(data).info
    p = tmp_path / "bad.yaml"
    p.write_text("targets:\n  - {pose: half_left, cout: 5}\n")
    with pytest.raises(UserError, match=r"cout"):
        plans.parse_plan(str(p), info)
    p.write_text("targets:\n  - {pose: profile_up, count: 5}\n")
    with pytest.raises(UserError, match=r"profile_up"):
        plans.parse_plan(str(p), info)
    p.write_text("targets:\n  - {expression: anger, count: 5}\n")
    with pytest.raises(UserError, match=r"anger"):
        plans.parse_plan(str(p), info)
    p.write_text("target:\n  - {pose: front, count: 5}\n")
    with pytest.raises(UserError, match=r"targets"):
        plans.parse_plan(str(p), info)
    p.write_text("targets:\n  - {pose: front, count: -1}\n")
    with pytest.raises(UserError, match=r"count"):
        plans.parse_plan(str(p), info)
    with pytest.raises(UserError, match=r"balance-everything"):
        plans.parse_plan("balance-everything", info)
    with pytest.raises(UserError, match=r"nope\.yaml"):
        plans.parse_plan(str(tmp_path / "nope.yaml"), info)


def test_example_plan_parses():
    from _fixtures import REPO

    targets = plans.parse_plan(str(REPO / "configs" / "plans" / "example.yaml")).targets
    assert [t.count for t in targets] == [500, 300, 20]
    assert targets[2].key() == {"expression": "fear", "pose": "bird_view", "subject": "s03"}


def test_read_rows(tmp_path):
    (tmp_path / "r.txt").write_text("0\n3\n5\n")
    assert syn.read_rows(tmp_path / "r.txt", 10).tolist() == [0, 3, 5]
    np.save(tmp_path / "r.npy", np.array([1, 2]))
    assert syn.read_rows(tmp_path / "r.npy", 10).tolist() == [1, 2]
    np.save(tmp_path / "m.npy", np.arange(10) < 2)
    assert syn.read_rows(tmp_path / "m.npy", 10).tolist() == [0, 1]
    with pytest.raises(UserError, match="r.txt"):
        syn.read_rows(tmp_path / "r.txt", 4)


# ---------------------------------------------------------------- the synthesis loop
def _files(root: Path) -> dict[str, str]:
    """sha256 of every file; dataset.json without its ``name`` (the output folder's name)."""
    out = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in sorted(root.rglob("*")) if p.is_file() and p.name != "dataset.json"}
    info = json.loads((root / "dataset.json").read_text())
    info.pop("name")
    out["dataset.json"] = json.dumps(info, sort_keys=True)
    return out


@pytest.fixture(scope="module")
def rare_rows(manifest, tmp_path_factory) -> tuple[np.ndarray, Path]:
    rows = _rows_without(manifest, "pose", "half_left", keep=3)
    f = tmp_path_factory.mktemp("rows") / "train.txt"
    f.write_text("\n".join(map(str, rows)) + "\n")
    return rows, f


@pytest.fixture(scope="module")
def reference(run_dir, data, rare_rows, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "synth"
    res = syn.synthesize(run_dir, data, "balance-pose", out, rows=rare_rows[0], seed=3, batch_size=4,
                         device="cpu", progress=False)
    assert res.written == 15 and res.jobs == 15
    return out


def test_output_dataset_has_provenance_and_counts(reference, data, manifest, run_dir):
    idx = read_index(reference)
    m = idx.manifest
    assert len(m) == 15
    for col in ("source_path", "source_row", "landmarks_source", "landmarks_row", "checkpoint_sha256", "seed",
                "synthetic"):
        assert col in m.columns, col
    assert (m["synthetic"] == 1).all() and (m["seed"] == 3).all()
    assert (m["pose"] == "half_left").all()
    assert m.groupby("expression").size().to_dict() == {"expr0": 5, "expr1": 5, "expr2": 5}
    # subject/expression/label/sequence/frame are the source's
    src = manifest.iloc[m["source_row"].to_numpy()].reset_index(drop=True)
    for col in ("subject", "expression", "label", "sequence", "frame"):
        assert (m[col].to_numpy() == src[col].to_numpy()).all(), col
    assert (m["source_path"].to_numpy() == src["path"].to_numpy()).all()
    assert (manifest["pose"].to_numpy()[m["landmarks_row"].to_numpy()] == "half_left").all()
    assert idx.landmarks_ok.all() and np.isfinite(idx.landmarks).all()
    info = idx.info
    assert info.label_names == ["expr0", "expr1", "expr2"] and info.pose_names == list(POSES)
    assert info.image_size == [32, 32] and info.channels == 3
    o = info.origin
    assert o["kind"] == "fape-gan-synthesis" and o["plan"] == "balance-pose" and o["source_data"] == str(data)
    assert o["sha256"] == m["checkpoint_sha256"].iat[0] and len(o["sha256"]) == 64
    assert o["run"] == str(run_dir) and "step_00000001" in o["checkpoint"]
    rep = json.loads((reference / "plan_report.json").read_text())
    assert rep["total"] == {"before": 39, "added": 15, "after": 54}
    assert rep["per_pose"]["half_left"] == {"before": 3, "added": 15, "after": 18}
    assert "half_left" in (reference / "plan_report.md").read_text()
    assert not (reference / syn.PROGRESS).exists()
    assert not reference.parent.joinpath(f".{reference.name}.partial").exists()
    from PIL import Image

    with Image.open(reference / m["path"].iat[0]) as im:
        assert im.size == (32, 32) and im.mode == "RGB"


def test_deterministic_for_a_seed(reference, run_dir, data, rare_rows, tmp_path):
    out = tmp_path / "again"
    syn.synthesize(run_dir, data, "balance-pose", out, rows=rare_rows[0], seed=3, batch_size=4, device="cpu",
                   progress=False)
    assert _files(out) == _files(reference)
    other = tmp_path / "seed4"
    syn.synthesize(run_dir, data, "balance-pose", other, rows=rare_rows[0], seed=4, batch_size=4, device="cpu",
                   progress=False)
    a, b = read_index(reference).manifest, read_index(other).manifest
    assert not (a["source_row"].equals(b["source_row"]) and a["landmarks_row"].equals(b["landmarks_row"]))


def test_interrupted_run_resumes_without_duplicates(reference, run_dir, data, rare_rows, tmp_path):
    out = tmp_path / "resumed"
    kw = dict(rows=rare_rows[0], seed=3, batch_size=4, device="cpu", progress=False)
    with pytest.raises(syn._Interrupt):
        syn.synthesize(run_dir, data, "balance-pose", out, _fail_after_batches=1, **kw)
    partial = tmp_path / ".resumed.partial"
    assert not out.exists() and partial.is_dir()
    assert json.loads((partial / syn.PROGRESS).read_text())["done"] == 4
    assert len(list(partial.rglob("*.png"))) == 4
    # different inputs refuse to reuse the partial folder, naming what differs
    with pytest.raises(UserError, match="seed"):
        syn.synthesize(run_dir, data, "balance-pose", out, **{**kw, "seed": 9})
    res = syn.synthesize(run_dir, data, "balance-pose", out, **kw)
    assert res.resumed_from == 4
    assert _files(out) == _files(reference)
    m = read_index(out).manifest
    assert not m["path"].duplicated().any() and len(m) == 15
    assert len(list(out.rglob("*.png"))) == 15


def test_gate_hook_drops_rejected_images(run_dir, data, rare_rows, tmp_path):
    def every_other(generated, source, target_landmarks, jobs):
        assert generated.shape == source.shape and target_landmarks.shape[1:] == (68, 2)
        return np.arange(len(jobs)) % 2 == 0

    res = syn.synthesize(run_dir, data, "balance-pose", tmp_path / "gated", rows=rare_rows[0], seed=3,
                         batch_size=4, device="cpu", progress=False, gate=every_other)
    assert res.rejected == 7 and res.written == 8
    assert len(read_index(tmp_path / "gated").manifest) == 8
    assert json.loads((tmp_path / "gated" / "plan_report.json").read_text())["rejected_by_gate"] == 7


def test_stand_in_generator_via_monkeypatch(monkeypatch, data, rare_rows, tmp_path):
    """The loop only needs load_generator's contract: an identity G gives back the source pixels."""
    from fape.gan import io as gan_io

    class Identity(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, mask, source_landmarks=None, target_landmarks=None):
            assert mask.shape[0] == x.shape[0] and mask.shape[-2:] == x.shape[-2:]
            seen.append((source_landmarks.clone(), target_landmarks.clone()))  # [B, 68, 2] pixels each
            return x

    seen = []

    cfg = GANConfig()
    cfg.data.image_size, cfg.data.channels = 32, 1
    loaded = gan_io.LoadedGenerator(G=Identity().eval(), cfg=cfg, checkpoint=tmp_path, weights=tmp_path / "G.st",
                                    sha256="0" * 64)
    monkeypatch.setattr(gan_io, "load_generator", lambda *a, **k: loaded)
    out = tmp_path / "gray"
    syn.synthesize("any", data, "balance-pose", out, rows=rare_rows[0], seed=0, batch_size=16, progress=False)
    idx = read_index(out)
    assert idx.info.channels == 1
    from fape.data.dataset import decode

    r = int(idx.manifest["source_row"].iat[0])
    src = decode(data / read_index(data).manifest["path"].iat[r], (32, 32), 1)
    got = decode(out / idx.manifest["path"].iat[0], None, 1)
    np.testing.assert_array_equal(got, src)
    # every job reached G with its source's landmarks (for warp_unet) and the aligned target pose
    from fape.data.dataset import FaceDataset

    lm_src = torch.cat([a for a, _ in seen]).numpy()
    lm_tgt = torch.cat([b for _, b in seen]).numpy()
    faces = FaceDataset(data, size=(32, 32), channels=1, cache=False, progress=False)
    np.testing.assert_allclose(lm_src, faces.landmarks[idx.manifest["source_row"].to_numpy()], atol=1e-5)
    np.testing.assert_allclose(lm_tgt, idx.landmarks, atol=1e-5)


# ---------------------------------------------------------------- errors and CLI
def test_bad_inputs_give_clear_errors(run_dir, data, tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        syn.synthesize(tmp_path / "norun", data, "balance-pose", tmp_path / "o1", progress=False)
    nolm = make_multipose(tmp_path / "nolm", subjects=1, expressions=2, frames=1, poses=("front", "half_left"),
                          missing_landmarks=range(4))
    with pytest.raises(UserError, match="no landmarks"):
        syn.synthesize(run_dir, nolm, "balance-pose", tmp_path / "o2", progress=False)
    with pytest.raises(UserError, match="balance-nothing"):
        syn.synthesize(run_dir, data, "balance-nothing", tmp_path / "o3", progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError, match="overwrite"):
        syn.synthesize(run_dir, data, "balance-pose", tmp_path / "exists", progress=False)


def test_cli(run_dir, data, rare_rows, tmp_path, capsys):
    out = tmp_path / "cli_out"
    base = ["gan", "synthesize", "--run", str(run_dir), "--data", str(data), "--out", str(out), "--device", "cpu"]
    assert main(base + ["--plan", "balance-pose", "--rows", str(rare_rows[1]), "--batch-size", "8"]) == 0
    assert "images/s" in capsys.readouterr().out
    assert len(read_index(out).manifest) == 15
    assert main(base + ["--plan", "balance-pose", "--rows", str(rare_rows[1])]) == 2  # exists
    assert "overwrite" in capsys.readouterr().err
    assert main(base + ["--plan", "balance-pose", "--rows", str(rare_rows[1]), "--overwrite", "--seed", "1"]) == 0
    assert main(base + ["--plan", "bogus", "--overwrite"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(base + ["--plan", "balance-pose", "--rows", str(tmp_path / "missing.txt"), "--overwrite"]) == 2
    assert "missing.txt" in capsys.readouterr().err
    # the full (balanced) dataset needs nothing: exit 0, no output written
    out2 = tmp_path / "none"
    assert main(["gan", "synthesize", "--run", str(run_dir), "--data", str(data), "--out", str(out2),
                 "--plan", "balance-pose", "--device", "cpu"]) == 0
    assert "nothing to synthesize" in capsys.readouterr().out and not out2.exists()


def test_cli_reads_the_dataset_index_once(run_dir, data, manifest, rare_rows, tmp_path, monkeypatch, capsys):
    """`fape gan synthesize --rows` checks the rows against the manifest and synthesizes from the
    same index: each index file of --data is opened once, and the output is the plan's."""
    import builtins
    import io
    from collections import Counter

    seen, real = Counter(), io.open

    def counting(file, mode="r", *args, **kwargs):
        if (isinstance(file, str) or hasattr(file, "__fspath__")) and not any(c in mode for c in "wax+"):
            seen[Path(file).resolve()] += 1
        return real(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting)
    monkeypatch.setattr(builtins, "open", counting)
    out = tmp_path / "once"
    assert main(["gan", "synthesize", "--run", str(run_dir), "--data", str(data), "--out", str(out), "--device", "cpu",
                 "--plan", "balance-pose", "--rows", str(rare_rows[1]), "--seed", "3", "--batch-size", "8"]) == 0
    monkeypatch.undo()
    index_files = ("dataset.json", "manifest.csv", "landmarks.npy", "landmarks_ok.npy")
    assert {f: seen[(data / f).resolve()] for f in index_files} == dict.fromkeys(index_files, 1)
    # the plan's output: the 12 half_left faces the rows left out, back as 15 = 5 per expression
    m = read_index(out).manifest
    assert len(m) == 15 and (m["pose"] == "half_left").all()
    assert m.groupby("expression").size().to_dict() == {"expr0": 5, "expr1": 5, "expr2": 5}
    src = m["source_row"].to_numpy()
    assert set(src) <= set(rare_rows[0].tolist())
    assert (m["subject"].to_numpy() == manifest["subject"].to_numpy()[src]).all()
    assert (m["expression"].to_numpy() == manifest["expression"].to_numpy()[src]).all()
    origin = read_index(out).info.origin
    assert origin["rows"] == str(rare_rows[1]) and origin["seed"] == 3
    assert origin["source_manifest_sha256"] == hashlib.sha256((data / "manifest.csv").read_bytes()).hexdigest()
