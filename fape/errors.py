"""Every error fape raises on purpose, at the bottom of the house: any module may import this one,
and it imports nothing of fape.

``FapeError`` and its subclasses are caused by input (a bad file, value or option) or by a run
that cannot go on; the ``fape`` command prints them as one line naming the file or value and
exits with code 2. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class FapeError(Exception):
    """Base of fape's own errors: printed as one line, exit code 2."""


class UserError(FapeError):
    """Bad input: a file, value or option the user can change. The message names it."""


class ConfigError(UserError, ValueError):
    """A config key or value that cannot be read; the message gives the full dotted key."""


class DatasetError(UserError, ValueError):
    """A dataset folder or file that cannot be read as the fape format; the message names it."""


class SplitError(DatasetError):
    """A split that cannot be made, saved or loaded; the message names the column / file / option."""


class LeakError(SplitError):
    """A split that puts one subject or sequence into two parts."""


class OutputError(UserError):
    """An output path that fape may not write or replace (it is not fape's own, or not writable)."""


class TrainingDiverged(FapeError, RuntimeError):
    """The loss (or the weights) became NaN or infinite; the run stopped without checkpointing them."""


class CheckpointError(FapeError, RuntimeError):
    """No checkpoint of a run loads (each is truncated, corrupt or incomplete)."""
