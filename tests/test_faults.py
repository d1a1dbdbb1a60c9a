"""Faults a run must survive or report plainly (issue 12, "nothing lost, nothing silent"): a diverging
loss, a damaged checkpoint, a crash between writing a checkpoint and the disk having it, strict JSON."""
import json
import math
import os

import numpy as np
import pytest
import torch

from _fixtures import REPO, make_multipose
from fape.classifiers import train as clf_train
from fape.classifiers.config import ClfConfig
from fape.cli import main
from fape.config import load_config
from fape.gan import train as gan_train
from fape.gan.config import GANConfig
from fape.utils import checkpoint as ck
from fape.errors import TrainingDiverged
from fape.utils.io import atomic_write_json
from fape.utils.runs import JsonlLog

CLF_CFG = str(REPO / "configs/clf/fanet_f2ed.yaml")
CLF_TINY = ["--model.name=cnn3", "--data.split=random", "--data.image_size=32", "--data.channels=3",
            "--train.batch_size=8", "--train.epochs=2", "--optim.lr=0.01"]  # 7 steps per epoch
GAN_TINY = ["--generator.width=8", "--discriminator.width=8", "--discriminator.layers=2", "--data.image_size=32",
            "--data.heldout_subjects=0.34", "--train.batch_size=4", "--train.log_every=1", "--train.sample_every=100",
            "--train.ckpt_every=3", "--train.ema_decay=0.9", "--train.max_steps=6"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_multipose(tmp_path_factory.mktemp("faults") / "d", subjects=4, expressions=3, frames=2)


def gan_cfg(data, *extra):
    return load_config(GANConfig, REPO / "configs/gan/quick.yaml", [f"--data.root={data}", *GAN_TINY, *extra])


def strict_json(text: str):
    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=reject)


def truncate(path, keep: float = 0.5) -> None:
    with open(path, "r+b") as f:
        f.truncate(int(os.path.getsize(path) * keep))


def steps(run) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("step_*"))


# ---------------------------------------------------------------- strict JSON
def test_json_writers_write_non_finite_as_null(tmp_path):
    rec = {"step": 3, "loss": float("nan"), "hi": float("inf"), "lo": -math.inf, "np32": np.float32("nan"),
           "arr": np.array([1.0, np.nan]), "nested": {"x": [float("nan"), 2.0]}}
    log = JsonlLog(tmp_path / "m.jsonl")
    log.write(rec)
    atomic_write_json(tmp_path / "s.json", rec)
    for text in ((tmp_path / "m.jsonl").read_text(), (tmp_path / "s.json").read_text()):
        got = strict_json(text)
        assert got == {"step": 3, "loss": None, "hi": None, "lo": None, "np32": None, "arr": [1.0, None],
                       "nested": {"x": [None, 2.0]}}


