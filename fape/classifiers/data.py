"""The classifier's training data: the split's parts, the run's label order, and the items of an
epoch (real rows plus a draw of synthetic ones, optionally resampled to balance classes).

Mirrors ``fape.gan``'s ``build_data``: the loop in ``fape.classifiers.train`` gets everything it
reads from ``build_data`` and passes only typed values (``mix``, ``balance``, ``seed``) on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fape.classifiers.config import ClfConfig
from fape.classifiers.losses import class_weights
from fape.data.dataset import FaceDataset

BALANCE_BY_SAMPLING = ("sampler", "class_source")  # the others ("none", "loss") keep every item once


class TrainItems(torch.utils.data.Dataset):
    """The training part for one epoch: real rows, plus synthetic rows drawn for this epoch,
    optionally resampled to balance classes. Items are FaceDataset items with the label
    remapped to the run's label order and a ``synthetic`` flag.

    ``mix``: synthetic images per epoch as a fraction of the real rows (``-1``: all of them);
    ``balance``: ``ClfConfig.data.balance``; ``seed``: the run's seed (draws are a function of
    ``(seed, epoch)``); ``synthetic_label_map``: the synthetic set's labels to run labels when its
    label names differ from the real set's (default ``label_map``)."""

    def __init__(self, real: FaceDataset, rows: np.ndarray, label_map: np.ndarray,
                 synthetic: FaceDataset | None = None, mix: float = -1.0, balance: str = "none", seed: int = 0,
                 synthetic_label_map: np.ndarray | None = None):
        self.real = real  # the whole real dataset: item i is manifest row i
        self.rows, self.label_map, self.synthetic = rows, label_map, synthetic
        self.syn_map = label_map if synthetic_label_map is None else synthetic_label_map
        self.mix, self.balance, self.seed = float(mix), str(balance), int(seed)
        self.num_classes = int(label_map.max()) + 1
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch, 17])
        src, idx = [np.zeros(len(self.rows), np.int64)], [self.rows]
        if self.synthetic is not None:  # synthetic items are positions in synthetic.rows
            n = len(self.synthetic)
            k = n if self.mix < 0 else min(n, round(self.mix * len(self.rows)))
            idx.append(np.sort(rng.choice(n, size=k, replace=False)))
            src.append(np.ones(k, np.int64))
        self.src, self.idx = np.concatenate(src), np.concatenate(idx)
        if self.balance in BALANCE_BY_SAMPLING:
            labels = self.labels()
            w = (source_weights(labels, self.sources()) if self.balance == "class_source"
                 else class_weights(labels, self.num_classes)[labels].numpy().astype(np.float64))
            pick = rng.choice(len(self.idx), size=len(self.idx), replace=True, p=w / w.sum())
            self.src, self.idx = self.src[pick], self.idx[pick]

    def sources(self) -> np.ndarray:
        """Source dataset of each item ``[len(self)]`` (a merge's 'dataset' column; synthetic items
        are their own source)."""
        m = self.real.index.manifest
        col = m["dataset"].to_numpy(dtype=object) if "dataset" in m else np.full(len(m), "", dtype=object)
        out = np.full(len(self.idx), "synthetic", dtype=object)
        real = self.src == 0
        out[real] = col[self.idx[real]]
        return out

    def labels(self) -> np.ndarray:
        """Run labels of this epoch's items ``[len(self)]``."""
        out = np.empty(len(self.idx), np.int64)
        real = self.src == 0
        out[real] = self.label_map[self.real.labels[self.idx[real]]]
        if self.synthetic is not None:
            syn = self.idx[~real]
            out[~real] = self.syn_map[self.synthetic.labels[self.synthetic.rows[syn]]]
        return out

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, k: int) -> dict:
        ds = self.real if self.src[k] == 0 else self.synthetic
        item = ds[int(self.idx[k])]
        item["label"] = int((self.label_map if self.src[k] == 0 else self.syn_map)[item["label"]])
        item["synthetic"] = int(self.src[k])
        return item


