"""Typed configs: dataclasses loaded from YAML, with dotted command-line overrides.

A config is a (possibly nested) dataclass. ``load_config(Cls, path, overrides)`` starts from the
dataclass defaults, applies the YAML file, then the overrides (``a.b=3`` or ``--a.b=3``), and
checks every key, type and range, so a typo or an out-of-range value fails with the key's full
dotted name (``train.epochs``) instead of being ignored or failing deep inside a run.
Ranges are declared on the field (``epochs: int = bounded(100, ge=1)``); every float must also be
finite. The resolved config is written next to every output (``save_config``).
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fape.errors import ConfigError  # noqa: F401  (re-exported: fape.config.ConfigError)

T = TypeVar("T")


def bounded(default: Any, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field whose value ``load_config`` checks against these bounds (inclusive ``ge``/``le``,
    exclusive ``gt``/``lt``)."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    return dataclasses.field(default=default, metadata={"bounds": bounds})


_BOUND_TEXT = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b),
               "le": ("<=", lambda v, b: v <= b), "lt": ("<", lambda v, b: v < b)}


def validate(cfg: Any, prefix: str = "") -> None:
    """Check every bounded field of ``cfg`` (and its sections), that no float is NaN or infinite,
    and the config's own ``cross_check()`` (rules between fields) when it has one.

    Raises ``ConfigError`` naming the full dotted key, the value and the allowed range.
    """
    for f in dataclasses.fields(cfg):
        key, value = prefix + f.name, getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            validate(value, key + ".")
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value}")
        for name, bound in f.metadata.get("bounds", {}).items():
            sign, ok = _BOUND_TEXT[name]
            if isinstance(value, (int, float)) and not ok(value, bound):
                raise ConfigError(f"{key}: must be {sign} {bound}, got {value}")
    cross = getattr(cfg, "cross_check", None)
    if callable(cross):  # rules between fields, e.g. GANConfig: D's "real" agrees with the L1 target
        cross()


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a command-line string) to type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except (ConfigError, ValueError, TypeError) as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: cannot read {value!r} as {tp}")
    if origin is typing.Literal:
        for a in args:
            if value == a or (isinstance(value, str) and str(a) == value):
                return a
        raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, key) for v, a in zip(value, args))
        inner = args[0] if args else Any
        out = [_coerce(v, inner, key) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, key): _coerce(v, vt, key) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if not math.isfinite(f) or f != int(f):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build ``cls`` from a plain mapping (as YAML gives), checking keys and types; ``prefix`` names
    the section in errors. Ranges are checked by ``validate``."""
    types_ = _field_types(cls)
    unknown = set(data) - set(types_)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {sorted(prefix + k for k in unknown)}; "
            f"{cls.__name__} has {sorted(prefix + k for k in types_)}"
        )
    kwargs = {k: _coerce(v, types_[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def parse_overrides(items: list[str]) -> list[tuple[str, str]]:
    """``["--a.b=1", "c=x", "--d", "2"]`` -> ``[("a.b", "1"), ("c", "x"), ("d", "2")]``."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(items):
        item = items[i]
        body = item[2:] if item.startswith("--") else item
        if "=" in body:
            k, v = body.split("=", 1)
        elif item.startswith("--") and i + 1 < len(items) and not items[i + 1].startswith("--"):
            k, v = body, items[i + 1]
            i += 1
        elif item.startswith("--"):
            k, v = body, "true"  # a bare flag sets a boolean
        else:
            raise ConfigError(f"cannot read override {item!r}: write key=value or --key=value")
        out.append((k.replace("-", "_"), v))
        i += 1
    return out


def apply_override(cfg: T, dotted: str, value: Any, _prefix: str = "") -> T:
    """Return a copy of ``cfg`` with the field at ``dotted`` (``a.b.c``) set from ``value``.

    ``value`` is a typed value or a command-line string; either is coerced to the field's type.
    """
    head, _, rest = dotted.partition(".")
    full = _prefix + dotted
    types_ = _field_types(type(cfg))
    if head not in types_:
        where = f"section {_prefix[:-1]!r}" if _prefix else type(cfg).__name__
        raise ConfigError(f"unknown config key {full!r}; {where} has {sorted(_prefix + k for k in types_)}")
    if rest:
        sub = getattr(cfg, head)
        if not dataclasses.is_dataclass(sub):
            raise ConfigError(f"{_prefix + head!r} is not a section; cannot set {full!r}")
        return dataclasses.replace(cfg, **{head: apply_override(sub, rest, value, _prefix + head + ".")})
    if isinstance(value, str) and typing.get_origin(types_[head]) is None and dataclasses.is_dataclass(types_[head]):
        value = yaml.safe_load(value)
    return dataclasses.replace(cfg, **{head: _coerce(value, types_[head], full)})


def override(cfg: T, values: dict[str, Any]) -> T:
    """A copy of ``cfg`` with typed values set at dotted keys, checked like ``load_config``'s:
    ``override(cfg, {"data.mix": 0.25, "train.seed": 3})``."""
    for k, v in values.items():
        cfg = apply_override(cfg, k, v)
    validate(cfg)
    return cfg


PRESETS = Path(__file__).parent / "configs"  # the packaged presets; the repository's configs/ links here


def preset_path(path: str | Path) -> Path:
    """``path`` itself when it exists; else, for a relative ``configs/...`` path, the packaged preset
    of that name (so ``configs/gan/quick.yaml`` resolves in any folder and in an installed
    package); else ``path`` unchanged (the caller reports it missing)."""
    p = Path(path)
    if p.exists() or p.is_absolute() or not p.parts or p.parts[0] != "configs":
        return p
    packaged = PRESETS.joinpath(*p.parts[1:])
    return packaged if packaged.exists() else p


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                values: dict[str, Any] | None = None) -> T:
    """Defaults <- YAML file <- typed ``values`` at dotted keys (what a command's own flags set) <-
    dotted command-line ``overrides``, all type-checked. ``path`` may name a packaged preset as
    ``configs/KIND/NAME.yaml`` (:func:`preset_path`)."""
    data: dict = {}
    if path is not None:
        p = preset_path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping at top level")
    try:
        cfg = from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None
    for k, v in (values or {}).items():
        cfg = apply_override(cfg, k, v)
    for k, v in parse_overrides(overrides or []):
        cfg = apply_override(cfg, k, v)
    validate(cfg)
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def config_changes(stored: dict, new: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """The dotted keys whose values differ between two config dicts, as ``(key, stored, new)``.

    A key that only one side has is not a change: a config saved before a field existed reads as
    that field's default."""
    changes = []
    for key in stored.keys() & new.keys():
        a, b = stored[key], new[key]
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append((f"{prefix}{key}", a, b))
    return sorted(changes, key=lambda c: c[0])


def stored_changes(path: str | Path, new: dict, ignore: tuple[str, ...] = (),
                   may_grow: tuple[str, ...] = ()) -> list[tuple[str, Any, Any]] | None:
    """:func:`config_changes` from the config stored at ``path`` (YAML, or JSON, which YAML reads)
    to ``new``; None when nothing is stored there. Keys in ``ignore`` do not count (where a folder
    is, not what ran in it); a list key in ``may_grow`` whose new value keeps every stored item is
    not a change (adding seeds to an experiment resumes it). An unreadable file is an
    :class:`~fape.errors.OutputError` naming it: a folder guard must not pass on a file it cannot read."""
    from fape.errors import OutputError

    path = Path(path)
    if not path.is_file():
        return None
    try:
        stored = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise OutputError(f"cannot read {path}: {e}") from None
    new = yaml.safe_load(yaml.safe_dump(new, sort_keys=False))  # the types a reload gives (tuples -> lists)
    return [(k, a, b) for k, a, b in config_changes(stored if isinstance(stored, dict) else {}, new)
            if k not in ignore and not (k in may_grow and isinstance(a, list) and isinstance(b, list)
                                        and set(a) <= set(b))]


def describe_changes(changes: list[tuple[str, Any, Any]], shown: int = 5) -> str:
    """``key: old there, new now; ...`` for an error message, the first ``shown`` of them."""
    text = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in changes[:shown])
    return text + (f" (and {len(changes) - shown} more)" if len(changes) > shown else "")


def save_config(cfg, path: str | Path) -> None:
    from fape.utils.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
