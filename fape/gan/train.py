"""The FaPE-GAN training loop: one function owning optimizers, EMA, snapshots, metrics, resume.

Runs unchanged on CPU, one GPU and many processes (``accelerate launch -m fape gan train ...``).
Determinism: pairs of epoch ``e`` come from ``seed + e``; the batch order of epoch ``e`` from a
permutation seeded by ``(seed, e)`` and sharded across processes; the torch RNG (dropout) is
re-seeded from ``(seed, rank, step)`` before every step. So nothing random lives only in
memory, and a run killed and resumed from its last checkpoint retraces the uninterrupted run.
"""
from __future__ import annotations

import contextlib
import copy
import time
from pathlib import Path

import numpy as np
import torch

from fape.config import to_dict
from fape.errors import ConfigError
from fape.data.dataset import to_uint8
from fape.gan import losses
from fape.gan.config import GANConfig
from fape.gan.data import build_data, gan_rows, generate, prepare_batch, spread
from fape.gan.io import num_mask_channels
from fape.utils import checkpoint as ck
from fape.utils.finite import DivergenceWatch, tensors_of
from fape.utils.io import atomic_write_json
from fape.utils.loop import collate, epoch_batches, make_accelerator, open_run, resolve_run_dir, state_digest
from fape.utils.loop import steps_per_epoch as epoch_steps
from fape.utils.runs import tracker_names


def discriminator_real(cfg: GANConfig, batch: dict) -> torch.Tensor:
    """What D calls real: the real target, the image L1 pulls G to (pix2pix, and the paper's D(I)),
    or the real input image (only where ``GANConfig.cross_check`` lets nothing else pull G)."""
    return batch["target_f"] if cfg.discriminator.real == "target" else batch["source_f"]


def gan_step(cfg, G, D, opt_g, opt_d, batch: dict | list[dict], accelerator, preserve=None) -> dict:
    """One D update then one G update on prepared batches (``source_f``, ``target_f``, ``mask``).

    A single batch reuses its fakes for both updates (pix2pix). A list of micro-batches
    (gradient accumulation) runs in two phases as StyleGAN2-ADA does: D accumulates over every
    micro-batch with fakes drawn without a graph, steps, then G accumulates and steps; gradients
    are synchronised across processes only on the last micro-batch of each phase.
    """
    from fape.gan.networks import discriminator_input

    dc, lc = cfg.discriminator, cfg.loss
    micro = batch if isinstance(batch, list) else [batch]
    n = len(micro)

    def d_loss(b, fake):
        real_logits = D(discriminator_input(dc, discriminator_real(cfg, b), b["mask"], b["source_f"]))
        fake_logits = D(discriminator_input(dc, fake, b["mask"], b["source_f"]))
        return losses.discriminator_loss(real_logits.float(), fake_logits.float(), lc)

    def g_loss(b, fake):
        x_fake = discriminator_input(dc, fake, b["mask"], b["source_f"])
        extra = dict(preserve(b, fake)) if preserve is not None else {}  # frozen-classifier terms
        if lc.feature_matching_weight:
            fake_logits, f_fake = D(x_fake, return_features=True)
            with torch.no_grad():  # the real image's features are the target
                _, f_real = D(discriminator_input(dc, discriminator_real(cfg, b), b["mask"], b["source_f"]),
                              return_features=True)
            extra["feature_matching"] = losses.feature_matching(f_fake, f_real)
        else:
            fake_logits = D(x_fake)
        return losses.generator_loss(fake_logits.float(), fake.float(), b["target_f"].float(), lc, extra)

    def backward(loss, model, last):
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            accelerator.backward(loss / n)

    parts: dict[str, float] = {}
    fakes = None
    # --- D: real vs fake, G's graph cut
    D.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    if n == 1:
        with accelerator.autocast():
            fakes = [generate(G, micro[0])]  # [B, C, H, W] in [-1, 1], kept for G
    for i, b in enumerate(micro):
        with accelerator.autocast():
            if fakes is None:
                with torch.no_grad():
                    fake = generate(G, b)
            else:
                fake = fakes[i]
            total, p = d_loss(b, fake.detach())
        backward(total, D, i == n - 1)
        _accumulate(parts, p, n)
    opt_d.step()
    # --- G: fool D + lambda * L1 to the true target; D's weights need no gradients here
    D.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    for i, b in enumerate(micro):
        with accelerator.autocast():
            fake = fakes[i] if fakes is not None else generate(G, b)
            total, p = g_loss(b, fake)
        backward(total, G, i == n - 1)
        _accumulate(parts, p, n)
    opt_g.step()
    return parts


