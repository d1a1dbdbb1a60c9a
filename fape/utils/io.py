"""Atomic writes: a kill mid-write leaves the previous file or folder intact, never half of one.

What fape may replace: an output folder is replaced (``--overwrite``) only when it is absent,
empty, or already a fape output of the same kind, recognised by its marker file (a dataset's
``dataset.json``, ...). Anything else, a user's folder or a plain file, is refused with an
``OutputError`` naming it, before any work starts and again just before the rename.

Permissions: files and folders come out as an ordinary ``open()`` / ``mkdir()`` would make them
under the process umask (``tempfile`` alone would leave them 0600 / 0700).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from fape.errors import OutputError

DATASET_MARKERS = ("dataset.json",)  # a fape dataset folder: import, synth, synthesize


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` is a swap)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _chmod_default(path: Path, is_dir: bool) -> None:
    """Give a ``tempfile`` file (0600) or folder (0700) the mode ``open``/``mkdir`` would have given."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~current_umask())


def make_temp_dir(parent: Path, name: str) -> Path:
    """A fresh temporary folder in ``parent`` for the output ``name``, with umask permissions,
    named ``.{name}.partial-{host}-{pid}-{start}-{random}`` (``fape.utils.partials``): the owner in
    the name lets a later run tell a dead run's leftover from a live one's."""
    from fape.utils.partials import partial_prefix

    tmp = Path(tempfile.mkdtemp(prefix=partial_prefix(name), dir=parent))
    _chmod_default(tmp, is_dir=True)
    return tmp


def check_replaceable(out: Path, markers: Sequence[str]) -> None:
    """Raise ``OutputError`` unless ``out`` may be replaced by a new output of the kind ``markers`` name.

    Allowed: ``out`` absent, an empty folder, or a folder holding one of ``markers`` (then it is
    fape's own output of that kind). Refused: a file, a link, any other folder.
    """
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise OutputError(f"refusing to replace {out}: it is a {'link' if out.is_symlink() else 'file'}, "
                          f"not a fape output folder; choose another --out")
    if any(out.iterdir()) and not any((out / m).exists() for m in markers):
        raise OutputError(f"refusing to replace {out}: it is not empty and holds no {' or '.join(markers)}, "
                          f"so it is not a fape output of this kind; choose another --out or empty it yourself")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json_text(obj, indent=2) + "\n")


def json_text(obj, **kw) -> str:
    """Strict JSON for ``obj``: every NaN or +-inf float becomes ``null``.

    Python's ``json`` writes bare ``NaN`` / ``Infinity`` tokens, which strict readers (``JSON.parse``,
    most non-Python parsers) reject; ``null`` says "no finite value" in any reader (a diverged
    loss in ``metrics.jsonl`` reads as ``null``). ``allow_nan=False`` makes sure no such token slips
    through.
    """
    return json.dumps(_finite(obj), allow_nan=False, default=_json_default, **kw)


def _finite(o):
    """``o`` with non-finite floats (including numpy float64, a ``float`` subclass) as ``None``."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append ``record`` as one JSON line in a single ``write`` on an ``O_APPEND`` descriptor, so
    concurrent appenders never interleave or overwrite each other's lines (POSIX appends are
    atomic for one write on a local file system), then fsync: a kill leaves whole lines only."""
    path = Path(path)
    line = (json.dumps(record, default=_json_default) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # mode: umask applies
    except OSError as e:
        raise OutputError(f"cannot append to {path}: {e.strerror or e}") from None
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save_npy(path: str | Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return _finite(float(o))
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def claim_dir(out: str | Path, markers: Sequence[str]) -> Path:
    """Make ``out`` a folder a fape command may write into and later clean: it must be absent
    (it is created), empty, or that command's own earlier output (it holds one of ``markers``)."""
    out = Path(out)
    check_replaceable(out, markers)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot write output folder {out}: {e.strerror or e}") from None
    return out


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False,
               markers: Sequence[str] = DATASET_MARKERS) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; rename it to ``out`` only when the block ends cleanly.

    An interrupted or failed block removes the temporary folder, so ``out`` is either absent,
    the previous complete version, or the new complete version. With ``overwrite``, an existing
    ``out`` is replaced only if ``check_replaceable(out, markers)`` allows it, checked before the
    block runs (so no work is wasted) and again before the rename.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"output folder already exists: {out} (pass --overwrite to replace it)")
        check_replaceable(out, markers)
    from fape.utils.partials import clean_stale_partials

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for p in clean_stale_partials(out):
            print(f"fape: removed {p}, left by a run of this command that was killed", file=sys.stderr)
        tmp = make_temp_dir(out.parent, out.name)
    except OSError as e:
        raise OutputError(f"cannot write output folder {out}: {e.strerror or e}") from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        replace_dir(tmp, out, markers)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(src: Path, out: Path, markers: Sequence[str]) -> None:
    """Move the complete folder ``src`` to ``out``, replacing a previous ``out`` (renames only).

    ``out`` must pass ``check_replaceable(out, markers)``: only an empty folder or fape's own
    output of the same kind is ever replaced, and only after the new one is complete.
    """
    check_replaceable(out, markers)
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    try:
        os.replace(src, out)
    except OSError as e:
        if old is not None:
            os.replace(old, out)  # put the previous version back
        raise OutputError(f"cannot write output folder {out}: {e.strerror or e}") from None
    _fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def exclusive_run(run: str | Path) -> Iterator[None]:
    """Hold ``.RUN.lock`` beside the folder ``run`` while one process trains into it.

    Two commands that resume the same run (two ``fape experiment`` processes on one output folder,
    say) would otherwise both write its checkpoints and logs, and leave a run that is neither. The
    lock is an OS advisory lock (``flock``), released when its holder exits, even by a crash, so a
    stale file never blocks a later resume. Where ``fcntl`` does not exist (Windows) nothing is locked.
    """
    run = Path(run)
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    run.parent.mkdir(parents=True, exist_ok=True)
    lock = run.parent / f".{run.name}.lock"
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"{run} is being trained by another process (it holds {lock}); wait for it "
                              f"to finish, or stop it, then run again: finished work is reused") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