def synthetic_label_map(synth_index, index, label_map: np.ndarray, synth_root, root) -> np.ndarray:
    """The synthetic set's label numbers -> run labels, matched by expression name (a set drawn
    from a merged dataset, e.g. FER2013 + CK+48 + JAFFE, numbers its labels in the merge's order).
    A synthesized image whose expression the real set lacks is an error (it names the expression)."""
    from fape.data.format import labels_by_name

    names = list(synth_index.info.label_names)
    to_real = labels_by_name(names, index.info.label_names)
    used = np.unique(synth_index.manifest["label"].to_numpy())
    missing = sorted({names[k] for k in used if to_real[k] < 0})
    if missing:
        raise ValueError(f"{synth_root}: synthesized images of expression(s) {missing} that {root} does not have "
                         f"(its expressions: {list(index.info.label_names)})")
    return np.where(to_real >= 0, label_map[to_real], -1).astype(np.int64)


def source_weights(labels: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Sampling weight per item: every class the same total mass, and within a class each source
    ``1/sqrt(n)`` of its ``n`` images (a small lab-posed set is drawn more often than its share,
    without repeating its few images as often as full balance would)."""
    w = np.zeros(len(labels), np.float64)
    for c in np.unique(labels):
        in_c = labels == c
        cells = {s: int((in_c & (sources == s)).sum()) for s in np.unique(sources[in_c])}
        for s, n in cells.items():
            w[in_c & (sources == s)] = n ** -0.5
        w[in_c] /= w[in_c].sum()
    return w


def resolve_split(cfg: ClfConfig, index) -> tuple[dict[str, np.ndarray], list[str], np.ndarray, Path]:
    """Parts (train/val/test rows), the run's label names, a dataset-label -> run-label map
    (``-1`` = not in this run's label set), and the split file."""
    from fape.data import splits

    d = cfg.data
    path = Path(d.split)
    if not path.suffix == ".csv":
        split = splits.make_split(index, d.split, d.split_seed, **d.split_options)
        path = splits.save_split(index.root, split)
    parts = splits.load_split(path, fold=d.fold if d.fold >= 0 else None)
    meta = splits.split_meta(path)
    names = list(meta.get("label_names") or index.info.label_names)
    lut = {n: i for i, n in enumerate(names)}
    label_map = np.array([lut.get(n, -1) for n in index.info.label_names], np.int64)
    return parts, names, label_map, path


def rows_in_labels(rows: np.ndarray, labels: np.ndarray, label_map: np.ndarray) -> np.ndarray:
    """The ``rows`` whose dataset label is in the run's label set."""
    return rows[label_map[labels[rows]] >= 0]


@dataclass
class TrainData:
    faces: FaceDataset  # the whole real dataset (manifest row i = item i)
    items: TrainItems  # the training part, redrawn by ``items.set_epoch(epoch)``
    val_rows: np.ndarray  # manifest rows of the validation part (may be empty)
    label_names: list[str]  # the run's classes, in output order
    label_map: np.ndarray  # dataset label -> run label ``[dataset K]`` (-1: not in the run)
    split_path: Path


def build_data(cfg: ClfConfig) -> TrainData:
    """Faces, the split's train and val rows in the run's label set, and the epoch items
    (with the synthetic set of ``cfg.data.synthetic`` when given). The test part is not read."""
    from fape.data.format import read_index

    d = cfg.data
    index = read_index(d.root)
    parts, label_names, label_map, split_path = resolve_split(cfg, index)
    faces = FaceDataset(index, size=d.image_size, channels=d.channels, progress=False)
    train_rows = rows_in_labels(parts["train"], faces.labels, label_map)
    val_rows = rows_in_labels(parts.get("val", np.arange(0)), faces.labels, label_map)
    synthetic, syn_map = None, None
    if d.synthetic:
        synth_index = read_index(d.synthetic)
        syn_map = synthetic_label_map(synth_index, index, label_map, d.synthetic, d.root)
        syn_rows = np.flatnonzero(syn_map[synth_index.manifest["label"].to_numpy()] >= 0)
        synthetic = FaceDataset(synth_index, rows=syn_rows, size=d.image_size, channels=d.channels, progress=False)
    items = TrainItems(faces, train_rows, label_map, synthetic, mix=d.mix, balance=d.balance, seed=cfg.train.seed,
                       synthetic_label_map=syn_map)
    return TrainData(faces, items, val_rows, label_names, label_map, split_path)
