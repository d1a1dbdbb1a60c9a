import warnings
from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from fape.config import ConfigError, load_config, parse_overrides, save_config


@dataclass
class Inner:
    lr: float = 0.1
    betas: tuple[float, float] = (0.5, 0.999)


@dataclass
class Cfg:
    name: str = "x"
    identities: int = 4
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    poses: list[str] = field(default_factory=lambda: ["front"])
    opt: Inner = field(default_factory=Inner)
    out: str | None = None


def test_defaults_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("identities: 12\nopt:\n  lr: 0.01\n")
    cfg = load_config(Cfg, p, ["--identities=7", "--opt.betas=[0.9, 0.99]", "poses=a,b", "--flag", "--mode", "b"])
    assert cfg.identities == 7 and cfg.opt.lr == 0.01 and cfg.opt.betas == (0.9, 0.99)
    assert cfg.poses == ["a", "b"] and cfg.flag is True and cfg.mode == "b" and cfg.out is None


def test_typed_values_sit_between_the_yaml_and_the_command_line(tmp_path):
    # a command's own flags (values) override the YAML; the user's dotted overrides win over both
    p = tmp_path / "c.yaml"
    p.write_text("identities: 12\nopt:\n  lr: 0.01\n")
    cfg = load_config(Cfg, p, ["--opt.lr=0.5"], values={"identities": 3, "opt.lr": 0.2, "out": "o"})
    assert (cfg.identities, cfg.opt.lr, cfg.out) == (3, 0.5, "o")
    with pytest.raises(ConfigError, match="identities"):
        load_config(Cfg, p, values={"identities": "many"})


@pytest.mark.parametrize("override,msg", [
    (["--identites=3"], "identites"),
    (["--identities=3.5"], "identities"),
    (["--mode=c"], "mode"),
    (["--opt.nope=1"], "nope"),
    (["--flag=maybe"], "flag"),
])
def test_bad_overrides_name_the_key(override, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config(Cfg, None, override)


def test_unknown_yaml_key_and_missing_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("opt:\n  momentum: 0.9\n")
    with pytest.raises(ConfigError, match="opt.momentum"):
        load_config(Cfg, p)
    with pytest.raises(ConfigError, match="nothere.yaml"):
        load_config(Cfg, tmp_path / "nothere.yaml")


def test_roundtrip(tmp_path):
    cfg = load_config(Cfg, None, ["--opt.lr=3e-4", "--out=/tmp/x"])
    save_config(cfg, tmp_path / "r.yaml")
    assert load_config(Cfg, tmp_path / "r.yaml") == cfg


def test_parse_overrides_forms():
    assert parse_overrides(["--a.b=1", "c=x", "--d", "2", "--e"]) == [("a.b", "1"), ("c", "x"), ("d", "2"), ("e", "true")]
    with pytest.raises(ConfigError):
        parse_overrides(["bare"])


def test_auto_precision_is_bf16_only_where_native(monkeypatch):
    # bf16 autocast on a CPU without bf16 instructions is emulated: 0.11x the fp32 LightCNN step on
    # an AVX2-only EPYC (benchmarks/clf_step.py), so "auto" must not pick it there
    from fape.utils.loop import cpu_has_native_bf16, resolve_precision

    avx2 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
    assert not cpu_has_native_bf16(avx2)
    assert cpu_has_native_bf16(avx2.replace("avx2", "avx2 avx512f avx512_bf16"))
    assert cpu_has_native_bf16("Features\t: fp asimd bf16 i8mm\n")  # ARM
    assert resolve_precision("no", cpu=True) == "no"
    import fape.utils.loop as loop

    for native in (False, True):  # forced bf16 is kept; where it is only emulated, a warning says so
        monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda *a, native=native: native)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert resolve_precision("bf16", cpu=True) == "bf16"
        assert [str(w.message).startswith("mixed_precision=bf16 on a CPU") for w in caught] == ([] if native else [True])
    monkeypatch.undo()
    assert resolve_precision("auto", cpu=True) == ("bf16" if cpu_has_native_bf16() else "no")


def test_config_changes_names_nested_keys_and_ignores_keys_one_side_lacks():
    from fape.config import config_changes

    stored = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "old_only": 5}
    new = {"a": 1, "b": {"c": [1, 3], "d": "y"}, "new_only": 6}
    assert config_changes(stored, new) == [("b.c", [1, 2], [1, 3]), ("b.d", "x", "y")]
    assert config_changes(new, new) == []


def test_stored_changes_ignores_keys_lets_listed_keys_grow_and_names_an_unreadable_file(tmp_path):
    from fape.config import describe_changes, stored_changes
    from fape.errors import OutputError

    f = tmp_path / "config.yaml"
    assert stored_changes(f, {"a": 1}) is None  # nothing stored: nothing to guard
    f.write_text(yaml.safe_dump({"out": "x", "seeds": [0, 1], "lr": 0.1, "tags": ("a",)}))
    assert stored_changes(f, {"out": "y", "seeds": [0, 1, 2], "lr": 0.1}, ignore=("out",), may_grow=("seeds",)) == []
    assert stored_changes(f, {"out": "x", "seeds": [1], "lr": 0.1}, may_grow=("seeds",)) == [("seeds", [0, 1], [1])]
    assert stored_changes(f, {"seeds": [0, 1, 2]}) == [("seeds", [0, 1], [0, 1, 2])]  # grows only where allowed
    assert stored_changes(f, {"tags": ("a",)}) == []  # a tuple reads back as the list YAML stores
    got = stored_changes(f, {"out": "y", "lr": 0.2})
    assert got == [("lr", 0.1, 0.2), ("out", "x", "y")]
    assert describe_changes(got, shown=1) == "lr: 0.1 there, 0.2 now (and 1 more)"
    f.write_text("a: [1,\n")
    with pytest.raises(OutputError, match=str(f)):
        stored_changes(f, {"a": 1})
