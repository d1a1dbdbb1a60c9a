"""``fape metrics synth`` embeds only what its figures read: figures against their definitions on a case
small enough that nothing is drawn, the caps on a larger one, the pair draws' distribution, dlib's
batch form against its one-face form, and the embedding cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fape.data.format import DatasetInfo, load_image, read_index, save_image, write_index
from fape.metrics import synth_report as sr


# ---------------------------------------------------------------- pair draws (no dlib)
def test_subject_groups_leave_out_rows_without_an_id():
    groups = sr.subject_groups(["a", "", "b", "a", "", "b", "b"])
    assert sorted(map(sorted, (g.tolist() for g in groups))) == [[0, 3], [2, 5, 6]]
    assert sr.pair_count(groups, True) == 1 + 3 and sr.pair_count(groups, False) == 2 * 3
    same, diff = sr.all_pairs(groups, True), sr.all_pairs(groups, False)
    assert {frozenset(p) for p in same.tolist()} == {frozenset(p) for p in ([0, 3], [2, 5], [2, 6], [5, 6])}
    assert {frozenset(p) for p in diff.tolist()} == {frozenset((a, b)) for a in (0, 3) for b in (2, 5, 6)}
    assert len(same) == 4 and len(diff) == 6  # each unordered pair once


@pytest.mark.parametrize("same", [True, False])
def test_drawn_pairs_are_uniform_over_the_ordered_pairs_of_their_kind(same):
    subj = np.array(["a", "a", "b", "b", "b", "", "c"])
    groups = sr.subject_groups(subj)
    k = 60000
    p = sr.draw_pairs(groups, same, k, np.random.default_rng(0))
    assert p.shape == (k, 2) and (p[:, 0] != p[:, 1]).all() and (subj[p] != "").all()
    assert ((subj[p[:, 0]] == subj[p[:, 1]]) == same).all()
    # the old report drew rows uniformly and kept pairs by kind: uniform over ordered pairs a != b of the kind
    known = np.flatnonzero(subj != "")
    kind = [(a, b) for a in known for b in known if a != b and (subj[a] == subj[b]) == same]
    assert len(kind) == 2 * sr.pair_count(groups, same)
    freq = pd.Series(list(map(tuple, p.tolist()))).value_counts(normalize=True)
    assert set(freq.index) == set(kind)
    assert np.abs(freq.to_numpy() - 1 / len(kind)).max() < 0.15 / len(kind)


def test_draw_rows_caps_without_replacement():
    rows = np.arange(100, 130)
    d = sr.draw_rows(rows, 7, np.random.default_rng(1))
    assert len(d) == 7 and len(set(d.tolist())) == 7 and set(d.tolist()) <= set(rows.tolist())
    assert sr.draw_rows(rows, 30, np.random.default_rng(1)) is rows


# ---------------------------------------------------------------- dlib on rendered faces
@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    """Rendered faces (64 px RGB, frontal): 3 subjects x 2 expressions x 4 frames = 24 rows."""
    pytest.importorskip("dlib")
    from fape.data.synth import SynthConfig, synthesize

    cfg = SynthConfig(identities=3, expressions=2, frames=4, poses=["front"], image_size=64, render_scale=2)
    return synthesize(cfg, tmp_path_factory.mktemp("real") / "faces", progress=False)


def fake_synth(real: Path, out: Path, sources: np.ndarray, labels: np.ndarray, blank: int | None = None) -> Path:
    """A `fape gan synthesize`-shaped set: generated face i is the mirrored, brightened image of real
    row ``sources[(i + 1) % n]`` (another face than its source), drawn with label ``labels[i]``;
    ``blank``: one near-blank face (dlib finds none)."""
    idx = read_index(real)
    m, names = idx.manifest, idx.info.label_names
    recs = []
    for i, (s, lab) in enumerate(zip(sources, labels)):
        img = load_image(real / m["path"][int(sources[(i + 1) % len(sources)])])[:, ::-1]
        img = np.clip(img.astype(np.int16) + 12, 0, 255).astype(np.uint8)
        if i == blank:
            img = np.full_like(img, 128)
        save_image(out / f"images/{i:03d}.png", img)
        recs.append(dict(path=f"images/{i:03d}.png", subject=m["subject"][s], expression=names[lab], label=int(lab),
                         pose="front", source_row=int(s), source_expression=m["expression"][s]))
    info = DatasetInfo(name=out.name, label_names=list(names), pose_names=["front"], image_size=[64, 64], channels=3,
                       origin={"kind": "test-fixture"})
    write_index(out, pd.DataFrame(recs), info)
    return out


def per_face(images) -> np.ndarray:
    """dlib's one-face form ``compute_face_descriptor(rgb, shape)`` per image: ``[B, 128]``."""
    from fape.metrics.identity import face_recognizer, face_shapes

    out = np.full((len(images), 128), np.nan)
    for i, rgb, shape in face_shapes(images):
        out[i] = np.asarray(face_recognizer().compute_face_descriptor(rgb, shape))
    return out


