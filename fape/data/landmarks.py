"""``fape data landmarks``: 68-point landmarks for every image of a dataset.

Backends: ``dlib`` (HOG detector, OpenCV Haar fallback, 68-point shape predictor; offline) and
``face-alignment`` (FAN heatmap network; its weights must already be on disk). The run is batched
and resumable: after every batch the arrays so far go to ``DIR/.landmarks_partial/``; the final
arrays go through ``update_landmarks`` and the partial folder is removed. Images without a face are
recorded (``landmarks_ok`` False, NaN landmarks), never dropped.
"""
from __future__ import annotations

import json
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np

from fape.errors import UserError
from fape.data import faces
# the face-box conventions (--assume-cropped inset, Haar -> HOG-like box, blank threshold) live beside
# the crops that share them
from fape.data.faces import BLANK_STD, haar_to_hog, inset_box
from fape.data.format import NUM_LANDMARKS, load_image, read_index, update_landmarks
from fape.utils.io import atomic_save_npy, atomic_write_json

BACKENDS = ("dlib", "face-alignment")
PARTIAL_DIR = ".landmarks_partial"
REPORT_FILE = "landmarks_report.json"
# Which detector gave the face box, stored per image as int8 codes in the partial folder.
DETECTORS = ("none", "hog", "haar", "whole-image")

# FAN weights as face_alignment names them in the torch hub cache: the 1.4+/1.5 state dict, then
# the TorchScript archives of face_alignment 1.2/1.3 (loaded with torch.jit.load).
FAN_WEIGHT_NAMES = ("2DFAN4-11f355bf06.pth.tar", "2DFAN4_1.6-c827573f02.zip", "2DFAN4-cd938726ad.zip")
FAN_URL = "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar"


# ---------------------------------------------------------------- dlib backend
MODES = ("detect", "cropped")  # find the face first, or take the fixed inset of a cropped image


def as_hwc(images) -> np.ndarray:
    """uint8 ``[B, H, W, C]`` or ``[B, C, H, W]`` (array or tensor) -> uint8 ``[B, H, W, C]``."""
    a = np.asarray(images.cpu() if hasattr(images, "cpu") else images)
    if a.dtype != np.uint8:
        raise ValueError("landmark detection takes uint8 images")
    if a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)
    return a


def landmarks_of_images(images, mode: str = "detect", upsample: int = 2) -> np.ndarray:
    """dlib landmarks of in-memory images: uint8 ``[B, H, W, C]`` (or ``[B, C, H, W]``) ->
    ``[B, 68, 2]`` pixels, NaN where no face. ``mode="cropped"`` skips detection (the fixed inset
    of ``--assume-cropped``), for small aligned crops on which HOG rarely fires."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    imgs = as_hwc(images)
    lm = DlibLandmarker(assume_cropped=mode == "cropped", upsample=upsample)
    return np.stack([lm(im)[0] for im in imgs]).astype(np.float32)


class DlibLandmarker:
    """Image -> ``([68, 2] float32 pixels, detector code)``; code 0 means no face (landmarks NaN)."""

    def __init__(self, assume_cropped: bool = False, upsample: int = 1):
        self.assume_cropped = assume_cropped
        self.upsample = upsample
        faces.shape_predictor()  # load now: a missing model file fails before the first batch

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        gray = faces.to_gray(image)
        box, code = face_box(gray, self.assume_cropped, self.upsample)
        if box is None:
            return np.full((NUM_LANDMARKS, 2), np.nan, np.float32), 0
        return faces.landmarks_in_box(gray, box), code


def face_box(gray: np.ndarray, assume_cropped: bool, upsample: int) -> tuple[np.ndarray | None, int]:
    """The face box ``[4]`` pixels for the shape predictor and its detector code (0: none)."""
    h, w = gray.shape
    if gray.std() < BLANK_STD:  # --assume-cropped would otherwise "find" a face on a blank image
        return None, 0
    if assume_cropped:
        return inset_box(h, w), DETECTORS.index("whole-image")
    boxes = faces.detect_faces(gray, "dlib", min_size=0, upsample=upsample)
    if len(boxes):
        return boxes[0], DETECTORS.index("hog")
    boxes = faces.detect_faces(gray, "haar")
    if len(boxes):
        return haar_to_hog(boxes[0]), DETECTORS.index("haar")
    return None, 0


# ---------------------------------------------------------------- face-alignment backend
def fan_weight_candidates(weights: str | None = None) -> list[Path]:
    """Every path looked at for the FAN weights: ``--weights``, else the torch hub cache."""
    if weights is not None:
        return [Path(weights).expanduser()]
    import torch

    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [hub / name for name in FAN_WEIGHT_NAMES]


def find_fan_weights(weights: str | None = None) -> Path:
    from fape.utils.weights import first_file

    candidates = fan_weight_candidates(weights)
    return first_file(candidates, "face-alignment weights",
                      f"Download {FAN_URL} on a machine with internet and copy it to {candidates[0]}, "
                      "or pass --weights PATH; or use --backend dlib", error=UserError)


def load_fan(path: Path, device: str):
    """A FAN network from a state dict (face_alignment 1.4+) or a TorchScript archive (1.2/1.3)."""
    import torch

    if zipfile.is_zipfile(path) and any(n.endswith("constants.pkl") or "/code/" in n
                                        for n in zipfile.ZipFile(path).namelist()):
        return torch.jit.load(str(path), map_location=device).eval()
    from face_alignment.models import FAN

    net = FAN(4)
    try:
        net.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    except Exception as e:  # torch raises several types for foreign or truncated files
        raise UserError(f"{path} is not a 2DFAN-4 state dict nor a TorchScript FAN: {e}") from None
    return net.to(device).eval()


class FaceAlignmentLandmarker:
    """face_alignment's FAN on dlib/Haar boxes (so the S3FD detector weights are not needed)."""

    def __init__(self, assume_cropped: bool = False, upsample: int = 1, device: str = "cpu",
                 weights: str | None = None):
        self.assume_cropped = assume_cropped
        self.upsample = upsample
        self.model = _face_alignment_with(load_fan(find_fan_weights(weights), device), device)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        box, code = face_box(faces.to_gray(image), self.assume_cropped, self.upsample)
        if box is None:
            return np.full((NUM_LANDMARKS, 2), np.nan, np.float32), 0
        # Python floats: face_alignment's transform cannot assign numpy float32 into a tensor
        found = self.model.get_landmarks_from_image(faces.to_rgb(image), detected_faces=[box.tolist()])
        return np.asarray(found[0], np.float32)[:, :2], code


