"""`fape data import`: every adapter on tiny fake layouts, bad inputs, atomicity, CLI, real data."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _fixtures import SHARED_DATA
from fape.cli import UserError, main
from fape.data import adapters
from fape.data.adapters import base, import_dataset
from fape.data.format import DatasetError, load_image, read_index

REAL = SHARED_DATA  # FAPE_SHARED_DATA, else beside the repository


# ---------------------------------------------------------------- fixture factories
def img(path: Path, size=(20, 16), mode="L", seed=0) -> Path:
    """Write a small random image (``size`` = (W, H)); palette TIFFs use a gray palette like JAFFE's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), "RGB" if mode == "RGB" else "L")
    if mode == "P":
        im = im.convert("P", palette=Image.Palette.ADAPTIVE)
        im.putpalette([v for g in range(256) for v in (g, g, g)])
    im.save(path)
    return path


def make_fer_folders(root: Path) -> Path:
    for split, prefix in [("train", "Training"), ("test", "PublicTest"), ("test", "PrivateTest")]:
        for cls in ["anger", "disgust", "Fear", "happy", "sadness", "surprise", "neutral"]:
            for i in range(2):
                img(root / split / cls / f"{prefix}_{cls}{i}.jpg", (48, 48))
    return root


def make_jaffe(root: Path) -> Path:
    for s, subject in enumerate(["KA", "KL"]):
        for e, code in enumerate(["AN", "DI", "FE", "HA", "NE", "SA", "SU"]):
            img(root / f"{subject}.{code}1.{s * 10 + e}.tiff", (32, 32), mode="P" if e == 0 else "L",
                seed=s * 10 + e)
    return root


def make_ckplus48(root: Path) -> Path:
    for cls, subject in [("anger", "S010"), ("happy", "S011"), ("contempt", "S010")]:
        for frame in (7, 8, 9):
            img(root / cls / f"{subject}_00{len(cls)}_{frame:08d}.png", (48, 48))
    return root


def make_ckplus(root: Path, sequences=(("S005", "001", 3.0, 5), ("S010", "002", 5.0, 2))) -> Path:
    for subject, seq, code, frames in sequences:
        for f in range(1, frames + 1):
            img(root / "cohn-kanade-images" / subject / seq / f"{subject}_{seq}_{f:08d}.png", (64, 48))
        if code is not None:
            emo = root / "Emotion" / subject / seq / f"{subject}_{seq}_{frames:08d}_emotion.txt"
            emo.parent.mkdir(parents=True, exist_ok=True)
            emo.write_text(f"   {code:.7e}\n")
    (root / "cohn-kanade-images" / "S005" / "009").mkdir(parents=True)  # unlabelled: ignored
    return root


def make_kdef(root: Path) -> Path:
    for sitting in ["AF01", "BM02"]:
        for code in ["AN", "HA"]:
            for angle in ["FL", "HL", "S", "HR", "FR"]:
                img(root / "KDEF" / sitting / f"{sitting}{code}{angle}.JPG", (30, 40), mode="RGB")
    return root


LANDMARKS = np.stack([np.linspace(10, 50, 68), np.linspace(5, 60, 68)], axis=1).astype(np.float32)


def make_f2ed(root: Path, order: list[str] | None = None) -> Path:
    for subject in ["p001", "p002"]:
        for expr in ["calm", "acceptance", "envy"]:
            for pose in ["HL", "F", "HR", "BV"]:
                f = img(root / subject / expr / pose / "000012.jpg", (64, 64), mode="RGB")
                if pose != "BV":
                    np.savetxt(f.with_suffix(".txt"), LANDMARKS, fmt="%.2f")
    if order:
        (root / "expressions.txt").write_text("\n".join(order) + "\n")
    return root


def make_folder(root: Path) -> Path:
    img(root / "b_cls" / "x.png", mode="RGB")
    img(root / "b_cls" / "deep" / "y.bmp", mode="L")  # gray among colour: stored as RGB
    img(root / "a_cls" / "z.jpg", mode="RGB")
    return root


