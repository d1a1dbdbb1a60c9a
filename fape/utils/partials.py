"""Partial folders that name their owner, so a later run can remove those of dead processes.

``atomic_dir`` builds an output in a temporary folder beside it. A process killed with SIGKILL
cannot remove that folder, so its name carries the owner: ``partial_prefix(name)`` is the
``tempfile.mkdtemp`` prefix, giving::

    .{name}.partial-{host}-{pid}-{start}-{random}

``host`` is ``socket.gethostname()`` (a pid means nothing on another machine sharing the disk),
``start`` the owner's start time in clock ticks since boot (``/proc/PID/stat`` field 22; 0 where
there is no ``/proc``), which tells a dead owner from a new process that reuses its pid, and
``random`` is mkdtemp's suffix (letters, digits, ``_``; no ``-``). The fields are parsed from the
right, so a host name may contain ``-``.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import socket
from pathlib import Path

_TAIL = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-(?P<start>\d+)-(?P<random>[A-Za-z0-9_]+)")


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; None if it is not running, 0 if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else (0 if _pid_alive(pid) else None)
    except OSError:
        return 0 if _pid_alive(pid) else None
    # the command name (field 2) is in parentheses and may hold spaces: split after its last ")"
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):  # a zombie has exited; only its exit status is left to collect
        return None
    return int(fields[19])  # field 22 (starttime); fields[0] is field 3 (state)


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there: cannot tell, so alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def partial_prefix(name: str) -> str:
    """The ``mkdtemp`` prefix for a partial folder of output ``name`` owned by this process."""
    pid = os.getpid()
    return f".{name}.partial-{socket.gethostname()}-{pid}-{start_ticks(pid) or 0}-"


def partial_owner(folder: Path, name: str) -> tuple[str, int, int] | None:
    """``(host, pid, start)`` of a partial folder of output ``name``; None when ``folder`` is not one."""
    head = f".{name}.partial-"
    if not folder.name.startswith(head):
        return None
    m = _TAIL.fullmatch(folder.name[len(head):])
    return (m["host"], int(m["pid"]), int(m["start"])) if m else None


def owner_dead(host: str, pid: int, start: int) -> bool:
    """True only when the owner is surely gone: same host, and its pid runs no process or another one."""
    if host != socket.gethostname():
        return False
    now = start_ticks(pid)
    return now is None or (start != 0 and now != 0 and now != start)


def clean_stale_partials(out: str | Path) -> list[Path]:
    """Remove the partial folders of ``out`` whose owner process is dead; returns the removed folders.

    Only folders named like ``partial_prefix(out.name)`` makes are considered: a live owner's
    (a concurrent run), another host's, and anything else (older unnamed partials, user files) stay.
    """
    out = Path(out)
    removed = []
    if not out.parent.is_dir():
        return removed
    for p in sorted(out.parent.glob(f".{glob.escape(out.name)}.partial-*")):
        owner = partial_owner(p, out.name)
        if owner is None or p.is_symlink() or not p.is_dir() or not owner_dead(*owner):
            continue
        shutil.rmtree(p, ignore_errors=True)
        if not p.exists():
            removed.append(p)
    return removed
