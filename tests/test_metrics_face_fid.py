"""FID / KID on dlib's 128-d face embedding: analytic cases, dropped no-face rows, CLI and report."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fape.metrics.face_fid import face_fid, finite_rows


def _emb(n: int, seed: int = 0) -> np.ndarray:
    """``[n, 128]`` embeddings with a non-trivial mean and covariance."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 128)) @ rng.standard_normal((128, 128)) * 0.05 + rng.standard_normal(128) * 0.1


# ---------------------------------------------------------------- analytic cases
def test_same_set_gives_zero():
    x = _emb(400)
    r = face_fid(x, x.copy(), kid_subsets=5)
    assert abs(r["fid"]) < 1e-9
    assert (r["n_real"], r["n_fake"], r["no_face_real"], r["no_face_fake"], r["note"]) == (400, 400, 0, 0, None)


@pytest.mark.parametrize("n", [400, 30])  # 30 < 128 dims: singular covariances, still exact
def test_mean_shift_gives_squared_norm(n):
    x = _emb(n)
    d = np.random.default_rng(1).standard_normal(128) * 0.2  # equal covariances, means d apart
    r = face_fid(x, x + d, kid_subsets=5)
    assert r["fid"] == pytest.approx(float(d @ d), rel=1e-6)
    assert (r["note"] is None) == (n > 128)


def test_scaled_set_closed_form():
    # y = c x: S_f = c^2 S_r, (S_r^1/2 S_f S_r^1/2)^1/2 = c S_r, so FID = (1-c)^2 (|mu|^2 + tr S_r)
    x, c = _emb(400), 2.0
    mu, tr = x.mean(0), np.trace(np.cov(x, rowvar=False))
    assert face_fid(x, c * x, kid_subsets=5)["fid"] == pytest.approx((1 - c) ** 2 * (mu @ mu + tr), rel=1e-6)


def test_no_face_rows_are_dropped_and_counted():
    x = _emb(300)
    d = np.full(128, 0.01)
    real = np.concatenate([x[:100], np.full((3, 128), np.nan), x[100:]])
    fake = np.concatenate([np.full((2, 128), np.nan), x + d])
    r = face_fid(real, fake, kid_subsets=5)
    assert r["fid"] == pytest.approx(float(d @ d), rel=1e-6)
    assert (r["n_real"], r["n_fake"], r["no_face_real"], r["no_face_fake"]) == (300, 300, 3, 2)
    kept, dropped = finite_rows(real)
    assert kept.shape == (300, 128) and dropped == 3


def test_fewer_than_two_faces_is_a_clear_error():
    x = _emb(10)
    one = np.concatenate([x[:1], np.full((4, 128), np.nan)])
    with pytest.raises(ValueError, match=r"at least 2 images with a face.*generated set \(4 of 5 without a face\)"):
        face_fid(x, one)


# ---------------------------------------------------------------- dlib on rendered faces
@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Rendered synthetic faces (64 px, frontal): ``{subject: [uint8 [64, 64, 3]]}``."""
    pytest.importorskip("dlib")
    from fape.data.format import load_image, read_index
    from fape.data.synth import SynthConfig, synthesize

    cfg = SynthConfig(identities=2, expressions=2, frames=2, poses=["front"], image_size=64, render_scale=2)
    root = synthesize(cfg, tmp_path_factory.mktemp("faces") / "synth", progress=False)
    idx = read_index(root)
    out: dict = {}
    for _, row in idx.manifest.iterrows():
        out.setdefault(row["subject"], []).append(load_image(root / row["path"]))
    return out


def _folder(path: Path, images) -> str:
    from PIL import Image

    path.mkdir(parents=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(path / f"{i:03d}.png")
    return str(path)


def _cli(argv):
    import argparse

    from fape.metrics import cli

    parser = argparse.ArgumentParser(prog="fape")
    cli.register(parser.add_subparsers(dest="group"))
    args = parser.parse_args(argv)
    return args.handler(args, [])


def test_cli_fid_face_drops_blank_images(faces, tmp_path, capsys):
    s0, s1 = sorted(faces)
    blank = np.full((64, 64, 3), 128, np.uint8)  # no face: "cropped" mode refuses near-blank images
    a = _folder(tmp_path / "a", faces[s0] + [blank])
    a2 = _folder(tmp_path / "a2", faces[s0])
    b = _folder(tmp_path / "b", faces[s1])
    assert _cli(["metrics", "fid", a, a2, "--features", "face"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert _cli(["metrics", "fid", a, b, "--features", "face"]) == 0
    other = json.loads(capsys.readouterr().out)
    n = len(faces[s0])
    assert same["no_face"] == [1, 0] and same["n"] == [n, n] and "dlib" in same["extractor"]
    assert abs(same["fid"]) < 1e-8  # the blank image is dropped, the faces are the same files
    assert other["fid"] > 1e-3 and np.isfinite(other["fid"])  # another subject
    assert "singular covariance" in same["note"]


def test_cli_fid_face_with_one_face_names_the_folder(faces, tmp_path):
    from fape.errors import UserError

    s0 = sorted(faces)[0]
    blank = np.zeros((64, 64, 3), np.uint8)
    a = _folder(tmp_path / "a", faces[s0])
    one = _folder(tmp_path / "one", faces[s0][:1] + [blank, blank])
    with pytest.raises(UserError, match=r"one \(2 of 3 images without a face\)"):
        _cli(["metrics", "kid", a, one, "--features", "face"])


def test_gan_report_face_block_and_markdown(faces):
    from fape.metrics.gan_report import face_embedding_metrics, to_markdown

    s0, s1 = sorted(faces)
    imgs = np.stack(faces[s0] + faces[s1]).transpose(0, 3, 1, 2)  # [N, 3, 64, 64] uint8, rows 0..N-1
    n = len(faces[s0])
    src = np.arange(len(imgs))
    tgt = np.concatenate([np.roll(src[:n], 1), np.roll(src[n:], 1)])  # same-subject pairs
    fake = imgs[src].copy()
    fake[0] = 0  # one generated image without a face
    manifest = pd.DataFrame({"subject": [s0] * n + [s1] * n})
    g = {"src": src, "tgt": tgt, "source": imgs[src], "target": imgs[tgt], "fake": fake,
         "faces": SimpleNamespace(index=SimpleNamespace(manifest=manifest))}
    M = face_embedding_metrics(g, np.arange(len(src)))
    f = M["fid_face"]
    assert (f["n_real"], f["n_fake"], f["no_face_real"], f["no_face_fake"]) == (len(src), len(src) - 1, 0, 1)
    assert np.isfinite(f["fid"]) and f["fid"] > 0
    assert abs(f["real_sources_fid"]) < 1e-9  # sources and targets here are the same images, reordered
    assert M["identity"]["failure_rate"] == pytest.approx(1 / len(src))
    rep = {"run": "r", "generator": "g", "data": "d", "pairs": len(src), "skipped": {}, "metrics": M}
    md = to_markdown(rep)
    assert f"| FID (dlib face embedding) | {f['fid']:.4f} | real sources vs targets 0.0000; dlib" in md
    assert f"(no face, dropped: 0 real / 1 generated)" in md and "| KID (dlib face embedding) |" in md
    # every generated image blank: no FID, a reason instead
    M = face_embedding_metrics({**g, "fake": np.zeros_like(fake)}, np.arange(len(src)))
    assert "fid_face" not in M and "at least 2 images with a face" in M["fid_face_error"]
