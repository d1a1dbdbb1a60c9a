"""Loading trained classifiers: a run's selected (``best``) weights, for evaluation, transfer
chains (stage N starts from stage N-1) and metrics that need a trained feature extractor; and
``predict``, a classifier's probabilities on dataset rows (validation in training, evaluation)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fape.config import from_dict
from fape.data.preprocess import Preprocess, from_state
from fape.utils import checkpoint as ck


def best_checkpoint(run_or_ckpt: str | Path) -> Path:
    """The folder holding the weights to use: ``RUN/best/checkpoints/step_*`` of a run, or a
    checkpoint folder given directly."""
    p = Path(run_or_ckpt)
    if (p / "state.json").is_file():
        return p
    best = ck.latest_checkpoint(p / "best")
    if best is None:
        raise FileNotFoundError(f"no selected model in {p}: looked for {p / 'best' / 'checkpoints' / 'latest'} "
                                f"(is it a finished `fape clf train` run?)")
    return best


def load_best_weights(model: nn.Module, run_or_ckpt: str | Path, label_names: list[str] | None = None) -> dict:
    """Copy a previous run's best weights into ``model``. The classifier head (``head.*``) is kept
    only when it means the same classes: same shape and, when ``label_names`` is given, the same
    label names in the same order (FER2013's 7 and CK+'s 7 are different classes); otherwise it
    stays freshly initialised. Returns what was loaded/skipped."""
    ckpt = best_checkpoint(run_or_ckpt)
    sd = ck.load_module_state(ckpt, "model")
    same_labels = label_names is None or list(ck.load_state(ckpt).get("label_names", [])) == list(label_names)
    own = model.state_dict()
    take = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape
            and (same_labels or not k.startswith("head."))}
    skipped = sorted(set(sd) - set(take))
    model.load_state_dict(take, strict=False)
    return {"loaded": len(take), "skipped": skipped, "missing": sorted(set(own) - set(take))}


@dataclass
class LoadedClassifier:
    model: nn.Module  # eval mode
    cfg: object  # ClfConfig
    label_names: list[str]
    checkpoint: Path
    preprocess: Preprocess  # the crop/size/range recipe its state.json records (fape.data.preprocess)


def load_run(run_or_ckpt: str | Path, device: str | torch.device = "cpu") -> LoadedClassifier:
    """A trained classifier ready for inference: input float ``[B, C, H, W]`` in [-1, 1] at
    ``cfg.data.image_size`` with ``cfg.data.channels`` channels."""
    from fape.classifiers import create_classifier
    from fape.classifiers.config import ClfConfig

    ckpt = best_checkpoint(run_or_ckpt)
    state = ck.load_state(ckpt)
    cfg = from_dict(ClfConfig, state["config"])
    names = list(state["label_names"])
    model = create_classifier(cfg.model.name, num_classes=len(names), in_chans=cfg.data.channels,
                              image_size=cfg.data.image_size, pretrained=False, **cfg.model.kwargs)
    model.load_state_dict(ck.load_module_state(ckpt, "model"))
    return LoadedClassifier(model=model.to(device).eval(), cfg=cfg, label_names=names, checkpoint=ckpt,
                            preprocess=from_state(state))


@torch.no_grad()
def predict(model: nn.Module, ds, rows: np.ndarray, device, batch: int = 256) -> np.ndarray:
    """Softmax probabilities ``[len(rows), K]`` for manifest ``rows`` of ``ds`` (a ``FaceDataset``;
    the model runs in eval mode, and is left in the mode it had)."""
    from fape.data.dataset import to_float

    was = model.training
    model.eval()
    out = []
    for i in range(0, len(rows), batch):
        imgs = torch.stack([torch.from_numpy(ds.load(int(r)).transpose(2, 0, 1).copy()) for r in rows[i:i + batch]])
        out.append(F.softmax(model(to_float(imgs.to(device))).float(), 1).cpu())
    model.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
