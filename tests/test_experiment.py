"""fape experiment: every cell trained and evaluated once, finished cells reused, the table's
numbers are the cells' own, and the shipped experiment files parse."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from _fixtures import REPO
from fape.cli import main
from fape.config import load_config
from fape.experiment import ExperimentConfig, run_experiment

TINY_GAN = ["--generator.width=8", "--discriminator.width=8", "--discriminator.layers=2", "--train.max_steps=10",
            "--train.batch_size=16", "--train.sample_every=10", "--train.ckpt_every=10", "--data.image_size=32"]
TINY_CLF = ["--model.name=cnn3", "--data.image_size=32", "--train.epochs=1", "--train.batch_size=32",
            "--optim.name=adam", "--optim.lr=0.003"]


def tiny_experiment(tmp_path):
    synth = tmp_path / "synth.yaml"
    synth.write_text(yaml.safe_dump({"identities": 5, "frames": 1, "image_size": 32, "render_scale": 2}))
    return load_config(ExperimentConfig, REPO / "configs/experiments/f2ed_table5.yaml", [
        f"--data.root={tmp_path / 'data'}", f"--data.synth={synth}", "--tasks=[er-ss, er-up]", "--seeds=[0, 1]",
        f"--gan.overrides={TINY_GAN}", f"--classifier_overrides={TINY_CLF}", "--n_boot=200", "--per_class=true"])


def test_tiny_experiment_runs_every_cell_then_reuses(tmp_path, capsys, monkeypatch):
    exp = tiny_experiment(tmp_path)
    res = run_experiment(exp, tmp_path / "out")
    out = tmp_path / "out"
    oracle = "Fa-Net, all real (oracle)"
    for task in ("er-ss", "er-up"):
        t = res["tasks"][task]
        assert set(t["settings"]) == {"Fa-Net", "FaPE-GAN + Fa-Net", *((oracle,) if task == "er-up" else ())}
        for name, st in t["settings"].items():
            assert len(st["runs"]) == 2 and len(st["accs"]) == 2  # one run per seed
            accs = [json.loads((out / "clf" / task / name / f"s{s}" / "eval/test/results.json").read_text())["accuracy"]
                    for s in (0, 1)]
            assert st["accs"] == pytest.approx(accs)  # the table's numbers are the cells' own
        d = t["differences"]["FaPE-GAN + Fa-Net - Fa-Net"]
        assert d["n_seeds"] == 2 and d["ci_low"] <= d["diff"] <= d["ci_high"]
        assert ("headroom" in t) == (task == "er-up")
        assert len(t["per_class"]["Fa-Net"]) == 54  # every expression, mean over seeds
        assert all(0 <= v <= 1 for v in t["per_class"]["FaPE-GAN + Fa-Net"].values())
    report = (out / "report.md").read_text()
    row = next(ln for ln in report.splitlines() if ln.startswith("| FaPE-GAN + Fa-Net |"))
    assert len(re.findall(r"\d+\.\d \+- \d+\.\d \(2\)", row)) == 2
    assert "| paper: Fa-Net | 72.7 |" in report and "nan" not in report.lower()
    assert "- er-up: Headroom (oracle - without)" in report and "2 seeds" in report
    # each seed redraws the split and the GAN: two splits, two GANs, two synthesized sets
    splits = [json.loads((out / "seeds" / f"s{s}" / "splits.json").read_text()) for s in (0, 1)]
    assert [x["split_seed"] for x in splits] == [0, 1] and splits[0]["tasks"] != splits[1]["tasks"]
    for s in (0, 1):
        assert (out / "seeds" / f"s{s}" / "gan" / "done.json").is_file()
        assert (out / "seeds" / f"s{s}" / "synth" / "er-up" / "dataset.json").is_file()

    # a second invocation trains nothing: every cell and shared step is reused
    import fape.classifiers.train as clf_train
    import fape.gan.train as gan_train

    def no_training(*a, **k):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(clf_train, "train", no_training)
    monkeypatch.setattr(gan_train, "train", no_training)
    again = run_experiment(exp, out)
    assert again["tasks"]["er-ss"]["settings"] == res["tasks"]["er-ss"]["settings"]

    # another experiment (here: another seed list) into the same folder would overwrite the record
    # of what trained these cells: refused before any work, naming the key, with every file intact
    from fape.config import override
    from fape.errors import OutputError

    kept = {f: (out / f).read_bytes() for f in ("config.yaml", "results.json", "report.md")}
    with pytest.raises(OutputError, match=r"seeds: \[0, 1\] there, \[2\] now"):
        run_experiment(override(exp, {"seeds": [2]}), out)
    with pytest.raises(OutputError, match=r"n_boot: 200 there, 300 now"):  # more seeds, yet another bootstrap
        run_experiment(override(exp, {"seeds": [0, 1, 2], "n_boot": 300}), out)
    assert {f: (out / f).read_bytes() for f in kept} == kept and not (out / "seeds" / "s2").exists()
    from fape.experiment import check_same_experiment

    check_same_experiment(override(exp, {"seeds": [1, 0, 2]}), out)  # growing by a seed is resuming
    from fape.config import save_config

    save_config(override(exp, {"seeds": [2]}), tmp_path / "other.yaml")  # the command line: one line, exit 2
    capsys.readouterr()
    assert main(["experiment", str(tmp_path / "other.yaml"), "--out", str(out)]) == 2
    assert "--supersede" in capsys.readouterr().err and {f: (out / f).read_bytes() for f in kept} == kept


def test_search_on_validation_never_reads_test(tmp_path):
    """``part: val``: every cell is evaluated on its validation part, the table is made of those
    numbers, and no test image is read (no eval/test, no test_reads.jsonl anywhere)."""
    exp = tiny_experiment(tmp_path)
    exp.tasks, exp.seeds, exp.part, exp.per_class = ["er-ue"], [0], "val", True
    res = run_experiment(exp, tmp_path / "out")
    out = tmp_path / "out"
    t = res["tasks"]["er-ue"]
    for name, st in t["settings"].items():
        val = json.loads((out / "clf/er-ue" / name / "s0/eval/val/results.json").read_text())
        assert st["accs"] == pytest.approx([val["accuracy"]])
    assert "FaPE-GAN + Fa-Net - Fa-Net" in t["differences"] and "headroom" in t
    assert not list(out.rglob("eval/test")) and not list(out.rglob("test_reads.jsonl"))
    report = (out / "report.md").read_text()
    assert "**Validation** accuracy" in report and "val images per seed" in report
    from fape.errors import ConfigError

    kfold = load_config(ExperimentConfig, REPO / "configs/experiments/jaffe_expression_transfer.yaml",
                        [f"--data.root={_real_style(tmp_path)}", "--seeds=[0]", "--part=val"])
    with pytest.raises(ConfigError, match="part: val cannot pool the folds of the k-fold"):
        run_experiment(kfold, tmp_path / "kfold")


def test_pretrain_setting_starts_cells_from_its_weights(tmp_path):
    exp = tiny_experiment(tmp_path)
    exp = load_config(ExperimentConfig, None, [
        f"--data.root={tmp_path / 'data'}", f"--data.synth={exp.data.synth}", "--tasks=[er-ss]", "--seeds=[0]",
        f"--classifier={REPO / 'configs/clf/fanet_f2ed.yaml'}", f"--classifier_overrides={TINY_CLF}",
        f"--settings=[{{name: scratch}}, {{name: pre, pretrain: {REPO / 'configs/clf/fanet_f2ed.yaml'}, "
        f"pretrain_data: {tmp_path / 'data'}, pretrain_overrides: {TINY_CLF + ['--data.split=random']}}}]"])
    run_experiment(exp, tmp_path / "out")
    cfg = yaml.safe_load((tmp_path / "out/clf/er-ss/pre/s0/config.yaml").read_text())
    assert cfg["model"]["init_from"] == str(tmp_path / "out/pretrain/pre")
    assert yaml.safe_load((tmp_path / "out/clf/er-ss/scratch/s0/config.yaml").read_text())["model"]["init_from"] == ""
    assert (tmp_path / "out/pretrain/pre/done.json").is_file()


@pytest.mark.parametrize("name", ["f2ed_table5", "f2ed_table5_medium", "fer2013_to_jaffe", "fer2013_rare_expression",
                                  "ckplus_expression_transfer", "jaffe_expression_transfer"])
def test_shipped_experiments_parse(name):
    from fape.gan.plans import parse_plan

    exp = load_config(ExperimentConfig, REPO / f"configs/experiments/{name}.yaml")
    assert exp.tasks and len(exp.settings) == (3 if name.startswith("f2ed_table5") else 2) and exp.seeds == [0, 1, 2]
    if name.startswith("f2ed_table5"):  # without, with, and the all-real oracle for the headroom
        assert [s.oracle for s in exp.settings] == [False, False, True]
    for path in [exp.classifier, exp.gan.config, *[s.pretrain for s in exp.settings]]:
        assert not path or (REPO / path).is_file(), path
    for plan in exp.plans.values():
        assert plan == "per-pose:1.5" or parse_plan(str(REPO / plan) if plan.endswith(".yaml") else plan)
    if name.endswith("expression_transfer"):  # k-fold: a GAN per fold on its training rows
        assert exp.gan.per_task and exp.tasks in (["ckplus-10fold"], ["jaffe-loso"])


def test_missing_dataset_is_named(tmp_path):
    code = main(["experiment", str(REPO / "configs/experiments/fer2013_to_jaffe.yaml"),
                 f"--data.root={tmp_path / 'nope'}", "--out", str(tmp_path / "o")])
    assert code == 2


def test_presets_are_packaged_and_resolve_from_any_folder(tmp_path, monkeypatch):
    # configs/ is a link to the package's presets (one source); a configs/... path names a packaged
    # preset wherever the command runs, so the quick start needs no repository
    from fape.config import PRESETS, preset_path
    from fape.quickstart import SIZES

    assert (REPO / "configs").resolve() == PRESETS.resolve()
    monkeypatch.chdir(tmp_path)
    for preset in SIZES.values():
        exp = load_config(ExperimentConfig, preset.experiment)
        assert preset_path(preset.experiment).is_file() and exp.gan.config and exp.classifier
        for ref in (exp.gan.config, exp.classifier, exp.data.synth):
            assert preset_path(ref).is_file(), ref
    assert preset_path("configs/nope.yaml") == Path("configs/nope.yaml")




# ---------------------------------------------------------------- k-fold tasks, a GAN per fold
def _real_style(tmp_path):
    from _fixtures import make_multipose

    # 5 subjects x 3 expressions x 2 frames, pose F; contempt only for s3 and s4 (the rare class)
    return make_multipose(tmp_path / "real", subjects=5, frames=2, poses=("F",),
                          label_names=["anger", "contempt", "happy"], mouth_shift=1.5,
                          skip={(0, 1), (1, 1), (2, 1)})


def test_per_task_gan_never_sees_a_folds_test_subject(tmp_path):
    from fape.data.format import read_index
    from fape.errors import ConfigError
    from fape.experiment import make_splits, shared_gan_rows, task_units, unit_gan_rows

    data = _real_style(tmp_path)
    subj = read_index(data).manifest["subject"].to_numpy()
    files = make_splits(data, ["jaffe-loso"], 0)
    exp = load_config(ExperimentConfig, None, ["--tasks=[jaffe-loso]"])
    units = unit_gan_rows(files)
    assert list(units) == [f"jaffe-loso@fold{k}" for k in range(5)] == list(task_units(files))
    from fape.data.splits import load_split

    for k, rows in units.items():
        parts = load_split(files["jaffe-loso"], fold=int(k.split("fold")[1]))
        tested = set(subj[parts["test"]]) | set(subj[parts["val"]])
        assert len(tested) == 2 and not tested & set(subj[rows]), k  # neither test nor val subject
        assert np.array_equal(rows, parts["train"])
    with pytest.raises(ConfigError, match="per_task"):  # one shared GAN: every row is tested in some fold
        shared_gan_rows(exp, data, files)


def test_per_fold_gans_train_two_at_a_time_to_the_same_weights(tmp_path):
    """``--workers 2`` trains per-fold GANs in two spawned 1-thread processes; each comes out as
    the same GAN trained here in turn with 1 thread (its rows and seed decide it, not the process),
    and a second call trains nothing."""
    import torch

    from fape.experiment import make_splits, train_gans, unit_gan_rows
    from fape.utils import checkpoint as ck

    def same_last_weights(a: Path, b: Path) -> bool:  # G, its EMA and D of the last snapshot
        for name in ("G", "G_ema", "D"):
            x, y = (ck.load_module_state(ck.latest_checkpoint(r), name) for r in (a, b))
            if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
                return False
        return True

    data = _real_style(tmp_path)
    exp = load_config(ExperimentConfig, REPO / "configs/experiments/jaffe_expression_transfer.yaml", [
        f"--data.root={data}", f"--gan.overrides={TINY_GAN + ['--data.channels=1', '--train.batch_size=4']}"])
    units = dict(list(unit_gan_rows(make_splits(data, ["jaffe-loso"], 0)).items())[:2])
    par = train_gans(exp, data, {k: (r, tmp_path / "par" / k) for k, r in units.items()}, seed=0, workers=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seq = train_gans(exp, data, {k: (r, tmp_path / "seq" / k) for k, r in units.items()}, seed=0, workers=1)
    finally:
        torch.set_num_threads(threads)
    assert list(par) == list(seq) == list(units)
    for k in units:
        assert same_last_weights(par[k], seq[k]), k
    stamps = {k: (par[k] / "done.json").stat().st_mtime_ns for k in units}
    train_gans(exp, data, {k: (r, tmp_path / "par" / k) for k, r in units.items()}, seed=0, workers=2)
    assert {k: (par[k] / "done.json").stat().st_mtime_ns for k in units} == stamps  # reused, not retrained
    other = dict(list(units.items())[:1])
    assert not same_last_weights(par[next(iter(other))], seq[list(units)[1]])  # the check can fail


def test_gan_judge_trains_on_the_gans_own_rows_and_drives_its_expression_term(tmp_path):
    """``gan.judge``: each GAN's frozen classifier trains and selects on that GAN's training rows
    only (never the fold's test or validation subjects, nor the GAN's held-out ones), and the GAN
    logs the expression term it gives."""
    from fape.classifiers.io import load_run
    from fape.data.splits import load_split
    from fape.experiment import make_splits, train_gans, unit_gan_rows
    from fape.gan.config import GANConfig
    from fape.gan.data import gan_rows
    from fape.data.format import read_index
    from fape.utils.runs import read_jsonl

    data = _real_style(tmp_path)
    exp = load_config(ExperimentConfig, REPO / "configs/experiments/jaffe_expression_transfer.yaml", [
        f"--data.root={data}", "--gan.judge=true",
        f"--classifier_overrides={TINY_CLF + ['--data.channels=1', '--train.batch_size=4']}",
        f"--gan.overrides={TINY_GAN + ['--data.channels=1', '--train.batch_size=4', '--loss.expression_weight=1']}"])
    files = make_splits(data, ["jaffe-loso"], 0)
    key, rows = next(iter(unit_gan_rows(files).items()))
    run = train_gans(exp, data, {key: (rows, tmp_path / "gan" / "fold0")}, seed=0)[key]
    cfg = load_config(GANConfig, run / "config.yaml")
    assert cfg.loss.classifier_run == str(tmp_path / "gan" / "fold0_judge")
    judge = load_run(cfg.loss.classifier_run)
    parts = load_split(judge.cfg.data.split)
    m = read_index(data).manifest
    gan_train_rows, gan_held = gan_rows(cfg, m)
    assert len(gan_held) and set(parts["train"]) | set(parts["val"]) <= set(gan_train_rows)
    assert set(parts["test"]) == set(gan_held)
    fold = load_split(files["jaffe-loso"], fold=0)
    assert not set(m["subject"][np.r_[parts["train"], parts["val"]]]) & set(m["subject"][np.r_[fold["test"], fold["val"]]])
    assert any(r.get("g_expression", 0) > 0 for r in read_jsonl(run / "metrics.jsonl"))
    from fape.config import override
    from fape.errors import ConfigError
    from fape.experiment import check_experiment

    with pytest.raises(ConfigError, match="both weights are 0"):
        check_experiment(override(exp, {"gan.overrides": TINY_GAN}))


def test_kfold_experiment_with_a_gan_per_fold_runs_and_pools(tmp_path):
    import pandas as pd

    from fape.data.format import read_index

    data = _real_style(tmp_path)
    exp = load_config(ExperimentConfig, REPO / "configs/experiments/jaffe_expression_transfer.yaml", [
        f"--data.root={data}", "--seeds=[0]", "--plans={default: 'balance-expression:contempt'}",
        f"--gan.overrides={TINY_GAN + ['--data.channels=1', '--train.batch_size=4']}", "--n_boot=50",
        f"--classifier_overrides={TINY_CLF + ['--data.channels=1', '--train.batch_size=8']}"])
    res = run_experiment(exp, tmp_path / "out")
    out = tmp_path / "out"
    t = res["tasks"]["jaffe-loso"]
    assert set(t["settings"]) == {"Fa-Net", "FaPE-GAN + Fa-Net"}
    assert set(t["per_class"]["Fa-Net"]) == {"anger", "contempt", "happy"}
    # per-class recall differences with intervals: the contempt target is read from these
    pcd = t["per_class_differences"]["FaPE-GAN + Fa-Net - Fa-Net"]
    assert set(pcd) == {"anger", "contempt", "happy"}
    for c, d in pcd.items():
        assert d["ci_low"] <= d["diff"] <= d["ci_high"]
        recall = {n: t["per_class"][n][c] for n in t["settings"]}
        assert d["diff"] == pytest.approx(recall["FaPE-GAN + Fa-Net"] - recall["Fa-Net"])
        assert d["n_images_per_seed"] == [int((read_index(data).manifest["expression"] == c).sum())]
    assert "Per-class recall difference FaPE-GAN + Fa-Net - Fa-Net" in (tmp_path / "out/report.md").read_text()
    m = read_index(data).manifest
    subj = m["subject"].to_numpy()
    for name in t["settings"]:
        pooled = pd.read_csv(out / "clf/jaffe-loso" / name / "s0/eval/test/predictions.csv")
        assert sorted(pooled["row"]) == list(range(len(m)))  # every image tested once over the 5 folds
    from fape.data.splits import load_split

    split = json.loads((out / "seeds/s0/splits.json").read_text())["tasks"]["jaffe-loso"]
    made = 0
    for k in range(5):
        parts = load_split(split, fold=k)
        test_subj = set(subj[parts["test"]])
        gan_rows = np.loadtxt(out / f"seeds/s0/gan/jaffe-loso/fold{k}_rows.txt", dtype=np.int64)
        assert not test_subj & set(subj[gan_rows]) and (out / f"seeds/s0/gan/jaffe-loso/fold{k}/done.json").is_file()
        syn = out / f"seeds/s0/synth/jaffe-loso/fold{k}"
        if (syn / "manifest.csv").is_file():
            sm = read_index(syn).manifest
            made += len(sm)
            donors = [int(r) for cell in sm["donor_pairs"] for pair in cell.split(";") for r in pair.split(">")]
            for rows in (sm["source_row"].to_numpy(), sm["landmarks_row"].to_numpy(), donors):
                assert np.isin(rows, parts["train"]).all(), k
            assert (sm["expression"] == "contempt").all() and (sm["landmark_method"] == "retarget-similarity").all()
    assert made > 0
    # --workers > 1 starts the largest cells first: a fold cell's size is its own fold's training rows
    from fape.classifiers.config import ClfConfig
    from fape.experiment.cells import _train_images

    for k in (0, 3):
        for name in t["settings"]:
            cfg = load_config(ClfConfig, out / "clf/jaffe-loso" / name / f"s0/fold{k}/config.yaml")
            syn = out / f"seeds/s0/synth/jaffe-loso/fold{k}"
            extra = len(read_index(syn).manifest) if name != "Fa-Net" and (syn / "manifest.csv").is_file() else 0
            assert _train_images(cfg) == len(load_split(split, fold=k)["train"]) + extra


# ---------------------------------------------------------------- a judge gate: each fold's own cell
def _judge_experiment(data, gate):
    return load_config(ExperimentConfig, REPO / "configs/experiments/jaffe_expression_transfer.yaml", [
        f"--data.root={data}", "--seeds=[0]", "--plans={default: 'balance-expression:contempt'}", f"--gate={gate}",
        f"--gan.overrides={TINY_GAN + ['--data.channels=1', '--train.batch_size=4']}", "--n_boot=50",
        f"--classifier_overrides={TINY_CLF + ['--data.channels=1', '--train.batch_size=8']}"])


def _drawn_probability(cell: Path, synth: str) -> np.ndarray:
    """``[N]``: the probability that the classifier run ``cell`` gives each face of a synthesized set
    for its drawn expression, read through the classifier package's own loading and prediction."""
    from fape.classifiers.io import load_run, predict
    from fape.data.dataset import FaceDataset
    from fape.data.format import labels_by_name, read_index

    loaded = load_run(cell)
    idx = read_index(synth)
    size = loaded.cfg.data.image_size
    faces = FaceDataset(idx, size=(size, size), channels=loaded.cfg.data.channels, cache=False, progress=False)
    p = predict(loaded.model, faces, np.arange(len(idx.manifest)), "cpu")  # [N, K]
    drawn = labels_by_name(list(idx.manifest["expression"]), loaded.label_names)
    return p[np.arange(len(p)), drawn]