def _face_alignment_with(net, device: str):
    """A ``face_alignment.FaceAlignment`` running ``net``, built without any download: the "folder"
    detector needs no weights (we pass boxes) and ``_load_native`` returns the network we loaded."""
    import face_alignment

    class _Local(face_alignment.FaceAlignment):
        def _load_native(self, *args, **kwargs):
            return net

    return _Local(face_alignment.LandmarksType.TWO_D, device=device, face_detector="folder", compile=False)


def make_landmarker(backend: str, assume_cropped: bool, upsample: int = 1, device: str = "cpu",
                    weights: str | None = None):
    if backend == "dlib":
        return DlibLandmarker(assume_cropped, upsample)
    if backend == "face-alignment":
        return FaceAlignmentLandmarker(assume_cropped, upsample, device, weights)
    raise UserError(f"unknown landmark backend {backend!r}; choose one of {', '.join(BACKENDS)}")


# ---------------------------------------------------------------- resumable dataset run
def detect_landmarks(index_root: str | Path, backend: str = "dlib", assume_cropped: bool = False,
                     batch_size: int = 256, upsample: int = 1, device: str = "cpu",
                     weights: str | None = None, redo: bool = False, progress: bool = True) -> dict:
    """Landmarks for every image of the dataset at ``index_root``; returns the report."""
    root = Path(index_root)
    idx = read_index(root)
    n = len(idx)
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    options = {"backend": backend, "assume_cropped": bool(assume_cropped), "upsample": int(upsample),
               "weights": weights, "manifest_sha256": idx.info.manifest_sha256, "num_images": n}
    state = _load_partial(root, options, redo)
    landmarker = make_landmarker(backend, assume_cropped, upsample, device, weights)
    from tqdm import tqdm

    bar = tqdm(total=n, initial=state["done"], desc=f"landmarks ({backend})", unit="img", disable=not progress)
    while state["done"] < n:
        start = time.perf_counter()
        stop = min(n, state["done"] + batch_size)
        for i in range(state["done"], stop):
            state["landmarks"][i], state["detector"][i] = landmarker(load_image(idx.image_path(i)))
        state["elapsed_s"] += time.perf_counter() - start
        state["done"] = stop
        _save_partial(root, state, options)
        bar.update(stop - bar.n)
    bar.close()
    return _finish(root, idx, state, options)


