"""Paired metrics, LPIPS loading rules, pose NME, identity helpers, expression agreement, CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fape.metrics.paired import face_region_metrics, paired_metrics, summarize


def test_paired_identical_and_known_error():
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    r = paired_metrics(x, x)
    assert np.allclose(r["l1"], 0) and np.isinf(r["psnr"]).all() and np.allclose(r["ssim"], 1, atol=1e-5)
    a = torch.zeros(2, 1, 16, 16)  # float in [-1, 1]: 0 -> 0.5
    b = torch.full((2, 1, 16, 16), 0.2)  # -> 0.6: |diff| 0.1, MSE 0.01, PSNR 20 dB
    r = paired_metrics(a, b)
    np.testing.assert_allclose(r["l1"], 0.1, rtol=1e-5)
    np.testing.assert_allclose(r["psnr"], 20.0, rtol=1e-5)
    s = summarize(r)
    assert s["n"] == 2 and s["psnr"] == pytest.approx(20.0, rel=1e-5)


def test_face_region_metrics_ignore_the_background():
    from fape.data.audit import face_masks
    from fape.data.landmarks68 import template_face

    lm = np.stack([template_face(32)] * 2).astype(np.float32)  # [2, 68, 2] pixels
    tgt = torch.zeros(2, 3, 32, 32)
    out = tgt.clone()
    inside = torch.from_numpy(face_masks(lm, 32, 0))[:, None]  # [2, 1, 32, 32] the hull
    out[~inside.expand_as(out)] = 1.0  # a wrong background (0.5 in [0, 1] units), a perfect face
    r = face_region_metrics(out, tgt, lm)
    np.testing.assert_allclose(r["face_l1"], 0, atol=1e-7)
    assert paired_metrics(out, tgt)["l1"].min() > 0.1  # the full-image figure sees the background
    out[inside.expand_as(out)] = 0.2  # and now a face off by 0.1 in [0, 1] units
    np.testing.assert_allclose(face_region_metrics(out, tgt, lm)["face_l1"], 0.1, rtol=1e-5)
    assert (face_region_metrics(tgt, tgt, lm)["face_ssim"] > 0.999).all()


def test_lpips_missing_backbone_and_random_backbone(monkeypatch, tmp_path):
    pytest.importorskip("lpips")
    from fape.metrics import lpips_metric as L

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="alexnet-owt"):
        L.load_lpips("alex")
    m = L.load_lpips("alex", allow_random_backbone=True)
    assert m.calibrated is False and "NOT calibrated" in m.description
    x = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    d = L.lpips_distances(m, x, x)
    assert d.shape == (2,) and np.allclose(d, 0, atol=1e-6)


def test_nme_analytic():
    from fape.data.landmarks68 import template_face
    from fape.data.landmarks68 import nme

    t = template_face(64)[None].astype(np.float64)
    io = np.linalg.norm(t[0, 36] - t[0, 45])
    p = t + np.array([3.0, 4.0])  # every point off by 5 px
    np.testing.assert_allclose(nme(p, t), 5.0 / io)
    p[0, 0] = np.nan
    assert np.isnan(nme(p, t)[0])


def test_pose_accuracy_blank_image_is_a_failure():
    from fape.data.landmarks68 import template_face
    from fape.metrics.pose import pose_accuracy

    imgs = np.full((2, 64, 64, 3), 128, np.uint8)
    r = pose_accuracy(imgs, np.stack([template_face(64)] * 2), mode="cropped")
    assert r["failure_rate"] == 1.0 and r["detected"] == 0


def test_identity_helpers():
    from fape.metrics.identity import cosine, distribution, reference_similarities

    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(cosine(a, a), 1.0)
    np.testing.assert_allclose(cosine(a, a[::-1]), 0.0)
    d = distribution(np.array([0.1, 0.2, np.nan, 0.3]))
    assert d["n"] == 3 and d["mean"] == pytest.approx(0.2)
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], float)
    ref = reference_similarities(emb, ["a", "a", "b", "b"], max_pairs=50)
    assert ref["same_subject"]["mean"] > ref["different_subject"]["mean"]


def test_identity_embedding_runs_on_small_image():
    pytest.importorskip("dlib")
    from fape.metrics.identity import embed

    rng = np.random.default_rng(0)
    e = embed(rng.integers(0, 256, (1, 48, 48, 3), dtype=np.uint8), mode="cropped")
    assert e.shape == (1, 128) and np.isfinite(e).all()


class _Clf(torch.nn.Module):
    default_cfg = {"image_size": 8, "in_chans": 1}

    def forward(self, x):
        return torch.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], 1)  # bright -> class 0


def test_expression_agreement():
    from fape.metrics.gan_report import expression_agreement

    imgs = torch.cat([torch.full((3, 3, 16, 16), 250, dtype=torch.uint8), torch.zeros(2, 3, 16, 16, dtype=torch.uint8)])
    r = expression_agreement(_Clf(), imgs, [0, 0, 0, 1, 0])
    assert r["agreement"] == pytest.approx(0.8)


def test_classifier_pass_gives_the_features_and_predictions_of_separate_passes():
    """One pass serves the domain FID and the agreement: its features must be what
    ``features_from`` computes, and its predictions what ``model(x)`` predicts."""
    from fape.classifiers.models import create_classifier
    from fape.data.preprocess import to_model_input
    from fape.metrics.fid import features_from
    from fape.metrics.gan_report import classifier_pass

    torch.manual_seed(0)
    model = create_classifier("cnn3", num_classes=3, in_chans=1, image_size=32).eval()
    # RGB, 40 px (converted and resized); brightness and contrast differ per image, so features do
    level = torch.linspace(0, 1, 10).view(10, 1, 1, 1)
    noise = torch.rand(10, 3, 40, 40)
    imgs = (255 * (level * noise + (1 - level) * (1 - level) * noise.mean())).round().to(torch.uint8)
    # an untrained net's features barely vary (std ~0.006) around a shared mean, so its head answers
    # one class to everything: centre the head on these images' features, scaled to their spread
    with torch.no_grad():
        f = model.forward_features(to_model_input(imgs, 32, 1))
        w = torch.randn(3, f.shape[1]) / f.std(0).clamp_min(1e-8)
        model.head.weight.copy_(w)
        model.head.bias.copy_(-(w @ f.mean(0)))
    feats, preds = classifier_pass(model, imgs.numpy(), batch_size=4)
    assert feats.shape == (10, model.num_features)
    np.testing.assert_allclose(feats, features_from(model, imgs, progress=False), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        logits = model(to_model_input(imgs, 32, 1))
    np.testing.assert_array_equal(preds, logits.argmax(1).numpy())
    assert len(set(preds.tolist())) > 1  # predictions that vary, so the comparison can fail


def test_load_classifier_names_the_missing_run(tmp_path):
    from fape.metrics.gan_report import load_classifier

    with pytest.raises(RuntimeError, match="nonexistent"):
        load_classifier(f"run:{tmp_path / 'nonexistent'}")


def test_cli_help_and_fid_from_npz(tmp_path, capsys):
    import argparse
    import json

    from fape.metrics import cli
    from fape.metrics.fid import save_stats

    parser = argparse.ArgumentParser(prog="fape")
    cli.register(parser.add_subparsers(dest="group"))
    for cmd in ("fid", "kid", "stats", "gan"):
        with pytest.raises(SystemExit):
            parser.parse_args(["metrics", cmd, "--help"])
    capsys.readouterr()
    rng = np.random.default_rng(0)
    save_stats(tmp_path / "a.npz", np.zeros(4), np.eye(4))
    save_stats(tmp_path / "b.npz", np.ones(4), np.eye(4))
    args = parser.parse_args(["metrics", "fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")])
    assert args.handler(args, []) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fid"] == pytest.approx(4.0) and "npz" in out["extractor"]
    _ = rng


def test_gan_report_shows_face_region_rows_beside_copy_and_warp():
    from fape.metrics.gan_report import to_markdown

    def block(v):
        return {"l1": v, "psnr": 20.0, "ssim": 0.5, "face_l1": v / 2, "face_ssim": 0.6, "n": 3}

    rep = {"run": "r", "generator": "g", "data": "d", "pairs": 3, "skipped": {},
           "metrics": {"paired": {"generated_vs_target": block(0.04), "copy_source_baseline": block(0.1),
                                  "landmark_warp_baseline": block(0.08)}}}
    md = to_markdown(rep)
    assert "| face-region L1 | 0.0200 | copy-source baseline 0.0500; landmark warp 0.0400; 0.40x copy |" in md
    assert "| face-region SSIM | 0.6000 |" in md


def test_heldout_pairs_from_given_rows_and_never_from_gan_training_rows(tmp_path):
    """``pair_rows``: the report's pairs come from those rows only (e.g. a classifier's validation
    part); a row the GAN trained on is refused, since its metrics would not be held out."""
    from _fixtures import make_multipose, tiny_generator_run

    from fape.data.format import read_index
    from fape.gan.data import gan_rows
    from fape.gan.io import load_generator
    from fape.metrics.gan_report import generate_heldout

    data = make_multipose(tmp_path / "d", subjects=5, frames=1)
    run = tiny_generator_run(tmp_path / "gan")
    m = read_index(data).manifest
    trained, held = gan_rows(load_generator(run).cfg, m)
    assert len(held) and len(trained)
    unseen = held[m["subject"].to_numpy()[held] == m["subject"].to_numpy()[held][0]]  # one held-out subject
    g = generate_heldout(run, data, progress=False, pair_rows=unseen)
    assert len(g["src"]) and set(g["src"]) | set(g["tgt"]) <= set(unseen.tolist())
    assert g["fake"].shape == g["target"].shape
    with pytest.raises(RuntimeError, match="GAN training rows"):
        generate_heldout(run, data, progress=False, pair_rows=np.concatenate([unseen, trained[:1]]))


def test_pair_intervals_on_analytic_cases():
    from fape.metrics.paired import mean_interval, pair_resamples, ratio_interval

    idx = pair_resamples(50, resamples=500, seed=1)
    assert idx.shape == (500, 50) and idx.min() >= 0 and idx.max() < 50
    x = np.arange(50, dtype=float)
    # a ratio of y = 2x to x is 2 in every resample; a constant has no spread
    assert ratio_interval(2 * x + 0.0, x, idx) == pytest.approx((2.0, 2.0, 2.0))
    assert mean_interval(np.full(50, 0.3), idx) == pytest.approx((0.3, 0.3, 0.3))
    # paired: a difference that is +1 on every pair is exactly +1 although each side spreads widely
    a = np.random.default_rng(0).normal(0, 10, 50)
    assert mean_interval((a + 1) - a, idx) == pytest.approx((1.0, 1.0, 1.0))
    # the 95% band of the mean of N(0, 1) pairs is about +-1.96 / sqrt(n) around the sample mean
    z = np.random.default_rng(2).normal(0, 1, 400)
    m, lo, hi = mean_interval(z, pair_resamples(400, 4000, 3))
    assert m == pytest.approx(z.mean()) and lo < m < hi
    assert (hi - lo) / 2 == pytest.approx(1.96 * z.std() / np.sqrt(400), rel=0.15)
    with pytest.raises(ValueError, match="no pairs"):
        pair_resamples(0)


def test_nuisance_floor_on_known_draws():
    """A target of grey 100 and three redraws of 90, 110, 130 (uint8) everywhere: the median guess
    110 is off by 10/255 inside the hull; the pair bound is |100 - 90| / 2 / 255."""
    from fape.data.landmarks68 import template_face
    from fape.metrics.paired import nuisance_floor

    lm = np.stack([template_face(32)] * 2).astype(np.float32)  # [2, 68, 2] pixels
    tgt = torch.full((2, 1, 32, 32), 100, dtype=torch.uint8)
    red = torch.stack([torch.full((2, 1, 32, 32), v, dtype=torch.uint8) for v in (90, 130, 110)], 1)  # [2, 3, 1, 32, 32]
    red[:, :, :, :2, :] = 255  # outside the hull: must not count
    f = nuisance_floor(tgt, red, lm)
    np.testing.assert_allclose(f["floor"], 10 / 255, rtol=1e-5)
    np.testing.assert_allclose(f["floor_bound"], 5 / 255, rtol=1e-5)
    with pytest.raises(ValueError, match="must be"):
        nuisance_floor(tgt, red[:, 0], lm)
