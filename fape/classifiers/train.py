"""The classifier training loop (Fa-Net and the baselines), same conventions as the GAN's.

``train`` owns the optimizer, the center-loss centres, checkpoints, validation-based model
selection, metrics and resume, in one explicit loop over ``clf_step`` (one optimizer step) on the
data of ``fape.classifiers.data.build_data``, as ``fape.gan.train`` does with ``gan_step``.
Randomness is a function of (seed, epoch) for the data order and (seed, rank, step) for
augmentation and dropout, so a killed run resumes onto the same path.
The test part of a split is never read here: model selection uses the validation part only.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fape.classifiers.augment import augment
from fape.classifiers.config import ClfConfig
from fape.classifiers.data import build_data
from fape.classifiers.distill import Teacher, check_resumed_teacher, load_teacher
from fape.classifiers.io import predict
from fape.classifiers.losses import center_loss, center_update, class_weights, distillation_loss
from fape.config import to_dict
from fape.data.dataset import to_float
from fape.data.preprocess import preprocess_spec
from fape.utils import checkpoint as ck
from fape.utils.finite import DivergenceWatch, tensors_of
from fape.utils.io import atomic_write_json
from fape.utils.loop import collate, epoch_batches, make_accelerator, open_run, resolve_run_dir
from fape.utils.loop import steps_per_epoch as epoch_steps
from fape.utils.runs import tracker_names


class WithFeatures(nn.Module):
    """``x -> (logits, features)`` in one ``forward``, so DDP sees (and syncs) both paths."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        feats = self.model.forward_features(x)  # [B, D]
        return self.model.forward_head(feats), feats


# ---------------------------------------------------------------- the loop
def _lr(cfg: ClfConfig, epoch: int) -> float:
    o = cfg.optim
    if o.schedule == "step":
        return o.lr * o.gamma ** (epoch // max(1, o.step_epochs))
    if o.schedule == "cosine":
        return o.lr * 0.5 * (1 + np.cos(np.pi * epoch / max(1, cfg.train.epochs)))
    return o.lr


def _optimizer(cfg: ClfConfig, params) -> torch.optim.Optimizer:
    o = cfg.optim
    kw = {"fused": True} if o.fused else {}
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, **kw)
    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay, **kw)


def build_model(cfg: ClfConfig, label_names: list[str]) -> nn.Module:
    from fape.classifiers import create_classifier
    from fape.classifiers.io import load_best_weights

    m = cfg.model
    pretrained = {"": False, "imagenet": True}.get(m.pretrained, m.pretrained)
    model = create_classifier(m.name, num_classes=len(label_names), in_chans=cfg.data.channels,
                              image_size=cfg.data.image_size, pretrained=pretrained, **m.kwargs)
    if m.init_from:
        load_best_weights(model, m.init_from, label_names)  # transfer: head kept only for the same classes
    return model


def read_checkpoint(ckpt: Path) -> tuple[dict, dict, dict, dict]:
    """What a resume needs from ``ckpt`` (state, weights, centres, optimizer), read before anything is applied."""
    return (ck.load_state(ckpt), ck.load_module_state(ckpt, "model"), ck.load_module_state(ckpt, "centers"),
            ck.load_optimizer_state(ckpt, "model"))


