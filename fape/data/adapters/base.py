"""The import engine shared by every adapter.

An adapter only *scans* its layout into a :class:`Scan`: sorted :class:`Record` s (one per output
image, with its manifest row) and :class:`Skip` s (inputs it could not label). This module does the
rest: decode, optional face crop, resize, gray, PNG writing in a process pool, bad-file handling,
the manifest / landmarks / dataset.json, and ``import_report.json``, all inside ``atomic_dir``.
"""
from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from fape.data.format import (MAX_PIXELS, DatasetError, DatasetInfo, empty_landmarks, load_image, save_image,
                              write_index)
from fape.utils.io import atomic_dir, atomic_write_json
from fape.utils.procs import die_with_parent

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm", ".ppm"})
SERIAL_BELOW = 1000  # fewer records than this: a process pool costs more than it saves
CHUNK = 256  # records per pool task: amortises pickling of 48x48 jobs


@dataclass
class ImportOptions:
    image_size: int | None = None  # resize to image_size x image_size pixels
    gray: bool = False
    crop: str = "none"  # none | haar | dlib | mtcnn
    eye_crop: bool = False
    assume_cropped: bool = False  # with eye_crop: the images are face crops, landmarks in a fixed inset
    ckplus_frames: str = "last3"  # last | last3
    ckplus_neutral: bool = True  # ckplus: add the first frame of each labelled sequence as neutral
    skip_bad: bool = False
    max_pixels: int = MAX_PIXELS  # larger images are bad inputs (decompression bombs)
    overwrite: bool = False
    limit: int | None = None
    workers: int | None = None  # None: one per available core


@dataclass
class Record:
    """One output image. ``rel`` is the source's readable relative path (the ``source`` column)."""

    rel: str
    row: dict  # subject, expression, label, pose, sequence, frame and any extra columns
    file: Path | None = None  # image file to decode ...
    pixels: np.ndarray | None = None  # ... or uint8 [H, W] / [H, W, C] pixels (csv sources)
    landmarks: np.ndarray | None = None  # [68, 2] float32 (x, y) in source pixels
    out: str | None = None  # path under the dataset root; default images/<rel>.png

    def out_path(self) -> str:
        return self.out or str(PurePosixPath("images") / PurePosixPath(self.rel).with_suffix(".png"))


@dataclass
class Skip:
    source: str  # the file, folder or csv line at fault
    reason: str


@dataclass
class Scan:
    label_names: list[str]
    records: list[Record]
    skipped: list[Skip] = field(default_factory=list)
    pose_names: list[str] = field(default_factory=list)
    channels: int | None = None  # 1 / 3 forces a conversion; None keeps each source's own
    landmarks_source: str | None = None


@dataclass(frozen=True)
class Adapter:
    kind: str
    help: str
    scan: Callable[[Path, ImportOptions], Scan]


