"""fape predict / fape export: preprocessing identical to training, export parity, sources and
their errors, tracking, and the end-to-end command on a real photograph (scikit-image's
astronaut, installed with face-alignment)."""
import json

import cv2
import numpy as np
import pytest
import torch

from _fixtures import REPO, make_multipose
from fape.classifiers import train as clf_train
from fape.classifiers.config import ClfConfig
from fape.cli import UserError, main
from fape.config import load_config
from fape.data.dataset import convert_channels, resize_image
from fape.predict.backends import export, load_classifier
from fape.predict.detect import DetectOptions
from fape.data.preprocess import Preprocess, crop_faces, from_state, to_input
from fape.predict.run import PredictOptions, Predictor, default_model, run
from fape.predict.track import Tracker, iou, match
from fape.utils import checkpoint as ck

ASTRONAUT_FACE = np.array([177, 66, 272, 161], np.float32)  # OpenCV Haar box, checked by eye


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    data = make_multipose(root / "real", subjects=3, expressions=3, frames=1)
    cfg = load_config(ClfConfig, REPO / "configs/clf/fanet_f2ed.yaml",
                      [f"--data.root={data}", "--model.name=cnn3", "--data.split=random", "--data.image_size=32",
                       "--data.channels=1", "--train.batch_size=8", "--train.epochs=1"])
    return clf_train.train(cfg, root / "run", progress=False)


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    skdata = pytest.importorskip("skimage.data", reason="scikit-image (a face-alignment dependency) is absent")
    img = skdata.astronaut()  # [512, 512, 3] RGB, one frontal face
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path, img