def clf_step(cfg: ClfConfig, net: nn.Module, opt: torch.optim.Optimizer, accelerator, batch: dict,
             centers: torch.Tensor, weights: torch.Tensor | None,
             teacher: Teacher | None = None) -> tuple[dict, torch.Tensor]:
    """One optimizer step on a collated batch (``image`` uint8 ``[B, C, H, W]``, ``label`` ``[B]``):
    augmentation, mixup, one forward for logits and features (``WithFeatures``), cross-entropy
    plus ``cfg.center_loss.weight`` x center loss, backward, step, then the centres' update.
    With a ``teacher``, the cross-entropy term becomes ``(1 - a) CE + a KD`` (``a`` =
    ``cfg.distill.weight``), KD on the teacher's logits for the same augmented, mixed batch.

    Randomness comes from the torch generator, which the loop seeds before every step. Returns
    the step's ``loss``, ``ce`` and ``acc`` (and ``kd`` with a teacher) as 0-d tensors left on
    the device (no sync), and the new centres ``[K, D]``."""
    tc = cfg.train
    x = augment(to_float(batch["image"]), cfg.data.augment)
    if tc.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y, mix = batch["label"], None
    if tc.mixup > 0:  # one lambda per batch, partners from a permutation of the batch
        lam = float(torch.distributions.Beta(tc.mixup, tc.mixup).sample())
        perm = torch.randperm(x.shape[0], device=x.device)
        x, mix = lam * x + (1 - lam) * x[perm], (lam, y[perm])
    with accelerator.autocast():
        logits, feats = net(x)
        loss_ce = F.cross_entropy(logits.float(), y, weight=weights, label_smoothing=tc.label_smoothing)
        if mix is not None:
            loss_ce = mix[0] * loss_ce + (1 - mix[0]) * F.cross_entropy(
                logits.float(), mix[1], weight=weights, label_smoothing=tc.label_smoothing)
        loss, parts = loss_ce, {}
        if teacher is not None:  # eval mode, no grad: consumes no randomness, so resumes stay exact
            kd = distillation_loss(logits, teacher.logits(x), cfg.distill.temperature)
            loss, parts = (1 - cfg.distill.weight) * loss_ce + cfg.distill.weight * kd, {"kd": kd.detach()}
        if cfg.center_loss.weight > 0:
            loss = loss + cfg.center_loss.weight * center_loss(feats.float(), batch["label"], centers)
    opt.zero_grad(set_to_none=True)
    accelerator.backward(loss)
    opt.step()
    if cfg.center_loss.weight > 0:  # every rank applies the same update from gathered features
        f_all = accelerator.gather(feats.detach().float())
        centers = center_update(f_all, accelerator.gather(batch["label"]), centers, cfg.center_loss.alpha)
    acc = (logits.detach().argmax(1) == batch["label"]).float().mean()
    return {"loss": loss.detach(), "ce": loss_ce.detach(), "acc": acc, **parts}, centers