# ---------------------------------------------------------------- helpers for adapters
def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, hidden files ignored), sorted by path."""
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".") and p.is_file())


def subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def label_row(label_names: list[str], name: str, **columns) -> dict:
    return {"expression": name, "label": label_names.index(name), **columns}


# ---------------------------------------------------------------- per-image work (runs in the pool)
@dataclass(frozen=True)
class _Job:
    root: Path  # the temporary dataset folder
    channels: int | None
    image_size: int | None  # pixels, None keeps the size
    crop: str | None  # detector name, or None for no crop
    max_pixels: int
    assume_cropped: bool = False  # eye crop of a pre-cropped face: no detection


@dataclass
class _Done:
    shape: tuple[int, int, int]  # stored [H, W, C]
    landmarks: np.ndarray | None  # [68, 2] in stored pixels, None when unknown
    no_face: bool = False


def _convert(job: _Job, eye_crop: bool, rec: Record) -> _Done | str:
    """Decode, crop, resize and write one record; a string is the reason it is bad."""
    try:
        if rec.file is not None:
            img = load_image(rec.file, job.channels, job.max_pixels)
        else:
            img = _as_hwc(rec.pixels, job.channels)
    except DatasetError as e:
        return str(e)
    if job.channels is None and img.shape[2] == 3 and _is_gray(img):
        img = img[:, :, :1]  # palette / RGB files that hold gray pixels stay 1-channel
    landmarks, no_face = rec.landmarks, False
    if job.crop is not None:
        from fape.data.faces import crop_face

        cropped = crop_face(img, job.crop, eye_crop, job.assume_cropped)
        no_face = cropped is None
        if not no_face:
            img, landmarks = _hwc(cropped), None  # crop_face gives no box to carry landmarks over
    if job.image_size is not None:
        img, landmarks = _resize(img, job.image_size, landmarks)
    save_image(job.root / rec.out_path(), img)
    return _Done(img.shape, landmarks, no_face)


def _as_hwc(pixels: np.ndarray, channels: int | None) -> np.ndarray:
    img = _hwc(np.asarray(pixels, np.uint8))
    if channels == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if channels == 1 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None]
    return img


def _hwc(img: np.ndarray) -> np.ndarray:
    return img[:, :, None] if img.ndim == 2 else img


def _is_gray(img: np.ndarray) -> bool:
    return bool((img[:, :, 0] == img[:, :, 1]).all() and (img[:, :, 0] == img[:, :, 2]).all())


def _resize(img: np.ndarray, size: int, landmarks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img, landmarks
    interp = cv2.INTER_AREA if size < max(h, w) else cv2.INTER_CUBIC
    out = _hwc(cv2.resize(img, (size, size), interpolation=interp))
    if landmarks is not None:
        # pixel centres: x_new + 0.5 = (x + 0.5) * scale, the convention cv2.resize samples with
        scale = np.array([size / w, size / h], np.float32)
        landmarks = ((landmarks + 0.5) * scale - 0.5).astype(np.float32)
    return out, landmarks


# ---------------------------------------------------------------- the import
def run_import(adapter: Adapter, src: Path, out: Path, opts: ImportOptions) -> Path:
    from fape.errors import UserError

    if not src.exists():
        raise UserError(f"{adapter.kind}: source not found: {src}")
    if opts.image_size is not None and opts.image_size < 1:
        raise UserError(f"--image-size must be a positive number of pixels, got {opts.image_size}")
    if opts.max_pixels < 1:
        raise UserError(f"--max-pixels must be a positive number of pixels, got {opts.max_pixels}")
    if opts.assume_cropped and (not opts.eye_crop or opts.crop != "none"):
        raise UserError("--assume-cropped goes with --eye-crop and without --crop: it says the images are "
                        f"face crops already (got --eye-crop {opts.eye_crop}, --crop {opts.crop})")
    t0 = time.perf_counter()
    scan = adapter.scan(src, opts)
    records = _limit(_dedupe_outputs(scan), opts.limit)
    _check_skips(scan.skipped, opts.skip_bad)
    if not records:
        raise DatasetError(f"{adapter.kind}: no images found in {src}")
    with atomic_dir(out, overwrite=opts.overwrite) as tmp:
        job = _Job(tmp, 1 if opts.gray else scan.channels, opts.image_size, _crop_method(opts), opts.max_pixels,
                   opts.assume_cropped)
        done = _convert_all(records, job, opts, scan.skipped)
        kept = [(r, d) for r, d in zip(records, done) if isinstance(d, _Done)]
        if not kept:
            raise DatasetError(f"{adapter.kind}: every image in {src} was bad (see the reasons above)")
        channels = _unify_channels(job, kept)
        info = _write(tmp, kept, scan, DatasetInfo(
            name=out.name, label_names=scan.label_names, pose_names=scan.pose_names, channels=channels,
            image_size=_common_size(kept), landmarks_source=scan.landmarks_source,
            origin={"kind": adapter.kind, "src": str(src.resolve()), "options": _public(opts)}))
        _report(tmp, adapter.kind, src, opts, kept, scan.skipped, time.perf_counter() - t0, info)
    return out


def _crop_method(opts: ImportOptions) -> str | None:
    if opts.crop != "none":
        return opts.crop
    return "dlib" if opts.eye_crop else None  # the eye crop needs dlib landmarks, so dlib finds the face


def _public(opts: ImportOptions) -> dict:
    return {k: v for k, v in dataclasses.asdict(opts).items() if k not in ("overwrite", "workers")}


def _dedupe_outputs(scan: Scan) -> list[Record]:
    """Drop records whose PNG name collides (``a.jpg`` beside ``a.png``): a bad input, reported."""
    seen: dict[str, str] = {}
    kept = []
    for r in scan.records:
        p = r.out_path()
        if p in seen:
            scan.skipped.append(Skip(r.rel, f"would be stored as {p}, like {seen[p]}"))
            continue
        seen[p] = r.rel
        kept.append(r)
    return kept


def _limit(records: list[Record], limit: int | None) -> list[Record]:
    """At most ``limit`` records spread evenly over the sorted list, so quick tries see every class."""
    if limit is None or limit >= len(records):
        return records
    return [records[i * len(records) // limit] for i in range(max(limit, 0))]


def _check_skips(skipped: list[Skip], skip_bad: bool) -> None:
    if skipped and not skip_bad:
        s = skipped[0]
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise DatasetError(f"{s.source}: {s.reason}{more}; pass --skip-bad to skip bad inputs")


def _workers(opts: ImportOptions, n: int) -> int:
    if opts.workers is not None:
        return max(1, opts.workers)
    return 1 if n < SERIAL_BELOW else len(os.sched_getaffinity(0))


def _convert_all(records: list[Record], job: _Job, opts: ImportOptions, skipped: list[Skip]) -> list:
    """Convert in order (results line up with ``records``); bad files raise or join ``skipped``."""
    from tqdm import tqdm

    work = partial(_convert, job, opts.eye_crop)
    workers = _workers(opts, len(records))
    pool = ProcessPoolExecutor(workers, initializer=die_with_parent) if workers > 1 else None
    results = pool.map(work, records, chunksize=CHUNK) if pool else map(work, records)
    done = []
    try:
        for rec, res in tqdm(zip(records, results), total=len(records), unit="img", desc="import"):
            if isinstance(res, str):
                skipped.append(Skip(rec.rel, res))
                _check_skips(skipped[-1:], opts.skip_bad)
            done.append(res)
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    return done


def _unify_channels(job: _Job, kept: list[tuple[Record, _Done]]) -> int:
    """One channel count per dataset: if colour and gray sources mix, rewrite the gray ones as RGB."""
    if len({d.shape[2] for _, d in kept}) == 1:
        return kept[0][1].shape[2]
    for r, d in kept:
        if d.shape[2] == 1:
            path = job.root / r.out_path()
            save_image(path, load_image(path, 3, job.max_pixels))
            d.shape = d.shape[:2] + (3,)
    return 3


def _common_size(kept: list[tuple[Record, _Done]]) -> list[int] | None:
    sizes = {d.shape[:2] for _, d in kept}
    return list(sizes.pop()) if len(sizes) == 1 else None


def _write(root: Path, kept: list[tuple[Record, _Done]], scan: Scan, info: DatasetInfo) -> DatasetInfo:
    manifest = pd.DataFrame([{"path": r.out_path(), "source": r.rel, **r.row} for r, _ in kept])
    landmarks, ok = empty_landmarks(len(kept))
    for i, (_, d) in enumerate(kept):
        if d.landmarks is not None:
            landmarks[i], ok[i] = d.landmarks, True
    return write_index(root, manifest, info, landmarks, ok)


def _report(root: Path, kind: str, src: Path, opts: ImportOptions, kept: list[tuple[Record, _Done]],
            skipped: list[Skip], seconds: float, info: DatasetInfo) -> None:
    rows = pd.DataFrame([r.row for r, _ in kept])
    counts = {col: {str(k): int(v) for k, v in rows[col].value_counts().sort_index().items()}
              for col in ("expression", "split", "pose") if col in rows}
    atomic_write_json(root / "import_report.json", {
        "kind": kind, "src": str(src.resolve()), "options": _public(opts), "num_images": info.num_images,
        "image_size": info.image_size, "channels": info.channels,
        "per_label": counts.get("expression", {}), "per_split": counts.get("split", {}),
        "per_pose": counts.get("pose", {}),
        "skipped": [dataclasses.asdict(s) for s in skipped],
        "no_face": [r.rel for r, d in kept if d.no_face],
        "elapsed_seconds": round(seconds, 2),
    })
