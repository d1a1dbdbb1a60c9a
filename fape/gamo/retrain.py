"""``fape gamo retrain``: one round of the recursive loop (paper section 6).

1. Snapshot the collected dataset (hard links) into ``models/vNNNN/data`` and split it:
   a **held-out part fixed for the life of the collection** (units - players by default - are
   held out by a salted hash, so a unit's side never changes and a new player lands on a side
   that never moves), a validation part for epoch selection carved from the rest, and training.
   The held-out rule is written once to ``models/heldout.json``; later rounds must use it.
2. Fine-tune the served model on the training part (``fape clf train`` with ``init_from`` the
   served model; optional base data through the trainer's second-dataset slot).
3. Evaluate the candidate and the served model on the same held-out part. Promote the
   candidate only if it is not worse there (and the part has at least ``min_heldout`` images);
   record either way, with a card.

The held-out part is read only here, for the promotion decision and the card; the epoch is
selected on the validation part. The promoted model's held-out number is the one the gate
chose it on, so it is optimistic by the gate's one bit of selection (docs/gamo.md).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fape.utils.io import atomic_write_bytes, atomic_write_json, sha256_bytes

HELDOUT_FILE = "heldout.json"
UNITS = {"player": "subject", "session": "sequence", "image": "path"}
VAL_FRACTION = 0.15  # images of the non-held-out units that select the epoch


def unit_hash(salt: str, unit: str) -> float:
    """A stable number in [0, 1) for ``unit``: its side never depends on the rest of the data."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{unit}".encode()).digest()[:8], "big") / 2.0 ** 64


def fixed_heldout(models: Path, unit: str | None, fraction: float | None) -> dict:
    """The held-out rule: read from ``models/heldout.json``, or written there on the first round."""
    from fape.errors import UserError

    path = models / HELDOUT_FILE
    if path.is_file():
        rule = json.loads(path.read_text())
        if (unit and unit != rule["unit"]) or (fraction is not None and fraction != rule["fraction"]):
            raise UserError(f"{path} fixes the held-out part as {rule['unit']} {rule['fraction']}; it cannot change "
                            f"between rounds (got {unit} {fraction})")
        return rule
    if (unit or "player") not in UNITS:
        raise UserError(f"--heldout-by must be one of {', '.join(UNITS)}, got {unit!r}")
    rule = {"unit": unit or "player", "fraction": 0.25 if fraction is None else float(fraction),
            "salt": os.urandom(8).hex(), "created": time.time()}
    atomic_write_json(path, rule)
    return rule


def split_rows(manifest: pd.DataFrame, rule: dict, val_fraction: float) -> np.ndarray:
    """``[N]`` part names: ``test`` (the held-out units), then ``val`` (images of the other units,
    by their own hash) and ``train``."""
    units = manifest[UNITS[rule["unit"]]].astype(str)
    held = units.map(lambda u: unit_hash(rule["salt"], u) < rule["fraction"]).to_numpy()
    val = manifest["path"].map(lambda p: unit_hash(rule["salt"] + ":val", p) < val_fraction).to_numpy()
    return np.where(held, "test", np.where(val, "val", "train"))


def write_split(root: Path, manifest: pd.DataFrame, parts: np.ndarray, label_names: list[str], rule: dict) -> Path:
    df = pd.DataFrame({"row": np.arange(len(manifest)), "path": manifest["path"], "split": parts})
    data = df.to_csv(index=False, lineterminator="\n").encode()
    path = root / "splits" / "gamo-heldout.csv"
    atomic_write_bytes(path, data)
    atomic_write_json(path.with_suffix(".json"), {"protocol": "gamo-heldout", "split_sha256": sha256_bytes(data),
                                                  "label_names": label_names, "heldout": rule})
    return path


def snapshot(src: Path, dst: Path) -> None:
    """Hard-link copy of a dataset folder (images and index), without its caches."""
    for p in src.rglob("*"):
        rel = p.relative_to(src)
        if rel.parts[0] in ("cache", "splits") or p.is_dir():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(p, dst / rel) if rel.parts[0] == "images" else shutil.copy2(p, dst / rel)


def counts(manifest: pd.DataFrame, parts: np.ndarray, part: str) -> dict:
    m = manifest[parts == part]
    return {"images": int(len(m)), "players": int(m["subject"].nunique()),
            "per_class": {k: int(v) for k, v in m["expression"].value_counts().sort_index().items()}}


def promotion(candidate: float, parent: float, parent_version: str, n: int, min_n: int = 10) -> tuple[bool, str]:
    """Promote when the candidate is not worse than the served model on the same held-out images,
    and there are at least ``min_n`` of them (fewer cannot tell two models apart)."""
    if n < min_n:
        return False, f"only {n} held-out images (< {min_n}): too few to judge; {parent_version} stays"
    ok = candidate >= parent
    return ok, (f"held-out accuracy {100 * candidate:.1f}% {'>=' if ok else '<'} parent {parent_version}'s "
                f"{100 * parent:.1f}% on the same {n} images")


