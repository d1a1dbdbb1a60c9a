"""The ``fape`` command: ``fape data ...``, ``fape gan ...``, ``fape clf ...``, ``fape metrics ...``,
``fape predict``, ``fape export``, ``fape quickstart``, ``fape experiment``.

Each group lives in its own module exposing ``register(subparsers)``; every command handler is
``handler(args, overrides) -> int`` where ``overrides`` are the leftover ``--a.b=value`` tokens
for commands that take a config (``-c``). Heavy imports happen inside handlers so ``--help``
stays instant.
"""
from __future__ import annotations

import argparse
import os
import sys

from fape import __version__
from fape.errors import FapeError, UserError  # noqa: F401  (UserError re-exported for old imports)
from fape.utils.cli import add_config_arg, add_group, lazy  # noqa: F401  (re-exported)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fape",
        description="Face pose synthesis (FaPE-GAN) and expression recognition (Fa-Net and baselines).",
    )
    parser.add_argument("--version", action="version", version=f"fape {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="GROUP")
    groups.required = True

    from fape import quickstart
    from fape.classifiers import cli as clf_cli
    from fape.data import cli as data_cli
    from fape.experiment import cli as experiment_cli
    from fape.gamo import cli as gamo_cli
    from fape.gan import cli as gan_cli
    from fape.metrics import cli as metrics_cli
    from fape.predict import cli as predict_cli

    data_cli.register(groups)
    gan_cli.register(groups)
    clf_cli.register(groups)
    metrics_cli.register(groups)
    quickstart.register(groups)
    experiment_cli.register(groups)
    predict_cli.register(groups)
    gamo_cli.register(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    code = run(argv)
    if argv is None and distributed_worker():
        exit_now(code)
    return code


def distributed_worker() -> bool:
    """True in a process started by ``torchrun`` / ``accelerate launch`` with several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def exit_now(code: int) -> None:
    """Leave a distributed worker without the interpreter's and C++ runtime's teardown.

    Why: constructing ``DistributedDataParallel`` leaks C++ references to the process group
    (torch 2.14.1, measured on an nn.Linear: 11 taken, 1 given back when the DDP model is freed),
    so ``destroy_process_group()`` never destroys the gloo backend, and its threads
    (``gloo_tcp_loop``, ``pt_gloo_runloop``) are still running when the process exits. Tearing
    the runtime down around them occasionally aborts the process ("terminate called without an
    active exception", exit -6): 1 of 120 two-process GAN runs here, after both ranks had printed
    their result; 0 of 240 with this exit. The launcher then reports a failed job. Every output
    is already written atomically and closed by now; only stdio and logging need flushing.
    """
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "takes_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(args.handler(args, rest) or 0)
    except (FapeError, FileExistsError, FileNotFoundError) as e:
        print(f"fape: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fape: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
