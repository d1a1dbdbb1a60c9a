"""The generator and discriminator registries: builders by name, and the config a name resolves to.

A builder is registered with ``@register_generator(name)`` / ``@register_discriminator(name)`` in the file
that defines its network (generators.py, discriminators.py); ``fape.gan.networks`` imports those files, so
importing the package fills both registries.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from torch import nn

from fape.gan.networks.layers import NORMS

# name -> builder(cfg, in_chans, mask_chans, image_size) -> nn.Module
GENERATORS: dict[str, Callable[..., nn.Module]] = {}
# name -> builder(cfg, in_chans, image_size) -> nn.Module
DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {}


def _register(table: dict, kind: str, name: str):
    """A decorator that adds its builder to ``table`` under ``name``; a name is registered once."""
    def deco(fn):
        if name in table:
            raise ValueError(f"{kind} {name!r} is already registered")
        table[name] = fn
        return fn
    return deco


def register_generator(name: str):
    return _register(GENERATORS, "generator", name)


def register_discriminator(name: str):
    return _register(DISCRIMINATORS, "discriminator", name)


def list_generators() -> list[str]:
    return sorted(GENERATORS)


def list_discriminators() -> list[str]:
    return sorted(DISCRIMINATORS)


def resolve(cfg, cls, overrides: dict):
    if isinstance(cfg, str):
        cfg = cls(name=cfg)
    elif not isinstance(cfg, cls):
        raise TypeError(f"expected a {cls.__name__} or a registry name, got {type(cfg).__name__}")
    if overrides:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
        cfg = dataclasses.replace(cfg, **overrides)
    if cfg.norm not in NORMS:
        raise ValueError(f"unknown norm {cfg.norm!r}; expected one of {list(NORMS)}")
    return cfg