def _partial(root: Path) -> Path:
    return root / PARTIAL_DIR


def _load_partial(root: Path, options: dict, redo: bool) -> dict:
    """The saved state of an interrupted run with the same options, else a fresh state."""
    n = options["num_images"]
    fresh = {"done": 0, "elapsed_s": 0.0, "detector": np.zeros(n, np.int8),
             "landmarks": np.full((n, NUM_LANDMARKS, 2), np.nan, np.float32)}  # [N, 68, 2] pixels
    part = _partial(root)
    if redo or not (part / "state.json").is_file():
        shutil.rmtree(part, ignore_errors=True)
        return fresh
    saved = json.loads((part / "state.json").read_text())
    if saved["options"] != options:
        diff = {k: (saved["options"].get(k), v) for k, v in options.items() if saved["options"].get(k) != v}
        raise UserError(f"{part} holds an interrupted run with other options (saved, now): {diff}; "
                        "rerun with the same options to resume, or add --redo to start again")
    return {"done": int(saved["done"]), "elapsed_s": float(saved["elapsed_s"]),
            "detector": np.load(part / "detector.npy"), "landmarks": np.load(part / "landmarks.npy")}


def _save_partial(root: Path, state: dict, options: dict) -> None:
    """Arrays first, then state.json: the JSON's ``done`` never counts rows not yet on disk."""
    part = _partial(root)
    atomic_save_npy(part / "landmarks.npy", state["landmarks"])
    atomic_save_npy(part / "detector.npy", state["detector"])
    atomic_write_json(part / "state.json", {"done": state["done"], "elapsed_s": state["elapsed_s"],
                                            "options": options})


def _finish(root: Path, idx, state: dict, options: dict) -> dict:
    ok = state["detector"] > 0  # [N] bool
    report = build_report(idx.manifest, idx.info.label_names, state["detector"], state["elapsed_s"], options)
    update_landmarks(root, state["landmarks"], ok, options["backend"], report)
    atomic_write_json(root / REPORT_FILE, report)
    shutil.rmtree(_partial(root), ignore_errors=True)
    return report


def build_report(manifest, label_names: list[str], detector: np.ndarray, elapsed_s: float, options: dict) -> dict:
    """Per class and overall: images, faces found, rate; images per detector; time."""
    found = detector > 0
    labels = manifest["label"].to_numpy()
    per_class = {}
    for c, name in enumerate(label_names):
        sel = labels == c
        per_class[name] = _rate(int(sel.sum()), int(found[sel].sum()))
    n = len(detector)
    return {
        "backend": options["backend"],
        "assume_cropped": options["assume_cropped"],
        "upsample": options["upsample"],
        "overall": _rate(n, int(found.sum())),
        "per_class": per_class,
        "detectors": {name: int((detector == code).sum()) for code, name in enumerate(DETECTORS)},
        "elapsed_s": round(elapsed_s, 3),
        "ms_per_image": round(1000 * elapsed_s / max(n, 1), 3),
    }


def _rate(images: int, faces_found: int) -> dict:
    return {"images": images, "faces": faces_found, "rate": round(faces_found / images, 4) if images else None}


def format_report(report: dict) -> str:
    rows = [(name, r) for name, r in report["per_class"].items()] + [("overall", report["overall"])]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'class':<{width}}  {'images':>6}  {'faces':>6}  {'rate':>6}"]
    for name, r in rows:
        rate = "-" if r["rate"] is None else f"{100 * r['rate']:.1f}%"
        lines.append(f"{name:<{width}}  {r['images']:>6}  {r['faces']:>6}  {rate:>6}")
    used = ", ".join(f"{k} {v}" for k, v in report["detectors"].items() if v)
    lines.append(f"detector: {used}; {report['elapsed_s']:.1f} s ({report['ms_per_image']:.1f} ms/image)")
    return "\n".join(lines)


def cli_landmarks(args, overrides) -> int:
    if overrides:
        raise UserError(f"fape data landmarks takes no config overrides, got {overrides}")
    report = detect_landmarks(args.dir, backend=args.backend, assume_cropped=args.assume_cropped,
                              batch_size=args.batch_size, upsample=args.upsample, device=args.device,
                              weights=args.weights, redo=args.redo)
    print(format_report(report))
    print(f"wrote {Path(args.dir) / 'landmarks.npy'}, landmarks_ok.npy and {Path(args.dir) / REPORT_FILE}")
    return 0
