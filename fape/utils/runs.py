"""Numbered run directories (``runs/gan/00003-quick``), JSONL metrics, tracker setup."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from fape.utils.io import atomic_write_text, json_text


def next_run_dir(root: str | Path, name: str) -> Path:
    """``root/NNNNN-name`` with NNNNN one more than the largest number already there.

    Nothing is created: the run folder (and ``root``) appear only once the run has started, so a
    run that fails on its inputs leaves no empty folder behind.
    """
    root = Path(root)
    names = [p.name for p in root.iterdir()] if root.is_dir() else []
    nums = [int(m.group(1)) for n in names if (m := re.match(r"^(\d{5})-", n))]
    return root / f"{max(nums, default=-1) + 1:05d}-{name}"


class JsonlLog:
    """Append-only metrics log; each line is flushed so a killed run keeps what it logged.

    Lines are strict JSON: a non-finite value (a diverged loss) is written as ``null``.

    On resume, lines with a step beyond the checkpoint's are dropped first, so the log of a
    resumed run reads like the log of an uninterrupted one.
    """

    def __init__(self, path: str | Path, truncate_after_step: int | None = None):
        self.path = Path(path)
        if truncate_after_step is not None and self.path.exists():
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= truncate_after_step]
            atomic_write_text(self.path, "".join(k + "\n" for k in keep))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json_text(record) + "\n")
            f.flush()


def read_jsonl(path: str | Path) -> list[dict]:
    p = Path(path)
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()] if p.exists() else []


def tracker_names(trackers: list[str]) -> list[str]:
    """Accelerate trackers from a config list (``jsonl`` is fape's own and always on).

    wandb runs offline when no login is configured, so a run never blocks on a prompt.
    """
    out = [t for t in trackers if t != "jsonl"]
    unknown = set(out) - {"tensorboard", "wandb"}
    if unknown:
        raise ValueError(f"unknown tracker(s) {sorted(unknown)}; choose from jsonl, tensorboard, wandb")
    if "wandb" in out and "WANDB_API_KEY" not in os.environ and "WANDB_MODE" not in os.environ:
        netrc = Path.home() / ".netrc"
        if not (netrc.exists() and "api.wandb.ai" in netrc.read_text()):
            os.environ["WANDB_MODE"] = "offline"
    return out
