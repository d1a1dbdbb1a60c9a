"""The one on-disk dataset format every fape command reads and writes.

A dataset is a folder::

    DIR/
      manifest.csv        one row per image: path, subject, expression, label, pose, sequence,
                          frame, source, and any split column (e.g. ``split``)
      landmarks.npy       [N, 68, 2] float32, (x, y) pixels in the stored image; NaN where unknown
      landmarks_ok.npy    [N] bool, False where no face was found (recorded, not dropped)
      dataset.json        name, label names in order, pose names, image size and channels,
                          origin, landmark source, sha256 of manifest.csv
      images/...          the image files (``path`` is relative to DIR and stays inside it:
                          never absolute, no ``..``; ``validate`` refuses others)

Row ``i`` of the manifest, ``landmarks[i]`` and ``landmarks_ok[i]`` describe the same image.
"""
from __future__ import annotations

import dataclasses
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fape.errors import DatasetError  # noqa: F401  (re-exported)
from fape.utils.io import atomic_save_npy, atomic_write_bytes, atomic_write_json, sha256_bytes

MANIFEST_COLUMNS = ("path", "subject", "expression", "label", "pose", "sequence", "frame", "source")
REQUIRED_COLUMNS = ("path", "expression", "label")  # the others default to unknown when absent
NUM_LANDMARKS = 68
FORMAT_VERSION = 1
UNKNOWN = ""  # value of a string column that a source does not provide (e.g. FER2013 subject)
# Largest image decoded, in pixels (W x H): PIL's own default MAX_IMAGE_PIXELS, ~9459 x 9459, 268 MB
# as RGB. A larger file is refused before decoding (a "decompression bomb": a few kB on disk).
MAX_PIXELS = 89_478_485




@dataclass
class DatasetInfo:
    name: str
    label_names: list[str]
    pose_names: list[str] = field(default_factory=lambda: ["frontal"])
    image_size: list[int] | None = None  # [H, W] when every image has it, else None
    channels: int = 3
    origin: dict = field(default_factory=dict)  # adapter kind, source path, options / synth config
    landmarks_source: str | None = None  # "synthetic-projection", "dlib", "face-alignment", None
    manifest_sha256: str = ""
    num_images: int = 0
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


@dataclass
class FaceIndex:
    """Everything about a dataset except the pixels."""

    root: Path
    manifest: pd.DataFrame
    landmarks: np.ndarray  # [N, 68, 2] float32 pixels
    landmarks_ok: np.ndarray  # [N] bool
    info: DatasetInfo

    def __len__(self) -> int:
        return len(self.manifest)

    def image_path(self, i: int) -> Path:
        return self.root / self.manifest["path"].iat[i]


def empty_landmarks(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, NUM_LANDMARKS, 2), np.nan, np.float32), np.zeros(n, bool)


