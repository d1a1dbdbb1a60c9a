"""Training pairs for FaPE-GAN: (source image, target pose, target image).

Three kinds of pair, mixed by configurable weights:

* ``pose``: the target is the same subject, expression and frame (sequence) in another pose;
  only multi-pose sets (the synthetic set, F2ED, KDEF) have them.
* ``mirror``: the target is the horizontally flipped source, with landmarks re-indexed by
  ``landmarks68.FLIP_PERM``; a real target for single-pose sets such as FER2013 and JAFFE.
* ``identity``: the target is the source itself (reconstruction).

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

POSE, MIRROR, IDENTITY = 0, 1, 2
KIND_NAMES = ("pose", "mirror", "identity")


@dataclass
class PairConfig:
    pose: float = 1.0  # relative weight of cross-pose pairs
    mirror: float = 0.0  # relative weight of flip pairs
    identity: float = 0.0  # relative weight of source == target pairs
    same_frame: bool = True  # pose partners share the frame; False: any frame of the sequence
    require_landmarks: bool = True  # skip targets whose landmarks were not found


class PairSampler:
    """Pose partners of every row, and per-epoch draws of pairs.

    Partners are stored CSR-style: row ``i``'s partners are ``idx[ptr[i]:ptr[i + 1]]``.
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
        w = np.array([cfg.pose, cfg.mirror, cfg.identity], np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"pair weights must be >= 0 with a positive sum, got pose/mirror/identity = {w}")
        self.weights = w
        if len(self.sources) == 0:
            raise ValueError("no usable source images (none selected, or none with landmarks)")
        if w[MIRROR] == 0 and w[IDENTITY] == 0 and self.num_partners()[self.sources].sum() == 0:
            raise ValueError(
                "the dataset has no cross-pose pairs (no subject/expression/frame seen in two poses): "
                "give pairs.mirror or pairs.identity a positive weight"
            )

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

    def draw(self, seed: int, sources: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """One pair per source: ``src``, ``tgt`` (rows), ``flip`` (bool), ``kind`` ([N] each)."""
        rng = np.random.default_rng(seed)
        src = self.sources if sources is None else np.asarray(sources, np.int64)
        has = self.num_partners()[src] > 0
        w = np.broadcast_to(self.weights, (len(src), 3)).copy()  # [N, 3]
        w[~has, POSE] = 0.0
        w[w.sum(1) == 0, IDENTITY] = 1.0  # pose pairs only, and no partner: the source is its own target
        w /= w.sum(1, keepdims=True)
        kind = (rng.random(len(src))[:, None] > np.cumsum(w, 1)).sum(1)  # inverse-CDF draw, [N]
        kind = np.minimum(kind, 2)
        pick = self.ptr[src] + (rng.random(len(src)) * np.maximum(self.num_partners()[src], 1)).astype(np.int64)
        tgt = np.where(kind == POSE, self.idx[np.minimum(pick, len(self.idx) - 1)] if len(self.idx) else src, src)
        return {"src": src, "tgt": tgt, "flip": kind == MIRROR, "kind": kind}


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
            "label": int(self.faces.labels[s]),
            "kind": int(self.pairs["kind"][k]),
            "src": s,
            "tgt": t,
        }