def train(cfg: ClfConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> Path:
    from accelerate.utils import set_seed
    from tqdm import tqdm

    tc = cfg.train
    accelerator = make_accelerator(tc, run_dir, tracker_names(tc.trackers) or None)
    main, device = accelerator.is_main_process, accelerator.device
    world, rank = accelerator.num_processes, accelerator.process_index
    set_seed(tc.seed)

    data = build_data(cfg)
    faces, items, val_rows, label_names, label_map = (data.faces, data.items, data.val_rows, data.label_names,
                                                      data.label_map)
    K = len(label_names)
    # how `fape predict` must crop and scale faces for this model, saved with every checkpoint
    prep = preprocess_spec(cfg.data.image_size, cfg.data.channels, faces.index.info.origin)

    model = build_model(cfg, label_names)
    teacher = load_teacher(cfg.distill, label_names, run_dir, prep, device)
    distill = {"distill": teacher.record()} if teacher else {}  # state.json: which teacher weights
    centers = torch.zeros(K, model.num_features, device=device)
    weights = class_weights(items.labels(), K).to(device) if cfg.data.balance == "loss" else None
    opt = _optimizer(cfg, [p for p in model.parameters() if p.requires_grad])

    step, best = 0, {"val_acc": -1.0, "epoch": -1, "step": 0}
    seconds_before = 0.0  # training wall time of earlier processes of this run (resumes add up)
    found = ck.load_newest(run_dir, read_checkpoint, main) if resume else None
    ckpt = found[0] if found else None
    if found is not None:
        state, weights_sd, centers_sd, opt_sd = found[1]
        step, best = int(state["step"]), state["best"]
        seconds_before = float(state.get("train_seconds", 0.0))
        check_resumed_teacher(teacher, state, ckpt)
        model.load_state_dict(weights_sd)
        centers = centers_sd["centers"].to(device)
        opt.load_state_dict(opt_sd)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net, opt = accelerator.prepare(WithFeatures(model), opt)

    steps_per_epoch = epoch_steps(len(items), tc.batch_size, world, "training images")  # before the run folder
    log = open_run(accelerator, cfg, run_dir, step if ckpt else None)
    if main:
        atomic_write_json(run_dir / "labels.json", {"label_names": label_names, "split": str(data.split_path)})
    total = tc.max_steps or tc.epochs * steps_per_epoch
    bar = tqdm(total=total, initial=step, disable=not (main and progress), unit="step", dynamic_ncols=True)
    t_last, step_last = time.perf_counter(), step
    t_start = t_last
    train_seconds = lambda: round(seconds_before + time.perf_counter() - t_start, 1)  # noqa: E731
    inner = lambda: accelerator.unwrap_model(net).model  # noqa: E731

    watch = DivergenceWatch(accelerator, run_dir, bar)

    def checkpoint(epoch: int) -> None:
        if main:
            ck.save_checkpoint(run_dir, step, {"model": inner().state_dict(), "centers": {"centers": centers}},
                               {"model": opt.state_dict()},
                               {"epoch": epoch, "best": best, "config": to_dict(cfg), "label_names": label_names,
                                "steps_per_epoch": steps_per_epoch, "preprocess": prep,
                                "train_seconds": train_seconds(), **distill}, keep=tc.keep_checkpoints)
        accelerator.wait_for_everyone()

    def validate(epoch: int) -> None:
        if not len(val_rows):
            return
        probs = predict(inner(), faces, val_rows, device)
        acc = float((probs.argmax(1) == label_map[faces.labels[val_rows]]).mean())
        rec = {"step": step, "epoch": epoch, "val/acc": acc}
        if acc > best["val_acc"]:
            best.update(val_acc=acc, epoch=epoch, step=step)
            save_best(run_dir, inner(), best, label_names, cfg, prep, distill)
            rec["val/best"] = True
        log.write(rec)
        accelerator.log({"val/acc": acc}, step=step)

    epoch = step // steps_per_epoch
    while step < total:
        items.set_epoch(epoch)
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, epoch)
        batches = epoch_batches(len(items), tc.batch_size, world, rank, tc.seed, epoch)
        for k in range(step - epoch * steps_per_epoch, steps_per_epoch):
            torch.manual_seed(tc.seed * 1_000_003 + rank * 7_919 + step)  # augmentation, mixup, dropout
            parts, centers = clf_step(cfg, net, opt, accelerator, collate(items, batches[k], device), centers, weights,
                                      teacher)
            watch.observe(step + 1, parts["loss"])  # on the device: checked at log and checkpoint steps
            step += 1
            bar.update(1)
            if step % tc.log_every == 0 or step == total:
                now = time.perf_counter()
                ips = (step - step_last) * tc.batch_size * world / max(now - t_last, 1e-9)
                t_last, step_last = now, step
                rec = {"step": step, "epoch": epoch, "loss": float(parts["loss"]), "ce": float(parts["ce"]),
                       **({"kd": float(parts["kd"])} if "kd" in parts else {}),
                       "acc": float(parts["acc"]), "lr": opt.param_groups[0]["lr"], "images_per_s": round(ips, 1)}
                bar.set_postfix({"img/s": f"{ips:.0f}", "loss": f"{rec['loss']:.3f}"})
                if main:
                    log.write(rec)
                accelerator.log(rec, step=step)
                watch.check(step)
            end_of_epoch = k == steps_per_epoch - 1
            if end_of_epoch or step == total:
                # before validation (which may save best/) and the checkpoint: never save non-finite weights
                watch.check(step, [*tensors_of(net), centers])
                if main and ((epoch + 1) % tc.eval_every == 0 or step == total):
                    validate(epoch)
                checkpoint(epoch + 1 if end_of_epoch else epoch)
            if step >= total:
                break
        epoch += 1
    bar.close()
    accelerator.end_training()
    if main:
        if best["epoch"] < 0:  # no validation part: the last weights are the run's model
            save_best(run_dir, inner(), {**best, "epoch": epoch, "step": step, "note": "no val part: last"},
                      label_names, cfg, prep, distill)
        atomic_write_json(run_dir / "done.json", {"step": step, "epoch": epoch, "best": best,
                                                  "train_seconds": train_seconds()})
    return run_dir


def save_best(run_dir: Path, model: nn.Module, best: dict, label_names: list[str], cfg: ClfConfig,
              preprocess: dict | None = None, extra: dict | None = None) -> None:
    """``RUN/best/``: the selected weights (safetensors) and what selected them (JSON); ``extra``
    JSON-able keys join the state (a distillation's teacher)."""
    ck.save_checkpoint(run_dir / "best", int(best["step"]), {"model": model.state_dict()}, {},
                       {"best": best, "config": to_dict(cfg), "label_names": label_names,
                        "preprocess": preprocess, **(extra or {})}, keep=1)


def cli_train(args, overrides) -> int:
    from fape.classifiers.config import ClfConfig
    from fape.errors import UserError

    flags = {"data.root": args.data or None, "data.synthetic": args.synthetic or None, "data.mix": args.mix}
    try:
        cfg, run, resume = resolve_run_dir(ClfConfig, args, list(overrides),
                                           {k: v for k, v in flags.items() if v is not None})
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    run = train(cfg, run, resume=resume)
    print(f"run: {run}")
    return 0
