"""Errors a run reports as one line and exit code 2 (``fape.cli`` maps them). No heavy imports,
so the command line can name them without loading torch."""
from __future__ import annotations


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became NaN or infinite; the run stopped without checkpointing them."""


class CheckpointError(RuntimeError):
    """No checkpoint of a run loads (each is truncated, corrupt or incomplete)."""
