"""Checkpoints: safetensors for every tensor, a small JSON for everything else. Never pickles.

A checkpoint is a folder ``RUN/checkpoints/step_00001234/``::

    <module>.safetensors          state dict of each network (G, D, G_ema, ...)
    <optimizer>.optim.safetensors the optimizer's per-parameter tensors (exp_avg, ...)
    rng.safetensors               torch CPU (and CUDA) generator states
    state.json                    step, epoch, optimizer param groups and scalars, scheduler
                                  state, the resolved config, anything else JSON-able

It is written into a temporary folder, every file of it fsynced, and renamed into place, then
``RUN/checkpoints/latest`` (a one-line text file) is replaced atomically; a kill or power loss at
any moment leaves the previous checkpoint intact and ``latest`` pointing at a complete one. Older
checkpoints are removed only after the new one is complete. Should a checkpoint still be damaged
later (a truncated file), ``load_newest`` resumes from the newest one that loads and says so.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fape.errors import CheckpointError
from fape.utils.io import _fsync_dir, atomic_write_json, atomic_write_text, make_temp_dir

T = TypeVar("T")


def _contiguous(sd: dict) -> dict:
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def optimizer_to_flat(opt_sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors (``state.<param>.<name>``) and JSON."""
    tensors, scalars = {}, {}
    for pid, st in opt_sd["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"state.{pid}.{name}"] = val
            else:
                scalars.setdefault(str(pid), {})[name] = val
    return _contiguous(tensors), {"param_groups": opt_sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, val in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = val
    for pid, sc in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(sc)
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> dict[str, torch.Tensor]:
    out = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"torch_cuda_{i}"] = s
    return out


def set_rng_state(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["torch_cpu"])
    cuda = [states[k] for k in sorted(states) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])


def save_checkpoint(run_dir: str | Path, step: int, modules: dict[str, dict], optimizers: dict[str, dict],
                    state: dict, keep: int = 2) -> Path:
    """Write ``RUN/checkpoints/step_<step>`` atomically and point ``latest`` at it.

    ``modules`` and ``optimizers`` map names to *state dicts* (unwrapped from DDP/compile by
    the caller); ``state`` must be JSON-serialisable. Keeps the newest ``keep`` checkpoints.
    """
    ckpts = Path(run_dir) / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    final = ckpts / f"step_{step:08d}"
    tmp = make_temp_dir(ckpts, final.name)
    try:
        for name, sd in modules.items():
            save_file(_contiguous(sd), str(tmp / f"{name}.safetensors"))
        optim_meta = {}
        for name, sd in optimizers.items():
            tensors, optim_meta[name] = optimizer_to_flat(sd)
            save_file(tensors, str(tmp / f"{name}.optim.safetensors"))
        save_file(_contiguous(rng_state()), str(tmp / "rng.safetensors"))
        atomic_write_json(tmp / "state.json", {**state, "step": step, "optimizers": optim_meta})
        for f in tmp.iterdir():  # on disk before the rename publishes them (safetensors does not fsync)
            _fsync_file(f)
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(ckpts)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(ckpts / "latest", final.name + "\n")
    # prune among checkpoints up to this one: later ones exist only when a run resumed from an
    # older checkpoint because they did not load; they are replaced when the run gets there
    older = sorted(p for p in ckpts.glob("step_*") if p.name <= final.name)
    for old in older[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = Path(run_dir) / "checkpoints"
    pointer = ckpts / "latest"
    if pointer.is_file():
        p = ckpts / pointer.read_text().strip()
        if (p / "state.json").is_file():
            return p
    done = sorted(p for p in ckpts.glob("step_*") if (p / "state.json").is_file())
    return done[-1] if done else None


def checkpoints_newest_first(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints (with ``state.json``): the one ``latest`` names, then the others by step."""
    ckpts = Path(run_dir) / "checkpoints"
    done = sorted((p for p in ckpts.glob("step_*") if (p / "state.json").is_file()), reverse=True)
    first = latest_checkpoint(run_dir)
    return [first, *(p for p in done if p != first)] if first is not None else done


def load_newest(run_dir: str | Path, read: Callable[[Path], T], report: bool = True) -> tuple[Path, T] | None:
    """``(checkpoint, read(checkpoint))`` for the newest checkpoint that ``read`` loads fully.

    ``read`` must only read (into memory), so a checkpoint that fails halfway changes nothing. A
    checkpoint that does not load (a truncated or corrupt file) is named on stderr (when ``report``,
    so one process of several reports) and the next older one is tried. ``None`` when the run has
    no checkpoint; ``CheckpointError`` naming every bad file when none loads.
    """
    failed = []
    for ckpt in checkpoints_newest_first(run_dir):
        try:
            out = read(ckpt)
        except (CheckpointError, OSError, KeyError, ValueError) as e:
            failed.append(f"{ckpt.name}: {e}" if isinstance(e, (CheckpointError, OSError))
                          else f"{ckpt.name}: {type(e).__name__} {e}")
            continue
        for f in failed if report else []:
            print(f"fape: warning: checkpoint {f}; resuming from {ckpt} instead", file=sys.stderr, flush=True)
        return ckpt, out
    if failed:
        raise CheckpointError(f"no checkpoint of {run_dir} loads: " + "; ".join(failed))
    return None


def _read_json(p: Path) -> dict:
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint state not found: {p}")
    try:
        return json.loads(p.read_text())
    except ValueError as e:
        raise CheckpointError(f"{p} is not valid JSON ({e})") from None


def _read_tensors(p: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(str(p), device=str(device))
    except SafetensorError as e:  # e.g. a truncated file: "incomplete metadata, file not fully covered"
        raise CheckpointError(f"{p} does not load ({e})") from None


def load_state(ckpt: str | Path) -> dict:
    return _read_json(Path(ckpt) / "state.json")


def load_module_state(ckpt: str | Path, name: str, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    p = Path(ckpt) / f"{name}.safetensors"
    if not p.is_file():
        have = sorted(x.name for x in Path(ckpt).glob("*.safetensors"))
        raise FileNotFoundError(f"weights not found: {p} (the checkpoint has {have})")
    return _read_tensors(p, device)


def load_optimizer_state(ckpt: str | Path, name: str) -> dict:
    meta = load_state(ckpt)["optimizers"][name]
    return optimizer_from_flat(_read_tensors(Path(ckpt) / f"{name}.optim.safetensors"), meta)


def load_rng_state(ckpt: str | Path) -> None:
    set_rng_state(_read_tensors(Path(ckpt) / "rng.safetensors"))
