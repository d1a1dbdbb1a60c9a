"""Rows grouped by leak unit (a sequence, or a sequence's frames of one pose; or a subject) and groups
allocated to parts by row fractions: the cutting every protocol builder uses."""
from __future__ import annotations

import numpy as np
import pandas as pd

from fape.data.splits.protocols import PARTS, VIEW


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group id per row (rows with an empty key are their own group) and group sizes."""
    keys = np.asarray(keys).astype(str)
    empty = keys == ""
    keys = np.where(empty, np.char.add("\x00row", np.arange(len(keys)).astype(str)), keys)
    _, gid, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    return gid, sizes


def seq_groups(m: pd.DataFrame, rows: np.ndarray | None = None, with_pose: bool = False):
    rows = np.arange(len(m)) if rows is None else np.asarray(rows, np.int64)
    seq = m["sequence"].to_numpy().astype(str)[rows]
    if with_pose:
        seq = np.where(seq == "", "", np.char.add(np.char.add(seq, "\x01"), m["pose"].to_numpy().astype(str)[rows]))
    return _groups(seq)


def allocate(sizes: np.ndarray, fractions, rng) -> np.ndarray:
    """Part index per group: groups in random order, cut where the cumulative row count crosses the
    fractions (so row counts follow the fractions). Every part with a positive fraction gets at least
    one group when there are enough groups."""
    sizes = np.asarray(sizes, np.int64)
    fr = np.asarray(fractions, float)
    n = len(sizes)
    part = np.zeros(n, np.int64)
    if n == 0:
        return part
    order = rng.permutation(n)
    cum = np.cumsum(sizes[order])
    mid = cum - sizes[order] / 2.0
    bounds = np.cumsum(fr / fr.sum())[:-1] * cum[-1]
    part[order] = np.searchsorted(bounds, mid, side="right")
    need = [p for p in range(len(fr)) if fr[p] > 0]
    if n >= len(need):
        pos = {g: i for i, g in enumerate(order)}
        for p in need:
            if (part == p).any():
                continue
            counts = np.bincount(part, minlength=len(fr))
            donor = int(np.argmax(counts))
            cand = np.flatnonzero(part == donor)
            # the donor group nearest to p's slot in the shuffled order
            cand = sorted(cand, key=lambda g: pos[g] if p > donor else -pos[g])
            part[cand[-1]] = p
    return part


def by_groups(rows: np.ndarray, gid: np.ndarray, group_part: np.ndarray, names) -> dict:
    rp = group_part[gid]
    return {name: rows[rp == i] for i, name in enumerate(names)}


def fraction_split(m, rows, fractions, rng, key="sequence") -> dict:
    rows = np.asarray(rows, np.int64)
    if key == "subject":
        gid, sizes = _groups(m["subject"].to_numpy().astype(str)[rows])
    else:
        gid, sizes = seq_groups(m, rows, with_pose=key == VIEW)
    part = allocate(sizes, fractions, rng)
    return by_groups(rows, gid, part, PARTS)


def carve_val(m, train_rows, val_fraction, rng, with_pose=False) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows into (train, val) by whole leak units."""
    train_rows = np.asarray(train_rows, np.int64)
    if val_fraction <= 0 or len(train_rows) < 2:
        return train_rows, train_rows[:0]
    gid, sizes = seq_groups(m, train_rows, with_pose=with_pose)
    if len(sizes) < 2:
        return train_rows, train_rows[:0]
    part = allocate(sizes, (1 - val_fraction, val_fraction), rng)
    d = by_groups(train_rows, gid, part, ("train", "val"))
    return d["train"], d["val"]


def cut_units(m, rows, fractions, rng, names) -> dict:
    """``rows`` cut by whole sequences into parts ``names`` with row fractions ``fractions``."""
    gid, sizes = seq_groups(m, rows)
    return by_groups(np.asarray(rows, np.int64), gid, allocate(sizes, fractions, rng), names)
