"""Knowledge distillation in `fape clf train` (issue 17): the KD loss on analytic cases, and a
student that learns a trained teacher's answers from soft targets alone (its own labels are wrong)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from _fixtures import killed_and_resumed, make_multipose, same_last_weights, stripes
from fape.classifiers import train as clf_train
from fape.classifiers.config import ClfConfig
from fape.classifiers.io import load_run
from fape.classifiers.losses import distillation_loss
from fape.config import load_config
from fape.data.dataset import convert_channels, resize_image, to_float
from fape.errors import ConfigError
from fape.utils import checkpoint as ck
from fape.utils.io import sha256_file
from fape.utils.runs import read_jsonl


# ---------------------------------------------------------------- the loss
def test_kd_of_identical_logits_is_zero():
    s = torch.randn(5, 7)
    for T in (1.0, 4.0):
        assert float(distillation_loss(s, s.clone(), T)) == pytest.approx(0.0, abs=1e-6)
        assert float(distillation_loss(s, s + 3.0, T)) == pytest.approx(0.0, abs=1e-5)  # softmax ignores a shift


def test_kd_two_classes_by_hand():
    # teacher logits (2 ln 3, 0) at T = 2 -> p = (3/4, 1/4); student (0, 0) -> q = (1/2, 1/2)
    # KL(p || q) = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812...; times T^2 = 4
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    t = torch.tensor([[2 * math.log(3.0), 0.0]])
    s = torch.zeros(1, 2)
    assert float(distillation_loss(s, t, 2.0)) == pytest.approx(4 * kl, rel=1e-6)
    assert float(distillation_loss(s, t / 2, 1.0)) == pytest.approx(kl, rel=1e-6)
    # the batch mean: a second, identical row leaves it unchanged; a zero-loss row halves it
    assert float(distillation_loss(s.repeat(2, 1), t.repeat(2, 1), 2.0)) == pytest.approx(4 * kl, rel=1e-6)
    assert float(distillation_loss(torch.cat([s, t]), torch.cat([t, t]), 2.0)) == pytest.approx(2 * kl, rel=1e-6)


def test_kd_gradient_is_t_times_q_minus_p_and_keeps_its_scale_across_t():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(8, 7, generator=g)
    s0 = t + 0.5 * torch.randn(8, 7, generator=g)
    norms = {}
    for T in (4.0, 8.0, 16.0):
        s = s0.clone().requires_grad_(True)
        distillation_loss(s, t, T).backward()
        q, p = torch.softmax(s0 / T, 1), torch.softmax(t / T, 1)
        assert torch.allclose(s.grad, T * (q - p) / 8, atol=1e-6)  # dL/ds = T (q - p) / B
        norms[T] = float(s.grad.norm())
    # with T^2 the gradient tends to (s - t) / (K B), the same at every T (without it: 1/4 per doubling)
    assert norms[8.0] / norms[4.0] == pytest.approx(1.0, abs=0.05)
    assert norms[16.0] / norms[4.0] == pytest.approx(1.0, abs=0.05)
    centred = (s0 - t) - (s0 - t).mean(1, keepdim=True)
    assert norms[16.0] == pytest.approx(float(centred.norm()) / (7 * 8), rel=0.05)


def test_kd_sends_no_gradient_to_the_teacher():
    t = torch.randn(3, 4, requires_grad=True)
    distillation_loss(torch.randn(3, 4, requires_grad=True), t, 4.0).backward()
    assert t.grad is None


def test_distill_config_dotted_overrides_and_bounds():
    cfg = load_config(ClfConfig, None, ["--distill.teacher=runs/x", "--distill.weight=0.7",
                                        "--distill.temperature=2"])
    assert (cfg.distill.teacher, cfg.distill.weight, cfg.distill.temperature) == ("runs/x", 0.7, 2.0)
    assert load_config(ClfConfig).distill.teacher == ""  # off by default
    for bad in ("--distill.weight=1.5", "--distill.temperature=0"):
        with pytest.raises(ConfigError, match="distill"):
            load_config(ClfConfig, None, [bad])


@pytest.mark.parametrize("preset,student", [("distill_fer2013_48", "cnn3"),
                                            ("distill_mini_xception_fer2013", "mini_xception")])
def test_the_preset_distils_the_shipped_model_from_any_folder(tmp_path, monkeypatch, preset, student):
    from fape.classifiers.distill import load_teacher

    monkeypatch.chdir(tmp_path)  # outside the checkout: checkpoints/NAME is the packaged model
    cfg = load_config(ClfConfig, f"configs/clf/{preset}.yaml")
    assert cfg.distill.teacher == "checkpoints/fanet_fer2013_48" and cfg.model.name == student
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    t = load_teacher(cfg.distill, names, tmp_path / "run", {"crop": "square"}, "cpu")
    assert (t.prep.image_size, t.prep.channels) == (48, 1) and len(t.sha256) == 64
    assert t.logits(torch.zeros(2, 1, 48, 48)).shape == (2, 7)
    # a student at 64 px RGB: its batch is converted to the teacher's 48 px gray
    assert t.logits(torch.zeros(2, 3, 64, 64)).shape == (2, 7)


# ---------------------------------------------------------------- training
ORIENTATIONS = 4
STUDENT = ["--model.name=cnn3", "--data.split=subject", "--data.image_size=24", "--data.channels=3",
           "--data.augment=none", "--optim.name=adam", "--optim.lr=0.003", "--optim.schedule=cosine",
           "--train.batch_size=16", "--train.log_every=2"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A cnn3 teacher (32 px gray) trained on stripe orientations, and a student set whose labels
    are all wrong: each image's label is its orientation + 1 (mod 4)."""
    root = tmp_path_factory.mktemp("distill")
    data = make_multipose(root / "stripes", subjects=16, expressions=ORIENTATIONS, frames=3, poses=("front",),
                          channels=1, draw=stripes)
    cfg = load_config(ClfConfig, None, [f"--data.root={data}", "--model.name=cnn3", "--data.split=subject",
                                        "--data.image_size=32", "--data.channels=1", "--data.augment=none",
                                        "--optim.name=adam", "--optim.lr=0.003", "--optim.schedule=cosine",
                                        "--train.batch_size=16", "--train.epochs=4"])
    torch.manual_seed(0)
    run = clf_train.train(cfg, root / "teacher", progress=False)
    shifted = make_multipose(root / "shifted", subjects=16, expressions=ORIENTATIONS, frames=3, poses=("front",),
                             channels=1, seed=1, draw=lambda rng, s, e, lm: stripes(rng, s, (e + 1) % ORIENTATIONS, lm))
    return run, shifted


