"""Checkpoints: safetensors for every tensor, a small JSON for everything else. Never pickles.

A checkpoint is a folder ``RUN/checkpoints/step_00001234/``::

    <module>.safetensors          state dict of each network (G, D, G_ema, ...)
    <optimizer>.optim.safetensors the optimizer's per-parameter tensors (exp_avg, ...)
    rng.safetensors               torch CPU (and CUDA) generator states
    state.json                    step, epoch, optimizer param groups and scalars, scheduler
                                  state, the resolved config, anything else JSON-able

It is written into a temporary folder and renamed into place, then ``RUN/checkpoints/latest``
(a one-line text file) is replaced atomically; a kill at any moment leaves the previous
checkpoint intact and ``latest`` pointing at a complete one.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fape.utils.io import _fsync_dir, atomic_write_json, atomic_write_text


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
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=ckpts))
    try:
        for name, sd in modules.items():
            save_file(_contiguous(sd), str(tmp / f"{name}.safetensors"))
        optim_meta = {}
        for name, sd in optimizers.items():
            tensors, optim_meta[name] = optimizer_to_flat(sd)
            save_file(tensors, str(tmp / f"{name}.optim.safetensors"))
        save_file(_contiguous(rng_state()), str(tmp / "rng.safetensors"))
        atomic_write_json(tmp / "state.json", {**state, "step": step, "optimizers": optim_meta})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(ckpts)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(ckpts / "latest", final.name + "\n")
    for old in sorted(ckpts.glob("step_*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = Path(run_dir) / "checkpoints"
    pointer = ckpts / "latest"
    if pointer.is_file():
        p = ckpts / pointer.read_text().strip()
        if (p / "state.json").is_file():
            return p
    done = sorted(p for p in ckpts.glob("step_*") if (p / "state.json").is_file())
    return done[-1] if done else None


def load_state(ckpt: str | Path) -> dict:
    p = Path(ckpt) / "state.json"
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint state not found: {p}")
    return json.loads(p.read_text())


def load_module_state(ckpt: str | Path, name: str, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    p = Path(ckpt) / f"{name}.safetensors"
    if not p.is_file():
        have = sorted(x.name for x in Path(ckpt).glob("*.safetensors"))
        raise FileNotFoundError(f"weights not found: {p} (the checkpoint has {have})")
    return load_file(str(p), device=str(device))


def load_optimizer_state(ckpt: str | Path, name: str) -> dict:
    meta = load_state(ckpt)["optimizers"][name]
    return optimizer_from_flat(load_file(str(Path(ckpt) / f"{name}.optim.safetensors")), meta)


def load_rng_state(ckpt: str | Path) -> None:
    set_rng_state(load_file(str(Path(ckpt) / "rng.safetensors")))
