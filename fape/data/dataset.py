"""``FaceDataset``: a fape dataset folder as a ``torch.utils.data.Dataset``.

Decoding 35k small PNG/JPEG files every epoch is bound by file opening, so images are decoded
once into ``DIR/cache/images_<hash>_<H>x<W>x<C>.npy`` (uint8 ``[N, H, W, C]``) and memory-mapped:
an epoch is then a slice of one file the OS keeps in its page cache. ``fape data cache DIR``
builds it offline; the dataset builds it on first use otherwise. The hash is the manifest's, so
an edited dataset never reads a stale cache.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fape.data.format import DatasetError, FaceIndex, load_image, read_index


def resize_image(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 ``[H, W, C]`` -> ``[h, w, C]`` at ``size`` = (h, w): area averaging when shrinking
    (no aliasing), bilinear when growing; ``None`` or the same size returns ``img`` itself."""
    if size is None or img.shape[:2] == tuple(size):
        return img
    import cv2

    interp = cv2.INTER_AREA if img.shape[0] > size[0] else cv2.INTER_LINEAR
    out = cv2.resize(img, (size[1], size[0]), interpolation=interp)
    return out[:, :, None] if out.ndim == 2 else out


def convert_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``[H, W, C]`` -> ``[H, W, channels]``: RGB(A) to luma, or gray repeated to RGB."""
    if img.shape[2] == channels:
        return img
    if channels == 1:  # ITU-R 601 luma, as PIL's "L"
        return (img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round().astype(
            np.uint8)[..., None]
    return np.repeat(img, 3, axis=2)


def decode(path: Path, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """File -> uint8 ``[H, W, C]`` at ``size`` with ``channels``."""
    return convert_channels(resize_image(load_image(path), size), channels)


def cache_path(index: FaceIndex, size: tuple[int, int], channels: int) -> Path:
    name = f"images_{index.info.manifest_sha256[:16]}_{size[0]}x{size[1]}x{channels}.npy"
    root_cache = index.root / "cache"
    if os.access(index.root, os.W_OK):
        return root_cache / name
    # read-only dataset (e.g. a shared copy): cache under the user's cache folder instead
    user = Path(os.environ.get("FAPE_CACHE", Path.home() / ".cache" / "fape"))
    return user / index.info.manifest_sha256[:16] / name


def build_cache(index: FaceIndex, size: tuple[int, int], channels: int, progress: bool = True) -> Path:
    """Decode every image once into a ``.npy`` file (written to a temp name, then renamed)."""
    out = cache_path(index, size, channels)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".images.", suffix=".npy.tmp", dir=out.parent)
    os.close(fd)
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(index), *size, channels))
        from tqdm import tqdm

        for i in tqdm(range(len(index)), desc=f"caching {index.root.name}", disable=not progress, unit="img"):
            arr[i] = decode(index.image_path(i), size, channels)
        arr.flush()
        del arr
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def default_size(index: FaceIndex) -> tuple[int, int]:
    if index.info.image_size is None:
        raise DatasetError(
            f"{index.root}: images have different sizes; pass size= to FaceDataset (or import with --image-size)"
        )
    return tuple(index.info.image_size)


class FaceDataset(Dataset):
    """Images, labels, poses and landmarks of a fape dataset.

    Args:
        root: dataset folder, or an already-read ``FaceIndex``.
        rows: indices into the manifest to expose (e.g. a split); ``None`` = all.
        size: ``(H, W)`` to serve; landmarks are scaled to it. Default: the stored size.
        channels: 1 or 3; default: the stored channels.
        cache: memory-map decoded images (``True``) or decode files per item (``False``).

    Items are dicts: ``image`` uint8 ``[C, H, W]``, ``label`` int, ``pose`` int (index into
    ``info.pose_names``), ``landmarks`` float32 ``[68, 2]`` pixels at ``size``,
    ``landmarks_ok`` bool, ``index`` (manifest row).
    """

    def __init__(self, root, rows=None, size: int | tuple[int, int] | None = None, channels: int | None = None,
                 cache: bool = True, progress: bool = True):
        self.index = root if isinstance(root, FaceIndex) else read_index(root)
        self.info = self.index.info
        self.rows = np.arange(len(self.index)) if rows is None else np.asarray(rows, dtype=np.int64)
        if isinstance(size, int):
            size = (size, size)
        self.size = tuple(size) if size is not None else default_size(self.index)
        self.channels = int(channels or self.info.channels)
        stored = self.info.image_size or list(self.size)
        scale = np.array([self.size[1] / stored[1], self.size[0] / stored[0]], np.float32)
        # [N, 68, 2] pixels at the served size (pixel centres map to pixel centres)
        self.landmarks = ((self.index.landmarks + 0.5) * scale - 0.5).astype(np.float32)
        pose_ids = {p: i for i, p in enumerate(self.info.pose_names)}
        self.pose_ids = np.array([pose_ids.get(p, -1) for p in self.index.manifest["pose"]], np.int64)
        self.labels = self.index.manifest["label"].to_numpy(np.int64)
        self._cache_file = build_cache(self.index, self.size, self.channels, progress) if cache else None
        self._images = None  # opened lazily so that each DataLoader worker maps the file itself

    def __len__(self) -> int:
        return len(self.rows)

    def images(self) -> np.ndarray | None:
        """The memory-mapped ``[N, H, W, C]`` uint8 array of all manifest rows (None without cache)."""
        if self._cache_file is not None and self._images is None:
            self._images = np.load(self._cache_file, mmap_mode="r")
        return self._images

    def load(self, i: int) -> np.ndarray:
        """uint8 ``[H, W, C]`` of manifest row ``i``."""
        imgs = self.images()
        if imgs is not None:
            return np.array(imgs[i])  # a copy: the memmap is read-only
        return decode(self.index.image_path(i), self.size, self.channels)

    def __getitem__(self, k: int) -> dict:
        i = int(self.rows[k])
        return {
            "image": torch.from_numpy(np.ascontiguousarray(self.load(i).transpose(2, 0, 1))),
            "label": int(self.labels[i]),
            "pose": int(self.pose_ids[i]),
            "landmarks": torch.from_numpy(self.landmarks[i]),
            "landmarks_ok": bool(self.index.landmarks_ok[i]),
            "index": i,
        }

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_images"] = None  # memmaps are reopened per worker, not pickled
        return state


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` in [0, 255] -> float in [-1, 1] (the GAN's and classifiers' range)."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 [0, 255]."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


# ---------------------------------------------------------------- CLI
def cli_cache(args, overrides) -> int:
    idx = read_index(args.dir)
    size = (args.image_size, args.image_size) if args.image_size else default_size(idx)
    path = build_cache(idx, size, idx.info.channels)
    print(f"cache: {path} ({len(idx)} images, {size[0]}x{size[1]}x{idx.info.channels})")
    return 0


def summary(index: FaceIndex) -> dict:
    m = index.manifest
    out = {
        "name": index.info.name,
        "images": len(index),
        "classes": index.info.num_classes,
        "subjects": int(m.loc[m["subject"] != "", "subject"].nunique()),
        "poses": m["pose"].value_counts().sort_index().to_dict(),
        "per_class": m["expression"].value_counts().reindex(index.info.label_names, fill_value=0).to_dict(),
        "landmarks_ok": int(index.landmarks_ok.sum()),
        "landmarks_source": index.info.landmarks_source,
        "image_size": index.info.image_size,
        "channels": index.info.channels,
    }
    for col in ("split",):
        if col in m.columns:
            out[col] = m[col].value_counts().to_dict()
    return out


def cli_info(args, overrides) -> int:
    import json

    print(json.dumps(summary(read_index(args.dir)), indent=2))
    return 0


def cli_reindex(args, overrides) -> int:
    from fape.data.format import reindex

    info = reindex(args.dir)
    print(f"reindexed {args.dir}: {info.num_images} images, manifest sha256 {info.manifest_sha256[:16]}")
    return 0


__all__ = ["FaceDataset", "build_cache", "to_float", "to_uint8"]
