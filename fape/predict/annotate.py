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
    k = len(label_names)
    for f in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in f["box"])
        side = max(1, y1 - y0)
        scale = float(np.clip(side / 220, 0.35, 1.0))  # text scale follows the face size
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX, max(1, int(round(2 * scale))))
        text = f"{f['label']} {f['prob']:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else y1 + th + 4
        cv2.rectangle(out, (x0, ty - th - base), (x0 + tw + 4, ty + base), BOX, -1)
        cv2.putText(out, text, (x0 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT, 1, cv2.LINE_AA)
        # one bar per class (length = probability) beside the box: right if it fits, else left, else inside
        bar_h = int(np.clip(side / (2 * k), 8, 14))  # 8 px at least: room for the class name
        width = int(np.clip(0.5 * side, 30, 120))
        inside = x1 + 4 + width + 30 >= w and x0 - width - 34 < 0
        bx = x0 + 2 if inside else (x1 + 4 if x1 + 4 + width + 30 < w else x0 - width - 34)
        by = y1 - k * bar_h - 2 if inside else y0  # inside: along the chin, off the eyes
        for j, name in enumerate(label_names):
            p = float(f["probs"][name])
            yj = by + j * bar_h
            cv2.rectangle(out, (bx, yj), (bx + width, yj + bar_h - 2), (60, 60, 60), -1)
            cv2.rectangle(out, (bx, yj), (bx + int(round(p * width)), yj + bar_h - 2), BAR, -1)
            for color, thick in (((0, 0, 0), 3), (TEXT, 1)):  # outlined: legible on any background
                cv2.putText(out, name[:3], (bx + width + 3, yj + bar_h - 2), cv2.FONT_HERSHEY_PLAIN,
                            bar_h / 13, color, thick, cv2.LINE_AA)
    return out
