"""What D calls real must agree with what L1 and D's conditioning ask of G (issue 13)."""
from __future__ import annotations

import dataclasses

import pytest

from _fixtures import REPO
from fape.config import ConfigError, load_config
from fape.gan.config import GANConfig

PRESETS = sorted(p.stem for p in (REPO / "configs/gan").glob("*.yaml"))


def _load(*over: str, preset: str | None = None) -> GANConfig:
    path = REPO / "configs/gan" / f"{preset}.yaml" if preset else None
    return load_config(GANConfig, path, list(over))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_loads_with_real_target(preset):
    cfg = _load(preset=preset)
    assert cfg.discriminator.real == "target" and cfg.loss.l1_weight > 0


def test_paper_preset_is_the_unconditional_d_of_eq_1():
    # D(I): one image in, no pose mask, no source; lambda = 10 (eq. 3)
    dc = _load(preset="f2ed_paper").discriminator
    assert (dc.condition_on_mask, dc.condition_on_source, dc.real) == (False, False, "target")


CONDITIONING = {"unconditional": (False, False), "mask": (True, False), "pix2pix": (True, True),
                "source only": (False, True)}


@pytest.mark.parametrize("cond", CONDITIONING)
@pytest.mark.parametrize("l1", ["10", "0"])
def test_real_target_is_accepted_in_every_form(cond, l1):
    mask, src = CONDITIONING[cond]
    cfg = _load("--discriminator.real=target", f"--discriminator.condition_on_mask={mask}",
                f"--discriminator.condition_on_source={src}", f"--loss.l1_weight={l1}")
    assert cfg.discriminator.real == "target"


@pytest.mark.parametrize("cond,l1,named", [
    ("unconditional", "10", ["loss.l1_weight=10"]),
    ("mask", "10", ["loss.l1_weight=10", "discriminator.condition_on_mask"]),  # the old f2ed_paper preset
    ("mask", "0", ["discriminator.condition_on_mask"]),
    ("pix2pix", "10", ["loss.l1_weight=10", "discriminator.condition_on_mask", "discriminator.condition_on_source"]),
    ("source only", "0", ["discriminator.condition_on_source"]),
])
def test_real_source_is_refused_where_it_fights_another_target(cond, l1, named):
    mask, src = CONDITIONING[cond]
    with pytest.raises(ConfigError, match="discriminator.real=source") as e:
        _load("--discriminator.real=source", f"--discriminator.condition_on_mask={mask}",
              f"--discriminator.condition_on_source={src}", f"--loss.l1_weight={l1}")
    for key in named:
        assert key in str(e.value)
    assert "discriminator.real=target" in str(e.value)  # and says what to do instead


def test_real_source_without_any_other_target_is_accepted():
    # unconditional D, no L1: D only asks for a real-looking face; nothing else pulls G elsewhere
    cfg = _load("--discriminator.real=source", "--discriminator.condition_on_mask=false",
                "--discriminator.condition_on_source=false", "--loss.l1_weight=0")
    assert cfg.discriminator.real == "source"


def test_old_paper_preset_is_refused_from_the_yaml_and_the_cli(tmp_path, capsys):
    from fape.cli import main

    old = tmp_path / "old_paper.yaml"
    old.write_text((REPO / "configs/gan/f2ed_paper.yaml").read_text()
                   .replace("condition_on_mask: false", "condition_on_mask: true").replace("real: target", "real: source"))
    with pytest.raises(ConfigError, match="discriminator.real=source"):
        load_config(GANConfig, old)
    assert main(["gan", "train", "-c", str(old), f"--runs_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert "discriminator.real=source" in err and "loss.l1_weight=10" in err
    assert not (tmp_path / "runs").exists()  # refused before any run folder is made


def test_train_refuses_a_config_built_in_code(tmp_path):
    from fape.gan.train import train

    cfg = GANConfig()
    cfg = dataclasses.replace(cfg, discriminator=dataclasses.replace(cfg.discriminator, real="source"))
    with pytest.raises(ConfigError, match="discriminator.real=source"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
