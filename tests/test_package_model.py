"""tools/package_model.py: the shipped-model folder loads like a checkpoint, float16 storage
keeps the predictions, and the card's numbers are the packaged weights' own evaluation."""
import json

import numpy as np
import pytest
import torch

from _fixtures import load_tool, tiny_clf_run
from fape.predict.backends import load_classifier


def _tool():
    return load_tool("package_model")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_clf_run(tmp_path_factory.mktemp("pkg"))[0]


def test_done_json_records_training_time(run):
    done = json.loads((run / "done.json").read_text())
    assert done["train_seconds"] > 0 and done["epoch"] == 2


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_package_loads_and_reports_its_own_accuracy(run, tmp_path, dtype):
    out = _tool().package(run, tmp_path / "model", dtype, command="fape clf train -c X.yaml")
    state = json.loads((out / "state.json").read_text())
    assert state["weights_dtype"] == dtype and state["trained_epochs"] == 2 and state["train_seconds"] > 0
    assert set(state["split_sizes"]) >= {"train", "test"}
    assert 0 <= state["test"]["accuracy"] <= 1 and state["test"]["split"] == "test"
    from safetensors.torch import load_file

    stored = load_file(str(out / "model.safetensors"))
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {getattr(torch, dtype)}
    # the packaged weights give the run's predictions (float16 rounding moves probabilities a little)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    p_run, p_pkg = load_classifier(run).probs(x), load_classifier(out).probs(x)
    assert np.abs(p_run - p_pkg).max() < (1e-6 if dtype == "float32" else 1e-2)
    card = (out / "README.md").read_text()
    assert f"{100 * state['test']['accuracy']:.2f}%" in card and "fape clf train -c X.yaml" in card
    assert "0 expr0, 1 expr1, 2 expr2" in card
    assert "started from" not in card  # trained from scratch
    cont = {**state, "config": {**state["config"], "model": {**state["config"]["model"], "init_from": "ck/prev_model"}}}
    assert "| started from | the weights of `prev_model`" in _tool().model_card(out, cont, "")
    assert "crop `square` at 1.2 x the detected face box" in card
    eye = {**state, "preprocess": {**state["preprocess"], "crop": "eye"}}
    assert "crop `eye`: dlib's 68 landmarks" in _tool().model_card(out, eye, "")


def _eval_cli(*args) -> int:
    from fape.cli import main

    return main(["clf", "eval", *map(str, args)])


def test_packaged_checkpoint_is_a_run_for_eval(run, tmp_path, capsys):
    """`fape clf eval --run CHECKPOINT --data DIR [--split-file F]`: no run files beside the
    checkpoint; the split is the recorded protocol's (made as training makes it) or the one given."""
    pkg = _tool().package(run, tmp_path / "model", "float32")
    data = json.loads((run / "labels.json").read_text())["split"].rsplit("/splits/", 1)[0]
    assert _eval_cli("--run", pkg, "--split", "test", "--data", data, "--out", tmp_path / "e1") == 0
    res = json.loads((tmp_path / "e1" / "results.json").read_text())
    state = json.loads((pkg / "state.json").read_text())
    assert res["n"] == state["test"]["n"] and abs(res["accuracy"] - state["test"]["accuracy"]) < 1e-9
    from fape.data import splits

    other = splits.save_split(data, splits.make_split(data, "random", seed=5), out=tmp_path / "s5.csv")
    assert _eval_cli("--run", pkg, "--split", "val", "--data", data, "--split-file", other,
                     "--out", tmp_path / "e2") == 0
    res = json.loads((tmp_path / "e2" / "results.json").read_text())
    assert res["split_file"] == str(other) and res["n"] == len(splits.load_split(other)["val"])
    assert not (pkg / "eval").exists()  # a packaged folder is never written into
    # a model of the eye recipe scored on square-cropped data: said, and recorded beside the number
    state["preprocess"]["crop"] = "eye"
    (pkg / "state.json").write_text(json.dumps(state))
    with pytest.warns(UserWarning, match="trained on 'eye' crops.*has 'square' crops"):
        assert _eval_cli("--run", pkg, "--split", "val", "--data", data, "--out", tmp_path / "e3") == 0
    res = json.loads((tmp_path / "e3" / "results.json").read_text())
    assert (res["model_crop"], res["data_crop"]) == ("eye", "square")


def test_shipped_model_evaluates_on_imported_fer2013_layout(tmp_path, monkeypatch):
    """The failing command of issue 17: the shipped checkpoint scored on a user's own import."""
    import cv2

    from fape.cli import main
    from fape.predict.run import shipped_model

    rng = np.random.default_rng(0)
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    for c in names:
        for part, prefix, n in (("train", "Training", 2), ("test", "PublicTest", 1), ("test", "PrivateTest", 2)):
            for i in range(n):
                d = tmp_path / "src" / part / c
                d.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(d / f"{prefix}_{c}{i}.jpg"), rng.integers(0, 256, (48, 48), dtype=np.uint8))
    # imported as the card says the model's training images were: its recorded crop
    crop = json.loads((shipped_model() / "state.json").read_text())["preprocess"]["crop"]
    eye = ["--eye-crop", "--assume-cropped", "--image-size", "48"] if crop == "eye" else []
    assert main(["data", "import", "fer2013-folders", str(tmp_path / "src"), "--out", str(tmp_path / "fer"), *eye]) == 0
    monkeypatch.chdir(tmp_path)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*framed differently")  # the crops match the model's
        assert _eval_cli("--run", shipped_model(), "--split", "test", "--data", tmp_path / "fer") == 0
    # tagged with the data and split it was scored on (another dataset than the checkpoint's own)
    res = json.loads((tmp_path / "runs" / "eval" / "fanet_fer2013_48" / "test@fer.fer2013-official-seed0"
                      / "results.json").read_text())
    assert res["n"] == 14 and list(res["per_class"]) == names


def test_card_reports_a_peer_benchmark_as_measured():
    tool = _tool()
    r = {"accuracy": 0.6428, "macro_f1": 0.6263, "detected": 1.0, "ms_per_face": 18.8}
    bench = {"threads": 1, "parts": {"fer2013": {"n": 3589, "timing_faces": 400,
                                                 "tools": {"fape torch": r, "fer": {**r, "accuracy": 0.6587}}}}}
    text = "\n".join(tool.benchmark_section(bench))
    assert "| FER2013 PrivateTest crops, classifier only (3,589) | fape torch | 64.28% | - | 62.63% |" in text
    assert "| fer | 65.87%" in text and "18.8 ms per face (classify) (1.00x)" in text
