"""Drawing predictions on a frame: a box per face, its label and probability, and a bar per class."""
from __future__ import annotations

import cv2
import numpy as np

BOX = (40, 220, 40)  # RGB
BAR = (235, 170, 30)
TEXT = (255, 255, 255)


def draw(frame: np.ndarray, faces: list[dict], label_names: list[str]) -> np.ndarray:
    """A copy of uint8 RGB ``frame`` with each face's box, top label and class-probability bars."""
    out = np.ascontiguousarray(frame.copy())
    h, w = out.shape[:2]
    scale = max(0.35, min(1.0, h / 900))
    bar_h = max(3, int(round(8 * scale)))
    for f in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in f["box"])
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX, max(1, int(2 * scale + 0.5)))
        text = f"{f['label']} {f['prob']:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else y1 + th + 4
        cv2.rectangle(out, (x0, ty - th - base), (x0 + tw + 4, ty + base), BOX, -1)
        cv2.putText(out, text, (x0 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT, 1, cv2.LINE_AA)
        # one bar per class below the box (or inside it when the frame ends), length = probability
        width = max(20, x1 - x0)
        top = y1 + 4 if y1 + 4 + bar_h * len(label_names) < h else y1 - bar_h * len(label_names) - 4
        for k, name in enumerate(label_names):
            p = float(f["probs"][name])
            yk = top + k * bar_h
            cv2.rectangle(out, (x0, yk), (x0 + width, yk + bar_h - 1), (60, 60, 60), -1)
            cv2.rectangle(out, (x0, yk), (x0 + int(round(p * width)), yk + bar_h - 1), BAR, -1)
            if bar_h >= 7:
                cv2.putText(out, name[:3], (x0 + width + 3, yk + bar_h - 1), cv2.FONT_HERSHEY_PLAIN,
                            bar_h / 12, TEXT, 1, cv2.LINE_AA)
    return out
