"""Real-time expression recognition: per-stage milliseconds (per face: medians; detection and
whole frame: means) and frames per second (1000 / mean frame ms) of ``fape predict``'s pipeline on 640x480 videos of real faces, PyTorch against ONNX Runtime, with
the real-time options (a minimum face size, downscaled detection, tracking between detections) against the plain
pipeline of the MobileNet paper (Haar detection on every full frame) measured in the same run.

The videos are made here: JAFFE faces (256x256, imported with fape's adapter) pasted onto a
640x480 background at 1, 3 and 5 faces, each drifting a few pixels per frame, written as MP4 and
decoded back. Detection recall is measured against each face's reference box (dlib's HOG
detector on the source image, mapped into the frame; a face counts as found when a predicted box
overlaps it with IoU >= 0.4), so that speed is not bought by missing faces; false positives per
frame too. Accuracy against the JAFFE labels is printed for information only (the model is
trained on FER2013; JAFFE is another dataset).

    python benchmarks/realtime.py [--model checkpoints/fanet_fer2013_48] [--jaffe ../shared/data/jaffe]
                                  [--frames 90] [--faces 1 3 5] [--threads 2] [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from fape.data.adapters import import_dataset
from fape.data.faces import detect_faces
from fape.data.format import load_image, read_index
from fape.predict.backends import load_classifier
from fape.predict.detect import DetectOptions
from fape.predict.run import PredictOptions, Predictor, default_model, timing_summary
from fape.predict.track import iou

W, H = 640, 480
TILE = {1: 240, 2: 200, 3: 180, 4: 150, 5: 150}  # px side of each pasted 256x256 JAFFE image
PAPER_CLASSIFY_MS = 3.57  # MobileNet paper, per face, Quadro K4200 GPU
CONFIGS = [("every frame, full size (reference)", DetectOptions(), 1),
           ("min face 64 px", DetectOptions(min_face=64), 1),
           ("detect at 0.5x", DetectOptions(scale=0.5), 1),
           ("detect at 0.5x every 3rd frame + tracking", DetectOptions(scale=0.5), 3),
           ("0.5x, min face 64 px, every 3rd + tracking", DetectOptions(scale=0.5, min_face=64), 3)]


def faces_with_boxes(jaffe: Path, tmp: Path):
    idx = read_index(import_dataset("jaffe", jaffe, tmp / "jaffe"))
    out = []
    for i, row in idx.manifest.iterrows():
        img = load_image(idx.root / row["path"])  # [256, 256, 1 or 3]
        rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
        boxes = detect_faces(rgb, "dlib")
        if len(boxes):
            out.append((rgb, boxes[0], idx.info.label_names[int(row["label"])], row["subject"]))
    return out


def make_video(path: Path, faces, n_faces: int, frames: int, rng) -> list[list[tuple[np.ndarray, str]]]:
    """Writes the MP4; returns per frame the reference boxes (frame pixels) and labels."""
    by_subject = {}
    for f in faces:
        by_subject.setdefault(f[3], []).append(f)
    subjects = rng.choice(sorted(by_subject), n_faces, replace=False)
    picks = [by_subject[s][rng.integers(len(by_subject[s]))] for s in subjects]
    side = TILE[n_faces]
    cols = min(n_faces, 3)
    rows = (n_faces + cols - 1) // cols
    gx, gy = (W - cols * side) / (cols + 1), (H - rows * side) / (rows + 1)
    yy, xx = np.mgrid[0:H, 0:W]
    bg = (60 + 60 * np.sin(xx / 70.0) * np.cos(yy / 50.0) + rng.normal(0, 6, (H, W))).clip(0, 255)
    bg = np.repeat(bg[..., None], 3, axis=2).astype(np.uint8)
    tiles = [cv2.resize(p[0], (side, side), interpolation=cv2.INTER_AREA) for p in picks]
    phase = rng.uniform(0, 2 * np.pi, (n_faces, 2))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (W, H))
    truth = []
    for t in range(frames):
        frame, gt = bg.copy(), []
        for k, (tile, p) in enumerate(zip(tiles, picks)):
            r, c = divmod(k, cols)
            dx, dy = 0.8 * min(gx, 12) * np.sin(t / 9 + phase[k])  # drifting, within the gap between tiles
            x = int(round(gx + c * (side + gx) + dx))
            y = int(round(gy + r * (side + gy) + dy))
            frame[y:y + side, x:x + side] = tile
            gt.append((p[1] * side / 256 + np.array([x, y, x, y], np.float32), p[2]))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        truth.append(gt)
    writer.release()
    return truth


def decode(path: Path) -> tuple[list[np.ndarray], float]:
    cap, frames, times = cv2.VideoCapture(str(path)), [], []
    while True:
        t0 = time.perf_counter()
        ok, img = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        times.append(time.perf_counter() - t0)
    cap.release()
    return frames, 1e3 * float(np.median(times))


def measure(frames, truth, clf, det: DetectOptions, every: int) -> dict:
    pred = Predictor(clf, PredictOptions(det, every))
    recs = [pred(f) for f in frames]
    found = total = fp = correct = 0
    for rec, gt in zip(recs, truth):
        boxes = np.array([f["box"] for f in rec["faces"]], np.float32).reshape(-1, 4)
        m = iou(np.array([g[0] for g in gt]), boxes) if len(boxes) else np.zeros((len(gt), 0))
        total += len(gt)
        hit = m.max(1) >= 0.4 if m.size else np.zeros(len(gt), bool)
        found += int(hit.sum())
        used = set(int(j) for j in m.argmax(1)[hit]) if m.size else set()
        fp += len(boxes) - len(used)
        for g, ok, j in zip(gt, hit, m.argmax(1) if m.size else [0] * len(gt)):
            correct += bool(ok) and rec["faces"][int(j)]["label"] == g[1]
    t = timing_summary(recs)
    return {"detect_ms": t["detect"]["mean_ms"], "preprocess_ms_per_face": t["preprocess_per_face"]["median_ms"],
            "classify_ms_per_face": t["classify_per_face"]["median_ms"], "frame_ms": t["frame"]["mean_ms"],
            "frame_p95_ms": t["frame"]["p95_ms"], "fps": t["fps"],
            "recall": found / total, "false_pos_per_frame": fp / len(recs), "acc_on_found": correct / max(found, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="default: the shipped model")
    ap.add_argument("--jaffe", default=str(Path(__file__).resolve().parents[2] / "shared/data/jaffe"))
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--faces", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the results as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    model = Path(args.model) if args.model else default_model()
    backends = {"pytorch": load_classifier(model, "torch"), "onnxruntime": load_classifier(model, "onnx",
                                                                                          threads=args.threads)}
    rng = np.random.default_rng(args.seed)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        faces = faces_with_boxes(Path(args.jaffe), Path(tmp))
        print(f"model {model}; {len(faces)} JAFFE faces with a reference box; {args.frames} frames of {W}x{H}; "
              f"{args.threads} threads")
        print("| faces | backend | detection | detect ms/frame (mean) | preprocess ms/face | classify ms/face | "
              "frame ms mean / p95 | frames/s | ratio to reference | recall | false pos./frame | acc. (JAFFE, info) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n in args.faces:
            video = Path(tmp) / f"faces{n}.mp4"
            truth = make_video(video, faces, n, args.frames, rng)
            frames, decode_ms = decode(video)
            ref = None
            for bname, clf in backends.items():
                clf.probs(torch.zeros(n, clf.preprocess.channels, clf.preprocess.image_size,
                                      clf.preprocess.image_size))  # warm-up
                for cname, det, every in CONFIGS:
                    r = measure(frames, truth, clf, det, every)
                    ref = ref or r["fps"]
                    r.update(faces=n, backend=bname, detection=cname, decode_ms=decode_ms, ratio=r["fps"] / ref)
                    results.append(r)
                    print(f"| {n} | {bname} | {cname} | {r['detect_ms']:.2f} | {r['preprocess_ms_per_face']:.2f} | "
                          f"{r['classify_ms_per_face']:.2f} | {r['frame_ms']:.1f} / {r['frame_p95_ms']:.1f} | {r['fps']:.1f} | "
                          f"{r['ratio']:.2f}x | {r['recall']:.3f} | {r['false_pos_per_frame']:.2f} | "
                          f"{r['acc_on_found']:.3f} |", flush=True)
            print(f"  (video decode, not in frame ms: {decode_ms:.2f} ms/frame)")
    best1 = max((r for r in results if r["faces"] == 1), key=lambda r: r["fps"], default=None)
    fastest = min(r["classify_ms_per_face"] for r in results)
    print(f"aims: classify <= {PAPER_CLASSIFY_MS} ms/face: best {fastest:.2f} ms; >= 30 frames/s with one face: "
          + (f"best {best1['fps']:.1f} ({best1['backend']}, {best1['detection']}, recall {best1['recall']:.3f})"
             if best1 else "not measured"))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
