"""``fape predict``: detection, preprocessing and classification of every face of every frame,
with per-stage timings, a JSONL line per frame, annotated outputs and a timing summary.

Timings (milliseconds, ``time.perf_counter``): ``detect`` per frame (detection or tracking,
including the gray conversion and any downscaling), ``preprocess`` and ``classify`` per face
(the frame's batch time divided by its faces, as the MobileNet paper reports them), ``frame``
for the whole frame (annotation excluded).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fape.errors import UserError
from fape.utils.io import claim_dir
from fape.predict.backends import Classifier
from fape.predict.detect import DetectOptions, detect, gray_of
from fape.data.preprocess import crop_faces, to_input
from fape.predict.track import Tracker

DEFAULT_MODEL = "fanet_fer2013_48"


@dataclass(frozen=True)
class PredictOptions:
    detect: DetectOptions = DetectOptions()
    detect_every: int = 1  # run the detector on every N-th frame; track faces in between
    smooth: float = 0.0  # per-track EMA of probabilities across frames (0 = each frame alone)


def shipped_model(name: str = DEFAULT_MODEL) -> Path:
    """A model shipped inside the package (``fape/checkpoints/NAME``, package data), so it is found
    after a plain ``pip install`` as well as in a checkout (where ``checkpoints/NAME`` links to it)."""
    from importlib.resources import files

    return Path(str(files("fape") / "checkpoints" / name))


def default_model() -> Path:
    """``$FAPE_MODEL``, else the model shipped in the package."""
    env = os.environ.get("FAPE_MODEL")
    path = Path(env) if env else shipped_model()
    if not path.exists():
        raise UserError(f"no model given and the default model is missing: looked for {path} "
                        f"(pass --model RUN_OR_FILE or set FAPE_MODEL)")
    return path


class Predictor:
    """Frame in, faces out. Holds the tracker, so one instance follows one stream."""

    def __init__(self, clf: Classifier, opts: PredictOptions = PredictOptions()):
        if opts.detect_every < 1:
            raise UserError(f"--detect-every must be at least 1, got {opts.detect_every}")
        if not 0 <= opts.smooth < 1:
            raise UserError(f"--smooth must be in [0, 1), got {opts.smooth}")
        self.clf, self.opts = clf, opts
        self.tracker = Tracker()
        self.frames_seen = 0

    def __call__(self, frame: np.ndarray) -> dict:
        """uint8 RGB ``[H, W, 3]`` -> ``{"faces": [...], "detected": bool, "timings_ms": {...}}``."""
        t0 = time.perf_counter()
        gray = gray_of(frame)
        detected = self.frames_seen % self.opts.detect_every == 0
        if detected:
            tracks = self.tracker.update(gray, detect(frame, gray, self.opts.detect))
        else:
            tracks = self.tracker.follow(gray)
        self.frames_seen += 1
        boxes = np.array([t.box for t in tracks], np.float32).reshape(-1, 4)  # [K, 4] pixels
        t1 = time.perf_counter()
        crops = crop_faces(frame, boxes, self.clf.preprocess, self.opts.detect.method)  # [K, S, S, C] uint8
        x = to_input(crops, self.clf.preprocess)  # [K, C, S, S]
        t2 = time.perf_counter()
        probs = self.clf.probs(x)  # [K, classes]
        t3 = time.perf_counter()
        faces = []
        for t, p in zip(tracks, probs):
            if self.opts.smooth and t.probs is not None:
                p = self.opts.smooth * t.probs + (1 - self.opts.smooth) * p
            t.probs = p
            k = int(np.argmax(p))
            faces.append({"id": t.id, "box": [round(float(v), 1) for v in t.box],
                          "label": self.clf.label_names[k], "prob": round(float(p[k]), 4),
                          "probs": {n: round(float(v), 4) for n, v in zip(self.clf.label_names, p)}})
        n = max(len(faces), 1)
        timings = {"detect": 1e3 * (t1 - t0), "preprocess_per_face": 1e3 * (t2 - t1) / n if faces else None,
                   "classify_per_face": 1e3 * (t3 - t2) / n if faces else None, "frame": 1e3 * (t3 - t0)}
        return {"faces": faces, "detected": detected,
                "timings_ms": {k: (round(v, 3) if v is not None else None) for k, v in timings.items()}}


def timing_summary(records: list[dict]) -> dict:
    """Median, 95th percentile and mean of each stage over the frames (per-face stages over frames
    with faces), and frames per second = 1000 / mean frame ms (throughput: with detection every
    N-th frame the median is a tracked frame's time and would overstate it)."""
    out = {}
    for key in ("detect", "preprocess_per_face", "classify_per_face", "frame"):
        vals = np.array([r["timings_ms"][key] for r in records if r.get("timings_ms", {}).get(key) is not None])
        out[key] = ({"median_ms": round(float(np.median(vals)), 3), "p95_ms": round(float(np.percentile(vals, 95)), 3),
                     "mean_ms": round(float(vals.mean()), 3), "n": int(vals.size)} if vals.size else None)
    if out["frame"]:
        out["fps"] = round(1e3 / max(out["frame"]["mean_ms"], 1e-9), 1)
    return out


def run(source: str, clf: Classifier, opts: PredictOptions, out: Path | None, annotate: bool = True,
        max_frames: int = 0, progress: bool = True, echo=print) -> dict:
    """Predict on every frame of ``source``; write ``out/predictions.jsonl``, annotated images
    (``out/annotated/``) or video (``out/annotated.mp4``) and ``out/summary.json``."""
    import cv2
    from tqdm import tqdm

    from fape.predict.annotate import draw
    from fape.predict.sources import open_source
    from fape.utils.io import atomic_write_bytes, atomic_write_json, json_text

    src = open_source(source, max_frames)
    predictor = Predictor(clf, opts)
    records, failures, no_face = [], [], 0
    log = writer = None
    video_tmp = None
    if out is not None:  # a user-named --out: only an empty folder or an earlier prediction's is written into
        claim_dir(out, ("predictions.jsonl", "predictions.jsonl.partial", "summary.json"))
        log = open(out / "predictions.jsonl.partial", "w")
    try:
        for fr in tqdm(src.frames, disable=not progress, unit="frame", desc=f"predict {src.kind}", dynamic_ncols=True):
            rec = {"frame": fr.index, "name": fr.name}
            if fr.time_s is not None:
                rec["time_s"] = round(fr.time_s, 4)
            if fr.image is None:
                rec["error"] = fr.error
                failures.append({"name": fr.name, "error": fr.error})
            else:
                rec.update(predictor(fr.image))
                rec["size"] = [int(fr.image.shape[1]), int(fr.image.shape[0])]
                no_face += not rec["faces"]
                if annotate and out is not None:
                    img = cv2.cvtColor(draw(fr.image, rec["faces"], clf.label_names), cv2.COLOR_RGB2BGR)
                    if src.kind in ("video", "camera"):
                        if writer is None:
                            video_tmp = out / "annotated.partial.mp4"
                            fps = src.fps if src.fps > 0 else 25.0
                            writer = cv2.VideoWriter(str(video_tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                                     (img.shape[1], img.shape[0]))
                        writer.write(img)
                    else:
                        dst = (out / "annotated" / fr.name).with_suffix(".jpg")
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        atomic_write_bytes(dst, cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes())
            records.append(rec)
            if log is not None:
                log.write(json_text(rec) + "\n")
                log.flush()
    finally:  # an interrupted run keeps every complete line and the video so far
        if log is not None:
            log.close()
            os.replace(out / "predictions.jsonl.partial", out / "predictions.jsonl")
        if writer is not None:
            writer.release()
            os.replace(video_tmp, out / "annotated.mp4")
    summary = {"source": src.name, "kind": src.kind, "frames": len(records), "failed": failures,
               "frames_without_faces": no_face, "faces": sum(len(r.get("faces", [])) for r in records),
               "model": str(clf.source), "backend": clf.backend, "label_names": clf.label_names,
               "preprocess": clf.preprocess.to_dict(),
               "options": {"detector": opts.detect.method, "detect_scale": opts.detect.scale,
                           "min_face": opts.detect.min_face, "detect_every": opts.detect_every, "smooth": opts.smooth},
               "timings": timing_summary([r for r in records if "timings_ms" in r])}
    if out is not None:
        atomic_write_json(out / "summary.json", summary)
    summary["last"] = records[-1] if records else {"faces": []}  # not saved: the JSONL has it
    return summary


def cli_predict(args, overrides) -> int:
    import torch

    from fape.predict.backends import load_classifier
    from fape.utils.runs import next_run_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    model = Path(args.model) if args.model else default_model()
    clf = load_classifier(model, args.backend, args.device, args.threads or None)
    opts = PredictOptions(DetectOptions(args.detector, args.detect_scale, args.min_face).check(),
                          args.detect_every, args.smooth)
    out = None if args.no_save else Path(args.out) if args.out else next_run_dir(args.runs_dir, "predict")
    s = run(args.source, clf, opts, out, annotate=not args.no_annotate, max_frames=args.max_frames,
            progress=not args.quiet)
    if s["kind"] == "image":
        for f in s["last"]["faces"]:
            print(f"face {f['id']} at {f['box']}: {f['label']} ({f['prob']:.2f})")
        if not s["last"]["faces"]:
            print(f"no face found in {s['source']} (detector {opts.detect.method}, min face {opts.detect.min_face} px)")
    t = s["timings"]
    fmt = lambda k: (f"{t[k]['median_ms']:.2f} / {t[k]['p95_ms']:.2f}" if t.get(k) else "-")  # noqa: E731
    print(f"{s['frames']} frame(s), {s['faces']} face(s), {len(s['failed'])} unreadable, "
          f"{s['frames_without_faces']} without faces; ms median / p95: detect {fmt('detect')} per frame, "
          f"preprocess {fmt('preprocess_per_face')} and classify {fmt('classify_per_face')} per face"
          + (f"; {t['fps']} frames/s" if t.get("fps") else ""))
    for f in s["failed"][:5]:
        print(f"  failed: {f['error']}")
    if out is not None:
        print(f"predictions: {out / 'predictions.jsonl'}  summary: {out / 'summary.json'}")
    return 0
