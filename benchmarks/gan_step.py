"""FaPE-GAN training step: fape's step against a plain pix2pix-style step, same networks, batch, size.

The reference is the step as the pix2pix code writes it: pose masks drawn per image with OpenCV
in the data path, ``BCEWithLogits`` against freshly built target tensors, D on real and fake,
then G; plain Adam. fape's step (``fape.gan.train.gan_step``) draws the masks in one batched
call on the device. Variants of ours add fused Adam, bf16 autocast and ``torch.compile``.
Rounds interleave the variants (A B C A B C ...) so a busy machine slows them alike; the table
shows the median images/s over rounds and the ratio to the reference. Last, synthesis
throughput: masks + G forward in eval mode, batch 64.

    python benchmarks/gan_step.py [-c configs/gan/quick.yaml configs/gan/quick_warp.yaml] [--steps 10] [--rounds 5]
                                  [--variants ours,fused,bf16,compile]

``-c`` takes one or more GAN presets (default: both quick presets, the ``unet`` and the
``warp_unet`` generator); each gets its own table, its reference built from the same networks.
Dotted overrides apply to every preset, e.g. ``--generator.width=64``.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from fape.config import load_config
from fape.data.landmarks68 import template_face
from fape.data.masks import render_lines_opencv
from fape.gan.config import GANConfig
from fape.gan.io import num_mask_channels, pose_masks
from fape.gan.networks import create_discriminator, create_generator, discriminator_in_chans, discriminator_input
from fape.gan.train import gan_step

REPO = Path(__file__).resolve().parents[1]


def fake_batch(cfg: GANConfig, n: int, seed: int = 0) -> dict:
    s, c = cfg.data.image_size, cfg.data.channels
    g = torch.Generator().manual_seed(seed)
    face = torch.from_numpy(template_face(s))[None]  # [1, 68, 2] pixels
    lm = face + torch.randn(n, 68, 2, generator=g) * s / 64
    return {"source": torch.randint(0, 256, (n, c, s, s), generator=g, dtype=torch.uint8),
            "target": torch.randint(0, 256, (n, c, s, s), generator=g, dtype=torch.uint8),
            "source_landmarks": (face + torch.randn(n, 68, 2, generator=g) * s / 64).float(),
            "target_landmarks": lm.float()}


def landmarks(raw: dict) -> dict:
    """Both landmark sets as keyword arguments (``warp_unet`` warps with them, the others ignore them)."""
    return {"source_landmarks": raw["source_landmarks"], "target_landmarks": raw["target_landmarks"]}


def networks(cfg: GANConfig):
    torch.manual_seed(0)
    mc = num_mask_channels(cfg.data)
    G = create_generator(cfg.generator, in_chans=cfg.data.channels, mask_chans=mc, image_size=cfg.data.image_size)
    D = create_discriminator(cfg.discriminator, image_size=cfg.data.image_size,
                             in_chans=discriminator_in_chans(cfg.discriminator, cfg.data.channels, mc))
    return G, D


class _NoAccel:
    """The two calls of ``accelerate.Accelerator`` the step uses, for single-process timing."""

    def __init__(self, dtype=None):
        self.dtype = dtype

    def autocast(self):
        return torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype is not None)

    @staticmethod
    def backward(loss):
        loss.backward()


def reference_step(cfg, G, D, opt_g, opt_d, raw: dict, crit=nn.BCEWithLogitsLoss(), l1=nn.L1Loss()):
    """pix2pix's optimize_parameters, with the pose mask drawn per image as its data path would."""
    lm = raw["target_landmarks"].numpy()
    thick = max(1, cfg.data.image_size // 64)
    mask = torch.from_numpy(render_lines_opencv(lm, cfg.data.image_size, thick)).float().div(255)[:, None]
    src = raw["source"].float() / 127.5 - 1
    tgt = raw["target"].float() / 127.5 - 1
    fake = G(src, mask, **landmarks(raw))
    for p in D.parameters():
        p.requires_grad = True
    opt_d.zero_grad()
    dc = cfg.discriminator
    pred_fake = D(discriminator_input(dc, fake.detach(), mask, src))
    pred_real = D(discriminator_input(dc, tgt, mask, src))
    loss_d = 0.5 * (crit(pred_fake, torch.zeros_like(pred_fake)) + crit(pred_real, torch.ones_like(pred_real)))
    loss_d.backward()
    opt_d.step()
    for p in D.parameters():
        p.requires_grad = False
    opt_g.zero_grad()
    pred_fake = D(discriminator_input(dc, fake, mask, src))
    loss_g = crit(pred_fake, torch.ones_like(pred_fake)) + cfg.loss.l1_weight * l1(fake, tgt)
    loss_g.backward()
    opt_g.step()


def ours_step(cfg, G, D, opt_g, opt_d, raw: dict, accel):
    from fape.data.dataset import to_float

    batch = {"source_f": to_float(raw["source"]), "target_f": to_float(raw["target"]),
             "mask": pose_masks(raw["target_landmarks"], cfg.data), **landmarks(raw)}
    gan_step(cfg, G, D, opt_g, opt_d, batch, accel)


def make_variant(name: str, cfg: GANConfig, G0, D0):
    G, D = copy.deepcopy(G0), copy.deepcopy(D0)
    fused = name in ("fused", "bf16", "compile")
    kw = dict(lr=cfg.optim.lr_g, betas=tuple(cfg.optim.betas), **({"fused": True} if fused else {}))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), **kw), torch.optim.Adam(D.parameters(), **kw)
    if name == "reference":
        return lambda raw: reference_step(cfg, G, D, opt_g, opt_d, raw)
    if name == "compile":
        G, D = torch.compile(G), torch.compile(D)
    accel = _NoAccel(torch.bfloat16 if name == "bf16" else None)
    return lambda raw: ours_step(cfg, G, D, opt_g, opt_d, raw, accel)


