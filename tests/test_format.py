import json

import numpy as np
import pytest

from _fixtures import make_multipose
from fape.data.format import DatasetError, read_index, reindex, update_landmarks
from fape.utils.io import atomic_dir


def test_roundtrip_and_hash(tmp_path):
    root = make_multipose(tmp_path / "d")
    idx = read_index(root)
    assert len(idx) == 2 * 3 * 2 * 3
    assert idx.landmarks.shape == (36, 68, 2) and idx.landmarks.dtype == np.float32
    info = json.loads((root / "dataset.json").read_text())
    assert info["label_names"] == ["expr0", "expr1", "expr2"] and len(info["manifest_sha256"]) == 64
    assert list(idx.manifest.columns[:8]) == ["path", "subject", "expression", "label", "pose", "sequence", "frame", "source"]


def test_edited_manifest_is_refused_until_reindexed(tmp_path):
    root = make_multipose(tmp_path / "d")
    text = (root / "manifest.csv").read_text().replace("fixture", "edited")
    (root / "manifest.csv").write_text(text)
    with pytest.raises(DatasetError, match="manifest.csv"):
        read_index(root)
    reindex(root)
    assert (read_index(root).manifest["source"] == "edited").all()


def test_mismatched_landmark_count_names_files(tmp_path):
    root = make_multipose(tmp_path / "d")
    np.save(root / "landmarks.npy", np.zeros((5, 68, 2), np.float32))
    with pytest.raises(DatasetError, match=r"landmarks.npy has shape \(5, 68, 2\) but manifest.csv has 36 rows"):
        read_index(root)


def test_unknown_label_names_row(tmp_path):
    root = make_multipose(tmp_path / "d")
    text = (root / "manifest.csv").read_text().splitlines()
    head = text[0].split(",")
    cells = text[3].split(",")
    cells[head.index("label")] = "9"
    text[3] = ",".join(cells)
    (root / "manifest.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DatasetError, match="label 9"):
        read_index(root, check_hash=False)


def test_missing_files_are_named(tmp_path):
    root = make_multipose(tmp_path / "d")
    (root / "landmarks_ok.npy").unlink()
    with pytest.raises(DatasetError, match="landmarks_ok.npy"):
        read_index(root)
    with pytest.raises(DatasetError, match="dataset.json"):
        read_index(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        read_index(tmp_path / "absent")


def test_update_landmarks_records_source(tmp_path):
    root = make_multipose(tmp_path / "d")
    idx = read_index(root)
    ok = idx.landmarks_ok.copy()
    ok[0] = False
    update_landmarks(root, idx.landmarks, ok, "dlib", report={"found": int(ok.sum())})
    idx2 = read_index(root)
    assert idx2.info.landmarks_source == "dlib" and not idx2.landmarks_ok[0]
    assert idx2.info.extra["landmarks_report"]["found"] == 35


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("killed")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / "dataset.json").write_text("1")  # a dataset of ours: --overwrite may replace it
    with pytest.raises(FileExistsError, match="out"):
        with atomic_dir(out):
            pass
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
