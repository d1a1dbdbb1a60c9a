"""The classifier training loop (Fa-Net and the baselines), same conventions as the GAN's.

One function owns the optimizer, the center-loss centres, checkpoints, validation-based model
selection, metrics and resume. Randomness is a function of (seed, epoch) for the data order and
(seed, rank, step) for augmentation and dropout, so a killed run resumes onto the same path.
The test part of a split is never read here: model selection uses the validation part only.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fape.classifiers.augment import augment
from fape.classifiers.config import ClfConfig
from fape.classifiers.losses import center_loss, center_update, class_weights
from fape.config import to_dict
from fape.data.dataset import FaceDataset, to_float
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


# ---------------------------------------------------------------- data
class TrainItems(torch.utils.data.Dataset):
    """The training part for one epoch: real rows, plus synthetic rows drawn for this epoch,
    optionally resampled to balance classes. Items are FaceDataset items with the label
    remapped to the run's label order and a ``synthetic`` flag."""

    def __init__(self, real: FaceDataset, rows: np.ndarray, label_map: np.ndarray, cfg: ClfConfig,
                 synthetic: FaceDataset | None):
        self.real = real  # the whole real dataset: item i is manifest row i
        self.rows, self.label_map, self.cfg, self.synthetic = rows, label_map, cfg, synthetic
        self.num_classes = int(label_map.max()) + 1
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        d = self.cfg.data
        rng = np.random.default_rng([self.cfg.train.seed, epoch, 17])
        src, idx = [np.zeros(len(self.rows), np.int64)], [self.rows]
        if self.synthetic is not None:  # synthetic items are positions in synthetic.rows
            n = len(self.synthetic)
            k = n if d.mix < 0 else min(n, round(d.mix * len(self.rows)))
            idx.append(np.sort(rng.choice(n, size=k, replace=False)))
            src.append(np.ones(k, np.int64))
        self.src, self.idx = np.concatenate(src), np.concatenate(idx)
        if d.balance in ("sampler", "class_source"):
            labels = self.labels()
            w = (source_weights(labels, self.sources()) if d.balance == "class_source"
                 else class_weights(labels, self.num_classes)[labels].numpy().astype(np.float64))
            pick = rng.choice(len(self.idx), size=len(self.idx), replace=True, p=w / w.sum())
            self.src, self.idx = self.src[pick], self.idx[pick]

    def sources(self) -> np.ndarray:
        """Source dataset of each item ``[len(self)]`` (a merge's 'dataset' column; synthetic items
        are their own source)."""
        m = self.real.index.manifest
        col = m["dataset"].to_numpy(dtype=object) if "dataset" in m else np.full(len(m), "", dtype=object)
        out = np.full(len(self.idx), "synthetic", dtype=object)
        real = self.src == 0
        out[real] = col[self.idx[real]]
        return out

    def labels(self) -> np.ndarray:
        """Run labels of this epoch's items ``[len(self)]``."""
        out = np.empty(len(self.idx), np.int64)
        real = self.src == 0
        out[real] = self.label_map[self.real.labels[self.idx[real]]]
        if self.synthetic is not None:
            syn = self.idx[~real]
            out[~real] = self.label_map[self.synthetic.labels[self.synthetic.rows[syn]]]
        return out

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, k: int) -> dict:
        ds = self.real if self.src[k] == 0 else self.synthetic
        item = ds[int(self.idx[k])]
        item["label"] = int(self.label_map[item["label"]])
        item["synthetic"] = int(self.src[k])
        return item