def finetune_config(parent_model: Path, data: Path, split: Path, name: str, epochs: int, lr: float,
                    batch_size: int, base: str, base_mix: float, seed: int):
    """The served model's own config, pointed at the snapshot and started from its weights."""
    from fape.classifiers.config import ClfConfig
    from fape.classifiers.io import best_checkpoint
    from fape.config import from_dict
    from fape.utils import checkpoint as ck

    cfg = from_dict(ClfConfig, ck.load_state(best_checkpoint(parent_model))["config"])
    cfg.name, cfg.model.init_from, cfg.model.pretrained = name, str(parent_model), ""
    cfg.data.root, cfg.data.split, cfg.data.fold, cfg.data.split_options = str(data), str(split), -1, {}
    cfg.data.synthetic, cfg.data.mix, cfg.data.num_workers = base, base_mix, 0
    cfg.optim.lr, cfg.optim.schedule = lr, "none"
    t = cfg.train
    t.epochs, t.max_steps, t.batch_size, t.seed, t.eval_every = epochs, 0, batch_size, seed, 1
    t.mixed_precision, t.trackers, t.cpu, t.log_every, t.keep_checkpoints = "no", ["jsonl"], True, 10, 1
    return cfg


def retrain(root: Path, epochs: int = 3, lr: float = 1e-4, batch_size: int = 32, heldout_by: str | None = None,
            heldout_fraction: float | None = None, val_fraction: float = VAL_FRACTION, base: str = "",
            base_mix: float = 0.5, seed: int = 0, initial_model: Path | None = None, progress: bool = True,
            min_heldout: int = 10) -> dict:
    """One round on the game's state folder ``root``; returns the new version's card."""
    from fape.classifiers.evaluate import evaluate_run
    from fape.classifiers.train import train
    from fape.errors import UserError
    from fape.data.format import read_index
    from fape.gamo.versions import Registry
    from fape.predict.run import default_model

    t0 = time.time()
    dataset = root / "dataset"
    if not (dataset / "dataset.json").is_file():
        raise UserError(f"no collected faces yet: {dataset / 'dataset.json'} is missing (play a game first)")
    registry = Registry(root / "models", initial_model or default_model())
    parent = registry.current()
    version = registry.next_version()
    vdir = registry.version_dir(version)
    rule = fixed_heldout(registry.root, heldout_by, heldout_fraction)

    data = vdir / "data"
    shutil.rmtree(vdir, ignore_errors=True)  # an interrupted round left no card: redo it whole
    snapshot(dataset, data)
    index = read_index(data)
    parts = split_rows(index.manifest, rule, val_fraction)
    n = {p: counts(index.manifest, parts, p) for p in ("train", "val", "test")}
    if n["test"]["images"] == 0 or n["train"]["images"] == 0:
        shutil.rmtree(vdir, ignore_errors=True)
        raise UserError(f"the held-out rule ({rule['unit']}, fraction {rule['fraction']}) leaves "
                        f"{n['train']['images']} training and {n['test']['images']} held-out images of "
                        f"{len(index.manifest)}: collect from more {rule['unit']}s first")
    split = write_split(data, index.manifest, parts, index.info.label_names, rule)
    cfg = finetune_config(Path(parent["model"]), data, split, f"gamo-{version}", epochs, lr,
                          min(batch_size, n["train"]["images"]), base, base_mix, seed)
    run = train(cfg, vdir / "run", progress=progress)

    cand = evaluate_run(run, "test", data=str(data))
    par = evaluate_run(run, "test", data=str(data), checkpoint=parent["model"], out=run / "eval" / "test-parent")
    promoted, reason = promotion(cand["accuracy"], par["accuracy"], parent["version"], cand["n"], min_heldout)
    best = json.loads((run / "done.json").read_text())["best"]
    card = {"version": version, "model": str(run.resolve()), "created": time.time(), "promoted": promoted,
            "reason": reason, "parent": parent["version"], "parent_model": parent["model"],
            "heldout": {"unit": rule["unit"], "fraction": rule["fraction"], "n": cand["n"],
                        "candidate": cand["accuracy"], "parent": par["accuracy"],
                        "candidate_macro_f1": cand["macro_f1"], "parent_macro_f1": par["macro_f1"]},
            "data": {"collected": int(len(index.manifest)), "manifest_sha256": index.info.manifest_sha256,
                     "train": n["train"], "val": n["val"], "heldout": n["test"], "base": base or None,
                     "base_mix": base_mix if base else None},
            "training": {"epochs": epochs, "lr": lr, "batch_size": cfg.train.batch_size, "seed": seed,
                         "selected": best, "seconds": round(time.time() - t0, 1),
                         "command": f"fape clf train -c {run / 'config.yaml'} --run-dir {run}"}}
    registry.add(card)
    shutil.rmtree(data / "images", ignore_errors=True)  # a deleted player's faces must not live on here
    shutil.rmtree(data / "cache", ignore_errors=True)
    return card
