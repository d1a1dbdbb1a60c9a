"""Classifier training configs (``configs/clf/*.yaml``), composed into ``ClfConfig``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelConfig:
    name: str = "fa_net_lightcnn9"
    pretrained: str = ""  # "" none, "imagenet" (local torchvision/hub cache), or a weights file
    init_from: str = ""  # a previous stage's run folder or checkpoint: start from its best weights
    kwargs: dict = field(default_factory=dict)  # extra create_classifier arguments (width_mult, ...)


@dataclass
class ClfDataConfig:
    root: str = "data/synth_small"
    split: str = "er-ss"  # a split file (DIR/splits/*.csv) or a protocol name made on the fly
    split_options: dict = field(default_factory=dict)
    split_seed: int = 0
    fold: int = -1  # k-fold protocols: which fold is the test part
    image_size: int = 64
    channels: int = 3
    # synthesized images (a dataset in the fape format with the same label names) added to the
    # training part: mix = synthetic images per epoch as a fraction of the real training images
    synthetic: str = ""
    mix: float = 0.5
    # class balancing of the training part; class_source: the sampler with classes equal and, within a
    # class, each source dataset (a merge's 'dataset' column) weighted by 1/sqrt(its images)
    balance: Literal["none", "sampler", "loss", "class_source"] = "none"
    augment: Literal["none", "flip", "mobilenet", "cife", "robust"] = "flip"
    num_workers: int = 0


@dataclass
class ClfOptimConfig:
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["step", "none", "cosine"] = "step"
    step_epochs: int = 10  # step schedule: multiply lr by gamma every step_epochs epochs
    gamma: float = 0.457  # F2ED paper: lr x 0.457 every 10 epochs
    fused: bool = False


@dataclass
class CenterLossConfig:
    weight: float = 0.0  # lambda (MobileNet paper: 0.001)
    alpha: float = 0.001  # centre learning rate of Wen et al.'s delta rule


@dataclass
class ClfTrainConfig:
    epochs: int = 100
    max_steps: int = 0  # stop after this many steps (0 = epochs decide)
    batch_size: int = 128
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    channels_last: bool = False  # NHWC memory: 1.1-1.4x faster on this CPU (benchmarks/clf_step.py)
    label_smoothing: float = 0.0
    mixup: float = 0.0  # Beta(a, a) parameter of mixup (Zhang et al. 2018); 0 = off
    seed: int = 0
    eval_every: int = 1  # epochs between validation passes (model selection on val only)
    log_every: int = 50
    keep_checkpoints: int = 1
    trackers: list[str] = field(default_factory=lambda: ["jsonl"])
    cpu: bool = False


@dataclass
class ClfConfig:
    name: str = "fa-net"
    runs_dir: str = "runs/clf"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: ClfDataConfig = field(default_factory=ClfDataConfig)
    optim: ClfOptimConfig = field(default_factory=ClfOptimConfig)
    center_loss: CenterLossConfig = field(default_factory=CenterLossConfig)
    train: ClfTrainConfig = field(default_factory=ClfTrainConfig)