def source_weights(labels: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Sampling weight per item: every class the same total mass, and within a class each source
    ``1/sqrt(n)`` of its ``n`` images (a small lab-posed set is drawn more often than its share,
    without repeating its few images as often as full balance would)."""
    w = np.zeros(len(labels), np.float64)
    for c in np.unique(labels):
        in_c = labels == c
        cells = {s: int((in_c & (sources == s)).sum()) for s in np.unique(sources[in_c])}
        for s, n in cells.items():
            w[in_c & (sources == s)] = n ** -0.5
        w[in_c] /= w[in_c].sum()
    return w


def resolve_split(cfg: ClfConfig, index) -> tuple[dict[str, np.ndarray], list[str], np.ndarray, Path]:
    """Parts (train/val/test rows), the run's label names, a dataset-label -> run-label map
    (``-1`` = not in this run's label set), and the split file."""
    from fape.data import splits

    d = cfg.data
    path = Path(d.split)
    if not path.suffix == ".csv":
        split = splits.make_split(index, d.split, d.split_seed, **d.split_options)
        path = splits.save_split(index.root, split)
    parts = splits.load_split(path, fold=d.fold if d.fold >= 0 else None)
    meta = splits.split_meta(path)
    names = list(meta.get("label_names") or index.info.label_names)
    lut = {n: i for i, n in enumerate(names)}
    label_map = np.array([lut.get(n, -1) for n in index.info.label_names], np.int64)
    return parts, names, label_map, path


def _rows_in_labels(rows: np.ndarray, labels: np.ndarray, label_map: np.ndarray) -> np.ndarray:
    return rows[label_map[labels[rows]] >= 0]


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: nn.Module, ds: FaceDataset, rows: np.ndarray, device, batch: int = 256) -> np.ndarray:
    """Softmax probabilities ``[len(rows), K]`` for manifest ``rows`` of ``ds`` (model in eval mode)."""
    was = model.training
    model.eval()
    out = []
    for i in range(0, len(rows), batch):
        imgs = torch.stack([torch.from_numpy(ds.load(int(r)).transpose(2, 0, 1).copy()) for r in rows[i:i + batch]])
        out.append(F.softmax(model(to_float(imgs.to(device))).float(), 1).cpu())
    model.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


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
                              img_size=cfg.data.image_size, pretrained=pretrained, **m.kwargs)
    if m.init_from:
        load_best_weights(model, m.init_from, label_names)  # transfer: head kept only for the same classes
    return model


def read_checkpoint(ckpt: Path) -> tuple[dict, dict, dict, dict]:
    """What a resume needs from ``ckpt`` (state, weights, centres, optimizer), read before anything is applied."""
    return (ck.load_state(ckpt), ck.load_module_state(ckpt, "model"), ck.load_module_state(ckpt, "centers"),
            ck.load_optimizer_state(ckpt, "model"))


