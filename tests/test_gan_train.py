import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from _fixtures import REPO, make_multipose
from fape.config import load_config
from fape.errors import ConfigError
from fape.gan import train as gan_train
from fape.gan.config import GANConfig
from fape.gan.io import load_generator
from fape.utils import checkpoint as ck
from fape.utils.runs import read_jsonl

TINY = ["--generator.width=8", "--generator.dropout=0.5", "--discriminator.width=8", "--discriminator.layers=2",
        "--data.image_size=32", "--data.heldout_subjects=0.34", "--train.batch_size=4", "--train.log_every=1",
        "--train.sample_every=3", "--train.ckpt_every=3", "--train.ema_decay=0.9", "--train.epochs=2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_multipose(tmp_path_factory.mktemp("gan") / "d", subjects=3, expressions=2, frames=1)


def cfg_for(data, *extra):
    return load_config(GANConfig, REPO / "configs/gan/quick.yaml", [f"--data.root={data}", *TINY, *extra])


def weights(run):
    return {k: v.clone() for k, v in ck.load_module_state(ck.latest_checkpoint(run), "G").items()}


def test_run_directory_contents(data, tmp_path):
    run = gan_train.train(cfg_for(data, "--train.max_steps=5"), tmp_path / "run", progress=False)
    assert (run / "config.yaml").is_file() and load_config(GANConfig, run / "config.yaml").data.root == str(data)
    last = ck.latest_checkpoint(run)
    assert last.name == "step_00000005"
    for f in ("G.safetensors", "D.safetensors", "G_ema.safetensors", "G.optim.safetensors", "D.optim.safetensors",
              "rng.safetensors", "state.json"):
        assert (last / f).is_file(), f
    state = json.loads((last / "state.json").read_text())
    assert state["step"] == 5 and state["config"]["train"]["batch_size"] == 4
    log = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in log if "g_l1" in r] == [1, 2, 3, 4, 5]
    assert all(torch.isfinite(torch.tensor(r["d_total"])) for r in log if "d_total" in r)
    assert any("eval/l1" in r and "eval/l1_copy_source" in r and "eval/face_l1" in r and "eval/face_l1_copy_source" in r
               and "eval/face_ssim" in r for r in log)
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step_00000003.png", "step_00000005.png"]
    g = load_generator(run)
    assert g.weights.name == "G_ema.safetensors" and len(g.sha256) == 64
    out = g.G(torch.zeros(2, 3, 32, 32), torch.zeros(2, 1, 32, 32))  # unet: no landmarks needed
    assert out.shape == (2, 3, 32, 32)


