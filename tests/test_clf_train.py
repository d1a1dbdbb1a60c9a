
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from _fixtures import REPO, killed_and_resumed, make_multipose, same_last_weights
from fape.classifiers import train as clf_train
from fape.classifiers.config import ClfConfig
from fape.classifiers.data import TrainItems
from fape.classifiers.evaluate import evaluate_run
from fape.classifiers.io import load_run
from fape.config import load_config
from fape.utils import checkpoint as ck
from fape.utils.runs import read_jsonl

TINY = ["--model.name=cnn3", "--data.split=random", "--data.image_size=32", "--data.channels=3",
        "--train.batch_size=8", "--train.epochs=2", "--train.log_every=1", "--optim.lr=0.01"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("clf")
    return make_multipose(root / "real", subjects=4, expressions=3, frames=2), root


def cfg_for(data, *extra):
    return load_config(ClfConfig, REPO / "configs/clf/fanet_f2ed.yaml", [f"--data.root={data}", *TINY, *extra])


def test_train_select_on_val_and_eval(data, tmp_path):
    real, _ = data
    run = clf_train.train(cfg_for(real), tmp_path / "run", progress=False)
    log = read_jsonl(run / "metrics.jsonl")
    vals = [r for r in log if "val/acc" in r]
    assert len(vals) == 2 and all(0 <= r["val/acc"] <= 1 for r in vals)
    best = ck.load_state(ck.latest_checkpoint(run / "best"))["best"]
    assert best["val_acc"] == max(r["val/acc"] for r in vals)  # selected on val, never on test
    res = evaluate_run(run, "test")
    assert 0 <= res["accuracy"] <= 1 and res["n"] > 0 and len(res["confusion"]) == 3
    assert set(res["per_pose"]) <= {"half_left", "front", "half_right"}
    for f in ("results.json", "predictions.csv", "confusion.csv", "confusion.png"):
        assert (run / "eval" / "test" / f).is_file()
    loaded = load_run(run)
    assert loaded.label_names == ["expr0", "expr1", "expr2"]
    assert loaded.model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    # the same run scored on another split goes beside its own result, never over it (experiments
    # and compare read RUN/eval/test as the run's result)
    from fape.data import splits

    own = (run / "eval" / "test" / "predictions.csv").read_bytes()
    other = splits.save_split(real, splits.make_split(real, "random", seed=7), out=tmp_path / "s7.csv")
    res7 = evaluate_run(run, "test", split_file=other)
    assert Path(res7["out"]) == run / "eval" / f"test@{Path(real).name}.s7"
    assert (run / "eval" / "test" / "predictions.csv").read_bytes() == own
    assert evaluate_run(run, "test", data=str(real))["out"] == str(run / "eval" / "test")  # its own data: its own folder


def test_kill_and_resume_equals_uninterrupted(data, tmp_path, monkeypatch):
    real, _ = data
    full = clf_train.train(cfg_for(real, "--train.epochs=3"), tmp_path / "full", progress=False)
    # dies inside epoch 3 (7 steps per epoch here)
    cut = killed_and_resumed(monkeypatch, clf_train, "augment", 2 * 7 + 3, cfg_for(real, "--train.epochs=3"),
                             tmp_path / "cut")
    assert same_last_weights(full, cut)


def test_center_loss_centres_move_and_are_checkpointed(data, tmp_path):
    real, _ = data
    run = clf_train.train(cfg_for(real, "--center_loss.weight=0.01", "--center_loss.alpha=0.5"), tmp_path / "c",
                          progress=False)
    centers = ck.load_module_state(ck.latest_checkpoint(run), "centers")["centers"]
    assert centers.shape[0] == 3 and centers.abs().sum() > 0


def test_build_data_holds_train_and_val_never_test(data):
    from fape.classifiers.data import build_data
    from fape.data import splits

    real, _ = data
    d = build_data(cfg_for(real))
    parts = splits.load_split(d.split_path)
    assert d.label_names == ["expr0", "expr1", "expr2"]
    assert np.array_equal(np.sort(d.items.rows), np.sort(parts["train"]))
    assert np.array_equal(np.sort(d.val_rows), np.sort(parts["val"]))
    assert not set(d.items.idx.tolist()) & set(parts["test"].tolist())


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_clf_step_steps_and_returns_its_losses(data, tmp_path, weight):
    from fape.classifiers.data import build_data
    from fape.utils.loop import collate, make_accelerator

    real, _ = data
    cfg = cfg_for(real, f"--center_loss.weight={weight}", "--center_loss.alpha=0.5")
    d = build_data(cfg)
    torch.manual_seed(0)
    model = clf_train.build_model(cfg, d.label_names)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    centers = torch.zeros(3, model.num_features)
    batch = collate(d.items, np.arange(8), "cpu")
    parts, new = clf_train.clf_step(cfg, clf_train.WithFeatures(model), opt, make_accelerator(cfg.train, tmp_path, None),
                                    batch, centers, None)
    assert set(parts) == {"loss", "ce", "acc"} and all(v.ndim == 0 for v in parts.values())
    assert 0 <= float(parts["acc"]) <= 1 and float(parts["ce"]) > 0
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # the optimizer stepped
    if weight:  # centres at 0: the center loss is the features' squared norm, > 0, and the centres move
        assert float(parts["loss"]) > float(parts["ce"]) and new.abs().sum() > 0
    else:
        assert float(parts["loss"]) == float(parts["ce"]) and torch.equal(new, centers)


def test_synthetic_mix_and_balance(data, tmp_path):
    real, root = data
    synth = make_multipose(root / "synth", subjects=2, expressions=3, frames=1, seed=5)
    cfg = cfg_for(real, f"--data.synthetic={synth}", "--data.mix=0.5", "--data.balance=sampler")
    run = clf_train.train(cfg, tmp_path / "mix", progress=False)
    assert (run / "done.json").is_file()
    from fape.data.dataset import FaceDataset
    from fape.data.format import read_index

    idx = read_index(real)
    faces = FaceDataset(idx, size=32, progress=False)
    syn = FaceDataset(synth, size=32, progress=False)
    items = TrainItems(faces, np.arange(40), np.arange(3), syn, mix=cfg.data.mix, balance="none", seed=cfg.train.seed)
    assert len(items) == 40 + 18  # 0.5 x 40 capped at the 18 synthetic images
    assert (items.src == 1).sum() == 18
    assert np.array_equal(items.labels(), np.concatenate([faces.labels[:40], syn.labels[syn.rows[items.idx[40:]]]]))
    rows = np.flatnonzero(faces.labels != 2)[:30].tolist() + np.flatnonzero(faces.labels == 2)[:3].tolist()
    skewed = TrainItems(faces, np.array(sorted(rows)), np.arange(3), balance=cfg.data.balance, seed=cfg.train.seed)
    counts = np.bincount(skewed.labels(), minlength=3)  # class 2 had 3 of 33 images; balanced ~11 each
    assert counts.min() >= 5


def test_synthetic_labels_follow_names_and_an_unknown_expression_is_refused(data, tmp_path):
    from fape.classifiers.data import synthetic_label_map
    from fape.data.format import read_index

    real, root = data
    # a set drawn from a merged dataset numbers its labels in another order: matched by name
    shuffled = make_multipose(root / "shuffled", subjects=1, frames=1, label_names=["expr2", "expr0", "expr1"])
    run_map = np.array([2, 0, 1])  # the run's label of each real class (any permutation)
    got = synthetic_label_map(read_index(shuffled), read_index(real), run_map, shuffled, real)
    assert got.tolist() == [1, 2, 0]  # expr2 -> run 1, expr0 -> run 2, expr1 -> run 0
    other = make_multipose(root / "other", subjects=1, expressions=2, frames=1, label_names=["expr0", "contempt"])
    with pytest.raises(ValueError, match="contempt"):
        clf_train.train(cfg_for(real, f"--data.synthetic={other}"), tmp_path / "x", progress=False)


def test_chain_starts_from_previous_best(data, tmp_path, monkeypatch):
    from fape.classifiers.chain import ChainConfig, Stage, run_chain

    real, _ = data
    over = [f"--data.root={real}", *TINY, "--train.epochs=1"]
    chain = ChainConfig(name="c", runs_dir=str(tmp_path), stages=[
        Stage("a", str(REPO / "configs/clf/fanet_f2ed.yaml"), over),
        Stage("b", str(REPO / "configs/clf/fanet_f2ed.yaml"), over + ["--optim.lr=0"])])
    runs = run_chain(chain)
    # with lr 0 stage b cannot move: its weights are stage a's best (head included, same classes)
    a = ck.load_module_state(ck.latest_checkpoint(runs[0] / "best"), "model")
    b = ck.load_module_state(ck.latest_checkpoint(runs[1]), "model")
    assert all(torch.equal(a[k], b[k]) for k in a if "running" not in k and "num_batches" not in k)
    assert load_config(ClfConfig, runs[1] / "config.yaml").model.init_from == str(runs[0])
    assert run_chain(chain) == runs  # finished stages are reused


def test_transfer_keeps_the_head_only_for_the_same_classes(data, tmp_path):
    """FER2013 -> CK+: both have 7 classes but not the same ones, so the head is not carried over."""
    from fape.classifiers.io import load_best_weights

    real, _ = data
    run = clf_train.train(cfg_for(real), tmp_path / "a", progress=False)
    names = ck.load_state(ck.latest_checkpoint(run / "best"))["label_names"]
    src = ck.load_module_state(ck.latest_checkpoint(run / "best"), "model")
    for labels, head_kept in ((names, True), (names[::-1], False), (None, True)):
        model = clf_train.build_model(cfg_for(real), names)
        rep = load_best_weights(model, run, labels)
        sd = model.state_dict()
        assert torch.equal(sd["head.weight"], src["head.weight"]) == head_kept
        assert ("head.weight" in rep["skipped"]) != head_kept
        assert all(torch.equal(sd[k], src[k]) for k in src if not k.startswith("head."))


def test_cli_train_eval_compare(data, tmp_path, capsys):
    from fape.cli import main

    real, _ = data
    base = ["clf", "train", "-c", str(REPO / "configs/clf/fanet_f2ed.yaml"), "--data", str(real), *TINY,
            "--train.epochs=1", f"--runs_dir={tmp_path}"]
    for seed in (0, 1):
        assert main(base + [f"--train.seed={seed}"]) == 0
    runs = sorted(tmp_path.iterdir())
    for r in runs:
        assert main(["clf", "eval", "--run", str(r)]) == 0
    capsys.readouterr()
    assert main(["clf", "compare", f"a={runs[0]}", f"b={runs[1]}", "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "| a | 1 |" in out and "a - b" in out
    assert main(["clf", "eval", "--run", str(tmp_path / "nope")]) == 2


def test_channels_last_trains_to_the_same_weights(data, tmp_path):
    real, _ = data
    a = clf_train.train(cfg_for(real, "--train.epochs=1", "--data.augment=none"), tmp_path / "a", progress=False)
    b = clf_train.train(cfg_for(real, "--train.epochs=1", "--data.augment=none", "--train.channels_last=true"),
                        tmp_path / "b", progress=False)
    wa = ck.load_module_state(ck.latest_checkpoint(a), "model")
    wb = ck.load_module_state(ck.latest_checkpoint(b), "model")
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-4) for k in wa)


def test_kfold_trains_every_fold_once_and_pools(data, tmp_path, capsys):
    """jaffe-loso on 4 subjects: 4 folds, every image tested exactly once, pooled accuracy is the
    image-weighted mean of the folds; a second call reuses the finished folds."""
    from fape.classifiers.kfold import run_kfold

    real, _ = data
    cfg = cfg_for(real, "--data.split=jaffe-loso", "--train.epochs=1")
    s = run_kfold(cfg, tmp_path / "kf")
    n = len(pd.read_csv(real / "manifest.csv"))
    assert s["folds"] == 4 and s["images"] == n
    sizes = [len(pd.read_csv(tmp_path / "kf" / f"fold{k}" / "eval/test/predictions.csv")) for k in range(4)]
    assert s["pooled_accuracy"] == pytest.approx(np.dot(sizes, s["fold_accuracies"]) / n, abs=1e-3)
    assert "pooled accuracy" in (tmp_path / "kf" / "summary.md").read_text()
    before = (tmp_path / "kf" / "fold0" / "done.json").stat().st_mtime_ns
    assert run_kfold(cfg, tmp_path / "kf")["pooled_accuracy"] == s["pooled_accuracy"]
    assert (tmp_path / "kf" / "fold0" / "done.json").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="not a k-fold split"):
        run_kfold(cfg_for(real), tmp_path / "nf")
