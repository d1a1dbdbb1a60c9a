"""``fape data landmarks``: dlib and face-alignment backends, resume, refusals, failure recording."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from _fixtures import SHARED_DATA
from fape.cli import UserError, main
from fape.data import faces
from fape.data import landmarks as lmk
from fape.data.format import DatasetInfo, read_index, save_image, write_index

DATA = SHARED_DATA  # FAPE_SHARED_DATA, else beside the repository
JAFFE = DATA / "jaffe"
needs_jaffe = pytest.mark.skipif(not JAFFE.is_dir(), reason=f"JAFFE not found at {JAFFE}")
# face_alignment's numba kernels take ~10 s of CPU to compile on first use; for a few test images
# plain Python is faster (read by numba when face_alignment first imports it, inside the tests)
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")


def make_dataset(root: Path, images: list[np.ndarray], label_names=("a", "b")) -> Path:
    """A fape dataset of the given uint8 images, labels alternating over ``label_names``."""
    rows = []
    for i, img in enumerate(images):
        save_image(root / f"images/{i:03d}.png", img)
        lab = i % len(label_names)
        rows.append(dict(path=f"images/{i:03d}.png", expression=label_names[lab], label=lab))
    write_index(root, pd.DataFrame(rows), DatasetInfo(name="t", label_names=list(label_names), channels=1))
    return root


def noise_images(n: int, size: int = 48, blank: tuple[int, ...] = ()) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.full((size, size), 128, np.uint8) if i in blank else rng.integers(0, 256, (size, size), dtype=np.uint8)
            for i in range(n)]


def jaffe_images(n: int) -> list[np.ndarray]:
    from fape.data.format import load_image

    paths = sorted(JAFFE.glob("*.tiff"))[:: 213 // n][:n]
    return [load_image(p, 1)[:, :, 0] for p in paths]


# ---------------------------------------------------------------- dlib
@pytest.mark.realdata
@needs_jaffe
def test_dlib_on_jaffe_lands_on_the_face(tmp_path):
    root = make_dataset(tmp_path / "ds", jaffe_images(4) + noise_images(1, 256, blank=(0,)))
    report = lmk.detect_landmarks(root, "dlib", progress=False)
    idx = read_index(root)
    assert idx.info.landmarks_source == "dlib"
    assert idx.landmarks_ok.tolist() == [True] * 4 + [False]
    lm = idx.landmarks[:4]  # [4, 68, 2] pixels; JAFFE faces span about x 40-205, y 90-260 (chin may leave)
    assert np.all((lm[..., 0] > 30) & (lm[..., 0] < 225) & (lm[..., 1] > 70) & (lm[..., 1] < 275))
    eyes_y, mouth_y, chin_y = lm[:, 36:48, 1].mean(1), lm[:, 48:68, 1].mean(1), lm[:, 8, 1]
    assert np.all((eyes_y < mouth_y) & (mouth_y < chin_y))
    assert np.all(np.linalg.norm(lm[:, 45] - lm[:, 36], axis=1) > 50)  # outer eye corners apart
    assert report["overall"] == {"images": 5, "faces": 4, "rate": 0.8}
    assert report["detectors"]["hog"] == 4 and report["detectors"]["none"] == 1


def test_blank_images_are_recorded_not_dropped(tmp_path):
    root = make_dataset(tmp_path / "ds", noise_images(4, blank=(1, 2)))
    report = lmk.detect_landmarks(root, "dlib", assume_cropped=True, progress=False)
    idx = read_index(root)
    assert len(idx) == 4 and idx.landmarks_ok.tolist() == [True, False, False, True]
    assert np.isnan(idx.landmarks[1:3]).all() and np.isfinite(idx.landmarks[[0, 3]]).all()
    assert report["per_class"]["b"] == {"images": 2, "faces": 1, "rate": 0.5}
    assert report["overall"]["faces"] == 2
    saved = json.loads((root / lmk.REPORT_FILE).read_text())
    assert saved == report == idx.info.extra["landmarks_report"]
    assert "overall" in lmk.format_report(report)


def test_no_detector_finds_a_face_in_a_blank_image():
    blank = np.full((200, 200), 90, np.uint8)
    lm, code = lmk.DlibLandmarker()(blank)
    assert code == 0 and lm.shape == (68, 2) and np.isnan(lm).all()


def test_haar_box_maps_inside():
    box = faces.haar_to_hog(np.array([100, 100, 200, 200], np.float32))
    assert 100 < box[0] < box[2] < 200 and 100 < box[1] < box[3] < 200


# ---------------------------------------------------------------- resume
class Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, monkeypatch):
    images = noise_images(7, blank=(4,))
    whole = make_dataset(tmp_path / "whole", images)
    lmk.detect_landmarks(whole, "dlib", assume_cropped=True, batch_size=3, progress=False)

    root = make_dataset(tmp_path / "resumed", images)
    save = lmk._save_partial

    def save_then_stop(*args):
        save(*args)
        raise Interrupt

    monkeypatch.setattr(lmk, "_save_partial", save_then_stop)
    with pytest.raises(Interrupt):
        lmk.detect_landmarks(root, "dlib", assume_cropped=True, batch_size=3, progress=False)
    state = json.loads((root / lmk.PARTIAL_DIR / "state.json").read_text())
    assert state["done"] == 3
    assert not read_index(root).landmarks_ok.any()  # nothing final written yet

    monkeypatch.setattr(lmk, "_save_partial", save)
    calls = []
    real = lmk.DlibLandmarker.__call__
    monkeypatch.setattr(lmk.DlibLandmarker, "__call__", lambda self, img: calls.append(1) or real(self, img))
    lmk.detect_landmarks(root, "dlib", assume_cropped=True, batch_size=3, progress=False)
    assert len(calls) == 4  # only the images after the saved batch
    a, b = read_index(whole), read_index(root)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(a.landmarks_ok, b.landmarks_ok)
    assert not (root / lmk.PARTIAL_DIR).exists()


def test_resume_with_other_options_refuses_unless_redo(tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "ds", noise_images(4))
    monkeypatch.setattr(lmk, "_save_partial", lambda *a: (_ for _ in ()).throw(Interrupt()))
    with pytest.raises(Interrupt):
        lmk.detect_landmarks(root, "dlib", assume_cropped=True, batch_size=2, progress=False)
    monkeypatch.undo()
    # the monkeypatched save never wrote: simulate a partial run made with --upsample 1
    lmk._save_partial(root, {"done": 2, "elapsed_s": 0.1, "detector": np.ones(4, np.int8),
                             "landmarks": np.zeros((4, 68, 2), np.float32)},
                      {"backend": "dlib", "assume_cropped": True, "upsample": 1, "weights": None,
                       "manifest_sha256": read_index(root).info.manifest_sha256, "num_images": 4})
    with pytest.raises(UserError, match=r"other options.*upsample.*--redo"):
        lmk.detect_landmarks(root, "dlib", assume_cropped=True, upsample=2, progress=False)
    report = lmk.detect_landmarks(root, "dlib", assume_cropped=True, upsample=2, redo=True, progress=False)
    assert report["overall"]["faces"] == 4 and not (root / lmk.PARTIAL_DIR).exists()


def test_cli_runs_and_prints_the_table(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", noise_images(3))
    assert main(["data", "landmarks", str(root), "--assume-cropped", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "overall" in out and "whole-image 3" in out
    assert main(["data", "landmarks", str(root), "--batch-size", "0"]) == 2


# ---------------------------------------------------------------- face-alignment
def test_face_alignment_missing_weights_names_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(UserError) as e:
        lmk.FaceAlignmentLandmarker()
    for name in lmk.FAN_WEIGHT_NAMES:
        assert str(tmp_path / "th" / "hub" / "checkpoints" / name) in str(e.value)
    with pytest.raises(UserError, match=str(tmp_path / "nope.pth")):
        lmk.FaceAlignmentLandmarker(weights=str(tmp_path / "nope.pth"))


class FixedHeatmaps(torch.nn.Module):
    """A stand-in FAN: [B, 3, 256, 256] -> [B, 68, 64, 64] heatmaps, landmark j peaking at a fixed cell."""

    def __init__(self):
        super().__init__()
        hm = torch.zeros(1, 68, 64, 64)
        for j in range(68):
            hm[0, j, 12 + 4 * (j // 8), 12 + 4 * (j % 8)] = 1.0
        self.register_buffer("hm", hm)

    def forward(self, x):
        return [self.hm.expand(x.shape[0], -1, -1, -1) + 0 * x.mean()]


def test_face_alignment_with_local_torchscript_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    ckpt = tmp_path / "th" / "hub" / "checkpoints" / "2DFAN4_1.6-c827573f02.zip"
    ckpt.parent.mkdir(parents=True)
    torch.jit.script(FixedHeatmaps()).save(str(ckpt))
    root = make_dataset(tmp_path / "ds", noise_images(3, size=64, blank=(2,)))
    report = lmk.detect_landmarks(root, "face-alignment", assume_cropped=True, progress=False)
    idx = read_index(root)
    assert idx.info.landmarks_source == "face-alignment" and report["backend"] == "face-alignment"
    assert idx.landmarks_ok.tolist() == [True, True, False]
    lm = idx.landmarks[:2]  # [2, 68, 2] pixels of a 64 x 64 image
    assert np.isfinite(lm).all() and (lm > -8).all() and (lm < 72).all()
    assert len(np.unique(lm[0].round(1), axis=0)) > 30  # distinct points, not one collapsed value


def test_face_alignment_loads_a_fan_state_dict(tmp_path):
    from face_alignment.models import FAN

    torch.manual_seed(0)
    fan = FAN(4)
    weights = tmp_path / "fan.pth.tar"
    torch.save(fan.state_dict(), weights)
    loaded = lmk.load_fan(lmk.find_fan_weights(str(weights)), "cpu")  # the format face_alignment 1.5 ships
    assert isinstance(loaded, FAN) and not loaded.training
    torch.testing.assert_close(loaded.state_dict(), fan.state_dict())
    (tmp_path / "junk.pth").write_bytes(b"not a model")
    with pytest.raises(UserError, match="junk.pth"):
        lmk.FaceAlignmentLandmarker(weights=str(tmp_path / "junk.pth"))
