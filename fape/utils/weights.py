"""Finding weight files on disk. Nothing is ever downloaded: a missing file is an error that
names every path looked at and how to provide it."""
from __future__ import annotations

from pathlib import Path


def first_file(candidates: list[Path], what: str, how: str, error: type[Exception] = FileNotFoundError) -> Path:
    """The first of ``candidates`` that is a file, else ``error`` listing them all."""
    for p in candidates:
        if Path(p).is_file():
            return Path(p)
    looked = "\n  ".join(str(p) for p in candidates)
    raise error(f"{what} not found (nothing is downloaded here); looked at:\n  {looked}\n{how}")