def _manifest_bytes(manifest: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    manifest.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def require_columns(table: pd.DataFrame, columns, where: str, hint: str = "") -> None:
    """Name the absent ``columns`` of a table read from ``where`` (not a later symptom of them)."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DatasetError(f"{where}: missing column(s) {missing}{hint}")


def normalise_manifest(manifest: pd.DataFrame) -> pd.DataFrame:
    """Fill absent optional columns and fix dtypes: strings for ids, ints for label/frame."""
    require_columns(manifest, REQUIRED_COLUMNS, "manifest")
    m = manifest.copy()
    for col in MANIFEST_COLUMNS:
        if col not in m.columns:
            m[col] = -1 if col in ("label", "frame") else UNKNOWN
    for col in ("path", "subject", "expression", "pose", "sequence", "source"):
        m[col] = m[col].fillna(UNKNOWN).astype(str)
    for col in ("label", "frame"):
        m[col] = pd.to_numeric(m[col], errors="raise").fillna(-1).astype(np.int64)
    rest = [c for c in m.columns if c not in MANIFEST_COLUMNS]
    return m[list(MANIFEST_COLUMNS) + rest].reset_index(drop=True)


def validate(manifest: pd.DataFrame, landmarks: np.ndarray, landmarks_ok: np.ndarray, info: DatasetInfo,
             where: str = "dataset") -> None:
    n = len(manifest)
    if n == 0:
        raise DatasetError(f"{where}: the manifest has no images")
    require_columns(manifest, MANIFEST_COLUMNS, f"{where}/manifest.csv")
    for i, path in enumerate(manifest["path"]):
        why = _outside(path)
        if why:
            raise DatasetError(f"{where}/manifest.csv: row {i} path {path!r} {why}; a path must be relative "
                               f"to the dataset folder and stay inside it")
    if landmarks.shape != (n, NUM_LANDMARKS, 2):
        raise DatasetError(
            f"{where}: landmarks.npy has shape {tuple(landmarks.shape)} but manifest.csv has {n} rows "
            f"(expected ({n}, {NUM_LANDMARKS}, 2))"
        )
    if landmarks_ok.shape != (n,):
        raise DatasetError(
            f"{where}: landmarks_ok.npy has shape {tuple(landmarks_ok.shape)} but manifest.csv has {n} rows"
        )
    labels = manifest["label"].to_numpy()
    bad = (labels < 0) | (labels >= len(info.label_names))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{where}/manifest.csv: row {i} ({manifest['path'].iat[i]}) has label {labels[i]}, "
            f"outside 0..{len(info.label_names) - 1} ({len(info.label_names)} label names in dataset.json)"
        )
    names = np.asarray(info.label_names, dtype=object)[labels]
    wrong = names != manifest["expression"].to_numpy(dtype=object)
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        raise DatasetError(
            f"{where}/manifest.csv: row {i} ({manifest['path'].iat[i]}) has expression "
            f"{manifest['expression'].iat[i]!r} but label {labels[i]} is {names[i]!r}"
        )
    dup = manifest["path"].duplicated()
    if dup.any():
        raise DatasetError(f"{where}/manifest.csv: path {manifest['path'][dup].iat[0]!r} appears twice")


def _outside(path: str) -> str | None:
    """Why reading ``path`` below the dataset folder would leave it (or read nothing), or None."""
    if not path:
        return "is empty"
    if path.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[/\\]", path):
        return "is absolute"
    if ".." in re.split(r"[/\\]", path):  # both separators: a manifest may come from Windows
        return "has a '..' component"
    return None


def write_index(root: str | Path, manifest: pd.DataFrame, info: DatasetInfo,
                landmarks: np.ndarray | None = None, landmarks_ok: np.ndarray | None = None) -> DatasetInfo:
    """Write manifest.csv, landmarks.npy, landmarks_ok.npy and dataset.json into ``root``.

    Image files must already be in ``root`` under the manifest's ``path``. Each file is written
    atomically; ``dataset.json`` is written last, so its manifest hash names a complete index.
    """
    root = Path(root)
    manifest = normalise_manifest(manifest)
    if landmarks is None:
        landmarks, landmarks_ok = empty_landmarks(len(manifest))
    landmarks = np.asarray(landmarks, np.float32)
    landmarks_ok = np.asarray(landmarks_ok, bool)
    validate(manifest, landmarks, landmarks_ok, info, where=str(root))
    data = _manifest_bytes(manifest)
    info = dataclasses.replace(info, manifest_sha256=sha256_bytes(data), num_images=len(manifest))
    atomic_write_bytes(root / "manifest.csv", data)
    atomic_save_npy(root / "landmarks.npy", landmarks)
    atomic_save_npy(root / "landmarks_ok.npy", landmarks_ok)
    atomic_write_json(root / "dataset.json", dataclasses.asdict(info))
    return info


def read_info(root: str | Path) -> DatasetInfo:
    root = Path(root)
    p = root / "dataset.json"
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    if not p.is_file():
        raise DatasetError(f"not a fape dataset: {p} is missing (import one with `fape data import`)")
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{p} is not valid JSON: {e}") from None
    known = {f.name for f in dataclasses.fields(DatasetInfo)}
    extra = {k: v for k, v in raw.items() if k not in known}
    info = DatasetInfo(**{k: v for k, v in raw.items() if k in known})
    info.extra.update(extra)
    return info


def read_index(root: str | Path, check_hash: bool = True) -> FaceIndex:
    """Read and cross-check a dataset's index files; errors name the file at fault."""
    root = Path(root)
    info = read_info(root)
    mpath = root / "manifest.csv"
    if not mpath.is_file():
        raise DatasetError(f"{mpath} is missing")
    data = mpath.read_bytes()
    if check_hash and info.manifest_sha256 and sha256_bytes(data) != info.manifest_sha256:
        raise DatasetError(
            f"{mpath} does not match the manifest_sha256 in {root / 'dataset.json'}: it was changed after "
            f"the dataset was written (re-import, or `fape data reindex {root}` to accept the edit)"
        )
    try:
        manifest = pd.read_csv(io.BytesIO(data), dtype={"path": str, "subject": str, "expression": str,
                                                        "pose": str, "sequence": str, "source": str},
                               keep_default_na=False)
    except Exception as e:  # pandas raises several types for malformed CSV
        raise DatasetError(f"{mpath} cannot be read as CSV: {e}") from None
    try:
        require_columns(manifest, REQUIRED_COLUMNS, str(mpath))
        manifest = normalise_manifest(manifest)
    except DatasetError:
        raise
    except (ValueError, TypeError) as e:
        raise DatasetError(f"{mpath}: {e}") from None
    lm, ok = _load_npy(root / "landmarks.npy"), _load_npy(root / "landmarks_ok.npy")
    validate(manifest, lm, ok, info, where=str(root))
    return FaceIndex(root=root, manifest=manifest, landmarks=lm.astype(np.float32, copy=False),
                     landmarks_ok=ok.astype(bool, copy=False), info=info)


def _load_npy(p: Path) -> np.ndarray:
    if not p.is_file():
        raise DatasetError(f"{p} is missing")
    try:
        return np.load(p, allow_pickle=False)
    except Exception as e:
        raise DatasetError(f"{p} cannot be read as a .npy array: {e}") from None


def reindex(root: str | Path) -> DatasetInfo:
    """Accept a hand-edited manifest.csv: re-validate it and rewrite the hash."""
    idx = read_index(root, check_hash=False)
    return write_index(root, idx.manifest, idx.info, idx.landmarks, idx.landmarks_ok)


def update_landmarks(root: str | Path, landmarks: np.ndarray, landmarks_ok: np.ndarray, source: str,
                     report: dict | None = None) -> DatasetInfo:
    idx = read_index(root)
    info = dataclasses.replace(idx.info, landmarks_source=source)
    if report is not None:
        info.extra = {**info.extra, "landmarks_report": report}
    return write_index(root, idx.manifest, info, landmarks, landmarks_ok)


# ---------------------------------------------------------------- image files
def load_image(path: str | Path, channels: int | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file to uint8 ``[H, W, C]``; ``channels`` 1 or 3 converts (palette TIFFs too).

    Files of more than ``max_pixels`` pixels are refused from their header, before decoding.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels  # PIL's guard must not refuse what the caller allows
    try:
        with warnings.catch_warnings():  # PIL warns of what the check below refuses anyway
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            _check_pixels(path, im.size, max_pixels)
            im.load()
            if channels == 1:
                im = im.convert("L")
            elif channels == 3 or im.mode not in ("L", "RGB"):
                im = im.convert("RGB")
            arr = np.array(im, dtype=np.uint8)  # a writable copy
    except FileNotFoundError:
        raise DatasetError(f"image file not found: {path}") from None
    except DatasetError:
        raise
    except Image.DecompressionBombError as e:  # past PIL's own limit; not an OSError
        raise DatasetError(f"image file is too large: {path} ({e}; see --max-pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"image file is corrupt or not an image: {path} ({e})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise DatasetError(f"image file is too large: {path} is {w} x {h} = {w * h:,} pixels, more than "
                           f"the limit of {max_pixels:,} (a decompression bomb?; raise it with --max-pixels)")


def save_image(path: str | Path, image: np.ndarray) -> None:
    """Write uint8 ``[H, W]`` or ``[H, W, C]`` as PNG (lossless, so stored pixels are exact)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    Image.fromarray(arr).save(path)


def labels_by_name(src_names, dst_names) -> np.ndarray:
    """``[len(src_names)]``: the index of each name in ``dst_names``, -1 where it is absent (label
    numbers of one set to another's, matched by expression name)."""
    pos = {n: i for i, n in enumerate(dst_names)}
    return np.array([pos.get(n, -1) for n in src_names], np.int64)


def crop_of_origin(origin: dict | None) -> str:
    """The crop (``"eye"`` or ``"square"``) a dataset's images were made with, from ``dataset.json``'s
    ``origin``: an import's options, or the one crop a merge's sources share."""
    options = (origin or {}).get("options", {}) or {}
    return "eye" if options.get("eye_crop") else "square"