def images_of(root: Path) -> np.ndarray:
    idx = read_index(root)
    return np.stack([load_image(root / p) for p in idx.manifest["path"]])  # [N, 64, 64, 3]


def test_batch_embedding_equals_the_one_face_form(real):
    from fape.metrics.identity import embed

    ims = images_of(real)[:6].copy()
    ims[2] = 128  # a blank face: no face, a NaN row in its place
    got, want = embed(ims), per_face(ims)
    assert np.isnan(got[2]).all() and np.isfinite(np.delete(got, 2, 0)).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, equal_nan=True)
    assert np.abs(np.delete(got, 2, 0) - got[0]).sum(1)[1:].min() > 1e-3  # different faces, different vectors


def cubic_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, from its definition."""
    k = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def test_figures_equal_their_definitions_when_nothing_is_drawn(real, tmp_path):
    from fape.metrics.identity import cosine

    m = read_index(real).manifest
    subj, lab = m["subject"].to_numpy(), m["label"].to_numpy()
    n = len(m)
    sources = np.arange(n)  # every row a source
    labels = 1 - lab[sources]  # each drawn as the other expression: 12 generated and 12 real faces per class
    synth = fake_synth(real, tmp_path / "synth", sources, labels)
    got = sr.synth_metrics(synth, real, max_pairs=10_000, kid_n=1000, progress=False)

    e_real, e_gen = per_face(images_of(real)), per_face(images_of(synth))  # [24, 128] each
    cos = cosine(e_real[sources], e_gen)
    sv = got["identity"]["source_vs_generated"]["similarity"]
    assert sv["n"] == len(sources) and sv["mean"] == pytest.approx(cos.mean(), abs=1e-9)
    assert sv["q50"] == pytest.approx(np.median(cos), abs=1e-9)
    ref = got["identity"]["real_reference"]
    for key, same in (("same_subject", True), ("different_subject", False)):
        pairs = [(a, b) for a in range(n) for b in range(a + 1, n) if (subj[a] == subj[b]) == same]
        c = cosine(e_real[[a for a, _ in pairs]], e_real[[b for _, b in pairs]])
        d = ref[key]
        assert not d["sampled"] and d["n"] == d["pairs_possible"] == len(pairs)
        assert d["mean"] == pytest.approx(c.mean(), abs=1e-9) and d["q25"] == pytest.approx(np.quantile(c, 0.25), abs=1e-9)
    names = read_index(real).info.label_names
    for g, name in enumerate(names):
        r = got["kid_per_class"][name]
        x, y = e_real[lab == g], e_gen[labels == g]
        assert (r["n1"], r["n2"], r["n_real_drawn"], r["n_generated_drawn"]) == (len(x), len(y), len(x), len(y))
        assert r["kid"] == pytest.approx(cubic_mmd2(x, y), rel=1e-9, abs=1e-12) and r["kid_std"] is None
    assert got["faces_found"] == {"generated": n, "sources": n, "sources_found": n, "real_embedded": n, "real": n}


def test_expression_figures_equal_one_direct_forward_pass(real, tmp_path, monkeypatch):
    import torch

    from fape.classifiers import train as clf_train
    from fape.classifiers.config import ClfConfig
    from fape.config import load_config
    from fape.data.preprocess import to_model_input
    from fape.metrics.gan_report import load_classifier

    m = read_index(real).manifest
    lab = m["label"].to_numpy()
    sources = np.arange(0, len(m), 2)
    synth = fake_synth(real, tmp_path / "synth", sources, 1 - lab[sources])
    cfg = load_config(ClfConfig, None, [f"--data.root={real}", "--model.name=cnn3", "--data.split=random",
                                        "--data.image_size=32", "--data.channels=1", "--train.batch_size=8",
                                        "--train.epochs=2", "--optim.name=adam"])
    run = clf_train.train(cfg, tmp_path / "clf", progress=False)
    ref = np.arange(1, len(m), 3)
    monkeypatch.setattr(sr, "CHUNK", 5)  # several chunks, each cut into classifier batches
    got = sr.synth_metrics(synth, real, features=f"run:{run}", reference_rows=ref, max_pairs=1, kid_n=2,
                           progress=False)["expression"]

    model = load_classifier(f"run:{run}").eval()
    with torch.no_grad():
        def predict(ims):  # one forward pass over the whole set
            return model(to_model_input(torch.as_tensor(ims.transpose(0, 3, 1, 2).copy()), 32, 1)).argmax(1).numpy()

        p_gen, p_ref = predict(images_of(synth)), predict(images_of(real)[ref])
    assert (got["n"], got["n_reference"]) == (len(sources), len(ref))
    assert got["agreement_target"] == pytest.approx(np.mean(p_gen == 1 - lab[sources]))
    assert got["still_source"] == pytest.approx(np.mean(p_gen == lab[sources]))
    assert got["accuracy_on_reference"] == pytest.approx(np.mean(p_ref == lab[ref]))


def test_caps_hold_and_are_reported(real, tmp_path):
    m = read_index(real).manifest
    sources = np.array([0, 9, 17])  # 3 distinct sources for 9 generated faces
    synth = fake_synth(real, tmp_path / "synth", np.repeat(sources, 3), np.array([0, 1, 1] * 3), blank=4)
    got = sr.synth_metrics(synth, real, max_pairs=2, kid_n=2, seed=3, progress=False)
    for key in ("same_subject", "different_subject"):
        d = got["identity"]["real_reference"][key]
        assert d["sampled"] and d["n"] == 2 and d["pairs_possible"] > 2
    for name, r in got["kid_per_class"].items():
        assert r["n_real_drawn"] == 2 < r["n_real_rows"] and r["n_generated_drawn"] == 2 < r["n_generated_rows"]
        assert r["n1"] == 2 and r["n2"] <= 2 and ("kid" in r) == (r["n2"] == 2)
    ff = got["faces_found"]
    assert ff["generated"] == 8 and ff["sources"] == 3  # the blank face is counted, not embedded as a face
    # sources + at most 2 x 2 rows per band + 2 per class: fewer than the 24 real rows
    assert ff["real_embedded"] <= 3 + 2 * 4 + 2 * 2 < len(m)
    assert got["sampling"] == {"seed": 3, "max_pairs": 2, "kid_n": 2}
    md = sr.report_md(got)
    assert "at most 2 pairs per reference band, at most 2 real and 2 generated faces per class" in md
    assert "| 2 drawn of " in md and "| 2 of 12 |" in md and "seed 3" in md
    assert f"of which {ff['real_embedded']} embedded" in md
    with pytest.raises(Exception, match="kid_n"):
        sr.synth_metrics(synth, real, kid_n=1, progress=False)


def test_cache_is_reused_and_keyed_by_the_data(real, tmp_path, monkeypatch):
    m = read_index(real).manifest
    synth = fake_synth(real, tmp_path / "synth", np.arange(0, len(m), 3), np.array([0, 1] * 4))
    cache = tmp_path / "cache"
    first = sr.synth_metrics(synth, real, max_pairs=3, kid_n=3, cache=cache, progress=False)
    files = sorted(cache.glob("face_embed_*.npz"))
    assert len(files) == 2 and not list(cache.glob(".*"))  # generated and real, no temp file left

    import fape.metrics.identity as identity

    def no_dlib(*a, **k):
        raise AssertionError("embedded again")

    monkeypatch.setattr(identity, "embed", no_dlib)
    again = sr.synth_metrics(synth, real, max_pairs=3, kid_n=3, cache=cache, progress=False)
    assert again == first
    # the same images under an edited manifest: another key, so nothing is read from the cache
    import shutil

    edited = tmp_path / "edited"
    shutil.copytree(real, edited)
    idx = read_index(edited)
    write_index(edited, idx.manifest.assign(source="edited"), idx.info, idx.landmarks, idx.landmarks_ok)
    with pytest.raises(AssertionError, match="embedded again"):
        sr.synth_metrics(synth, edited, max_pairs=3, kid_n=3, cache=cache, progress=False)


def test_worker_processes_give_the_same_figures(real, tmp_path):
    m = read_index(real).manifest
    synth = fake_synth(real, tmp_path / "synth", np.arange(0, len(m), 2), np.array([0, 1] * 6))
    one = sr.synth_metrics(synth, real, max_pairs=4, kid_n=3, progress=False)
    two = sr.synth_metrics(synth, real, max_pairs=4, kid_n=3, progress=False, workers=2)
    assert two == one and one["faces_found"]["generated"] == 12
