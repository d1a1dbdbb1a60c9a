"""A fake webcam: a Y4M clip (the format Chromium's ``--use-file-for-fake-video-capture`` plays
in a loop) made from still face images, so the game can be played and tested without a camera."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

JAFFE_CODES = ("AN", "DI", "FE", "HA", "SA", "SU", "NE")  # the FER2013 label order


def yuv420(rgb: np.ndarray) -> bytes:
    """uint8 RGB ``[H, W, 3]`` (even H, W) -> planar Y, Cb, Cr with chroma averaged over 2x2 (JPEG range)."""
    from PIL import Image

    ycc = np.asarray(Image.fromarray(rgb).convert("YCbCr"), np.float32)  # [H, W, 3]
    h, w = rgb.shape[:2]
    chroma = ycc[:, :, 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))  # [H/2, W/2, 2]
    planes = [ycc[:, :, 0], chroma[:, :, 0], chroma[:, :, 1]]
    return b"".join(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in planes)


def write_y4m(path: str | Path, frames: Iterable[np.ndarray], fps: int) -> int:
    """Write uint8 RGB frames of one even size as a 4:2:0 Y4M file; returns the frame count."""
    path = Path(path)
    n = 0
    with open(path, "wb") as f:
        for frame in frames:
            if n == 0:
                h, w = frame.shape[:2]
                if h % 2 or w % 2:
                    raise ValueError(f"Y4M 4:2:0 needs an even frame size, got {w}x{h}")
                f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            f.write(b"FRAME\n" + yuv420(frame))
            n += 1
    return n


def face_frame(face: np.ndarray, size: tuple[int, int] = (320, 240), face_side: int = 200) -> np.ndarray:
    """A face image centred on a gray ``size`` (width, height) frame, scaled to ``face_side`` px."""
    from PIL import Image

    w, h = size
    canvas = np.full((h, w, 3), 120, np.uint8)
    img = np.asarray(Image.fromarray(face).convert("RGB").resize((face_side, face_side), Image.BILINEAR))
    y, x = (h - face_side) // 2, (w - face_side) // 2
    canvas[y:y + face_side, x:x + face_side] = img
    return canvas


def jaffe_faces(jaffe: str | Path, subject: str, take: int = 0) -> list[tuple[str, np.ndarray]]:
    """One image per expression of a JAFFE subject, in the FER2013 label order: take ``take`` (0 =
    the first) of each expression, or its last take when it has fewer (JAFFE has 2-4 a subject)."""
    from PIL import Image

    out = []
    for code in JAFFE_CODES:
        files = sorted(Path(jaffe).glob(f"{subject}.{code}*.tiff"))
        if files:
            with Image.open(files[min(take, len(files) - 1)]) as im:
                out.append((code, np.asarray(im.convert("RGB"))))
    return out


CKPLUS_FOLDERS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happy", "sad": "sadness",
                  "surprise": "surprise"}  # FER2013 label -> CK+48 folder; CK+48 has no neutral


def ckplus_faces(ckplus48: str | Path, subject: str) -> list[tuple[str, np.ndarray]]:
    """One image per expression of a CK+48 subject (e.g. ``S011``): the last frame of its first
    sequence of that expression, in the FER2013 label order (no neutral, no contempt)."""
    from PIL import Image

    out = []
    for name, folder in CKPLUS_FOLDERS.items():
        files = sorted(Path(ckplus48, folder).glob(f"{subject}_*.png"))
        if files:
            first_seq = [f for f in files if f.name.split("_")[1] == files[0].name.split("_")[1]]
            with Image.open(first_seq[-1]) as im:
                out.append((name, np.asarray(im.convert("RGB"))))
    return out


def clip_frames(faces: list[np.ndarray], seconds: float | list[float], fps: int, size=(320, 240)) -> list[np.ndarray]:
    """Each face held ``seconds`` (one value, or one per face) at ``fps``, in order."""
    secs = [seconds] * len(faces) if np.isscalar(seconds) else list(seconds)
    return [f for face, s in zip(faces, secs) for f in [face_frame(face, size)] * max(1, round(s * fps))]
