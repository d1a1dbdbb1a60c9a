"""Loaded classifiers for ``fape predict``: one ``probs(x)`` interface over PyTorch, TorchScript
and ONNX Runtime, and the exporters that make the latter two.

An exported file carries a sidecar ``FILE.json`` with the label order and the preprocessing
recipe, so the file alone is enough to predict with. Exports output probabilities (softmax inside
the graph), the quantity the parity test compares.
"""
from __future__ import annotations

import importlib.util
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fape.errors import UserError
from fape.data.preprocess import Preprocess, from_state
from fape.utils.io import atomic_write_bytes, atomic_write_json

BACKENDS = ("torch", "onnx", "torchscript")
ONNX_OPSET = 17


class WithSoftmax(nn.Module):
    """``[K, C, S, S]`` in the model's range -> ``[K, classes]`` probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x).float(), dim=1)


@dataclass
class Classifier:
    label_names: list[str]
    preprocess: Preprocess
    backend: str
    source: Path  # the checkpoint or exported file it came from
    meta: dict = field(default_factory=dict)  # config and provenance, for reports
    _run: object = None  # callable: float32 [K, C, S, S] tensor -> float32 [K, classes] numpy

    def probs(self, x: torch.Tensor) -> np.ndarray:
        if len(x) == 0:
            return np.zeros((0, len(self.label_names)), np.float32)
        return self._run(x)


# ---------------------------------------------------------------- loading
def load_classifier(path: str | Path, backend: str = "auto", device: str = "cpu",
                    threads: int | None = None) -> Classifier:
    """A run folder or checkpoint folder (``backend="onnx"`` exports it in memory first, ~0.7 s for
    the shipped model), a ``.onnx`` file or a TorchScript ``.pt`` file (each with its ``.json``
    sidecar). ``auto`` on a folder: ONNX Runtime when it is installed and the device is the CPU
    (the shipped LightCNN-9 classifies a face in about half PyTorch's time there,
    docs/benchmarks.md), else PyTorch."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"model not found: {p}")
    if backend not in ("auto", *BACKENDS):
        raise UserError(f"unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    if p.is_file():
        kind = {".onnx": "onnx", ".pt": "torchscript"}.get(p.suffix)
        if kind is None:
            raise UserError(f"{p}: not a model file (.onnx, .pt) nor a run/checkpoint folder")
        if backend not in ("auto", kind):
            raise UserError(f"{p} is a {kind} export; it cannot run on the {backend} backend")
        meta = read_sidecar(p)
        spec = from_state(meta)
        if kind == "onnx":
            run = _onnx_runner(p.read_bytes(), threads)
        else:
            module = _jit_load(str(p), device)
            run = _torch_runner(module, device)
        return Classifier(meta["label_names"], spec, kind, p, meta, run)

    from fape.classifiers.io import load_run

    loaded = load_run(p, device)
    from fape.utils import checkpoint as ck

    if backend == "auto":
        backend = "onnx" if device == "cpu" and importlib.util.find_spec("onnxruntime") else "torch"

    spec = loaded.preprocess
    meta = {"label_names": loaded.label_names, "preprocess": spec.to_dict(), "config": ck.load_state(loaded.checkpoint)["config"],
            "checkpoint": str(loaded.checkpoint)}
    if backend == "torch":
        return Classifier(loaded.label_names, spec, "torch", loaded.checkpoint, meta,
                          _torch_runner(WithSoftmax(loaded.model).eval(), device))
    if backend == "onnx":
        return Classifier(loaded.label_names, spec, "onnx", loaded.checkpoint, meta,
                          _onnx_runner(onnx_bytes(loaded.model, spec), threads))
    module = _jit_load(io.BytesIO(torchscript_bytes(loaded.model, spec)), device)
    return Classifier(loaded.label_names, spec, "torchscript", loaded.checkpoint, meta, _torch_runner(module, device))


def read_sidecar(path: Path) -> dict:
    side = path.with_name(path.name + ".json")
    if not side.is_file():
        raise UserError(f"{path}: its sidecar {side} (labels and preprocessing) is missing; "
                        f"re-export with `fape export`")
    meta = json.loads(side.read_text())
    for key in ("label_names", "preprocess"):
        if key not in meta:
            raise UserError(f"{side}: no {key!r} field")
    return meta


def _torch_runner(module: nn.Module, device: str):
    @torch.inference_mode()
    def run(x: torch.Tensor) -> np.ndarray:
        return module(x.to(device)).float().cpu().numpy()

    return run


def _onnx_runner(model: bytes, threads: int | None):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise UserError("the onnx backend needs onnxruntime: pip install 'fape-faces[export]'") from e
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    # ORT's worker threads spin-wait after each run by default; in `fape predict` the detector
    # runs between classifications and the spinning threads took its cores (Haar 27 -> 36 ms per
    # 640x480 frame on 2 cores, benchmarks/realtime.py)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> np.ndarray:
        return session.run(None, {name: x.detach().cpu().numpy().astype(np.float32, copy=False)})[0]

    return run


# ---------------------------------------------------------------- export
def _example(spec: Preprocess) -> torch.Tensor:
    return torch.zeros(2, spec.channels, spec.image_size, spec.image_size)


def onnx_bytes(model: nn.Module, spec: Preprocess) -> bytes:
    """The model with softmax as ONNX (opset ``ONNX_OPSET``), batch dimension dynamic. The
    TorchScript-based exporter: the dynamo one gives the same graph here (max |diff| 2e-5 on
    logits) but takes 5x longer and needs onnxscript."""
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the exporter's deprecation notices say nothing about this model
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(WithSoftmax(model.float()).eval(), (_example(spec),), buf, input_names=["image"],
                          output_names=["probs"], dynamic_axes={"image": {0: "faces"}, "probs": {0: "faces"}},
                          opset_version=ONNX_OPSET, dynamo=False)
    return buf.getvalue()


def torchscript_bytes(model: nn.Module, spec: Preprocess) -> bytes:
    with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export, still loads everywhere
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(WithSoftmax(model.float()).eval(), _example(spec), check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    return buf.getvalue()


def _jit_load(src, device: str) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(src, map_location=device).eval()


FORMATS = {"onnx": ".onnx", "onnx-int8": ".onnx", "torchscript": ".pt"}


def export(run: str | Path, fmt: str, out: str | Path | None = None, calibration: str | Path | None = None,
           calibration_n: int = 512) -> Path:
    """Write ``run``'s selected model as ``fmt`` (onnx | onnx-int8 | torchscript) with its sidecar
    JSON; default ``RUN/export/model.onnx`` (``model.int8.onnx``) or ``model.pt``; a packaged
    checkpoint folder is not written into (``runs/export/NAME/...``). ``onnx-int8`` is calibrated
    on ``calibration_n`` training images of ``calibration`` (a dataset folder, fape.predict.quantize)."""
    from fape.classifiers.io import load_run
    from fape.utils import checkpoint as ck

    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx-int8" and not calibration:
        raise UserError("--format onnx-int8 needs --calibration DATA (a dataset folder with the model's training images)")
    loaded = load_run(run)
    state = ck.load_state(loaded.checkpoint)
    spec = loaded.preprocess
    suffix = FORMATS[fmt]
    base = Path(run) / "export" if (Path(run) / "labels.json").is_file() else Path("runs") / "export" / Path(run).name
    dst = Path(out) if out else base / f"model{'.int8' if fmt == 'onnx-int8' else ''}{suffix}"
    if dst.suffix != suffix:
        raise UserError(f"{dst}: a {fmt} export must end in {suffix}")
    extra = {}
    if fmt == "torchscript":
        data = torchscript_bytes(loaded.model, spec)
    else:
        data = onnx_bytes(loaded.model, spec)
        if fmt == "onnx-int8":
            from fape.predict.quantize import calibration_inputs, quantize_onnx

            batches, extra["calibration"] = calibration_inputs(Path(run), calibration, calibration_n)
            data = quantize_onnx(data, batches)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dst, data)
    atomic_write_json(dst.with_name(dst.name + ".json"),
                      {"format": fmt, "label_names": loaded.label_names, "preprocess": spec.to_dict(),
                       "input": "image [faces, C, S, S] float32", "output": "probs [faces, classes]",
                       "opset": ONNX_OPSET if fmt != "torchscript" else None, "checkpoint": str(loaded.checkpoint),
                       "config": state["config"], **extra})
    return dst


def cli_export(args, overrides) -> int:
    dst = export(args.run, args.format, args.out, args.calibration, args.calibration_n)
    print(f"exported {args.run} -> {dst} (+ {dst.name}.json)")
    return 0
