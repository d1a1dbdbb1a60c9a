"""The ``fape`` command: ``fape data ...``, ``fape gan ...``, ``fape clf ...``, ``fape metrics ...``,
``fape predict``, ``fape export``, ``fape quickstart``, ``fape experiment``.

Each group lives in its own module exposing ``register(subparsers)``; every command handler is
``handler(args, overrides) -> int`` where ``overrides`` are the leftover ``--a.b=value`` tokens
for commands that take a config (``-c``). Heavy imports happen inside handlers so ``--help``
stays instant.
"""
from __future__ import annotations

import argparse
import sys

from fape import __version__


class UserError(Exception):
    """An error caused by input (bad file, bad value): printed as one line, exit code 2."""


def add_config_arg(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("-c", "--config", default=default,
                   help="YAML config; any --key.sub=value after it overrides a field")
    p.set_defaults(takes_overrides=True)


def add_group(groups, name: str, help: str, description: str):
    """A ``fape NAME COMMAND ...`` group; returns the sub-parsers to add its commands to."""
    p = groups.add_parser(name, help=help, description=description)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    return sub


def lazy(module: str, name: str):
    """A handler that imports ``module`` only when the command runs (``--help`` stays instant)."""

    def handler(args, overrides):
        import importlib

        return getattr(importlib.import_module(module), name)(args, overrides)

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fape",
        description="Face pose synthesis (FaPE-GAN) and expression recognition (Fa-Net and baselines).",
    )
    parser.add_argument("--version", action="version", version=f"fape {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="GROUP")
    groups.required = True

    from fape import experiment, quickstart
    from fape.data import cli as data_cli

    from fape.classifiers import cli as clf_cli
    from fape.gan import cli as gan_cli
    from fape.metrics import cli as metrics_cli
    from fape.predict import cli as predict_cli

    data_cli.register(groups)
    gan_cli.register(groups)
    clf_cli.register(groups)
    metrics_cli.register(groups)
    quickstart.register(groups)
    experiment.register(groups)
    predict_cli.register(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "takes_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from fape.config import ConfigError
    from fape.data.format import DatasetError

    try:
        return int(args.handler(args, rest) or 0)
    except (UserError, ConfigError, DatasetError, FileExistsError, FileNotFoundError) as e:
        print(f"fape: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fape: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
