"""Row files (``--rows``) and the subject holdout of the GAN trainer (the ``gan-rows`` protocol's parts)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def read_rows(path: str | Path, n: int, flag: str = "--rows") -> np.ndarray:
    """Manifest row indices from a ``.npy`` (ints, or a bool mask of length N) or a text file;
    ``flag`` names the option in errors."""
    from fape.errors import UserError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{flag} file not found: {p}")
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            toks = p.read_text().replace(",", " ").split()
            arr = np.array([int(x) for x in toks], np.int64)
    except (ValueError, OSError) as e:
        raise UserError(f"{flag} file {p} is not a list of integer row indices: {e}") from None
    arr = np.asarray(arr)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise UserError(f"{flag} file {p}: a bool mask must have {n} entries (one per manifest row), "
                              f"got shape {arr.shape}")
        return np.flatnonzero(arr)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{flag} file {p}: expected a 1-D array of integer row indices, got {arr.dtype} {arr.shape}")
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise UserError(f"{flag} file {p}: row {int(arr[bad][0])} is outside the manifest (0..{n - 1})")
    if len(arr) == 0:
        raise UserError(f"{flag} file {p} is empty")
    return arr.astype(np.int64)


# ------------------------------------------------------------------ legacy helper (GAN trainer)
def subject_holdout(manifest: pd.DataFrame, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a random ``fraction`` of subjects held out, and the rest: ``(train_rows, heldout_rows)``.

    Subject-disjoint, so an evaluation on the held-out rows measures generalisation to unseen
    faces. Without subject labels, a random ``fraction`` of rows is held out instead.
    """
    n = len(manifest)
    rng = np.random.default_rng(seed)
    if fraction <= 0:
        return np.arange(n), np.arange(0)
    subjects = manifest["subject"].to_numpy()
    names = np.unique(subjects[subjects != ""])
    if len(names) >= 2:
        k = min(len(names) - 1, max(1, int(round(fraction * len(names)))))
        held = rng.choice(names, size=k, replace=False)
        mask = np.isin(subjects, held)
    else:
        mask = np.zeros(n, bool)
        mask[rng.choice(n, size=max(1, int(round(fraction * n))), replace=False)] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def holdout_rows(manifest: pd.DataFrame, rows: str, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the file ``rows`` ("" = every row), split by :func:`subject_holdout`:
    ``(train_rows, heldout_rows)`` as manifest indices. What a GAN trains on and is measured on
    (``fape.gan.data.gan_rows``), and the ``gan-rows`` protocol's parts."""
    allowed = read_rows(rows, len(manifest)) if rows else np.arange(len(manifest))
    train_pos, held_pos = subject_holdout(manifest.iloc[allowed].reset_index(drop=True), fraction, seed)
    return allowed[train_pos], allowed[held_pos]