# ---------------------------------------------------------------- a diverging run stops, loudly
def test_clf_nan_loss_stops_the_run_with_exit_2(data, tmp_path, monkeypatch, capsys):
    real_augment, calls = clf_train.augment, {"n": 0}

    def poisoned(x, *a, **k):  # the images of step 10 (epoch 1) are NaN, so its loss is
        calls["n"] += 1
        x = real_augment(x, *a, **k)
        return x * float("nan") if calls["n"] == 10 else x

    monkeypatch.setattr(clf_train, "augment", poisoned)
    run = tmp_path / "run"
    # log_every=50: no log step before the end of epoch 1, so the check there finds step 10
    code = main(["clf", "train", "-c", CLF_CFG, "--data", str(data), "--run-dir", str(run), *CLF_TINY,
                 "--train.log_every=50"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("fape:")]
    assert code == 2 and len(err) == 1
    assert "step 10 " in err[0] and str(run) in err[0] and "step_00000007" in err[0], err
    assert steps(run) == ["step_00000007"]  # the non-finite weights of step 14 were not saved
    assert ck.load_state(ck.latest_checkpoint(run / "best"))["step"] == 7
    assert not (run / "done.json").exists()
    for line in (run / "metrics.jsonl").read_text().splitlines():
        strict_json(line)


def test_gan_nan_loss_stops_the_run(data, tmp_path, monkeypatch):
    real_step, calls = gan_train.gan_step, {"n": 0}

    def poisoned(cfg, G, D, opt_g, opt_d, micro, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            for b in micro:
                b["source_f"] = b["source_f"] * float("nan")
        return real_step(cfg, G, D, opt_g, opt_d, micro, *a, **k)

    monkeypatch.setattr(gan_train, "gan_step", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"loss is NaN or infinite at step 5 .*step_00000003"):
        gan_train.train(gan_cfg(data), run, progress=False)
    assert steps(run) == ["step_00000003"]
    log = [strict_json(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["g_total"] for r in log if r["step"] == 5 and "g_total" in r] == [None]


def test_gan_non_finite_weights_are_never_checkpointed(data, tmp_path, monkeypatch):
    real_ema, calls = gan_train.ema_update, {"n": 0}

    def poisoned(ema, model, decay):  # G_ema is outside every loss: only the weight check sees it
        real_ema(ema, model, decay)
        calls["n"] += 1
        if calls["n"] == 2:
            next(ema.parameters()).data.fill_(float("inf"))

    monkeypatch.setattr(gan_train, "ema_update", poisoned)
    with pytest.raises(TrainingDiverged, match="weights are NaN or infinite after step 3 .*no checkpoint"):
        gan_train.train(gan_cfg(data), tmp_path / "run", progress=False)
    assert steps(tmp_path / "run") == []


# ---------------------------------------------------------------- a damaged checkpoint
def test_gan_resume_falls_back_past_a_truncated_checkpoint(data, tmp_path, capsys):
    run = gan_train.train(gan_cfg(data), tmp_path / "run", progress=False)
    assert steps(run) == ["step_00000003", "step_00000006"]
    bad = run / "checkpoints" / "step_00000006" / "G.safetensors"
    want = {k: v.clone() for k, v in ck.load_module_state(bad.parent, "G").items()}  # not a view of the file
    truncate(bad)
    capsys.readouterr()
    assert main(["gan", "train", "--resume", str(run)]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and str(bad) in err and "resuming from " + str(run / "checkpoints" / "step_00000003") in err
    got = ck.load_module_state(bad.parent, "G")  # retrained from step 3: the same weights again
    assert all(torch.equal(want[k], got[k]) for k in want)

    truncate(run / "checkpoints" / "step_00000003" / "D.optim.safetensors")
    truncate(run / "checkpoints" / "step_00000006" / "G_ema.safetensors", keep=0.0)
    assert main(["gan", "train", "--resume", str(run)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("fape:")]
    assert len(err) == 1 and "no checkpoint" in err[0]
    assert "step_00000003/D.optim.safetensors" in err[0] and "step_00000006/G_ema.safetensors" in err[0]


def test_clf_resume_falls_back_past_a_truncated_checkpoint(data, tmp_path, capsys):
    cfg = load_config(ClfConfig, CLF_CFG, [f"--data.root={data}", *CLF_TINY])
    run = clf_train.train(cfg, tmp_path / "run", progress=False)
    assert steps(run) == ["step_00000007", "step_00000014"]  # default keep: something to fall back to
    bad = run / "checkpoints" / "step_00000014" / "model.safetensors"
    want = {k: v.clone() for k, v in ck.load_module_state(bad.parent, "model").items()}
    truncate(bad)
    capsys.readouterr()
    clf_train.train(load_config(ClfConfig, run / "config.yaml"), run, resume=True, progress=False)
    err = capsys.readouterr().err
    assert str(bad) in err and "resuming from " + str(run / "checkpoints" / "step_00000007") in err
    got = ck.load_module_state(bad.parent, "model")
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_every_checkpoint_file_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to name fsynced files")
    synced, real_fsync = [], os.fsync
    final = tmp_path / "checkpoints" / "step_00000001"

    def recording(fd):
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), final.exists()))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    ck.save_checkpoint(tmp_path, 1, {"G": {"w": torch.ones(3)}}, {"G": torch.optim.SGD([torch.zeros(1)]).state_dict()},
                       {"epoch": 0})
    before = {os.path.basename(p) for p, published in synced
              if not published and os.path.basename(os.path.dirname(p)).startswith(".step_00000001.partial-")}
    assert {p.name for p in final.iterdir()} <= before
    assert (str(tmp_path / "checkpoints"), True) in synced  # the rename itself is on disk