def test_kill_and_resume_equals_uninterrupted(data, tmp_path, monkeypatch):
    full = gan_train.train(cfg_for(data, "--train.max_steps=7"), tmp_path / "full", progress=False)
    real_step = gan_train.gan_step
    calls = {"n": 0}

    def dying_step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # dies in step 5; the last checkpoint is step 3
            raise KeyboardInterrupt
        return real_step(*a, **k)

    monkeypatch.setattr(gan_train, "gan_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        gan_train.train(cfg_for(data, "--train.max_steps=7"), tmp_path / "cut", progress=False)
    assert ck.latest_checkpoint(tmp_path / "cut").name == "step_00000003"
    monkeypatch.setattr(gan_train, "gan_step", real_step)
    gan_train.train(load_config(GANConfig, tmp_path / "cut" / "config.yaml"), tmp_path / "cut", resume=True,
                    progress=False)
    a, b = weights(full), weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ema_a = ck.load_module_state(ck.latest_checkpoint(full), "G_ema")
    ema_b = ck.load_module_state(ck.latest_checkpoint(tmp_path / "cut"), "G_ema")
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    steps = [r["step"] for r in read_jsonl(tmp_path / "cut" / "metrics.jsonl") if "g_l1" in r]
    assert steps == list(range(1, 8))  # the resumed log has no duplicated steps


def test_kill_during_save_keeps_previous_checkpoint(data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    gan_train.train(cfg_for(data, "--train.max_steps=3"), run, progress=False)
    before = weights(run)

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", broken)
    with pytest.raises(OSError):
        gan_train.train(cfg_for(data, "--train.max_steps=6"), run, resume=True, progress=False)
    assert ck.latest_checkpoint(run).name == "step_00000003"
    assert not list((run / "checkpoints").glob(".step_*"))  # no partial folder left behind
    after = weights(run)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_cli_numbered_run_dirs_and_resume(data, tmp_path, capsys):
    from fape.cli import main

    args = ["gan", "train", "-c", str(REPO / "configs/gan/quick.yaml"), f"--runs_dir={tmp_path}",
            f"--data.root={data}", *TINY, "--train.max_steps=2"]
    assert main(args) == 0 and main(args) == 0
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert runs == ["00000-quick", "00001-quick"]
    assert main(["gan", "train", "--resume", str(tmp_path / "00000-quick"), "--train.max_steps=3"]) == 0
    assert ck.latest_checkpoint(tmp_path / "00000-quick").name == "step_00000003"
    assert main(["gan", "train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "config.yaml" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_cpu_run_has_identical_weights(data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # torchrun underneath; without a GPU the processes are CPU ranks talking over gloo
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "fape", "gan", "train", "-c", str(REPO / "configs/gan/quick.yaml"),
           f"--run-dir={tmp_path / 'ddp'}", f"--data.root={data}", *TINY, "--train.max_steps=3",
           "--train.batch_size=2"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    done = json.loads((tmp_path / "ddp" / "done.json").read_text())
    assert done["world_size"] == 2 and done["step"] == 3
    assert len(set(done["G_params_sha256_per_rank"])) == 1


def test_distributed_worker_exit_flushes_output_and_keeps_exit_code(data, tmp_path):
    # a torchrun worker leaves through os._exit (fape.cli.exit_now): its piped, block-buffered
    # output must still arrive, and the exit code must be the command's
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    ok = subprocess.run([sys.executable, "-m", "fape", "data", "info", str(data)], capture_output=True, text=True,
                        env=env, timeout=120)
    assert ok.returncode == 0 and json.loads(ok.stdout)["images"] == 18  # 3 subjects x 2 expressions x 3 poses
    bad = subprocess.run([sys.executable, "-m", "fape", "data", "info", str(tmp_path / "absent")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "absent" in bad.stderr


def test_grad_accumulation_matches_full_batch_without_batchnorm(data, tmp_path):
    # with instance norm and no dropout, 2 micro-batches of 2 = one batch of 4 for D and G updates
    # up to float rounding (D sees freshly drawn fakes in the accumulated path: same G, same input)
    common = ["--train.max_steps=2", "--generator.norm=instance", "--discriminator.norm=instance",
              "--generator.dropout=0", "--train.ema_decay=0"]
    a = gan_train.train(cfg_for(data, *common), tmp_path / "a", progress=False)
    b = gan_train.train(cfg_for(data, *common, "--train.grad_accum=2"), tmp_path / "b", progress=False)
    wa, wb = weights(a), weights(b)
    diff = torch.cat([(wa[k] - wb[k]).abs().flatten() for k in wa])
    # conv biases in front of an instance norm get a zero gradient, which Adam turns into
    # rounding-noise-sized steps of lr: those few elements may differ; everything else agrees
    assert (diff > 1e-5).float().mean() < 0.01
    # and no weight moved by more than a twentieth of one Adam step (lr 2e-4): a mis-scaled or
    # dropped micro-batch moves most weights by about a step; rounding leaves ~1e-6 on a few
    assert all((wa[k] - wb[k]).abs().max() < 1e-5 for k in wa if k.endswith("weight"))


def test_classifier_terms_need_a_classifier_run(data, tmp_path):
    with pytest.raises(ValueError, match="classifier_run"):
        gan_train.train(cfg_for(data, "--loss.identity_weight=1"), tmp_path / "x", progress=False)


def test_trackers_tensorboard_and_offline_wandb(data, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login: must fall back to offline
    run = gan_train.train(cfg_for(data, "--train.max_steps=2", "--train.trackers=[jsonl,tensorboard,wandb]"),
                          tmp_path / "run", progress=False)
    assert list(run.rglob("events.out.tfevents.*"))
    assert list((run / "wandb").glob("offline-run-*"))
    assert (run / "metrics.jsonl").stat().st_size > 0


def test_identity_and_expression_terms_through_a_frozen_classifier(data, tmp_path):
    from fape.classifiers import train as clf_train
    from fape.classifiers.config import ClfConfig

    clf_cfg = load_config(ClfConfig, REPO / "configs/clf/fanet_f2ed.yaml",
                          [f"--data.root={data}", "--model.name=cnn3", "--data.split=random", "--data.image_size=32",
                           "--train.batch_size=4", "--train.epochs=1"])
    clf_run = clf_train.train(clf_cfg, tmp_path / "clf", progress=False)
    terms = ["--train.max_steps=2", f"--loss.classifier_run={clf_run}", "--loss.identity_weight=1",
             "--loss.expression_weight=0.5"]
    # the classifier's random split trained on every subject, the GAN's held-out ones too: refused
    with pytest.raises(ConfigError, match="rows the GAN may not train on"):
        gan_train.train(cfg_for(data, *terms), tmp_path / "leak", progress=False)
    # the gan-rows split trains and selects on the GAN's training rows only, and tests on the rows
    # the GAN holds out: accepted with held-out subjects on
    gan_cfg = cfg_for(data, *terms)
    rows_cfg = load_config(ClfConfig, REPO / "configs/clf/fanet_f2ed.yaml",
                           [f"--data.root={data}", "--model.name=cnn3", "--data.split=gan-rows", "--data.image_size=32",
                            "--train.batch_size=4", "--train.epochs=1",
                            f"--data.split_options={{heldout_subjects: {gan_cfg.data.heldout_subjects}, "
                            f"holdout_seed: {gan_cfg.data.split_seed}}}"])
    rows_run = clf_train.train(rows_cfg, tmp_path / "clf_rows", progress=False)
    run = gan_train.train(cfg_for(data, *terms[:1], f"--loss.classifier_run={rows_run}", *terms[2:]),
                          tmp_path / "gan", progress=False)
    rec = [r for r in read_jsonl(run / "metrics.jsonl") if "g_identity" in r]
    assert rec and 0 <= rec[-1]["g_identity"] <= 2 and rec[-1]["g_expression"] > 0
    # the total includes the weighted terms
    r = rec[-1]
    assert r["g_total"] == pytest.approx(r["g_adv"] + 10 * r["g_l1"] + r["g_identity"] + 0.5 * r["g_expression"],
                                         rel=1e-4)
    # with identity_weight 0 the identity term (a second classifier pass, on the source) is not computed
    run = gan_train.train(cfg_for(data, *terms[:1], f"--loss.classifier_run={rows_run}", "--loss.identity_weight=0",
                                  "--loss.expression_weight=0.5"), tmp_path / "gan_expr", progress=False)
    r = [r for r in read_jsonl(run / "metrics.jsonl") if "g_expression" in r][-1]
    assert "g_identity" not in r
    assert r["g_total"] == pytest.approx(r["g_adv"] + 10 * r["g_l1"] + 0.5 * r["g_expression"], rel=1e-4)


def test_warp_unet_trains_on_batches_that_carry_both_landmark_sets(data, tmp_path):
    from fape.gan.data import build_data, generate, prepare_batch
    from fape.gan.warp import warp_to_landmarks
    from fape.utils.loop import collate

    cfg = cfg_for(data, "--train.max_steps=3", "--generator.name=warp_unet", "--generator.upsample=resize")
    _, pairs, _ = build_data(cfg)
    b = prepare_batch(cfg, collate(pairs, [0, 1], "cpu"))
    assert b["source_landmarks"].dtype == b["target_landmarks"].dtype == torch.float32
    assert b["source_landmarks"].shape == (2, 68, 2)
    run = gan_train.train(cfg, tmp_path / "run", progress=False)
    log = read_jsonl(run / "metrics.jsonl")
    assert any("eval/l1" in r for r in log)
    G = load_generator(run).G
    with torch.no_grad():
        G.blend_bias.fill_(60.0)  # alpha = 1: G returns its warp of the batch's source onto the target landmarks
        want = warp_to_landmarks(b["source_f"], b["source_landmarks"], b["target_landmarks"])
        assert torch.allclose(generate(G, b), want, atol=1e-5)


def test_feature_matching_term_reaches_the_total(data, tmp_path):
    run = gan_train.train(cfg_for(data, "--train.max_steps=2", "--loss.feature_matching_weight=2",
                                  "--discriminator.spectral_norm=true"), tmp_path / "fm", progress=False)
    r = [r for r in read_jsonl(run / "metrics.jsonl") if "g_feature_matching" in r][-1]
    assert r["g_feature_matching"] > 0
    assert r["g_total"] == pytest.approx(r["g_adv"] + 10 * r["g_l1"] + 2 * r["g_feature_matching"], rel=1e-4)
    assert not any("g_feature_matching" in r for r in read_jsonl(
        gan_train.train(cfg_for(data, "--train.max_steps=1"), tmp_path / "off", progress=False) / "metrics.jsonl"))


def test_expression_term_reads_the_target_expression_of_an_expression_pair(tmp_path):
    """In an expression pair (s, a) -> (s, b) G is asked to draw b: the pair carries both labels,
    and the expression term is the frozen classifier's cross-entropy against b, not a."""
    import torch.nn.functional as F

    from _fixtures import tiny_clf_run
    from fape.data.preprocess import to_model_input
    from fape.gan.data import build_data, prepare_batch
    from fape.gan.preserve import make_preservation
    from fape.classifiers.io import load_run
    from fape.utils.loop import collate

    clf_run, data = tiny_clf_run(tmp_path, epochs=1)
    cfg = load_config(GANConfig, REPO / "configs/gan/real_expression.yaml",
                      [f"--data.root={data}", "--data.image_size=32", "--data.heldout_subjects=0",
                       "--data.pairs={pose: 0.0, expression: 1.0, mirror: 0.0, identity: 0.0}"])
    faces, pairs, _ = build_data(cfg)
    idx = np.arange(min(8, len(pairs)))
    batch = prepare_batch(cfg, collate(pairs, idx, "cpu"))
    labels = torch.as_tensor(np.array(faces.labels))
    assert torch.equal(batch["label"], labels[batch["src"]]) and torch.equal(batch["target_label"], labels[batch["tgt"]])
    assert (batch["label"] != batch["target_label"]).all()  # expression pairs change the expression
    terms = make_preservation(str(clf_run), faces.info.label_names, "cpu")
    fake = batch["target_f"]
    clf = load_run(clf_run)  # the classifier's labels are the dataset's, in the same order
    logits = clf.model.eval()(to_model_input(fake, clf.cfg.data.image_size, clf.cfg.data.channels))
    got = terms(batch, fake)["expression"]
    assert got == pytest.approx(F.cross_entropy(logits, batch["target_label"]).item(), rel=1e-5)
    assert got != pytest.approx(F.cross_entropy(logits, batch["label"]).item(), rel=1e-3)
