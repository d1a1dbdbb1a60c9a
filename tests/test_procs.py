"""Pool workers end with their parent: a killed ``fape experiment`` (or import) must not leave
workers training under PID 1."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from _fixtures import REPO

PARENT = textwrap.dedent("""
    import sys, time
    from fape.utils.procs import spawn_pool

    def park(path):
        import os
        open(path, "w").write(str(os.getpid()))
        time.sleep(600)

    if __name__ == "__main__":
        pool = spawn_pool(1, 1 if sys.argv[2] == "cells" else None)  # the cell pools set torch threads
        pool.submit(park, sys.argv[1])
        time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("kind", ["cells", "import"])
def test_pool_worker_dies_with_its_killed_parent(tmp_path, kind):
    script, pid_file = tmp_path / "parent.py", tmp_path / "worker.pid"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file), kind], env=env)
    try:
        for _ in range(600):  # the worker starts (spawn imports torch): up to 60 s
            if pid_file.is_file() and pid_file.read_text():
                break
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        for _ in range(100):
            if not _alive(worker):
                break
            time.sleep(0.1)
        assert not _alive(worker), "the pool worker outlived its killed parent"
    finally:
        parent.kill()
        if pid_file.is_file() and pid_file.read_text() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
