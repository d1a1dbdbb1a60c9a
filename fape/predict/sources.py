"""Frames from an image, a folder of images, a video file or a camera (``camera:N``).

Every frame is uint8 RGB ``[H, W, 3]``. An unreadable image inside a folder is yielded as an
error (the run records it and carries on); a single unreadable image, a video without frames or
a camera that cannot be opened is a ``UserError`` naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from fape.errors import UserError

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


@dataclass
class Frame:
    index: int
    name: str  # image path relative to the folder, or "frame_000123"
    image: np.ndarray | None  # uint8 RGB [H, W, 3]; None when unreadable
    error: str = ""
    time_s: float | None = None  # position in a video


@dataclass
class Source:
    kind: str  # image | folder | video | camera
    name: str
    fps: float  # videos and cameras; 0 for images
    frames: Iterator[Frame]


def read_image(path: Path) -> np.ndarray:
    """Any image OpenCV reads (8-bit, any channels) -> uint8 RGB; ``ValueError`` when unreadable."""
    data = np.fromfile(str(path), np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if img is None:
        raise ValueError(f"cannot read image {path} (missing, empty or not an image OpenCV can decode)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def open_source(spec: str, max_frames: int = 0) -> Source:
    if spec.startswith("camera:"):
        return _capture(spec, _camera_index(spec), "camera", max_frames)
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXT)
        if not files:
            raise UserError(f"no images in folder {path} (looked for {', '.join(sorted(IMAGE_EXT))})")
        return Source("folder", str(path), 0.0, _folder(path, files[: max_frames or None]))
    if not path.exists():
        raise UserError(f"input not found: {path}")
    ext = path.suffix.lower()
    if ext in VIDEO_EXT:
        return _capture(str(path), str(path), "video", max_frames)
    if ext in IMAGE_EXT:
        try:
            img = read_image(path)
        except ValueError as e:
            raise UserError(str(e)) from None
        return Source("image", str(path), 0.0, iter([Frame(0, path.name, img)]))
    raise UserError(f"{path}: unknown input type {ext!r} (images: {', '.join(sorted(IMAGE_EXT))}; "
                    f"videos: {', '.join(sorted(VIDEO_EXT))}; cameras: camera:N)")


def _camera_index(spec: str) -> int:
    try:
        return int(spec.split(":", 1)[1])
    except ValueError:
        raise UserError(f"{spec!r}: a camera is camera:N with N a number, e.g. camera:0") from None


def _folder(root: Path, files: list[Path]) -> Iterator[Frame]:
    for i, f in enumerate(files):
        name = str(f.relative_to(root))
        try:
            yield Frame(i, name, read_image(f))
        except ValueError as e:
            yield Frame(i, name, None, str(e))


def _capture(name: str, device, kind: str, max_frames: int) -> Source:
    cap = cv2.VideoCapture(device)
    if not cap.isOpened():
        cap.release()
        what = f"camera {device} cannot be opened (not connected, busy, or no permission)" if kind == "camera" \
            else f"cannot open video {name} (unsupported container or codec for OpenCV)"
        raise UserError(what)
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise UserError(f"{kind} {name} gives no frames" + (" (empty or undecodable video)" if kind == "video" else ""))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def frames() -> Iterator[Frame]:
        img, i = first, 0
        try:
            while img is not None and (not max_frames or i < max_frames):
                t = i / fps if fps > 0 else None
                yield Frame(i, f"frame_{i:06d}", cv2.cvtColor(img, cv2.COLOR_BGR2RGB), time_s=t)
                i += 1
                ok, img = cap.read()
                if not ok:
                    break
        finally:
            cap.release()

    return Source(kind, str(name), fps, frames())
