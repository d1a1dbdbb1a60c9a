"""Pieces every fape training loop shares: deterministic sharded batches, collation, run
folders, CPU/multi-process selection, weight digests."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from fape.config import load_config
from fape.errors import ConfigError
from fape.utils.io import check_replaceable
from fape.utils.runs import next_run_dir


def epoch_batches(n: int, batch: int, world: int, rank: int, seed: int, epoch: int) -> np.ndarray:
    """This process's batches of epoch ``epoch``: ``[steps, batch]`` item indices.

    One permutation per (seed, epoch), cut into global batches of ``batch * world`` and dealt
    to ranks; the remainder is dropped so every rank runs the same number of steps.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g).numpy()
    steps = n // (batch * world)
    return perm[: steps * batch * world].reshape(steps, world, batch)[:, rank]


def collate(ds, idx: np.ndarray, device) -> dict:
    items = [ds[int(i)] for i in idx]
    out = {k: torch.stack([it[k] for it in items]) if torch.is_tensor(items[0][k]) else torch.tensor([it[k] for it in items])
           for k in items[0]}
    return {k: v.to(device, non_blocking=True) for k, v in out.items()}


# ---------------------------------------------------------------- one step
def state_digest(module: torch.nn.Module) -> str:
    """sha256 over a module's parameters (names and raw bytes), to compare weights across ranks.

    Buffers are left out: BatchNorm running statistics are per-rank by design (DDP broadcasts
    rank 0's at each forward; the checkpoint holds rank 0's).
    """
    h = hashlib.sha256()
    for k, v in module.named_parameters():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def force_cpu(requested: bool) -> bool:
    """CPU processes (gloo) when asked, or when several processes are launched without a GPU.

    ``accelerate launch --cpu --num_processes N`` needs mpirun; ``accelerate launch --multi_gpu
    --num_processes N`` (torchrun underneath) on a machine without GPUs lands here instead.
    """
    return requested or (not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1)


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bf16 natively (x86 ``avx512_bf16`` / ``amx_bf16``, ARM ``bf16``).
    Without it, bf16 autocast emulates: a LightCNN training step ran at 0.11x the fp32 step on an
    AVX2-only AMD EPYC (benchmarks/clf_step.py, docs/benchmarks.md)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_precision(requested: str, cpu: bool) -> str:
    """``auto``: bf16 where it is native (a CUDA GPU with bf16, or a CPU with bf16 instructions),
    else full precision; any other value is kept, with a warning when it is bf16 on a CPU that
    only emulates it (several times slower than fp32, and nothing else says why)."""
    if requested != "auto":
        on_cpu = cpu or not torch.cuda.is_available()
        if requested == "bf16" and on_cpu and not cpu_has_native_bf16():
            import warnings

            warnings.warn("mixed_precision=bf16 on a CPU without bf16 instructions (avx512_bf16, amx_bf16): "
                          "emulated, about 0.11x the fp32 step (docs/benchmarks.md); mixed_precision=auto "
                          "picks fp32 here", RuntimeWarning, stacklevel=2)
        return requested
    if not cpu and torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native_bf16() else "no"


def make_accelerator(tc, run_dir: Path, log_with):
    """An ``Accelerator`` for one training run (``tc``: the run's train config).

    Accelerate keeps one process-wide ``AcceleratorState`` and refuses a second ``Accelerator``
    with another ``mixed_precision``; a process that trains several runs (``fape quickstart``,
    ``fape experiment``, chains, tests) drops that state first. The ``PartialState`` (process group,
    device) is kept, so this is safe under ``accelerate launch`` too.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    cpu = force_cpu(tc.cpu)
    return Accelerator(cpu=cpu, mixed_precision=resolve_precision(tc.mixed_precision, cpu), log_with=log_with,
                       project_dir=str(run_dir))


def flat_config(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def resolve_run_dir(cls, args, overrides, values: dict | None = None):
    """``(config, run folder, resume?)`` for a ``train`` command: a fresh numbered run, an explicit
    ``--run-dir``, or ``--resume RUN`` with the run's saved config (``values``, typed settings of the
    command's own flags, then the dotted ``overrides`` still apply: ``load_config``).

    With several processes, rank 0 picks the next number and broadcasts it.
    """
    if args.resume:
        run = Path(args.resume)
        if not (run / "config.yaml").is_file():
            raise FileNotFoundError(f"cannot resume: {run / 'config.yaml'} not found")
        return load_config(cls, run / "config.yaml", overrides, values), run, True
    cfg = load_config(cls, args.config, overrides, values)
    if args.run_dir:  # a user-named folder: only an empty one or a run of ours is written into
        check_replaceable(Path(args.run_dir), ("config.yaml",))
        return cfg, Path(args.run_dir), False
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState(cpu=force_cpu(cfg.train.cpu))
    box = [str(next_run_dir(cfg.runs_dir, cfg.name)) if state.is_main_process else None]
    if state.num_processes > 1:
        broadcast_object_list(box)  # every rank writes into the folder rank 0 numbered
    return cfg, Path(box[0]), False


def open_run(accelerator, cfg, run_dir: Path, resumed_step: int | None):
    """Write the resolved config into the run folder, open the JSONL log (dropping lines past
    ``resumed_step`` when resuming) and start Accelerate's trackers. Returns the log (None off rank 0)."""
    from fape.config import save_config, to_dict
    from fape.utils.runs import JsonlLog

    main = accelerator.is_main_process
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    accelerator.wait_for_everyone()
    log = JsonlLog(run_dir / "metrics.jsonl", truncate_after_step=resumed_step) if main else None
    accelerator.init_trackers(cfg.name, config=flat_config(to_dict(cfg)),
                              init_kwargs={"wandb": {"dir": str(run_dir), "name": run_dir.name}})
    return log


def steps_per_epoch(n_items: int, batch: int, world: int, what: str) -> int:
    steps = n_items // (batch * world)
    if steps == 0:
        raise ConfigError(f"train.batch_size: {n_items} {what} are fewer than one global batch "
                          f"({batch} x {world} processes); lower train.batch_size")
    return steps
