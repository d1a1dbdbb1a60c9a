"""Identity and expression preservation through a frozen fape classifier (optional G terms).

``identity``: ``1 - cos`` between the classifier's penultimate features of the generated face
and of its source; ``expression``: cross-entropy of the classifier on the generated face
against the target's label, the expression G is asked to draw. In a pose pair that is the
source's own; in an expression pair (s, a) -> (s, b) it is b, so the term pulls G towards
drawing b rather than keeping a. The classifier sees images the way it was trained (its size and
channels); it is frozen and in eval mode, but gradients flow through it to G.
"""
from __future__ import annotations

import numpy as np
import torch

from fape.data.preprocess import to_model_input
from fape.errors import ConfigError
from fape.gan import losses


def classifier_rows_outside(clf_cfg, index, allowed_rows: np.ndarray) -> np.ndarray:
    """Rows of ``index`` the classifier trained or selected on (its split's train and val parts)
    that are not in ``allowed_rows``; empty when the classifier's data is another dataset."""
    from fape.classifiers.data import resolve_split
    from fape.data.format import read_index

    clf_index = read_index(clf_cfg.data.root)
    if clf_index.info.manifest_sha256 != index.info.manifest_sha256:
        return np.zeros(0, np.int64)  # other faces: none of the GAN's held-out rows can be among them
    parts = resolve_split(clf_cfg, clf_index)[0]
    used = np.concatenate([np.asarray(parts.get(k, []), np.int64) for k in ("train", "val")])
    return np.setdiff1d(used, allowed_rows)


TERMS = ("identity", "expression")


def make_preservation(run: str, dataset_label_names: list[str], device, index=None,
                      allowed_rows: np.ndarray | None = None, terms: tuple[str, ...] = TERMS):
    """A function ``(batch, fake) -> {term: t for term in terms}`` for ``generator_loss``.

    Only the terms asked for are computed: ``identity`` costs a second forward pass of the
    classifier, on the source, every step, which is wasted when its weight is 0.

    With ``index`` and ``allowed_rows`` (the GAN's training rows), a classifier that trained or
    selected on any other row of the same dataset is refused: it would carry the held-out subjects'
    faces into G's loss, and expression agreement on them would no longer be a held-out figure."""
    from fape.classifiers.io import load_run

    clf = load_run(run, device)
    if index is not None and allowed_rows is not None:
        bad = classifier_rows_outside(clf.cfg, index, allowed_rows)
        if len(bad):
            raise ConfigError(f"loss.classifier_run {run} trained on {len(bad)} rows the GAN may not train on "
                              f"(e.g. rows {bad[:5].tolist()}: held-out subjects or rows outside data.rows); "
                              f"train the classifier on the GAN's training rows only")
    unknown = sorted(set(terms) - set(TERMS))
    if unknown or not terms:
        raise ValueError(f"preservation terms must be a non-empty subset of {TERMS}, got {tuple(terms)}")
    model = clf.model.requires_grad_(False).eval()
    size, ch = clf.cfg.data.image_size, clf.cfg.data.channels
    lut = {n: i for i, n in enumerate(clf.label_names)}
    missing = [n for n in dataset_label_names if n not in lut]
    if missing:
        raise ValueError(f"classifier {run} does not know the dataset's expressions {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}: it cannot judge expression preservation")
    label_map = torch.tensor([lut[n] for n in dataset_label_names], device=device)

    def compute(batch: dict, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        f_fake = model.forward_features(to_model_input(fake.float(), size, ch))
        out = {}
        if "identity" in terms:
            with torch.no_grad():  # the source's features are the target
                f_src = model.forward_features(to_model_input(batch["source_f"], size, ch))
            out["identity"] = losses.feature_distance(f_fake, f_src)
        if "expression" in terms:
            out["expression"] = losses.expression_ce(model.forward_head(f_fake), label_map[batch["target_label"]])
        return out

    return compute