def _accumulate(parts: dict, new: dict, n: int) -> None:
    for k, v in new.items():
        parts[k] = parts.get(k, 0.0) + v / n


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach().to(pe.dtype), 1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


# ---------------------------------------------------------------- evaluation and samples
@torch.no_grad()
def evaluate_l1(cfg, G, heldout, device, max_pairs: int = 512) -> dict:
    """Held-out subjects: mean |G(src, mask) - tgt| against the copy baseline |src - tgt| (in [-1, 1] units),
    over the whole image and inside the target's landmark hull (``face_l1``: a target's background
    is unknowable when backgrounds are drawn per image) with its SSIM."""
    from fape.metrics.paired import face_region_metrics

    if heldout is None:
        return {}
    heldout.set_epoch(0)
    pick = spread(len(heldout), max_pairs)
    n = len(pick)
    was_training = G.training
    G.eval()
    sums = dict.fromkeys(("l1", "l1_copy_source", "face_l1", "face_l1_copy_source", "face_ssim",
                          "face_ssim_copy_source"), 0.0)
    for i in range(0, n, 64):
        b = prepare_batch(cfg, collate(heldout, pick[i:i + 64], device))
        fake = generate(G, b).float()
        for key, x in (("", fake), ("_copy_source", b["source_f"])):
            sums["l1" + key] += (x - b["target_f"]).abs().mean((1, 2, 3)).sum().item()
            face = face_region_metrics(x.cpu(), b["target_f"].cpu(), b["target_landmarks"])
            sums["face_l1" + key] += 2 * face["face_l1"].sum()  # [0, 1] units -> [-1, 1] like eval/l1
            sums["face_ssim" + key] += face["face_ssim"].sum()
    G.train(was_training)
    return {**{f"eval/{k}": v / n for k, v in sums.items()}, "eval/pairs": n}


@torch.no_grad()
def sample_grid(cfg, G, pairs, device, n: int = 8) -> np.ndarray:
    """uint8 ``[n*H, 4*W, 3]``: rows of source | pose mask | generated | target."""
    pairs.set_epoch(0)
    b = prepare_batch(cfg, collate(pairs, np.arange(min(n, len(pairs))), device))
    was_training = G.training
    G.eval()
    fake = generate(G, b)
    G.train(was_training)
    m = b["mask"].amax(1, keepdim=True) * 2 - 1
    cols = [b["source_f"], m.expand_as(b["source_f"]), fake.float(), b["target_f"]]
    grid = torch.cat([torch.cat(list(c), 1) for c in cols], 2)  # [C, n*H, 4*W]
    img = to_uint8(grid).permute(1, 2, 0).cpu().numpy()
    return np.repeat(img, 3, 2) if img.shape[2] == 1 else img


# ---------------------------------------------------------------- the loop
def _lr_factor(cfg: GANConfig, epoch: int) -> float:
    start = cfg.optim.decay_start_epoch
    if start < 0 or epoch < start:
        return 1.0
    return max(0.0, 1.0 - (epoch - start) / max(1, cfg.train.epochs - start))


def _adam(params, lr, cfg: GANConfig, device) -> torch.optim.Optimizer:
    kw = dict(lr=lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay)
    if cfg.optim.fused:
        kw["fused"] = True
    return torch.optim.Adam(params, **kw)