def test_judge_gate_uses_each_folds_own_cell_trained_first(tmp_path, monkeypatch):
    import shutil

    import fape.classifiers.train as clf_train
    import fape.gan.train as gan_train
    from fape.data.format import read_index
    from fape.utils.io import sha256_file
    from fape.classifiers.io import best_checkpoint

    data = _real_style(tmp_path)
    out = tmp_path / "out"
    synth_json = out / "seeds/s0/synth/synth.json"
    cells = {f"jaffe-loso@fold{k}": out / f"clf/jaffe-loso/Fa-Net/s0/fold{k}" for k in range(5)}

    # 1. a fresh experiment: each fold's Fa-Net cell is trained before synthesis and is its judge
    res = run_experiment(_judge_experiment(data, "expression:@Fa-Net:0.01"), out)
    assert set(res["tasks"]["jaffe-loso"]["settings"]) == {"Fa-Net", "FaPE-GAN + Fa-Net"}
    made = json.loads(synth_json.read_text())
    shas = {key: sha256_file(best_checkpoint(cell) / "model.safetensors") for key, cell in cells.items()}
    assert len(set(shas.values())) == 5
    for key, syn in made.items():
        if syn:
            gate = json.loads((Path(syn) / "plan_report.json").read_text())["gate"]
            assert f"model_sha256={shas[key]}" in gate and "min_prob=0.01" in gate, key
    assert any(made.values())

    # from here on nothing trains: every cell and GAN is finished, only synthesis is redone
    def no_training(*a, **k):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(clf_train, "train", no_training)
    monkeypatch.setattr(gan_train, "train", no_training)

    # 2. the same units without a gate: every planned face, and what its fold's judge makes of it
    shutil.rmtree(out / "seeds/s0/synth")
    first_report = (out / "report.md").read_bytes()
    run_experiment(_judge_experiment(data, ""), out, supersede=True)  # on purpose, reusing GANs and cells
    assert (out / "superseded/0/report.md").read_bytes() == first_report  # the first run's record is kept
    ungated = {k: v for k, v in json.loads(synth_json.read_text()).items() if v}
    p = {k: _drawn_probability(cells[k], v) for k, v in ungated.items()}
    paths = {k: read_index(v).manifest["path"].to_numpy() for k, v in ungated.items()}  # one per planned face
    # a threshold in the widest gap of the middle half of the probabilities: some faces pass, some not
    ps = np.unique(np.concatenate(list(p.values())))
    assert len(ps) >= 4
    mid = np.arange(len(ps) // 4, 3 * len(ps) // 4) + 1
    i = mid[np.argmax(ps[mid] - ps[mid - 1])]
    t = float(f"{(ps[i - 1] + ps[i]) / 2:.6f}")
    assert ps[i] - ps[i - 1] > 1e-5

    # 3. gated at t, the judges reused (an interrupted experiment whose synthesis is redone): a fold
    # keeps exactly the faces its own judge gives at least t of their drawn expression
    shutil.rmtree(out / "seeds/s0/synth")
    run_experiment(_judge_experiment(data, f"expression:@Fa-Net:{t}"), out, supersede=True)
    assert (out / "superseded/1/config.yaml").is_file()
    gated = json.loads(synth_json.read_text())
    kept = rejected = 0
    for key in ungated:
        expect = set(paths[key][p[key] >= t])
        got = set(read_index(gated[key]).manifest["path"]) if gated[key] else set()
        assert got == expect, key
        kept, rejected = kept + len(got), rejected + int((p[key] < t).sum())
    assert kept > 0 and rejected > 0


def test_judge_gate_must_name_a_plain_setting(tmp_path):
    from fape.errors import ConfigError

    data = _real_style(tmp_path)
    with pytest.raises(ConfigError, match="'LightCNN'.*settings are"):
        run_experiment(_judge_experiment(data, "expression:@LightCNN"), tmp_path / "o1")
    exp = _judge_experiment(data, "expression:@with")
    exp.settings[1].name = "with"
    with pytest.raises(ConfigError, match="'with'.*real training rows only"):
        run_experiment(exp, tmp_path / "o2")
    with pytest.raises(ConfigError, match="may not contain ':' or '\\+'"):  # a name with + cannot be a judge
        run_experiment(_judge_experiment(data, "expression:@FaPE-GAN + Fa-Net"), tmp_path / "o2b")
    with pytest.raises(ConfigError, match="gate.*'x'"):
        run_experiment(_judge_experiment(data, "expression:@Fa-Net:x"), tmp_path / "o3")


# ---------------------------------------------------------------- one model per row, tasks on other datasets
def test_models_side_by_side_on_several_datasets(tmp_path):
    # issue 18's comparison: each row its own classifier config and pre-training stage; a task on
    # another dataset (task_data) with its own overrides; the report names each row's parameters and
    # its stage's own test accuracy
    from fape.classifiers import create_classifier

    synth = tiny_experiment(tmp_path).data.synth
    real = make_real(tmp_path)
    tiny_mobile = ["--model.kwargs={width_mult: 0.25}", "--data.image_size=32", "--train.epochs=1",
                   "--train.batch_size=16"]
    exp = load_config(ExperimentConfig, None, [
        f"--data.root={tmp_path / 'data'}", f"--data.synth={synth}", "--tasks=[er-ss, random]",
        f"--task_data={{random: {real}}}", "--task_overrides={random: [--train.epochs=2, --train.batch_size=8]}", "--n_boot=50",
        f"--settings=[{{name: cnn, classifier: {REPO / 'configs/clf/cnn3_cife.yaml'}, overrides: {TINY_CLF}}}, "
        f"{{name: mobile, classifier: {REPO / 'configs/clf/mobilenet_jaffe.yaml'}, overrides: {tiny_mobile}, "
        f"pretrain: {REPO / 'configs/clf/mobilenet_fer2013.yaml'}, pretrain_data: {tmp_path / 'data'}, "
        f"pretrain_overrides: {['--model.pretrained=', '--data.split=random', *tiny_mobile]}}}]"])
    res = run_experiment(exp, tmp_path / "out")
    out = tmp_path / "out"
    cfg = lambda task, row: yaml.safe_load((out / "clf" / task / row / "s0/config.yaml").read_text())  # noqa: E731
    assert cfg("er-ss", "cnn")["model"]["name"] == "cnn3" and cfg("random", "cnn")["model"]["name"] == "cnn3"
    mob = cfg("random", "mobile")
    assert mob["model"]["name"] == "mobilenet_v1" and mob["model"]["kwargs"] == {"width_mult": 0.25}
    assert mob["data"]["root"] == str(real) and mob["train"]["epochs"] == 2  # the task's data and overrides
    assert cfg("er-ss", "mobile")["data"]["root"] == str(tmp_path / "data") and cfg("er-ss", "mobile")["train"]["epochs"] == 1
    assert mob["model"]["init_from"] == str(out / "pretrain/mobile") and mob["center_loss"]["weight"] == 0.001
    labels = json.loads((out / "clf/random/cnn/s0/labels.json").read_text())["label_names"]
    assert labels == ["anger", "contempt", "happy"]  # trained on the task's own dataset
    stage = json.loads((out / "pretrain/mobile/eval/test/results.json").read_text())
    models = res["models"]
    assert models["mobile"]["pretrain"]["accuracy"] == stage["accuracy"] and "pretrain" not in models["cnn"]
    n_cnn = sum(p.numel() for p in create_classifier("cnn3", 54, in_chans=3, image_size=32).parameters())
    assert models["cnn"]["parameters"] == n_cnn
    assert all(len(v) == 1 and v[0] > 0 for v in models["mobile"]["cell_seconds"].values())
    report = (out / "report.md").read_text()
    assert f"| mobile | {models['mobile']['parameters']:,} | {100 * stage['accuracy']:.2f} (n={stage['n']}) |" in report


def test_task_data_refuses_synthetic_rows_and_names_a_missing_dataset(tmp_path):
    from fape.errors import ConfigError

    exp = tiny_experiment(tmp_path)
    exp.task_data = {"er-up": str(tmp_path / "other")}
    with pytest.raises(ConfigError, match="task_data"):
        run_experiment(exp, tmp_path / "out")
    exp.settings = exp.settings[:1]
    with pytest.raises(FileNotFoundError, match="other"):
        run_experiment(exp, tmp_path / "out2")


def make_real(tmp_path):
    return _real_style(tmp_path)


def test_seed_classifiers_experiment_names_registered_models_and_existing_files():
    # issue 18's comparison: every row's model is registered, its files exist, its stage skips the
    # ImageNet weights that are not here, and center loss is on in exactly the MobileNet paper's row
    from fape.classifiers import is_classifier
    from fape.classifiers.config import ClfConfig

    exp = load_config(ExperimentConfig, REPO / "configs/experiments/seed_classifiers.yaml")
    assert set(exp.task_data) == set(exp.tasks) == {"jaffe-deep-emotion", "ckplus-10fold"}
    weights = {}
    for s in exp.settings:
        assert (REPO / s.classifier).is_file() and (REPO / s.pretrain).is_file(), s.name
        cell = load_config(ClfConfig, REPO / s.classifier, s.overrides)
        stage = load_config(ClfConfig, REPO / s.pretrain, s.pretrain_overrides)
        assert is_classifier(cell.model.name) and cell.model.name == stage.model.name
        assert stage.model.pretrained == "" and stage.data.split == "fer2013-official"
        assert cell.model.kwargs == stage.model.kwargs and cell.data.image_size == stage.data.image_size
        weights[s.name] = (stage.center_loss.weight, cell.center_loss.weight)
    assert weights["MobileNetV1 + center loss"] == (0.001, 0.001)
    assert weights["MobileNetV1, no center loss"] == (0.0, 0.0)


def test_plain_cells_are_handed_to_the_pool_before_the_gan_trains(tmp_path, monkeypatch):
    """With a pool, the cells that need no synthesized image (without, oracle) are submitted before
    the seed's GAN and synthesis run, and this process keeps one torch thread meanwhile; the cells
    come back in table order."""
    import torch

    import fape.experiment.run as E

    exp = load_config(ExperimentConfig, REPO / "configs/experiments/f2ed_table5.yaml", [
        f"--data.root={tmp_path / 'data'}", f"--data.synth={tiny_experiment(tmp_path).data.synth}",
        "--tasks=[er-ss, er-up]", "--seeds=[0]", f"--gan.overrides={TINY_GAN}", f"--classifier_overrides={TINY_CLF}"])
    data = E._build_data(exp)
    seen = {}

    class Pool(E.CellPool):  # records what was submitted; trains nothing
        def submit(self, jobs):
            seen.setdefault("submitted", []).extend(str(run) for _, run in jobs)

    real_synth = E._seed_synth

    def synth_spy(*a, **k):
        seen["before_gan"] = list(seen.get("submitted", []))
        seen["threads"] = torch.get_num_threads()
        return real_synth(*a, **k)

    monkeypatch.setattr(E, "_seed_synth", synth_spy)
    pool = Pool(2)
    pool._pool = object()  # "parallel": sharing_cpu drops this process to one thread
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cells = E.seed_cells(exp, data, tmp_path / "out", 0, {s.name: "" for s in exp.settings}, pool)
        assert torch.get_num_threads() == 2  # given back
    finally:
        torch.set_num_threads(threads)
    plain = {str(c[3]) for c in cells if not c[1].synthetic and not c[4]}
    assert plain and set(seen["before_gan"]) == plain and seen["threads"] == 1
    order = [(c[0], c[1].name) for c in cells]
    assert order == [(t, s.name) for t in exp.tasks for s in exp.settings]
