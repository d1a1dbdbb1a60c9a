"""Identity and expression preservation through a frozen fape classifier (optional G terms).

``identity``: ``1 - cos`` between the classifier's penultimate features of the generated face
and of its source; ``expression``: cross-entropy of the classifier on the generated face
against the source's label. The classifier sees images the way it was trained (its size and
channels); it is frozen and in eval mode, but gradients flow through it to G.
"""
from __future__ import annotations

import torch

from fape.data.preprocess import to_model_input
from fape.gan import losses


def make_preservation(run: str, dataset_label_names: list[str], device):
    """A function ``(batch, fake) -> {"identity": t, "expression": t}`` for ``generator_loss``."""
    from fape.classifiers.io import load_run

    clf = load_run(run, device)
    model = clf.model.requires_grad_(False).eval()
    size, ch = clf.cfg.data.image_size, clf.cfg.data.channels
    lut = {n: i for i, n in enumerate(clf.label_names)}
    missing = [n for n in dataset_label_names if n not in lut]
    if missing:
        raise ValueError(f"classifier {run} does not know the dataset's expressions {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}: it cannot judge expression preservation")
    label_map = torch.tensor([lut[n] for n in dataset_label_names], device=device)

    def terms(batch: dict, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        f_fake = model.forward_features(to_model_input(fake.float(), size, ch))
        with torch.no_grad():
            f_src = model.forward_features(to_model_input(batch["source_f"], size, ch))
        return {"identity": losses.feature_distance(f_fake, f_src),
                "expression": losses.expression_ce(model.forward_head(f_fake), label_map[batch["label"]])}

    return terms