def read_checkpoint(ckpt: Path, ema: bool) -> dict:
    """Everything a resume needs from ``ckpt``, read into memory (CPU) before anything is applied."""
    out = {"state": ck.load_state(ckpt), "G": ck.load_module_state(ckpt, "G"), "D": ck.load_module_state(ckpt, "D"),
           "opt_G": ck.load_optimizer_state(ckpt, "G"), "opt_D": ck.load_optimizer_state(ckpt, "D")}
    if ema:
        out["G_ema"] = ck.load_module_state(ckpt, "G_ema")
    return out


def train(cfg: GANConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> Path:
    """Train (or resume) a run; returns the run directory."""
    from accelerate.utils import set_seed
    from tqdm import tqdm

    from fape.data.format import save_image
    from fape.gan.networks import create_discriminator, create_generator, discriminator_in_chans

    tc = cfg.train
    cfg.cross_check()  # also for configs built in code, not through load_config
    if (cfg.loss.identity_weight or cfg.loss.expression_weight) and not cfg.loss.classifier_run:
        raise ConfigError("loss.identity_weight / loss.expression_weight need loss.classifier_run: "
                          "a `fape clf train` run whose classifier judges identity and expression")
    if tc.batch_size % tc.grad_accum:
        raise ConfigError(f"train.batch_size {tc.batch_size} is not a multiple of train.grad_accum {tc.grad_accum}")
    accelerator = make_accelerator(tc, run_dir, tracker_names(tc.trackers) or None)
    main = accelerator.is_main_process
    device, world, rank = accelerator.device, accelerator.num_processes, accelerator.process_index
    set_seed(tc.seed)  # identical initial weights on every rank
    faces, pairs, heldout = build_data(cfg)
    from fape.gan.preserve import TERMS, make_preservation

    preserve = None
    wanted = tuple(t for t in TERMS if getattr(cfg.loss, f"{t}_weight"))  # the terms with a nonzero weight
    if cfg.loss.classifier_run and wanted:
        preserve = make_preservation(cfg.loss.classifier_run, faces.info.label_names, device, faces.index,
                                     gan_rows(cfg, faces.index.manifest)[0], terms=wanted)
    mc = num_mask_channels(cfg.data)
    G = create_generator(cfg.generator, in_chans=cfg.data.channels, mask_chans=mc, image_size=cfg.data.image_size)
    D = create_discriminator(cfg.discriminator, image_size=cfg.data.image_size,
                             in_chans=discriminator_in_chans(cfg.discriminator, cfg.data.channels, mc))
    G_ema = copy.deepcopy(G).eval().requires_grad_(False).to(device) if tc.ema_decay > 0 else None
    opt_g = _adam(G.parameters(), cfg.optim.lr_g, cfg, device)
    opt_d = _adam(D.parameters(), cfg.optim.lr_d, cfg, device)

    step, log_truncate = 0, None
    found = ck.load_newest(run_dir, lambda c: read_checkpoint(c, G_ema is not None), main) if resume else None
    if found is not None:
        got = found[1]
        step = int(got["state"]["step"])
        G.load_state_dict(got["G"])
        D.load_state_dict(got["D"])
        if G_ema is not None:
            G_ema.load_state_dict(got["G_ema"])
        opt_g.load_state_dict(got["opt_G"])
        opt_d.load_state_dict(got["opt_D"])
        log_truncate = step
    if tc.compile:
        G, D = torch.compile(G), torch.compile(D)
    G, D, opt_g, opt_d = accelerator.prepare(G, D, opt_g, opt_d)

    steps_per_epoch = epoch_steps(len(pairs), tc.batch_size, world, "training pairs")  # before the run folder
    log = open_run(accelerator, cfg, run_dir, log_truncate)
    if main:
        (run_dir / "samples").mkdir(exist_ok=True)
    total = tc.max_steps or tc.epochs * steps_per_epoch
    bar = tqdm(total=total, initial=step, disable=not (main and progress), unit="step", dynamic_ncols=True)
    images_per_step = tc.batch_size * world
    t_last, step_last = time.perf_counter(), step

    watch = DivergenceWatch(accelerator, run_dir, bar)

    def checkpoint(epoch: int) -> None:
        watch.check(step, tensors_of(G, D, G_ema))  # never save non-finite weights
        if main:
            unwrap = lambda m: getattr(accelerator.unwrap_model(m), "_orig_mod", accelerator.unwrap_model(m))
            modules = {"G": unwrap(G).state_dict(), "D": unwrap(D).state_dict()}
            if G_ema is not None:
                modules["G_ema"] = G_ema.state_dict()
            ck.save_checkpoint(run_dir, step, modules, {"G": opt_g.state_dict(), "D": opt_d.state_dict()},
                               {"epoch": epoch, "config": to_dict(cfg), "steps_per_epoch": steps_per_epoch,
                                "world_size": world}, keep=tc.keep_checkpoints)
        accelerator.wait_for_everyone()

    epoch = step // steps_per_epoch
    while step < total:
        pairs.set_epoch(epoch)
        lr = _lr_factor(cfg, epoch)
        for opt, base in ((opt_g, cfg.optim.lr_g), (opt_d, cfg.optim.lr_d)):
            for grp in opt.param_groups:
                grp["lr"] = base * lr
        batches = epoch_batches(len(pairs), tc.batch_size, world, rank, tc.seed, epoch)
        for k in range(step - epoch * steps_per_epoch, steps_per_epoch):
            torch.manual_seed(tc.seed * 1_000_003 + rank * 7_919 + step)  # dropout noise = f(seed, rank, step)
            micro = [prepare_batch(cfg, collate(pairs, idx, device)) for idx in np.array_split(batches[k], tc.grad_accum)]
            parts = gan_step(cfg, G, D, opt_g, opt_d, micro, accelerator, preserve)
            watch.observe(step + 1, parts["g_total"], parts["d_total"])  # floats: synced already
            if G_ema is not None:
                ema_update(G_ema, accelerator.unwrap_model(G), tc.ema_decay)
            step += 1
            bar.update(1)
            if step % tc.log_every == 0 or step == total:
                now = time.perf_counter()
                ips = (step - step_last) * images_per_step / max(now - t_last, 1e-9)
                t_last, step_last = now, step
                rec = {"step": step, "epoch": epoch, "images_per_s": round(ips, 2), "lr_g": opt_g.param_groups[0]["lr"],
                       **{k2: round(float(v), 6) for k2, v in parts.items()}}
                bar.set_postfix({"img/s": f"{ips:.0f}", "L1": f"{parts.get('g_l1', 0):.3f}"})
                if main:
                    log.write(rec)
                accelerator.log(rec, step=step)
                watch.check(step)
            if main and (step % tc.sample_every == 0 or step == total):
                save_image(run_dir / "samples" / f"step_{step:08d}.png",
                           sample_grid(cfg, G_ema or accelerator.unwrap_model(G), heldout or pairs, device))
            end_of_epoch = k == steps_per_epoch - 1
            if step % tc.ckpt_every == 0 or end_of_epoch or step == total:
                if main and heldout is not None and (end_of_epoch or step == total):
                    ev = evaluate_l1(cfg, G_ema or accelerator.unwrap_model(G), heldout, device)
                    log.write({"step": step, "epoch": epoch, **ev})
                    accelerator.log(ev, step=step)
                checkpoint(epoch + 1 if end_of_epoch else epoch)
            if step >= total:
                break
        epoch += 1
    bar.close()
    # every rank reports a digest of its G: a distributed run must end with identical weights
    from accelerate.utils import gather_object

    digests = gather_object([state_digest(accelerator.unwrap_model(G))])
    accelerator.end_training()  # also tears down the process group
    if main:
        atomic_write_json(run_dir / "done.json", {"step": step, "epoch": epoch, "world_size": world,
                                                   "G_params_sha256_per_rank": digests})
    return run_dir


def resolve_run(args, overrides) -> tuple[GANConfig, Path, bool]:
    return resolve_run_dir(GANConfig, args, overrides)


def cli_train(args, overrides) -> int:
    from fape.errors import UserError

    try:
        cfg, run, resume = resolve_run(args, overrides)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    run = train(cfg, run, resume=resume)
    print(f"run: {run}")
    return 0
