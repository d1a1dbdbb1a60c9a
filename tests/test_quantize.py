"""fape export --format onnx-int8: static int8 quantisation calibrated on the training part only,
with integer kernels in the graph and probabilities close to the float model's."""
import json

import numpy as np
import pytest
import torch

from _fixtures import make_multipose
from fape.classifiers import train as clf_train
from fape.classifiers.config import ClfConfig
from fape.config import load_config

pytest.importorskip("onnxruntime", reason="onnxruntime (the export extra) is absent")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    data = make_multipose(root / "real", subjects=3, expressions=3, frames=2)
    cfg = load_config(ClfConfig, None, [f"--data.root={data}", "--model.name=cnn3", "--data.split=random",
                                        "--data.image_size=32", "--data.channels=1", "--train.batch_size=8",
                                        "--train.epochs=1"])
    return clf_train.train(cfg, root / "run", progress=False), data


def test_calibration_uses_training_rows_only(tiny):
    from fape.data import splits
    from fape.predict.quantize import calibration_inputs

    run, data = tiny
    batches, rec = calibration_inputs(run, data, n=10_000, batch=4)
    train = splits.load_split(json.loads((run / "labels.json").read_text())["split"])["train"]
    assert rec["part"] == "train" and rec["rows"] == len(train) == sum(len(b) for b in batches)
    assert batches[0].dtype == np.float32 and batches[0].shape[1:] == (1, 32, 32)
    assert -1 <= batches[0].min() and batches[0].max() <= 1


def test_int8_export_runs_close_to_float(tiny, tmp_path):
    import onnx

    from fape.predict.backends import export, load_classifier

    run, data = tiny
    with pytest.raises(Exception, match="--calibration"):
        export(run, "onnx-int8", tmp_path / "m.onnx")
    dst = export(run, "onnx-int8", tmp_path / "m.int8.onnx", calibration=data, calibration_n=16)
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really quantised, not a float copy
    meta = json.loads((tmp_path / "m.int8.onnx.json").read_text())
    assert meta["format"] == "onnx-int8" and meta["calibration"]["part"] == "train"
    x = torch.rand(6, 1, 32, 32) * 2 - 1
    p_f, p_q = load_classifier(run).probs(x), load_classifier(dst).probs(x)
    assert p_q.shape == p_f.shape and np.allclose(p_q.sum(1), 1, atol=1e-3)
    assert np.abs(p_f - p_q).max() < 0.1