def _fresh_stripes(size, channels, n=200, seed=7):
    """``n`` new stripe images drawn at 32 px, made ``[n, channels, size, size]`` in [-1, 1] as a
    dataset's cache makes them, and their orientations ``[n]``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, ORIENTATIONS, n)
    x = np.stack([convert_channels(resize_image(stripes(rng, 0, int(k), None), (size, size)), channels) for k in y])
    return to_float(torch.from_numpy(x.transpose(0, 3, 1, 2))), y


def _agreement(student: torch.nn.Module, teacher_run) -> tuple[float, float, int]:
    """The student's agreement with the teacher on fresh images (each model at its own input), and
    the teacher's accuracy there."""
    xt, y = _fresh_stripes(32, 1)
    xs, _ = _fresh_stripes(24, 3)
    with torch.no_grad():
        tp = load_run(teacher_run).model(xt).argmax(1).numpy()
        sp = student.eval()(xs).argmax(1).numpy()
    return float((sp == tp).mean()), float((tp == y).mean()), len(y)


def _well_above_chance(acc, n, chance=1 / ORIENTATIONS):
    k = round(acc * n)
    p = sum(math.comb(n, i) * chance ** i * (1 - chance) ** (n - i) for i in range(k, n + 1))
    return acc >= 0.8 and p < 1e-6