def bench(cfg: GANConfig, batch: int, names: list[str], steps_per_round: int, rounds: int) -> None:
    """Print one preset's table (median images/s, ratio to the reference) and its synthesis rate."""
    G0, D0 = networks(cfg)
    raw = fake_batch(cfg, batch)
    steps = {n: make_variant(n, cfg, G0, D0) for n in names}
    for n in names:  # warm-up (and compilation)
        for _ in range(3):
            steps[n](raw)
    rates: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for n in names:
            t = time.perf_counter()
            for _ in range(steps_per_round):
                steps[n](raw)
            rates[n].append(steps_per_round * batch / (time.perf_counter() - t))
    ref = statistics.median(rates["reference"])
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; {cfg.generator.name} width "
          f"{cfg.generator.width}, {cfg.data.image_size}x{cfg.data.image_size}x{cfg.data.channels}, batch {batch}")
    print("| generator | step | images/s (median) | ratio to reference |")
    print("|---|---|---|---|")
    for n in names:
        med = statistics.median(rates[n])
        print(f"| {cfg.generator.name} | {n} | {med:,.1f} | {med / ref:.2f} |")
    G0.eval()
    big = fake_batch(cfg, 64, seed=1)
    with torch.inference_mode():
        G0(big["source"].float() / 127.5 - 1, pose_masks(big["target_landmarks"], cfg.data), **landmarks(big))
        t = time.perf_counter()
        for _ in range(5):
            G0(big["source"].float() / 127.5 - 1, pose_masks(big["target_landmarks"], cfg.data), **landmarks(big))
        print(f"synthesis (masks + G forward, eval, batch 64): {5 * 64 / (time.perf_counter() - t):,.0f} images/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-c", "--config", nargs="+", default=[str(REPO / "configs/gan/quick.yaml"),
                                                          str(REPO / "configs/gan/quick_warp.yaml")],
                    help="GAN preset(s), one table each (default: quick.yaml (unet) and quick_warp.yaml (warp_unet))")
    ap.add_argument("--batch", type=int, default=None, help="default: the config's train.batch_size")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variants", default="ours,fused,bf16,compile")
    # dotted config overrides for every preset, as the fape CLI takes them: --generator.width=64
    args, overrides = ap.parse_known_args()
    names = ["reference"] + [v for v in args.variants.split(",") if v]
    for path in args.config:
        cfg = load_config(GANConfig, path, overrides)
        bench(cfg, args.batch or cfg.train.batch_size, names, args.steps, args.rounds)


if __name__ == "__main__":
    main()
