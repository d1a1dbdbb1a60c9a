"""Stop a training run whose loss or weights stop being finite, on every process at once.

A diverged run used to run all its steps on NaN and exit 0; now it stops at the next check with
one line naming the step, the run folder and the last good checkpoint, and the checkpoint of
non-finite weights is never written.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from fape.errors import TrainingDiverged

NEVER = 2 ** 62  # "no bad step yet"; a min over steps and over processes keeps the first bad one


class DivergenceWatch:
    """The first step whose loss was not finite, found without a host sync per step.

    ``observe`` keeps the step on the device (tensor losses) or on the host (float losses,
    already synced by the caller); ``check`` - called by every process at the same steps (log
    and checkpoint steps) - takes the minimum over processes and raises on all of them together.
    """

    def __init__(self, accelerator, run_dir: Path, bar=None):
        self.accelerator, self.run_dir, self.bar = accelerator, Path(run_dir), bar  # bar: closed before the error
        self.first = torch.full((1,), NEVER, dtype=torch.int64, device=accelerator.device)

    def observe(self, step: int, *losses) -> None:
        for loss in losses:
            if torch.is_tensor(loss):  # stays on the device: no sync
                self.first = torch.where(torch.isfinite(loss.detach()).all(), self.first, self.first.clamp(max=step))
            elif not math.isfinite(loss):
                self.first.clamp_(max=step)

    def check(self, step: int, weights: list[torch.Tensor] | None = None) -> None:
        """Raise ``TrainingDiverged`` on every process if any process saw a non-finite loss, or
        (before a checkpoint: pass the tensors it saves, see ``tensors_of``) if a weight is not finite."""
        weights_bad = ~all_finite(weights) if weights else torch.zeros((), dtype=torch.bool, device=self.first.device)
        flags = torch.cat([self.first, weights_bad.long().reshape(1)])  # [first bad loss step, weights bad]
        if self.accelerator.num_processes > 1:
            flags = self.accelerator.gather(flags).reshape(-1, 2)
            flags = torch.stack([flags[:, 0].min(), flags[:, 1].max()])
        bad_loss, bad_weights = flags.tolist()  # the one host sync of a check
        if bad_loss == NEVER and not bad_weights:
            return
        from fape.utils.checkpoint import latest_checkpoint

        last = latest_checkpoint(self.run_dir)
        if self.bar is not None:
            self.bar.close()
        what = (f"the loss is NaN or infinite at step {bad_loss}" if bad_loss != NEVER
                else f"the weights are NaN or infinite after step {step}")
        raise TrainingDiverged(
            f"training diverged: {what} of run {self.run_dir}; "
            + (f"last good checkpoint: {last} (resume with --resume {self.run_dir}, e.g. with a lower learning rate)"
               if last is not None else "no checkpoint was written before it"))


def tensors_of(*modules) -> list[torch.Tensor]:
    """The floating parameters and buffers of ``modules`` (``None`` entries skipped)."""
    return [t for m in modules if m is not None for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]


def all_finite(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Device bool: every element of every tensor is finite (one small kernel per tensor, no sync)."""
    return torch.stack([torch.isfinite(t).all() for t in tensors]).all()
