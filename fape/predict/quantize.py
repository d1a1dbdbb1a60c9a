"""int8 ONNX: ONNX Runtime's static quantisation of an exported classifier, calibrated on training
images of the model's own split (never on val or test images).

    fape export --run checkpoints/fanet_fer2013_48 --format onnx-int8 --calibration data/fer2013

Static: weights are int8 per output channel and activations uint8 with scales fixed from the
calibration images (min/max over ``n`` training crops), in the QDQ format ONNX Runtime fuses into
integer kernels. The sidecar records the calibration (data, rows, method) beside the usual label
order and preprocessing.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from fape.errors import UserError


def calibration_inputs(run: Path, data: str | Path, n: int = 512, seed: int = 0, batch: int = 32) -> tuple[list, dict]:
    """``n`` random rows of the ``train`` part of the model's split on ``data`` as float32
    ``[B, C, S, S]`` model inputs (the dataset cache's crop and scaling, as training), and a record."""
    import torch

    from fape.classifiers.evaluate import eval_split_file
    from fape.classifiers.io import load_run
    from fape.data import splits
    from fape.data.dataset import FaceDataset, to_float
    from fape.data.format import read_index

    loaded = load_run(run)
    index = read_index(data)
    split_file = eval_split_file(Path(run), loaded.cfg, index)
    train = splits.load_split(split_file, fold=loaded.cfg.data.fold if loaded.cfg.data.fold >= 0 else None)["train"]
    if len(train) == 0:
        raise UserError(f"{split_file}: no training rows to calibrate on")
    rows = np.sort(np.random.default_rng(seed).choice(train, size=min(n, len(train)), replace=False))
    ds = FaceDataset(index, size=loaded.cfg.data.image_size, channels=loaded.cfg.data.channels, progress=False)
    out = []
    for i in range(0, len(rows), batch):
        imgs = torch.stack([torch.from_numpy(ds.load(int(r)).transpose(2, 0, 1).copy()) for r in rows[i:i + batch]])
        out.append(to_float(imgs).numpy().astype(np.float32))
    return out, {"data": str(data), "split_file": str(split_file), "part": "train", "rows": int(len(rows)),
                 "seed": seed, "method": "MinMax"}


def quantize_onnx(model: bytes, batches: list[np.ndarray]) -> bytes:
    """float32 ONNX bytes -> static int8 QDQ ONNX bytes, activation ranges from ``batches``."""
    try:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise UserError("int8 export needs onnxruntime: pip install 'fape-faces[export]'") from e

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"image": x}

    with tempfile.TemporaryDirectory() as t:
        src, pre, dst = Path(t) / "f32.onnx", Path(t) / "pre.onnx", Path(t) / "int8.onnx"
        src.write_bytes(model)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # shape inference + graph folding
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=_softmax_nodes(pre))  # probabilities stay float
        return dst.read_bytes()


def _softmax_nodes(path: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Softmax"]