def make_csv(root: Path, labels=("happy", "sad", "happy")) -> Path:
    rows = ["path,label,subject,split"]
    for i, label in enumerate(labels):
        img(root / "imgs" / f"{i}.png")
        rows.append(f"imgs/{i}.png,{label},s{i % 2},{'train' if i else 'test'}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return root / "list.csv"


def make_fer_csv(root: Path, extra_row: str | None = None) -> Path:
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for i, usage in enumerate(["Training", "Training", "PublicTest", "PrivateTest"]):
        rows.append(f"{i},{' '.join(map(str, rng.integers(0, 256, 48 * 48)))},{usage}")
    if extra_row:
        rows.append(extra_row)
    root.mkdir(parents=True, exist_ok=True)
    (root / "fer2013.csv").write_text("\n".join(rows) + "\n")
    return root / "fer2013.csv"


def run(kind, src, out, **options):
    return read_index(import_dataset(kind, src, out, options))


def report(out: Path) -> dict:
    return json.loads((out / "import_report.json").read_text())


# ---------------------------------------------------------------- adapters
def test_fer2013_folders(tmp_path):
    idx = run("fer2013-folders", make_fer_folders(tmp_path / "src"), tmp_path / "out")
    m = idx.manifest
    assert len(m) == 42 and idx.info.channels == 1 and idx.info.image_size == [48, 48]
    assert idx.info.label_names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert m["split"].value_counts().to_dict() == {"train": 14, "val": 14, "test": 14}
    row = m[m["source"] == "train/sadness/Training_sadness0.jpg"].iloc[0]
    assert (row["expression"], row["label"], row["usage"], row["subject"]) == ("sad", 4, "Training", "")
    assert row["path"] == "images/train/sadness/Training_sadness0.png"
    assert list(m["source"]) == sorted(m["source"])
    assert report(tmp_path / "out")["per_split"] == {"test": 14, "train": 14, "val": 14}


def test_fer2013_csv(tmp_path):
    idx = run("fer2013-csv", make_fer_csv(tmp_path / "src"), tmp_path / "out")
    m = idx.manifest
    assert list(m["label"]) == [0, 1, 2, 3] and list(m["split"]) == ["train", "train", "val", "test"]
    assert m["path"].iat[0] == "images/train/Training_00002.png" and m["source"].iat[0] == "fer2013.csv:2"
    assert load_image(idx.image_path(0)).shape == (48, 48, 1)


def test_jaffe_palette_tiffs_become_gray(tmp_path):
    idx = run("jaffe", make_jaffe(tmp_path / "src"), tmp_path / "out")
    m = idx.manifest
    assert len(m) == 14 and sorted(m["subject"].unique()) == ["KA", "KL"] and idx.info.channels == 1
    row = m[m["source"] == "KL.DI1.11.tiff"].iloc[0]
    assert (row["expression"], row["label"], row["take"], row["image_id"]) == ("disgust", 1, 1, 11)
    palette = m[m["source"] == "KA.AN1.0.tiff"].index[0]
    assert load_image(idx.image_path(palette)).shape == (32, 32, 1)


def test_ckplus48(tmp_path):
    idx = run("ckplus48", make_ckplus48(tmp_path / "src"), tmp_path / "out")
    m = idx.manifest
    assert len(m) == 9 and idx.info.label_names[0] == "anger" and len(idx.info.label_names) == 7
    row = m[m["source"] == "happy/S011_005_00000008.png"].iloc[0]
    assert (row["subject"], row["sequence"], row["frame"], row["label"]) == ("S011", "S011_005", 8, 4)


@pytest.mark.parametrize("frames, expected", [("last3", 3 + 1 + 2), ("last", 2 + 2)])
def test_ckplus_frames_and_neutral(tmp_path, frames, expected):
    idx = run("ckplus", make_ckplus(tmp_path / "src"), tmp_path / "out", ckplus_frames=frames)
    m = idx.manifest
    assert len(m) == expected and len(idx.info.label_names) == 8
    seq = m[m["sequence"] == "S005_001"]
    assert list(seq["frame"]) == ([1, 3, 4, 5] if frames == "last3" else [1, 5])
    assert list(seq["expression"]) == ["neutral"] + ["disgust"] * (3 if frames == "last3" else 1)
    # the 2-frame sequence has no separate neutral frame under last3
    assert set(m[m["sequence"] == "S010_002"]["expression"]) == ({"happy"} if frames == "last3"
                                                                  else {"neutral", "happy"})


def test_ckplus_without_neutral(tmp_path):
    idx = run("ckplus", make_ckplus(tmp_path / "src"), tmp_path / "out", ckplus_neutral=False)
    assert "neutral" not in set(idx.manifest["expression"])


def test_kdef(tmp_path):
    idx = run("kdef", make_kdef(tmp_path / "src"), tmp_path / "out")
    m = idx.manifest
    assert len(m) == 20 and idx.info.pose_names == ["FL", "HL", "F", "HR", "FR"] and idx.info.channels == 3
    row = m[m["source"] == "KDEF/BM02/BM02HAS.JPG"].iloc[0]
    assert (row["subject"], row["pose"], row["sequence"], row["expression"], row["session"]) == \
        ("M02", "F", "BM02HA", "happy", "B")
    assert m.groupby("sequence").size().tolist() == [5, 5, 5, 5]


def test_f2ed_landmarks_and_order(tmp_path):
    idx = run("f2ed", make_f2ed(tmp_path / "src"), tmp_path / "out")
    m = idx.manifest
    assert len(m) == 24 and idx.info.label_names == ["acceptance", "calm", "envy"]
    assert idx.info.pose_names == ["HL", "F", "HR", "BV"] and idx.info.landmarks_source == "dlib"
    row = m[m["source"] == "p002/envy/HR/000012.jpg"].iloc[0]
    assert (row["subject"], row["sequence"], row["frame"], row["pose"]) == ("p002", "p002_envy", 12, "HR")
    assert idx.landmarks_ok.tolist() == [p != "BV" for p in m["pose"]]
    np.testing.assert_allclose(idx.landmarks[idx.landmarks_ok][0], LANDMARKS, atol=0.005)  # %.2f text
    assert np.isnan(idx.landmarks[~idx.landmarks_ok]).all()

    ordered = run("f2ed", make_f2ed(tmp_path / "src2", ["envy", "calm", "acceptance"]), tmp_path / "out2")
    assert ordered.info.label_names == ["envy", "calm", "acceptance"]


def test_f2ed_landmarks_follow_resize(tmp_path):
    idx = run("f2ed", make_f2ed(tmp_path / "src"), tmp_path / "out", image_size=32, gray=True)
    assert idx.info.image_size == [32, 32] and idx.info.channels == 1
    expected = (LANDMARKS + 0.5) * 0.5 - 0.5  # 64 -> 32 pixels, pixel-centre convention
    np.testing.assert_allclose(idx.landmarks[idx.landmarks_ok][0], expected, atol=0.005)


def test_folder_mixed_channels_become_rgb(tmp_path):
    idx = run("folder", make_folder(tmp_path / "src"), tmp_path / "out")
    m = idx.manifest
    assert idx.info.label_names == ["a_cls", "b_cls"] and list(m["label"]) == [0, 1, 1]
    assert list(m["source"]) == ["a_cls/z.jpg", "b_cls/deep/y.bmp", "b_cls/x.png"]
    assert idx.info.channels == 3 and idx.info.image_size == [16, 20]
    assert all(load_image(idx.image_path(i)).shape == (16, 20, 3) for i in range(3))


@pytest.mark.parametrize("labels, names, codes", [(("happy", "sad", "happy"), ["happy", "sad"], [0, 1, 0]),
                                                  (("2", "0", "2"), ["0", "1", "2"], [2, 0, 2])])
def test_csv(tmp_path, labels, names, codes):
    idx = run("csv", make_csv(tmp_path / "src", labels), tmp_path / "out", image_size=8)
    m = idx.manifest
    assert idx.info.label_names == names and list(m["label"]) == codes
    assert list(m["subject"]) == ["s0", "s1", "s0"] and list(m["split"]) == ["test", "train", "train"]
    assert idx.info.image_size == [8, 8]


# ---------------------------------------------------------------- bad inputs
def corrupt(path: Path) -> None:
    path.write_bytes(b"not an image")


def label_without_images(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "S020_003_00000004_emotion.txt").write_text("1.0")


@pytest.mark.parametrize("kind, make, spoil, named", [
    ("jaffe", make_jaffe, lambda r: img(r / "KA.XX1.99.tiff"), "KA.XX1.99.tiff"),
    ("jaffe", make_jaffe, lambda r: corrupt(r / "KL.HA1.13.tiff"), "KL.HA1.13.tiff"),
    ("fer2013-folders", make_fer_folders, lambda r: img(r / "train" / "contempt" / "Training_1.jpg"),
     "contempt"),
    ("ckplus", make_ckplus, lambda r: (r / "Emotion/S005/001/S005_001_00000005_emotion.txt").write_text("9.0"),
     "S005_001_00000005_emotion.txt"),
    ("ckplus", make_ckplus, lambda r: label_without_images(r / "Emotion/S020/003"), "cohn-kanade-images/S020/003"),
    ("kdef", make_kdef, lambda r: img(r / "KDEF/AF01/AF01XXS.JPG"), "AF01XXS.JPG"),
    ("f2ed", make_f2ed, lambda r: (r / "p001/calm/F/000012.txt").write_text("1 2\n3 4\n"), "000012.txt"),
    ("f2ed", make_f2ed, lambda r: img(r / "p001/calm/UP/000001.jpg"), "UP"),
    ("folder", make_folder, lambda r: (r / "c_empty").mkdir(), "c_empty"),
])
def test_bad_input_is_named_or_skipped(tmp_path, kind, make, spoil, named):
    src = make(tmp_path / "src")
    spoil(src)
    with pytest.raises(DatasetError, match=named):
        import_dataset(kind, src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    import_dataset(kind, src, tmp_path / "out", {"skip_bad": True})
    skipped = report(tmp_path / "out")["skipped"]
    assert len(skipped) == 1 and named in json.dumps(skipped)


def test_bad_csv_rows(tmp_path):
    src = make_fer_csv(tmp_path / "src", extra_row="3,1 2 3,Training")
    with pytest.raises(DatasetError, match="fer2013.csv:6"):
        import_dataset("fer2013-csv", src, tmp_path / "out")
    missing = make_csv(tmp_path / "g")
    (missing.parent / "imgs" / "1.png").unlink()
    with pytest.raises(DatasetError, match="1.png"):
        import_dataset("csv", missing, tmp_path / "out")


def test_missing_src_empty_src_unknown_kind(tmp_path):
    with pytest.raises(UserError, match="nowhere"):
        import_dataset("jaffe", tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found in .*empty"):
        import_dataset("jaffe", tmp_path / "empty", tmp_path / "out")
    with pytest.raises(UserError, match="unknown dataset kind 'nope'"):
        import_dataset("nope", tmp_path, tmp_path / "out")


def test_interrupted_import_leaves_nothing(tmp_path, monkeypatch):
    convert, calls = base._convert, []

    def dies_midway(*a):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return convert(*a)

    monkeypatch.setattr(base, "_convert", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        import_dataset("jaffe", make_jaffe(tmp_path / "src"), tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_pool_matches_serial(tmp_path):
    src = make_jaffe(tmp_path / "src")
    one = run("jaffe", src, tmp_path / "one", workers=1)
    two = run("jaffe", src, tmp_path / "two", workers=2)
    assert one.manifest.equals(two.manifest)
    assert (tmp_path / "one/images/KL.SU1.16.png").read_bytes() == (tmp_path / "two/images/KL.SU1.16.png").read_bytes()


def test_crop_no_face_and_limit(tmp_path, monkeypatch):
    import fape.data.faces as faces

    seen = []

    def fake_crop(image, method, eye_crop, assume_cropped=False):
        seen.append((method, eye_crop, assume_cropped))
        return None if image[0, 0, 0] % 2 else image[2:-2, 2:-2]

    monkeypatch.setattr(faces, "crop_face", fake_crop)
    out = tmp_path / "out"
    idx = run("jaffe", make_jaffe(tmp_path / "src"), out, eye_crop=True, limit=7)
    assert len(idx.manifest) == 7 and len(set(idx.manifest["expression"])) == 7  # spread over the list
    assert set(seen) == {("dlib", True, False)}
    no_face = report(out)["no_face"]
    shapes = {src: load_image(idx.image_path(i)).shape for i, src in enumerate(idx.manifest["source"])}
    assert all(shapes[s] == ((32, 32, 1) if s in no_face else (28, 28, 1)) for s in shapes)
    assert 0 < len(no_face) < 7 and idx.info.image_size is None


def test_eye_crop_of_precropped_faces_detects_nothing(tmp_path, monkeypatch):
    import fape.data.faces as faces

    seen = []

    def fake_crop(image, method, eye_crop, assume_cropped=False):
        seen.append((eye_crop, assume_cropped))
        return image[1:-1, 1:-1]

    monkeypatch.setattr(faces, "crop_face", fake_crop)
    out = tmp_path / "out"
    idx = run("ckplus48", make_ckplus48(tmp_path / "src"), out, eye_crop=True, assume_cropped=True, image_size=24)
    assert set(seen) == {(True, True)} and len(seen) == len(idx.manifest)
    assert idx.info.origin["options"]["eye_crop"] and idx.info.origin["options"]["assume_cropped"]
    for bad in ({"assume_cropped": True}, {"assume_cropped": True, "eye_crop": True, "crop": "haar"}):
        with pytest.raises(UserError, match="--assume-cropped goes with --eye-crop"):
            run("ckplus48", make_ckplus48(tmp_path / "src2"), tmp_path / "bad", **bad)
        assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- CLI
def test_cli(tmp_path, capsys):
    src = make_ckplus48(tmp_path / "src")
    out = tmp_path / "out"
    assert main(["data", "import", "ckplus48", str(src), "--out", str(out), "--image-size", "24", "--gray"]) == 0
    assert read_index(out).info.image_size == [24, 24]
    assert main(["data", "import", "ckplus48", str(src), "--out", str(out)]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["data", "import", "ckplus48", str(tmp_path / "missing"), "--out", str(out), "--overwrite"]) == 2
    assert "missing" in capsys.readouterr().err
    assert "f2ed" in adapters.ADAPTER_HELP.splitlines()[6]


# ---------------------------------------------------------------- real data
def real(name: str) -> Path:
    if not (REAL / name).is_dir():
        pytest.skip(f"real data not available: {REAL / name}")
    return REAL / name


@pytest.mark.realdata
def test_real_jaffe(tmp_path):
    idx = run("jaffe", real("jaffe"), tmp_path / "out")
    assert len(idx) == 213 and idx.manifest["subject"].nunique() == 10 and idx.info.channels == 1


@pytest.mark.realdata
def test_real_ckplus48(tmp_path):
    m = run("ckplus48", real("ckplus48"), tmp_path / "out").manifest
    assert (len(m), m["subject"].nunique(), m["sequence"].nunique()) == (981, 118, 327)


@pytest.mark.realdata
def test_real_fer2013_limit(tmp_path):
    idx = run("fer2013-folders", real("fer2013"), tmp_path / "out", limit=70)
    assert len(idx) == 70 and set(idx.manifest["split"]) == {"train", "val", "test"}
    assert idx.manifest["label"].nunique() == 7 and idx.info.image_size == [48, 48]


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("FAPE_SLOW") != "1", reason="~20-40 s full FER2013 import: set FAPE_SLOW=1")
def test_real_fer2013_full(tmp_path):
    idx = run("fer2013-folders", real("fer2013"), tmp_path / "out")
    assert idx.manifest["split"].value_counts().to_dict() == {"train": 28709, "val": 3589, "test": 3589}