def test_student_learns_the_teacher_from_soft_targets_alone(teacher, tmp_path):
    t_run, shifted = teacher
    # T = 1: a confident teacher's soft targets are sharp, so 5 epochs suffice; at the default T = 4
    # the same student took 12 epochs to agree on 85% (its gradients are T^2-scaled, yet flatter targets)
    cfg = load_config(ClfConfig, None, [f"--data.root={shifted}", *STUDENT, "--train.epochs=5",
                                        f"--distill.teacher={t_run}", "--distill.weight=1.0",
                                        "--distill.temperature=1"])
    torch.manual_seed(0)
    untrained = clf_train.build_model(cfg, [f"expr{k}" for k in range(ORIENTATIONS)])
    before, _, _ = _agreement(untrained, t_run)
    run = clf_train.train(cfg, tmp_path / "student", progress=False)
    # the last weights: selection by validation accuracy against these (wrong) labels would pick the worst
    after, teacher_acc, n = _agreement(load_run(ck.latest_checkpoint(run)).model, t_run)
    print(f"teacher accuracy {teacher_acc:.3f}; student agreement {before:.3f} untrained -> {after:.3f} ({n} images)")
    assert teacher_acc >= 0.9  # the teacher learned its task (the test's premise)
    assert _well_above_chance(after, n) and not _well_above_chance(before, n), (before, after)
    # the student's own labels are all wrong: with weight 1 they are never used, so by the end it
    # disagrees with them (validation accuracy against them below chance) as the teacher does
    log = read_jsonl(run / "metrics.jsonl")
    kd = [r["kd"] for r in log if "kd" in r]
    assert len(kd) >= 3 and kd[-1] < kd[0] / 2
    assert [r["val/acc"] for r in log if "val/acc" in r][-1] < 1 / ORIENTATIONS
    state = ck.load_state(ck.latest_checkpoint(run))
    t_ckpt = ck.latest_checkpoint(t_run / "best")
    assert state["distill"]["sha256"] == sha256_file(t_ckpt / "model.safetensors")
    assert state["distill"]["teacher"] == str(t_run)
    assert ck.load_state(ck.latest_checkpoint(run / "best"))["distill"] == state["distill"]


def test_distilled_run_resumes_onto_the_same_weights(teacher, tmp_path, monkeypatch):
    t_run, shifted = teacher
    over = [f"--data.root={shifted}", *STUDENT, "--train.epochs=2", f"--distill.teacher={t_run}",
            "--distill.weight=0.5"]
    full = clf_train.train(load_config(ClfConfig, None, over), tmp_path / "full", progress=False)
    # dies inside epoch 2 (9 steps per epoch here)
    cut = killed_and_resumed(monkeypatch, clf_train, "distillation_loss", 9 + 4, load_config(ClfConfig, None, over),
                             tmp_path / "cut")
    assert same_last_weights(full, cut)
    # a resume onto other teacher weights is refused: the run would not be the one it started as
    with pytest.raises(ConfigError, match="sha256"):
        clf_train.train(load_config(ClfConfig, tmp_path / "cut" / "config.yaml", ["--distill.teacher="]),
                        tmp_path / "cut", resume=True, progress=False)


def test_teacher_with_other_label_names_is_refused(teacher, tmp_path):
    t_run, _ = teacher
    other = make_multipose(tmp_path / "other", subjects=4, expressions=ORIENTATIONS, frames=1, poses=("front",),
                           channels=1, label_names=["a", "b", "c", "d"])
    cfg = load_config(ClfConfig, None, [f"--data.root={other}", *STUDENT, "--data.split=random",
                                        f"--distill.teacher={t_run}"])
    with pytest.raises(ConfigError, match=str(t_run)) as e:
        clf_train.train(cfg, tmp_path / "student", progress=False)
    assert str(tmp_path / "student") in str(e.value)
    assert not (tmp_path / "student").exists()  # refused before the run folder is made
    with pytest.raises(ConfigError, match="distill.teacher"):
        clf_train.train(load_config(ClfConfig, None, [f"--data.root={other}", *STUDENT, "--data.split=random",
                                                      f"--distill.teacher={tmp_path / 'nope'}"]),
                        tmp_path / "s2", progress=False)


def test_the_teacher_stays_frozen(teacher, tmp_path):
    from fape.classifiers.data import build_data
    from fape.classifiers.distill import load_teacher
    from fape.utils.loop import collate, make_accelerator

    t_run, shifted = teacher
    cfg = load_config(ClfConfig, None, [f"--data.root={shifted}", *STUDENT, f"--distill.teacher={t_run}",
                                        "--distill.weight=0.5"])
    d = build_data(cfg)
    tch = load_teacher(cfg.distill, d.label_names, tmp_path, {"crop": "square"}, "cpu")
    before = {k: v.clone() for k, v in tch.model.state_dict().items()}
    model = clf_train.build_model(cfg, d.label_names)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    parts, _ = clf_train.clf_step(cfg, clf_train.WithFeatures(model), opt, make_accelerator(cfg.train, tmp_path, None),
                                  collate(d.items, np.arange(16), "cpu"), torch.zeros(4, model.num_features), None, tch)
    assert set(parts) == {"loss", "ce", "acc", "kd"} and float(parts["kd"]) > 0
    assert float(parts["loss"]) == pytest.approx(0.5 * float(parts["ce"]) + 0.5 * float(parts["kd"]), rel=1e-5)
    assert not tch.model.training and all(p.grad is None and not p.requires_grad for p in tch.model.parameters())
    assert all(torch.equal(before[k], v) for k, v in tch.model.state_dict().items())
