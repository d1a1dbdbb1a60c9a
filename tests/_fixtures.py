"""Tiny fape datasets written by the tests themselves (no real data needed)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from fape.data.format import DatasetInfo, save_image, write_index
from fape.data.landmarks68 import template_face

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout; FAPE_SHARED_DATA points elsewhere (e.g. from a git worktree)
SHARED_DATA = Path(os.environ.get("FAPE_SHARED_DATA") or REPO.parent / "shared" / "data")


def make_multipose(root: Path, subjects=2, expressions=3, frames=2, poses=("half_left", "front", "half_right"),
                   size=32, channels=3, seed=0, missing_landmarks=(), pose_shift=2.0, draw=None,
                   label_names=None, mouth_shift=0.0, skip=()) -> Path:
    """A grid dataset: every subject x expression x frame in every pose, template landmarks
    shifted by ``pose_shift`` pixels per pose step (so pose partners differ).

    Pixels are random, or ``draw(rng, subject, label, landmarks [68, 2]) -> uint8 [size, size,
    channels]`` paints each image (a learnable task for the learning tests). Real-style sets
    (one pose, like an imported CK+48 or JAFFE): ``poses=("F",)``, ``label_names`` for the
    expressions, ``mouth_shift`` pixels the mouth moves down per expression step (so expressions
    differ in landmarks), ``skip`` (subject, expression) cells left out."""
    rng = np.random.default_rng(seed)
    rows, lms = [], []
    labels = list(label_names) if label_names else [f"expr{e}" for e in range(expressions)]
    for s in range(subjects):
        for e in range(len(labels)):
            if (s, e) in skip:
                continue
            for f in range(frames):
                for pi, pose in enumerate(poses):
                    path = f"images/s{s}/e{e}/f{f}_{pose}.png"
                    lm = template_face(size) + [pose_shift * (pi - 1), 0.0]
                    lm[48:68, 1] += mouth_shift * e
                    img = (rng.integers(0, 256, (size, size, channels), dtype=np.uint8) if draw is None
                           else draw(rng, s, e, lm))
                    save_image(root / path, img)
                    rows.append(dict(path=path, subject=f"s{s}", expression=labels[e], label=e, pose=pose,
                                     sequence=f"s{s}_e{e}", frame=f, source="fixture"))
                    lms.append(lm)
    lm = np.asarray(lms, np.float32)
    ok = np.ones(len(rows), bool)
    for i in missing_landmarks:
        lm[i], ok[i] = np.nan, False
    info = DatasetInfo(name=root.name, label_names=labels, pose_names=list(poses), image_size=[size, size],
                       channels=channels, origin={"kind": "test-fixture"}, landmarks_source="test-fixture")
    write_index(root, pd.DataFrame(rows), info, lm, ok)
    return root


def stripes(rng, subject, label, lm, size=32):
    """A ``make_multipose`` draw: gray stripes whose orientation is the label (4 classes); period,
    phase, contrast, brightness and pixel noise are drawn per image, so an image's class is its
    orientation and nothing else."""
    y, x = np.mgrid[:size, :size].astype(np.float64)
    coord = (y, x, x + y, x - y)[label] / (1.0 if label < 2 else math.sqrt(2))
    wave = np.sign(np.sin(2 * np.pi * coord / rng.uniform(5, 9) + rng.uniform(0, 2 * np.pi)))
    img = 128 + rng.uniform(-30, 30) + rng.uniform(40, 90) * wave + rng.normal(0, 20, (size, size))
    return np.clip(img, 0, 255).astype(np.uint8)[..., None]


def killed_and_resumed(monkeypatch, module, name: str, at_call: int, cfg, run: Path) -> Path:
    """Classifier training of ``cfg`` into ``run``, killed (KeyboardInterrupt) at the ``at_call``-th call
    of ``module.name`` (a function the loop calls every step), then resumed from the run's config."""
    import pytest

    from fape.classifiers import train as clf_train
    from fape.classifiers.config import ClfConfig
    from fape.config import load_config

    real, calls = getattr(module, name), {"n": 0}

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(module, name, dying)
    with pytest.raises(KeyboardInterrupt):
        clf_train.train(cfg, run, progress=False)
    monkeypatch.setattr(module, name, real)
    return clf_train.train(load_config(ClfConfig, run / "config.yaml"), run, resume=True, progress=False)


def same_last_weights(run_a: Path, run_b: Path) -> bool:
    """The two runs' latest checkpoints hold equal model weights."""
    import torch

    from fape.utils import checkpoint as ck

    a = ck.load_module_state(ck.latest_checkpoint(run_a), "model")
    b = ck.load_module_state(ck.latest_checkpoint(run_b), "model")
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def tiny_generator_run(run: Path, size: int = 32, channels: int = 3) -> Path:
    """A checkpoint of an untrained tiny generator (unet width 8, ``size`` px, ``channels``), written
    like training does: enough for ``fape gan synthesize`` to run."""
    import dataclasses

    import torch

    from fape.gan.config import GANConfig
    from fape.gan.io import num_mask_channels
    from fape.gan.networks import create_generator
    from fape.utils.checkpoint import save_checkpoint

    cfg = GANConfig()
    cfg.data.image_size = size
    cfg.data.channels = channels
    cfg.generator.width = 8
    torch.manual_seed(0)
    G = create_generator(cfg.generator, in_chans=channels, mask_chans=num_mask_channels(cfg.data), image_size=size)
    save_checkpoint(run, 1, {"G": G.state_dict()}, {}, {"config": dataclasses.asdict(cfg), "epoch": 0})
    return run


def tiny_clf_run(root: Path, epochs: int = 2, model: str = "cnn3") -> tuple[Path, Path]:
    """A ``model`` classifier run (32 px gray, random split) on a 3-subject x 3-expression multipose
    set: ``(run folder, dataset folder)``."""
    from fape.classifiers import train as clf_train
    from fape.classifiers.config import ClfConfig
    from fape.config import load_config

    data = make_multipose(root / "real", subjects=3, expressions=3, frames=2)
    cfg = load_config(ClfConfig, None, [f"--data.root={data}", f"--model.name={model}",
                                        "--data.split=random", "--data.image_size=32", "--data.channels=1", "--train.batch_size=8",
                                        f"--train.epochs={epochs}", "--optim.name=adam", "--optim.lr=1e-3"])
    return clf_train.train(cfg, root / "run", progress=False), data


def load_tool(name: str):
    """``tools/NAME.py`` imported as a module (tools are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
