"""fape export --format onnx-int8: static int8 quantisation calibrated on the training part only,
with integer kernels in the graph and probabilities close to the float model's."""
import json

import numpy as np
import pytest
import torch

from _fixtures import tiny_clf_run

pytest.importorskip("onnxruntime", reason="onnxruntime (the export extra) is absent")


@pytest.fixture(scope="module", params=["cnn3", "mini_xception"])
def tiny(tmp_path_factory, request):
    # mini_xception: depthwise convs, padded max pools and residual adds through ORT's quantiser
    return tiny_clf_run(tmp_path_factory.mktemp("q"), epochs=1, model=request.param)


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
    noise = torch.rand(6, 1, 32, 32) * 2 - 1
    p_q = load_classifier(dst).probs(noise)
    assert p_q.shape == (6, 3) and np.allclose(p_q.sum(1), 1, atol=1e-3)
    # close on faces like the calibration's (every training row; 16 calibrated): noise falls outside
    # the calibrated activation ranges, where mini_xception's int8 probabilities moved by up to 0.25
    from fape.predict.quantize import calibration_inputs

    x = torch.from_numpy(np.concatenate(calibration_inputs(run, data, n=10_000)[0]))
    p_f, p_q = load_classifier(run).probs(x), load_classifier(dst).probs(x)
    assert np.abs(p_f - p_q).max() < 0.1
