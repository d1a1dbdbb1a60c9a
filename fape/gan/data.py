"""The GAN's data: faces, training pairs, held-out pose pairs of unseen subjects, and batches made
ready for G and D (float images in [-1, 1] and the target's pose masks). Shared by the training loop
(``fape.gan.train``) and the held-out reports (``fape.metrics.gan_report``)."""
from __future__ import annotations

import dataclasses

import numpy as np

from fape.data.dataset import FaceDataset, to_float
from fape.data.pairs import PairDataset, PairSampler
from fape.gan.config import GANConfig
from fape.gan.io import pose_masks


def gan_rows(cfg: GANConfig, manifest) -> tuple[np.ndarray, np.ndarray]:
    """Manifest rows the GAN trains on, and the held-out subjects' rows it is measured on."""
    from fape.data.splits import holdout_rows

    # data.rows: e.g. rows no task tests on, so synthesis never learned from a test image
    return holdout_rows(manifest, cfg.data.rows, cfg.data.heldout_subjects, cfg.data.split_seed)


def build_data(cfg: GANConfig):
    """Faces, train pairs and held-out pose pairs (subjects unseen in training; None if none)."""
    d = cfg.data
    faces = FaceDataset(d.root, size=d.image_size, channels=d.channels, progress=False)
    train_rows, held_rows = gan_rows(cfg, faces.index.manifest)
    sampler = PairSampler(faces.index.manifest, faces.index.landmarks_ok, d.pairs, rows=train_rows)
    train = PairDataset(faces, sampler, seed=cfg.train.seed)
    return faces, train, heldout_pairs(cfg, faces, held_rows)


def heldout_pairs(cfg: GANConfig, faces: FaceDataset, rows: np.ndarray) -> PairDataset | None:
    """Pairs with a true target among ``rows`` (the run's held-out subjects, or rows the caller
    vouches the GAN never trained on): pose pairs, and expression pairs when the run trains on
    them. None when the rows make no such pair (single-pose data, no subject ids, no rows)."""
    d = cfg.data
    if not len(rows):
        return None
    held = (d.pairs.pose, d.pairs.expression) if d.pairs.pose + d.pairs.expression > 0 else (1.0, 0.0)
    held_cfg = dataclasses.replace(d.pairs, pose=held[0], expression=held[1], mirror=0.0, identity=0.0)
    try:
        hs = PairSampler(faces.index.manifest, faces.index.landmarks_ok, held_cfg, rows=rows)
    except ValueError:
        return None
    return PairDataset(faces, hs, seed=10_000 + cfg.train.seed)


def prepare_batch(cfg: GANConfig, batch: dict) -> dict:
    """Adds ``source_f``/``target_f`` (float ``[B, C, H, W]`` in [-1, 1]) and ``mask`` (the target
    pose masks, ``[B, M, H, W]``) to a collated batch of uint8 images and ``[B, 68, 2]`` landmarks
    (``source_landmarks``, ``target_landmarks``: pixels, made float32)."""
    batch["source_f"] = to_float(batch["source"])
    batch["target_f"] = to_float(batch["target"])
    batch["source_landmarks"] = batch["source_landmarks"].float()  # [B, 68, 2] pixels
    batch["target_landmarks"] = batch["target_landmarks"].float()
    batch["mask"] = pose_masks(batch["target_landmarks"], cfg.data)
    return batch


def generate(G, batch: dict):
    """``G``'s output ``[B, C, H, W]`` for a prepared batch: every generator takes the source image,
    the target pose mask and both landmark sets (``warp_unet`` warps with them; the others ignore them)."""
    return G(batch["source_f"], batch["mask"], source_landmarks=batch["source_landmarks"],
             target_landmarks=batch["target_landmarks"])


def spread(n: int, k: int) -> np.ndarray:
    """``k`` of ``n`` indices evenly spaced: pairs are ordered by source row (so by subject), and
    the first ``k`` would all come from the first subjects."""
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64)) if k < n else np.arange(n)
