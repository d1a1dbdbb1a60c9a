"""Worker processes that never outlive their parent (import pools and experiment cell pools)."""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor


def threads_per_worker(workers: int) -> int:
    """The cores shared evenly among ``workers`` processes, at least 1: more torch threads than
    cores spin in OpenMP and run several times slower."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def init_worker(threads: int | None = None) -> None:
    """Pool initializer: :func:`die_with_parent`, then ``threads`` torch threads when given."""
    die_with_parent()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def spawn_pool(workers: int, threads: int | None = None) -> ProcessPoolExecutor:
    """``workers`` spawned processes (forking a process that holds torch's thread pools is unsafe)
    that end with their parent, each with ``threads`` torch threads when given."""
    import multiprocessing as mp

    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=init_worker,
                               initargs=(threads,))


@contextlib.contextmanager
def worker_pool(workers: int, threads: int | None = None):
    """:func:`spawn_pool` as a context: on an error, work not yet started is cancelled before it waits
    for the running work (the executor's own ``with`` would run the whole queue first)."""
    pool = spawn_pool(workers, threads)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


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
