"""How FER2013 frames its faces, in terms of a detector box: the number behind
``fape.data.faces.CROP_ENLARGE`` (the square crop `fape predict` cuts around a detected face for
models trained on pre-cropped FER2013 images).

Each FER2013 training image (48x48) is upsampled 4x and given to the detector; for the images
where exactly one face is found, we record ``image side / longest box side`` (the enlargement
that reproduces the dataset's framing) and the box centre's offset from the image centre
(fraction of the side). Prints median and interquartile range.

    python tools/calibrate_crop.py data/fer2013 --n 1500 [--detector haar]
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from fape.data.faces import detect_faces
from fape.data.format import load_image, read_index


def measure(root: str, n: int, detector: str, seed: int = 0, upscale: int = 4) -> dict:
    idx = read_index(root)
    rows = np.flatnonzero((idx.manifest["split"] == "train").to_numpy()) if "split" in idx.manifest else \
        np.arange(len(idx.manifest))
    rows = np.random.default_rng(seed).choice(rows, min(n, len(rows)), replace=False)
    ratio, offset = [], []
    for i in rows:
        img = load_image(idx.root / idx.manifest["path"].iloc[i])  # [48, 48, 1] uint8
        side = img.shape[0] * upscale
        big = cv2.resize(img[..., 0], (side, side), interpolation=cv2.INTER_CUBIC)
        boxes = detect_faces(big, detector)
        if len(boxes) != 1:
            continue
        x0, y0, x1, y1 = boxes[0]
        ratio.append(side / max(x1 - x0, y1 - y0))
        offset.append(max(abs((x0 + x1) / 2 - side / 2), abs((y0 + y1) / 2 - side / 2)) / side)
    r, o = np.asarray(ratio), np.asarray(offset)
    return {"images": int(len(rows)), "one_face": int(len(r)), "median": float(np.median(r)),
            "q25": float(np.quantile(r, 0.25)), "q75": float(np.quantile(r, 0.75)),
            "median_centre_offset": float(np.median(o))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="FER2013 imported with `fape data import fer2013-folders`")
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--detector", default="haar", choices=["haar", "dlib"])
    args = ap.parse_args()
    m = measure(args.data, args.n, args.detector)
    print(f"{m['one_face']} of {m['images']} images with one {args.detector} face: image side / box side "
          f"median {m['median']:.3f} (IQR {m['q25']:.3f}-{m['q75']:.3f}); box centre off the image centre by a "
          f"median {100 * m['median_centre_offset']:.1f}% of the side")


if __name__ == "__main__":
    main()
