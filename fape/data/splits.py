"""Splits of a dataset's rows. (The paper protocols come with the classifiers.)"""
from __future__ import annotations

import numpy as np
import pandas as pd


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
