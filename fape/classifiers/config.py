"""Classifier training configs (``configs/clf/*.yaml``), composed into ``ClfConfig``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fape.config import bounded


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
    fold: int = bounded(-1, ge=-1)  # k-fold protocols: which fold is the test part
    image_size: int = bounded(64, ge=8)
    channels: Literal[1, 3] = 3
    # synthesized images (a dataset in the fape format with the same label names) added to the
    # training part: mix = synthetic images per epoch as a fraction of the real training images
    synthetic: str = ""
    mix: float = bounded(0.5, ge=-1.0)  # -1: every synthetic image, each epoch
    # class balancing of the training part; class_source: the sampler with classes equal and, within a
    # class, each source dataset (a merge's 'dataset' column) weighted by 1/sqrt(its images)
    balance: Literal["none", "sampler", "loss", "class_source"] = "none"
    augment: Literal["none", "flip", "mobilenet", "cife", "robust"] = "flip"
    num_workers: int = bounded(0, ge=0)


@dataclass
class ClfOptimConfig:
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = bounded(0.01, ge=0.0)  # 0: a stage that must not move (tests, frozen chains)
    momentum: float = bounded(0.9, ge=0.0, lt=1.0)
    weight_decay: float = bounded(5e-4, ge=0.0)
    schedule: Literal["step", "none", "cosine"] = "step"
    step_epochs: int = bounded(10, ge=1)  # step schedule: multiply lr by gamma every step_epochs epochs
    gamma: float = bounded(0.457, gt=0.0)  # F2ED paper: lr x 0.457 every 10 epochs
    fused: bool = False


@dataclass
class CenterLossConfig:
    weight: float = bounded(0.0, ge=0.0)  # lambda (MobileNet paper: 0.001)
    alpha: float = bounded(0.001, gt=0.0)  # centre learning rate of Wen et al.'s delta rule


@dataclass
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015) from a trained classifier into this run's model:
    loss = (1 - weight) x cross-entropy + weight x ``fape.classifiers.losses.distillation_loss``."""
    teacher: str = ""  # a run folder or checkpoint (as model.init_from); "" = no distillation
    weight: float = bounded(0.5, ge=0.0, le=1.0)  # alpha; 1 = soft targets only, the labels unused
    temperature: float = bounded(4.0, gt=0.0)  # T of both softmaxes; the KD term is scaled by T^2


@dataclass
class ClfTrainConfig:
    epochs: int = bounded(100, ge=1)
    max_steps: int = bounded(0, ge=0)  # stop after this many steps (0 = epochs decide)
    batch_size: int = bounded(128, ge=1)
    mixed_precision: Literal["no", "bf16", "fp16", "auto"] = "no"  # auto: bf16 where native (utils.loop)
    channels_last: bool = False  # NHWC memory: 1.1-1.4x faster on this CPU (benchmarks/clf_step.py)
    label_smoothing: float = bounded(0.0, ge=0.0, lt=1.0)
    mixup: float = bounded(0.0, ge=0.0)  # Beta(a, a) parameter of mixup (Zhang et al. 2018); 0 = off
    seed: int = 0
    eval_every: int = bounded(1, ge=1)  # epochs between validation passes (model selection on val only)
    log_every: int = bounded(50, ge=1)
    keep_checkpoints: int = bounded(2, ge=1)  # the previous one is what --resume falls back to if the newest is damaged
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
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: ClfTrainConfig = field(default_factory=ClfTrainConfig)