def test_crop_is_the_dataset_decode():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
    spec = Preprocess(image_size=32, channels=1, crop="square", enlarge=1.0)
    crop = crop_faces(frame, np.array([[0, 0, 80, 80]], np.float32), spec)
    np.testing.assert_array_equal(crop[0], convert_channels(resize_image(frame, (32, 32)), 1))
    x = to_input(crop, spec)
    assert x.shape == (1, 1, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    # a box in the middle: the crop is centred on it, side = enlarge x the longer box side
    wide = crop_faces(frame, np.array([[20, 20, 60, 60]], np.float32), Preprocess(40, 3, "square", 1.0))
    np.testing.assert_array_equal(wide[0], frame[20:60, 20:60])


def test_eye_recipe_crops_as_the_importer_does(astronaut):
    """An eye-recipe model's crop at predict time (Haar box -> landmarks -> eye crop) is the crop
    `fape data import --crop haar --eye-crop --gray --image-size 48` makes of the same image."""
    from fape.data import faces

    _, img = astronaut
    box = faces.detect_faces(img, "haar")[0]
    ours = crop_faces(img, box[None], Preprocess(48, 1, "eye"), "haar")[0]  # [48, 48, 1]
    gray = convert_channels(img, 1)  # the importer converts first, then crops
    imported = cv2.resize(faces.crop_face(gray, "haar", eye_crop=True), (48, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(ours[:, :, 0].astype(int) - imported.astype(int)).mean() < 1.5  # rounding of two orders
    square = crop_faces(img, box[None], Preprocess(48, 1, "square"), "haar")[0]
    assert np.abs(square[:, :, 0].astype(int) - imported.astype(int)).mean() > 10  # another framing


def test_checkpoint_carries_the_recipe(tiny_run):
    state = ck.load_state(ck.latest_checkpoint(tiny_run / "best"))
    spec = from_state(state)
    assert (spec.image_size, spec.channels, spec.crop, spec.value_range) == (32, 1, "square", (-1.0, 1.0))
    legacy = {k: v for k, v in state.items() if k != "preprocess"}  # checkpoints from before the field
    assert from_state(legacy) == spec
    with pytest.raises(ValueError, match="unknown crop"):
        from_state({**state, "preprocess": {**state["preprocess"], "crop": "oval"}})


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_parity(tiny_run, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    dst = export(tiny_run, fmt, tmp_path / ("m.onnx" if fmt == "onnx" else "m.pt"))
    meta = json.loads(dst.with_name(dst.name + ".json").read_text())
    assert meta["label_names"] == ["expr0", "expr1", "expr2"] and meta["preprocess"]["image_size"] == 32
    ref, exp = load_classifier(tiny_run, "torch"), load_classifier(dst)
    assert exp.backend == fmt and exp.preprocess == ref.preprocess
    for n in (1, 5):  # the batch dimension is dynamic
        x = torch.rand(n, 1, 32, 32) * 2 - 1
        p_ref, p_exp = ref.probs(x), exp.probs(x)
        assert p_exp.shape == (n, 3)
        assert np.abs(p_ref - p_exp).max() < 1e-4
        np.testing.assert_allclose(p_exp.sum(1), 1, atol=1e-5)
    assert load_classifier(dst).probs(torch.zeros(0, 1, 32, 32)).shape == (0, 3)


def test_export_needs_its_sidecar(tiny_run, tmp_path):
    pytest.importorskip("onnxruntime")
    dst = export(tiny_run, "onnx", tmp_path / "m.onnx")
    dst.with_name(dst.name + ".json").unlink()
    with pytest.raises(UserError, match="sidecar"):
        load_classifier(dst)


def test_onnx_backend_on_a_run(tiny_run):
    pytest.importorskip("onnxruntime")
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    assert np.abs(load_classifier(tiny_run, "onnx").probs(x) - load_classifier(tiny_run, "torch").probs(x)).max() < 1e-4


def test_auto_backend_is_onnx_runtime_when_installed(tiny_run, monkeypatch):
    pytest.importorskip("onnxruntime")
    import importlib.util

    assert load_classifier(tiny_run).backend == "onnx"
    assert load_classifier(tiny_run, device="meta").backend == "torch"  # ONNX Runtime here runs on the CPU only
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert load_classifier(tiny_run).backend == "torch"


def test_predict_image(tiny_run, astronaut, tmp_path):
    path, _ = astronaut
    s = run(str(path), load_classifier(tiny_run), PredictOptions(), tmp_path / "out", progress=False)
    assert (s["frames"], s["faces"], s["frames_without_faces"], s["failed"]) == (1, 1, 0, [])
    rec = json.loads((tmp_path / "out" / "predictions.jsonl").read_text())
    face = rec["faces"][0]
    assert iou(np.array(face["box"]), ASTRONAUT_FACE)[0, 0] > 0.8
    assert abs(sum(face["probs"].values()) - 1) < 1e-3 and face["label"] in face["probs"]
    t = rec["timings_ms"]
    assert t["detect"] > 0 and t["preprocess_per_face"] > 0 and t["classify_per_face"] > 0
    assert (tmp_path / "out" / "annotated" / "astronaut.jpg").is_file()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["timings"]["detect"]["n"] == 1 and summary["preprocess"]["image_size"] == 32


def test_folder_records_failures_and_carries_on(tiny_run, astronaut, tmp_path):
    path, img = astronaut
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (folder / "b_broken.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(folder / "sub" / "c_blank.png"), np.full((200, 300, 3), 127, np.uint8))
    s = run(str(folder), load_classifier(tiny_run), PredictOptions(), tmp_path / "out", progress=False)
    assert s["frames"] == 3 and s["faces"] == 1 and s["frames_without_faces"] == 1
    assert len(s["failed"]) == 1 and "b_broken.jpg" in s["failed"][0]["error"]
    lines = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [x["name"] for x in lines] == ["a.png", "b_broken.jpg", "sub/c_blank.png"]
    assert "error" in lines[1] and lines[2]["faces"] == []


def _video(path, img, n=9, step=(4, 2)):
    h, w = 480, 640
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    small = cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)
    for i in range(n):
        frame = np.full((h, w, 3), 90, np.uint8)
        x, y = 100 + i * step[0], 80 + i * step[1]
        frame[y:y + 256, x:x + 256] = small
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_tracking_between_detections(tiny_run, astronaut, tmp_path):
    _, img = astronaut
    video = _video(tmp_path / "v.mp4", img)
    clf = load_classifier(tiny_run)
    every = run(str(video), clf, PredictOptions(), tmp_path / "every", progress=False)
    tracked = run(str(video), clf, PredictOptions(detect_every=3), tmp_path / "tracked", progress=False)
    assert every["frames"] == tracked["frames"] == 9
    a = [json.loads(x) for x in (tmp_path / "every" / "predictions.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "tracked" / "predictions.jsonl").read_text().splitlines()]
    assert [r["detected"] for r in b] == [True, False, False] * 3
    assert all(len(r["faces"]) == 1 for r in a + b)
    assert len({r["faces"][0]["id"] for r in b}) == 1  # one track all along
    for ra, rb in zip(a, b):  # tracked boxes follow the moving face as closely as detection does
        assert iou(np.array(ra["faces"][0]["box"]), np.array(rb["faces"][0]["box"]))[0, 0] > 0.8
    assert (tmp_path / "tracked" / "annotated.mp4").stat().st_size > 0


def test_detect_on_a_downscaled_frame(tiny_run, astronaut):
    _, img = astronaut
    pred = Predictor(load_classifier(tiny_run), PredictOptions(DetectOptions(scale=0.5)))
    faces = pred(img)["faces"]
    assert len(faces) == 1 and iou(np.array(faces[0]["box"]), ASTRONAUT_FACE)[0, 0] > 0.7
    too_big = Predictor(load_classifier(tiny_run), PredictOptions(DetectOptions(min_face=200)))
    assert too_big(img)["faces"] == []


def test_tracker_follows_a_shift():
    rng = np.random.default_rng(1)
    gray = cv2.GaussianBlur(rng.integers(0, 256, (240, 320), dtype=np.uint8), (5, 5), 0)
    box = np.array([[100, 60, 180, 140]], np.float32)
    tr = Tracker()
    tr.update(gray, box)
    moved = np.roll(gray, (6, 9), axis=(0, 1))  # 9 px right, 6 px down
    (t,) = tr.follow(moved)
    np.testing.assert_allclose(t.box, box[0] + [9, 6, 9, 6], atol=2.5)
    assert tr.follow(rng.integers(0, 256, (240, 320), dtype=np.uint8)) == []  # lost: dropped


def test_iou_and_matching():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    b = np.array([[25, 20, 35, 30], [0, 0, 10, 5]], np.float32)
    np.testing.assert_allclose(iou(a, b), [[0, 0.5], [1 / 3, 0]])
    assert sorted(match(a, b, 0.3)) == [(0, 1), (1, 0)]
    assert match(a, b, 0.6) == []


def test_bad_inputs(tiny_run, tmp_path):
    clf = load_classifier(tiny_run)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    cases = [(tmp_path / "nope.jpg", "not found"), (tmp_path / "x.txt", "unknown input type"),
             (empty, "empty.mp4"), (bad, "bad.png"), ("camera:x", "camera:N"), ("camera:99", "camera 99 cannot be opened"),
             (tmp_path / "docs", "no images")]
    (tmp_path / "x.txt").write_text("hi")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("no pictures here")
    for src, msg in cases:
        with pytest.raises(UserError, match=msg):
            run(str(src), clf, PredictOptions(), None, progress=False)
    for opts in (DetectOptions(method="nope"), DetectOptions(scale=0), DetectOptions(min_face=0)):
        with pytest.raises(UserError):
            opts.check()
    with pytest.raises(UserError, match="detect-every"):
        Predictor(clf, PredictOptions(detect_every=0))
    with pytest.raises(UserError, match="model not found"):
        load_classifier(tmp_path / "missing_run")


def test_cli_predict_and_export(tiny_run, astronaut, tmp_path, capsys):
    path, _ = astronaut
    assert main(["export", "--run", str(tiny_run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    assert main(["predict", str(path), "--model", str(tmp_path / "m.pt"), "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "1 frame(s), 1 face(s)" in out and "face 0 at" in out
    assert main(["predict", str(tmp_path / "missing.png"), "--model", str(tiny_run), "--no-save"]) == 2


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_shipped_model_export_parity(astronaut, tmp_path, fmt):
    """The shipped model exported: probabilities within 1e-4 of PyTorch on a real face crop and
    on random inputs."""
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    ref = load_classifier(default_model(), "torch")
    dst = export(default_model(), fmt, tmp_path / ("m.onnx" if fmt == "onnx" else "m.pt"))
    exp = load_classifier(dst)
    _, img = astronaut
    face = to_input(crop_faces(img, ASTRONAUT_FACE[None], ref.preprocess), ref.preprocess)  # [1, 1, 48, 48]
    x = torch.cat([face, torch.rand(7, 1, 48, 48) * 2 - 1])
    assert np.abs(ref.probs(x) - exp.probs(x)).max() < 1e-4


def test_shipped_model_predicts(astronaut):
    """The model in checkpoints/ loads with the default path and finds the astronaut's face."""
    path, img = astronaut
    clf = load_classifier(default_model())
    assert clf.label_names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    faces = Predictor(clf)(img)["faces"]
    assert len(faces) == 1 and abs(sum(faces[0]["probs"].values()) - 1) < 1e-3
    assert faces[0]["label"] == "happy"  # she smiles broadly: a model that lost its weights would not say so


def test_to_model_input_range_channels_and_size():
    """One adapter for every classifier input (FID features, expression agreement, GAN feature
    losses): uint8 and [-1, 1] floats map to the same values, RGB becomes ITU-R 601 luma."""
    import torch

    from fape.data.preprocess import to_model_input

    u8 = torch.tensor([0, 255, 51, 153], dtype=torch.uint8).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    x = to_model_input(u8, None, 1)  # [1, 1, 2, 2]
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    np.testing.assert_allclose(x.flatten().numpy(), [-1.0, 1.0, 51 / 127.5 - 1, 153 / 127.5 - 1], atol=1e-6)
    rgb = torch.zeros(1, 3, 1, 1)
    rgb[0, 0] = 1.0  # pure red in [-1, 1]: luma = 0.299 * 1 + 0.587 * 0 + 0.114 * 0
    assert to_model_input(rgb, None, 1).item() == pytest.approx(0.299)
    g = to_model_input(torch.full((2, 1, 8, 8), 0.5), 4, 3)  # gray -> RGB, resized
    assert g.shape == (2, 3, 4, 4) and torch.allclose(g, torch.full_like(g, 0.5))
    f = torch.rand(1, 1, 4, 4, requires_grad=True)
    to_model_input(f, 8, 1).sum().backward()  # differentiable: GAN feature losses pass G's output through it
    assert f.grad is not None and float(f.grad.abs().sum()) > 0
