"""FaPE-GAN configs: one dataclass per concern, composed into ``GANConfig``.

Presets live in ``configs/gan/*.yaml``; ``fape gan train -c PRESET --train.batch_size=8`` overrides
any field. The resolved config is written into the run directory and every checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fape.config import bounded
from fape.errors import ConfigError
from fape.data.pairs import PairConfig


@dataclass
class GeneratorConfig:
    name: str = "unet"  # registry name: unet | resnet | warp_unet
    width: int = bounded(64, ge=1)  # channels of the first encoder layer
    depth: int = bounded(0, ge=0)  # unet: down-sampling steps (0 = down to 1x1 as pix2pix); resnet: down-sampling steps
    n_blocks: int = bounded(6, ge=0)  # resnet: residual blocks at the bottleneck
    norm: Literal["batch", "instance", "none"] = "batch"
    dropout: float = bounded(0.5, ge=0.0, lt=1.0)  # pix2pix's dropout in the inner decoder layers (its only noise source)
    upsample: Literal["deconv", "resize"] = "deconv"  # decoder: transposed conv (pix2pix) or resize-then-conv (no checkerboard)
    warp_sigma: float = bounded(0.1, gt=0.0)  # warp_unet: Gaussian RBF width, fraction of the image side
    warp_reg: float = bounded(0.1, gt=0.0)  # warp_unet: ridge on the RBF system (larger: smoother, closer to affine)
    warp_grid: int = bounded(32, ge=0)  # warp_unet: side of the coarse lattice of the warp field (0 = every pixel)


@dataclass
class DiscriminatorConfig:
    name: str = "patchgan"
    width: int = bounded(64, ge=1)
    layers: int = bounded(3, ge=1)  # strided conv layers: 3 gives 70x70 receptive fields (pix2pix)
    norm: Literal["batch", "instance", "none"] = "batch"
    spectral_norm: bool = False  # spectral normalisation of every conv weight (Miyato et al. 2018)
    condition_on_mask: bool = True  # D also sees the target pose mask
    condition_on_source: bool = False  # D also sees the source image (pix2pix conditioning)
    # what D calls "real". "target": the real image in the target pose, the image L1 pulls G to
    # (pix2pix; and the paper's unconditional D(I), eq. 1-2, over real faces). "source": the real
    # input image; ``GANConfig.cross_check`` refuses it wherever it fights another target of G.
    real: Literal["target", "source"] = "target"


@dataclass
class LossConfig:
    adversarial: Literal["nonsaturating", "lsgan", "hinge"] = "nonsaturating"  # paper: log loss, eq. 1-2
    l1_weight: float = bounded(10.0, ge=0.0)  # lambda of eq. 3
    identity_weight: float = bounded(0.0, ge=0.0)  # feature distance through a frozen classifier (needs classifier_run)
    expression_weight: float = bounded(0.0, ge=0.0)  # cross-entropy of a frozen classifier on the target's label
    feature_matching_weight: float = bounded(0.0, ge=0.0)  # L1 between D's features of fake and real (pix2pixHD: 10)
    classifier_run: str | None = None


@dataclass
class OptimConfig:
    lr_g: float = bounded(2e-4, gt=0.0)
    lr_d: float = bounded(2e-4, gt=0.0)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = bounded(0.0, ge=0.0)
    fused: bool = False  # fused Adam kernel when the device supports it
    decay_start_epoch: int = bounded(-1, ge=-1)  # linear decay to 0 from this epoch (pix2pix); -1 = constant lr


@dataclass
class GANDataConfig:
    root: str = "data/synth_small"
    image_size: int = bounded(64, ge=8)
    channels: Literal[1, 3] = 3
    mask_style: Literal["lines", "heatmaps"] = "lines"
    mask_per: Literal["landmark", "part"] = "part"  # heatmaps per landmark (68 ch) or per part (7 ch)
    mask_thickness: float = bounded(0.0, ge=0.0)  # lines, pixels; 0 = image_size / 64
    rows: str = ""  # file of manifest rows the GAN may use (e.g. the training parts of a split); "" = all
    heldout_subjects: float = bounded(0.2, ge=0.0, lt=1.0)  # fraction of those rows' subjects kept out of training (for evaluation)
    split_seed: int = 0
    pairs: PairConfig = field(default_factory=PairConfig)
    num_workers: int = bounded(0, ge=0)


@dataclass
class TrainConfig:
    epochs: int = bounded(100, ge=1)
    max_steps: int = bounded(0, ge=0)  # stop after this many optimizer steps (0 = epochs decide)
    batch_size: int = bounded(16, ge=1)  # per process
    grad_accum: int = bounded(1, ge=1)  # split each per-process batch into this many micro-batches (less memory)
    mixed_precision: Literal["no", "bf16", "fp16", "auto"] = "no"  # auto: bf16 where native (utils.loop)
    ema_decay: float = bounded(0.0, ge=0.0, lt=1.0)  # 0 = no EMA of G; e.g. 0.999
    seed: int = 0
    log_every: int = bounded(20, ge=1)  # steps
    sample_every: int = bounded(200, ge=1)  # steps; PNG grid source | mask | generated | target
    ckpt_every: int = bounded(500, ge=1)  # steps; also at the end of every epoch
    keep_checkpoints: int = bounded(2, ge=1)
    compile: bool = False  # torch.compile G and D
    trackers: list[str] = field(default_factory=lambda: ["jsonl"])  # + tensorboard, wandb
    cpu: bool = False  # force CPU even when a GPU is present


@dataclass
class GANConfig:
    name: str = "fape-gan"
    runs_dir: str = "runs/gan"
    data: GANDataConfig = field(default_factory=GANDataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def cross_check(self) -> None:
        """Refuse a config whose adversarial target disagrees with G's other targets (``load_config``
        calls this after the per-field checks).

        G is asked for the target image: L1 pulls it there (``loss.l1_weight``), and a D conditioned
        on the target pose mask (or on the source) judges the pair it sees. With
        ``discriminator.real=source`` D calls the *source* image real: under L1 the two terms pull G
        to different images; with the mask D rewards a face that ignores the pose it is given; with
        the source D rewards copying the input. Only an unconditional D without L1 leaves no other
        target to fight (D then just asks for a real-looking face).
        """
        dc = self.discriminator
        if dc.real != "source":
            return
        clash = [f"loss.l1_weight={self.loss.l1_weight:g} pulls G to the target"] if self.loss.l1_weight else []
        if dc.condition_on_mask:
            clash.append("discriminator.condition_on_mask=true makes D reward the source pose under the target mask")
        if dc.condition_on_source:
            clash.append("discriminator.condition_on_source=true makes D reward a copy of the source")
        if clash:
            raise ConfigError(
                "discriminator.real=source makes the adversarial term reward the source image, but "
                + "; ".join(clash) + ". Set discriminator.real=target (the F2ED paper's D(I) sees real "
                "images; pix2pix's conditional D sees the real target)")
