"""Sources and donors of expression transfer on a real set (subject ids, one pose: CK+48, JAFFE).

A synthesized image of expression b for subject s (a plan cell ``(b, pose, s)``, ``fape.gan.plans``)
is the *source* face of a row of s in another expression a, redrawn by G on landmarks
``retarget(source, D_a, D_b)`` (``fape.data.retarget``): a *donor pair* is two rows of one
subject in one pose, in expressions a and b. Every source and donor is a row of ``rows`` (the
training rows of the run) with landmarks; nothing else is read.

A cell is feasible when s has a row of some expression a != b for which a donor pair (a, b)
exists. Sources of a cell are such rows, of the expressions a with at least K donor subjects
when s has any (else of every a with one): donors are scarce for a rare class (in CK+48 the 18
subjects who show contempt show surprise in 1 case, sadness in 5), and a source of a well-donated
expression gets the less noisy mean of K changes. A job's K donor pairs (``donors: K`` of a plan,
default 3; the source moves by their mean change) come from K different subjects drawn
uniformly among those with a and b, s included (s's own pair, when it shows b, gives s's own b
shape), and one random pair of each; with fewer subjects, every one of them.

Donors from another set (FER2013 from CK+48 and JAFFE): ``donor_rows`` are rows that serve only
as donors: they give donor pairs but are never sources (nor counted by a plan). Source rows
without a subject id (FER2013) are allowed: they form one source group, subject ``""``, and have
no pair of their own, so every change comes from the donors. Rows of one merged dataset
(``fape data merge``) share one landmark frame per image, which is all (1)-(3) of
``fape.data.retarget`` need: the similarity absorbs the sets' different crops and scales.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fape.errors import UserError


def _group(rows: np.ndarray, subj: np.ndarray, pose: np.ndarray, expr: np.ndarray
           ) -> tuple[dict[tuple[str, str, str], np.ndarray], dict[tuple[str, str], list[str]]]:
    """``rows`` by (subject, pose, expression), and each (subject, pose)'s expressions."""
    cells = {k: rows[np.asarray(v)] for k, v in pd.Series(rows).groupby([subj[rows], pose[rows], expr[rows]]).groups.items()}
    by_subject: dict[tuple[str, str], list[str]] = {}
    for s, p, e in sorted(cells):
        by_subject.setdefault((s, p), []).append(e)
    return cells, by_subject


class TransferPool:
    """Donor pairs by (subject, pose, expression) of the allowed rows with landmarks (``rows``)
    and the donor-only rows (``donor_rows``); sources: the allowed rows, by the same key
    (subject ``""`` for rows without one)."""

    def __init__(self, manifest: pd.DataFrame, rows: np.ndarray, donor_rows: np.ndarray | None = None):
        self.rows = np.asarray(rows, np.int64)
        self.expr = manifest["expression"].to_numpy().astype(str)
        subj, pose = manifest["subject"].to_numpy().astype(str), manifest["pose"].to_numpy().astype(str)
        d = self.rows if donor_rows is None else np.union1d(self.rows, np.asarray(donor_rows, np.int64))
        d = d[subj[d] != ""]  # a donor pair is two rows of one subject
        self.cells, self.by_subject = _group(d, subj, pose, self.expr)  # donors
        self.source_cells, self.source_subjects = _group(self.rows, subj, pose, self.expr)
        self._pairs: dict[tuple[str, str, str], np.ndarray] = {}

    def has_pairs(self) -> bool:
        """Some subject shows two expressions in one pose: donors exist."""
        return any(len(v) >= 2 for v in self.by_subject.values())

    def pairs_by_subject(self, pose: str, a: str, b: str) -> list[np.ndarray]:
        """Donor pairs ``[P_s, 2]`` of each subject with a and b in ``pose``."""
        key = (pose, a, b)
        if key not in self._pairs:
            self._pairs[key] = [
                np.stack(np.meshgrid(self.cells[(s, p, a)], self.cells[(s, p, b)], indexing="ij"), -1).reshape(-1, 2)
                for (s, p), exprs in self.by_subject.items() if p == pose and a in exprs and b in exprs]
        return self._pairs[key]

    def sources(self, expression: str, pose: str, subject: str, k: int = 1) -> np.ndarray:
        """Rows of ``subject`` in ``pose`` whose expression a != ``expression`` has donor pairs (a, it),
        from ``k`` donor subjects when some a has that many (module docstring)."""
        exprs = [a for a in self.source_subjects.get((subject, pose), []) if a != expression]
        n = {a: len(self.pairs_by_subject(pose, a, expression)) for a in exprs}
        need = k if any(v >= k for v in n.values()) else 1
        out = [self.source_cells[(subject, pose, a)] for a in exprs if n[a] >= need]
        return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)

    def donors(self, pose: str, a: str, b: str, k: int, rng: np.random.Generator) -> list[tuple[int, int]]:
        """``k`` donor pairs (row in a, row in b) of different subjects (module docstring)."""
        groups = self.pairs_by_subject(pose, a, b)
        pick = rng.choice(len(groups), min(k, len(groups)), replace=False)
        return [tuple(int(x) for x in groups[g][int(rng.integers(0, len(groups[g])))]) for g in pick]


def require_pairs(pool: TransferPool, root) -> None:
    if not pool.has_pairs():
        raise UserError(f"{root}: landmarks: retarget needs donor pairs (a subject shown with two expressions "
                        f"in one pose) among the allowed and donor rows; none has (FER2013 has no subject ids): "
                        f"use landmarks: align, or donor rows of a set with subject ids (--donor-rows)")
