"""Argparse helpers shared by every command group (``fape/*/cli.py``). They live at the bottom
of the house so that no group imports the ``fape`` front door (``fape/cli.py``), which imports them all."""
from __future__ import annotations

import argparse


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
