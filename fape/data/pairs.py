"""Training pairs for FaPE-GAN: (source image, target pose, target image).

Four kinds of pair, mixed by configurable weights:

* ``pose``: the target is the same subject, expression and frame (sequence) in another pose;
  only multi-pose sets (the synthetic set, F2ED, KDEF) have them.
* ``mirror``: the target is the horizontally flipped source, with landmarks re-indexed by
  ``landmarks68.FLIP_PERM``; a real target for single-pose sets such as FER2013 and JAFFE.
* ``identity``: the target is the source itself (reconstruction).
* ``expression``: expression transfer within a subject: source (s, a), target (s, b) with
  b != a, the same subject and pose; only sets with subject ids (CK+, JAFFE, the synthetic set)
  have them, FER2013 has none. Drawn *by target expression* so that rare targets are seen: for
  a source of subject s and expression a, the target expression b is drawn among the other
  expressions s shows with probability proportional to a weight ``v_b``, then a row of (s, b)
  uniformly. ``v`` is fitted once (:func:`target_weights`) so that every target expression is
  drawn about equally often per epoch, as far as the subjects allow. A uniform draw over partner
  rows would instead show CK+48's contempt (54 of 981 images) about 4.6 times less often than
  surprise (249); ``1 / N_b`` weights would over-correct, showing the rare class far more often
  than the common ones (the common sources all draw it).

A source whose weights are all zero for what it has (e.g. ``pose`` only, but no other pose of
its sequence) falls back to the other kinds; with no kind possible at all it is an error.
Pairs are re-drawn each epoch from ``seed + epoch``, so every process of a distributed run
and every resumed run sees the same pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from fape.data.landmarks68 import flip_landmarks
from fape.errors import ConfigError

POSE, MIRROR, IDENTITY, EXPRESSION = 0, 1, 2, 3
KIND_NAMES = ("pose", "mirror", "identity", "expression")


@dataclass
class PairConfig:
    pose: float = 1.0  # relative weight of cross-pose pairs
    mirror: float = 0.0  # relative weight of flip pairs
    identity: float = 0.0  # relative weight of source == target pairs
    expression: float = 0.0  # relative weight of within-subject expression-transfer pairs (s, a) -> (s, b)
    same_frame: bool = True  # pose partners share the frame; False: any frame of the sequence
    require_landmarks: bool = True  # skip targets whose landmarks were not found


class PairSampler:
    """Pose and expression partners of every row, and per-epoch draws of pairs.

    Partners are stored CSR-style: row ``i``'s pose partners are ``idx[ptr[i]:ptr[i + 1]]``, its
    expression partners ``eidx[eptr[i]:eptr[i + 1]]`` with the cumulative draw probabilities
    ``ecdf`` (each row's run ends at 1; module docstring).
    """

    def __init__(self, manifest: pd.DataFrame, landmarks_ok: np.ndarray, cfg: PairConfig,
                 rows: np.ndarray | None = None):
        self.cfg = cfg
        n = len(manifest)
        allowed = np.zeros(n, bool)
        allowed[np.arange(n) if rows is None else np.asarray(rows)] = True
        usable = allowed & (landmarks_ok if cfg.require_landmarks else True)
        self.sources = np.flatnonzero(usable)  # rows that can be a source (and a mirror/identity target)
        self.ptr, self.idx = self._partners(manifest, usable, cfg.same_frame)
        self.eptr, self.eidx, self.ecdf = _expression_partners(manifest, usable)
        # every row's cdf run lies in (0, 1]: offset by the row, the runs form one increasing array
        # that a single searchsorted answers for all sources at once
        self._ecdf_by_row = np.repeat(np.arange(n), np.diff(self.eptr)) + self.ecdf  # [P]
        w = np.array([cfg.pose, cfg.mirror, cfg.identity, cfg.expression], np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ConfigError(f"pair weights must be >= 0 with a positive sum, got "
                              f"pose/mirror/identity/expression = {w}")
        self.weights = w
        if len(self.sources) == 0:
            raise ValueError("no usable source images (none selected, or none with landmarks)")
        has_pose = self.num_partners()[self.sources].sum() > 0
        has_expr = self.num_expression_partners()[self.sources].sum() > 0
        if w[MIRROR] == 0 and w[IDENTITY] == 0 and not (w[POSE] > 0 and has_pose) \
                and not (w[EXPRESSION] > 0 and has_expr):
            what = []
            if w[POSE] > 0:
                what.append("no cross-pose pairs (no subject/expression/frame seen in two poses)")
            if w[EXPRESSION] > 0:
                what.append("no within-subject expression pairs (no subject ids, as in FER2013, or no "
                            "subject seen with two expressions in one pose)")
            raise ConfigError(f"the dataset has {' and '.join(what)}: give pairs.mirror or pairs.identity "
                              f"a positive weight")

    @staticmethod
    def _partners(m: pd.DataFrame, usable: np.ndarray, same_frame: bool) -> tuple[np.ndarray, np.ndarray]:
        keys = ["subject", "expression", "sequence"] + (["frame"] if same_frame else [])
        known = usable & (m["subject"].to_numpy() != "")
        lists: list[list[int]] = [[] for _ in range(len(m))]
        poses = m["pose"].to_numpy()
        for rows in m[known].groupby(keys, sort=False).indices.values():
            members = np.flatnonzero(known)[rows]
            if len(members) < 2:
                continue
            for i in members:
                lists[i] = [j for j in members if poses[j] != poses[i]]
        counts = np.array([len(x) for x in lists], np.int64)
        ptr = np.concatenate([[0], np.cumsum(counts)])
        idx = np.fromiter((j for x in lists for j in x), np.int64, count=int(counts.sum()))
        return ptr, idx

    def num_partners(self) -> np.ndarray:
        return np.diff(self.ptr)

    def num_expression_partners(self) -> np.ndarray:
        return np.diff(self.eptr)

    def draw(self, seed: int, sources: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """One pair per source: ``src``, ``tgt`` (rows), ``flip`` (bool), ``kind`` ([N] each)."""
        rng = np.random.default_rng(seed)
        src = self.sources if sources is None else np.asarray(sources, np.int64)
        w = np.broadcast_to(self.weights, (len(src), len(KIND_NAMES))).copy()  # [N, 4]
        w[self.num_partners()[src] == 0, POSE] = 0.0
        w[self.num_expression_partners()[src] == 0, EXPRESSION] = 0.0
        w[w.sum(1) == 0, IDENTITY] = 1.0  # partner kinds only, and no partner: the source is its own target
        w /= w.sum(1, keepdims=True)
        kind = (rng.random(len(src))[:, None] > np.cumsum(w, 1)).sum(1)  # inverse-CDF draw, [N]
        kind = np.minimum(kind, len(KIND_NAMES) - 1)
        pick = self.ptr[src] + (rng.random(len(src)) * np.maximum(self.num_partners()[src], 1)).astype(np.int64)
        tgt = np.where(kind == POSE, self.idx[np.minimum(pick, len(self.idx) - 1)] if len(self.idx) else src, src)
        u, expr = rng.random(len(src)), kind == EXPRESSION
        tgt[expr] = self._expression_targets(src[expr], u[expr])
        return {"src": src, "tgt": tgt, "flip": kind == MIRROR, "kind": kind}

    def _expression_targets(self, src: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Inverse-CDF draw of an expression partner per source (``src`` itself when it has none):
        ``src`` [N] rows, ``u`` [N] uniform in [0, 1)."""
        if not len(self.eidx):
            return src.copy()
        a, b = self.eptr[src], self.eptr[src + 1]  # [N] each: the source's run of partners
        pos = np.searchsorted(self._ecdf_by_row, src + u, side="right")  # first cdf > u inside the run
        pos = np.clip(pos, a, np.maximum(b - 1, a))  # float rounding of a run's last cdf below 1
        return np.where(b > a, self.eidx[np.minimum(pos, len(self.eidx) - 1)], src)


def _expression_partners(m: pd.DataFrame, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Within-subject expression partners of every usable row with a subject: the rows of the
    same subject and pose in another expression, and each one's cumulative draw probability
    (a partner of expression b weighs ``v_b / n_sb``, ``n_sb`` = rows of b of that subject and
    pose; ``v`` from :func:`target_weights`). Returns ``(ptr [n + 1], idx [P], cdf [P])``."""
    n = len(m)
    subj, expr, pose = (m[c].to_numpy().astype(str) for c in ("subject", "expression", "pose"))
    rows = np.flatnonzero(usable & (subj != ""))
    groups = [rows[np.asarray(g)] for g in pd.Series(rows).groupby([subj[rows], pose[rows]], sort=False).groups.values()]
    v = target_weights([expr[g] for g in groups])
    lists: list[np.ndarray] = [np.zeros(0, np.int64)] * n
    cdfs: list[np.ndarray] = [np.zeros(0)] * n
    for members in groups:
        n_sb = pd.Series(expr[members]).value_counts()
        weight = np.array([v[expr[j]] / n_sb[expr[j]] for j in members])  # [M]
        for i in members:
            other = expr[members] != expr[i]
            if other.any():
                lists[i] = members[other]
                cdfs[i] = np.cumsum(weight[other]) / weight[other].sum()
    counts = np.array([len(x) for x in lists], np.int64)
    ptr = np.concatenate([[0], np.cumsum(counts)])
    idx = np.concatenate(lists) if n else np.zeros(0, np.int64)
    cdf = np.concatenate(cdfs) if n else np.zeros(0)
    return ptr, idx.astype(np.int64), cdf


def target_weights(groups: list[np.ndarray], rounds: int = 200) -> dict[str, float]:
    """Weights ``v_b`` of target expressions such that, when a source of expression a draws b
    with probability ``v_b / sum(v_b' : b' != a, shown by its subject)``, each target expression
    is drawn about equally often per epoch (as equally as the subjects allow). ``groups``: the
    expressions of each (subject, pose)'s rows. Iterative proportional fitting: each round
    scales ``v_b`` by (mean expected count / expected count of b)."""
    names = sorted({e for g in groups for e in g})
    pos = {e: k for k, e in enumerate(names)}
    # per (group, source expression): its row count and which target expressions it may draw
    count, avail = [], []
    for g in groups:
        have = np.zeros(len(names), bool)
        have[[pos[e] for e in g]] = True
        for e, c in pd.Series(g).value_counts().items():
            mask = have.copy()
            mask[pos[e]] = False
            if mask.any():
                count.append(c)
                avail.append(mask)
    if not count:
        return {e: 1.0 for e in names}
    c, a = np.asarray(count, np.float64), np.asarray(avail, np.float64)  # [G], [G, E]
    reach = a.sum(0) > 0  # target expressions some source can draw
    v = np.ones(len(names))
    for _ in range(rounds):
        p = a * v / (a * v).sum(1, keepdims=True)  # [G, E] draw probabilities
        t = (c[:, None] * p).sum(0)  # [E] expected draws per epoch
        v[reach] = np.clip(v[reach] * t[reach].mean() / np.maximum(t[reach], 1e-12), 1e-6, 1e6)
    return {e: float(v[k]) for e, k in pos.items()}


class PairDataset(Dataset):
    """Items of (source, target) for the GAN: images uint8 ``[C, H, W]``, target landmarks
    ``[68, 2]`` pixels at the served size (flipped for mirror pairs), pair kind and rows.

    ``set_epoch(e)`` redraws the pairs from ``seed + e``.
    """

    def __init__(self, faces, sampler: PairSampler, seed: int = 0):
        self.faces = faces  # a FaceDataset over the whole manifest
        self.sampler = sampler
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.pairs = self.sampler.draw(self.seed + epoch)

    def __len__(self) -> int:
        return len(self.pairs["src"])

    def __getitem__(self, k: int) -> dict:
        s, t, flip = int(self.pairs["src"][k]), int(self.pairs["tgt"][k]), bool(self.pairs["flip"][k])
        src_img = self.faces.load(s)  # [H, W, C] uint8
        tgt_img = self.faces.load(t)
        tgt_lm = self.faces.landmarks[t]  # [68, 2] pixels
        if flip:
            tgt_img = tgt_img[:, ::-1]
            tgt_lm = flip_landmarks(tgt_lm, tgt_img.shape[1])
        return {
            "source": torch.from_numpy(np.ascontiguousarray(src_img.transpose(2, 0, 1))),
            "target": torch.from_numpy(np.ascontiguousarray(tgt_img.transpose(2, 0, 1))),
            "source_landmarks": torch.from_numpy(self.faces.landmarks[s]),
            "target_landmarks": torch.from_numpy(np.ascontiguousarray(tgt_lm)),
            "label": int(self.faces.labels[s]),  # the source's expression
            "target_label": int(self.faces.labels[t]),  # the one G is asked to draw (expression pairs: another)
            "kind": int(self.pairs["kind"][k]),
            "src": s,
            "tgt": t,
        }
