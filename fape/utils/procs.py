"""Worker processes that never outlive their parent (import pools and experiment cell pools)."""
from __future__ import annotations

import os
import sys
import threading


def die_with_parent() -> None:
    """Pool initializer: end this worker when its parent dies, even by SIGKILL.

    Why: a worker blocks on its task queue, whose write end it inherited, so it never sees EOF;
    a killed parent left its workers alive under PID 1 forever. Linux delivers SIGKILL on the
    parent's death (prctl PR_SET_PDEATHSIG), even to a worker busy in C code; everywhere a daemon
    thread also waits on multiprocessing's parent sentinel, a pipe that closes when the parent dies.
    """
    import multiprocessing

    _set_parent_death_signal()
    parent = multiprocessing.parent_process()
    if parent is not None:  # also covers a parent that died before the signal was armed
        threading.Thread(target=_exit_when_ready, args=(parent.sentinel,), daemon=True,
                         name="die-with-parent").start()


def _set_parent_death_signal() -> bool:
    import ctypes
    import ctypes.util
    import signal

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _exit_when_ready(sentinel: int) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])
    os._exit(1)