def train(cfg: ClfConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> Path:
    from accelerate.utils import set_seed
    from tqdm import tqdm

    from fape.data.format import read_index

    tc = cfg.train
    accelerator = make_accelerator(tc, run_dir, tracker_names(tc.trackers) or None)
    main, device = accelerator.is_main_process, accelerator.device
    world, rank = accelerator.num_processes, accelerator.process_index
    set_seed(tc.seed)

    index = read_index(cfg.data.root)
    parts, label_names, label_map, split_path = resolve_split(cfg, index)
    K = len(label_names)
    faces = FaceDataset(index, size=cfg.data.image_size, channels=cfg.data.channels, progress=False)
    train_rows = _rows_in_labels(parts["train"], faces.labels, label_map)
    val_rows = _rows_in_labels(parts.get("val", np.arange(0)), faces.labels, label_map)
    synthetic = None
    if cfg.data.synthetic:
        synth_index = read_index(cfg.data.synthetic)
        if list(synth_index.info.label_names) != list(index.info.label_names):
            raise ValueError(f"{cfg.data.synthetic}: label names differ from {cfg.data.root}'s "
                             f"({synth_index.info.label_names[:5]}... vs {index.info.label_names[:5]}...)")
        syn_rows = np.flatnonzero(label_map[synth_index.manifest["label"].to_numpy()] >= 0)
        synthetic = FaceDataset(synth_index, rows=syn_rows, size=cfg.data.image_size, channels=cfg.data.channels,
                                progress=False)
    items = TrainItems(faces, train_rows, label_map, cfg, synthetic)
    # how `fape predict` must crop and scale faces for this model, saved with every checkpoint
    prep = preprocess_spec(cfg.data.image_size, cfg.data.channels, index.info.origin)

    model = build_model(cfg, label_names)
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
        model.load_state_dict(weights_sd)
        centers = centers_sd["centers"].to(device)
        opt.load_state_dict(opt_sd)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net, opt = accelerator.prepare(WithFeatures(model), opt)

    steps_per_epoch = epoch_steps(len(items), tc.batch_size, world, "training images")  # before the run folder
    log = open_run(accelerator, cfg, run_dir, step if ckpt else None)
    if main:
        atomic_write_json(run_dir / "labels.json", {"label_names": label_names, "split": str(split_path)})
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
                                "train_seconds": train_seconds()}, keep=tc.keep_checkpoints)
        accelerator.wait_for_everyone()

    def validate(epoch: int) -> None:
        if not len(val_rows):
            return
        probs = predict(inner(), faces, val_rows, device)
        acc = float((probs.argmax(1) == label_map[faces.labels[val_rows]]).mean())
        rec = {"step": step, "epoch": epoch, "val/acc": acc}
        if acc > best["val_acc"]:
            best.update(val_acc=acc, epoch=epoch, step=step)
            save_best(run_dir, inner(), best, label_names, cfg, prep)
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
            torch.manual_seed(tc.seed * 1_000_003 + rank * 7_919 + step)
            b = collate(items, batches[k], device)
            x = augment(to_float(b["image"]), cfg.data.augment)
            if tc.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y, mix = b["label"], None
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
                loss = loss_ce
                if cfg.center_loss.weight > 0:
                    loss = loss + cfg.center_loss.weight * center_loss(feats.float(), b["label"], centers)
            opt.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            opt.step()
            watch.observe(step + 1, loss)  # on the device: checked at log and checkpoint steps
            if cfg.center_loss.weight > 0:  # every rank applies the same update from gathered features
                f_all = accelerator.gather(feats.detach().float())
                centers = center_update(f_all, accelerator.gather(b["label"]), centers, cfg.center_loss.alpha)
            step += 1
            bar.update(1)
            if step % tc.log_every == 0 or step == total:
                now = time.perf_counter()
                ips = (step - step_last) * tc.batch_size * world / max(now - t_last, 1e-9)
                t_last, step_last = now, step
                rec = {"step": step, "epoch": epoch, "loss": float(loss.detach()), "ce": float(loss_ce.detach()),
                       "acc": float((logits.argmax(1) == b["label"]).float().mean()), "lr": opt.param_groups[0]["lr"],
                       "images_per_s": round(ips, 1)}
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
                      label_names, cfg, prep)
        atomic_write_json(run_dir / "done.json", {"step": step, "epoch": epoch, "best": best,
                                                  "train_seconds": train_seconds()})
    return run_dir


def train_and_eval(cfg: ClfConfig, run: Path, progress: bool = False, split: str = "test") -> dict:
    """Train (or resume, or reuse) one run and evaluate it on its ``split`` part once: with the
    test part, the cell of ``fape experiment``, ``fape quickstart`` and ``fape clf kfold``; with
    ``split="val"``, the cell of a recipe search, which must never read test. Returns the results."""
    from fape.classifiers.evaluate import evaluate_run
    from fape.config import load_config

    res_path = run / "eval" / split / "results.json"
    if not res_path.is_file():
        if not (run / "done.json").is_file():
            resume = (run / "config.yaml").is_file()  # an interrupted cell continues with its own config
            train(load_config(ClfConfig, run / "config.yaml") if resume else cfg, run, resume=resume,
                  progress=progress)
        evaluate_run(run, split)
    return json.loads(res_path.read_text())


def save_best(run_dir: Path, model: nn.Module, best: dict, label_names: list[str], cfg: ClfConfig,
              preprocess: dict | None = None) -> None:
    """``RUN/best/``: the selected weights (safetensors) and what selected them (JSON)."""
    ck.save_checkpoint(run_dir / "best", int(best["step"]), {"model": model.state_dict()}, {},
                       {"best": best, "config": to_dict(cfg), "label_names": label_names,
                        "preprocess": preprocess}, keep=1)


def cli_train(args, overrides) -> int:
    from fape.classifiers.config import ClfConfig
    from fape.errors import UserError

    extra = [f"--data.root={args.data}"] if args.data else []
    extra += [f"--data.synthetic={args.synthetic}"] if args.synthetic else []
    extra += [f"--data.mix={args.mix}"] if args.mix is not None else []
    try:
        cfg, run, resume = resolve_run_dir(ClfConfig, args, extra + list(overrides))
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    run = train(cfg, run, resume=resume)
    print(f"run: {run}")
    return 0
