"""Packaging: the wheel carries the default model, so `fape predict` works after a plain
(non-editable) install; the optional extras are declared; the distribution name is not PyPI's `fape`."""
import os
import shutil
import subprocess
import sys
import tomllib
import venv

import cv2
import pytest

from _fixtures import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_distribution_name_and_extras():
    project = PYPROJECT["project"]
    assert project["name"] != "fape"  # `fape` on PyPI is an unrelated project
    extras = project["optional-dependencies"]
    assert any(r.startswith("facenet-pytorch") for r in extras["mtcnn"])  # --detector mtcnn
    assert any(r.startswith("ai-edge-litert") for r in extras["peer"])
    core = " ".join(project["dependencies"])
    assert "ai-edge-litert" not in core and "fer" not in core.replace("pytorch-fid", "")


def test_shipped_model_is_package_data():
    from fape.predict.run import shipped_model

    folder = shipped_model()
    assert folder.is_relative_to((REPO / "fape").resolve()) or folder.is_relative_to(REPO / "fape")
    assert {"model.safetensors", "state.json", "README.md"} <= {p.name for p in folder.iterdir()}
    assert "checkpoints/*/*" in PYPROJECT["tool"]["setuptools"]["package-data"]["fape"]


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FAPE_MODEL", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


@pytest.mark.slow
def test_wheel_in_fresh_venv_predicts_with_the_default_model(tmp_path):
    """Build the wheel from a copy of the sources, install it (no deps: they come from the system
    site) into a new venv and run `fape predict` from a folder where the checkout is not importable."""
    skdata = pytest.importorskip("skimage.data", reason="scikit-image (a face-alignment dependency) is absent")
    src = tmp_path / "fape-faces"  # not "src": setuptools treats a folder named src as a src-layout root
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "fape", src / "fape", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = _clean_env()
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
           str(src)]
    subprocess.run(pip, check=True, cwd=tmp_path, env=env, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("fape_faces-*.whl"))
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(tmp_path / "venv")
    py = tmp_path / "venv" / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                    "--no-build-isolation", str(wheel)], check=True, cwd=tmp_path, env=env, capture_output=True,
                   timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    cv2.imwrite(str(work / "face.png"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    out = subprocess.run([str(tmp_path / "venv" / "bin" / "fape"), "predict", "face.png", "--out", "o", "--quiet",
                          "--no-annotate"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "happy" in out.stdout, out.stdout  # she smiles: the shipped weights were found and loaded
    import json

    summary = json.loads((work / "o" / "summary.json").read_text())
    assert summary["model"].startswith(str(tmp_path / "venv")), summary["model"]  # the wheel's copy, not the checkout's
    # the YAML presets are package data: the quick start's experiments and what they name resolve
    probe = ("from fape.config import load_config, preset_path\n"
             "from fape.experiment import ExperimentConfig\n"
             "from fape.quickstart import SIZES\n"
             "for p in SIZES.values():\n"
             "    e = load_config(ExperimentConfig, p.experiment)\n"
             "    for ref in (p.experiment, e.gan.config, e.classifier, e.data.synth):\n"
             "        print(preset_path(ref).resolve())\n")
    found = subprocess.run([str(py), "-c", probe], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert found.returncode == 0, found.stderr[-2000:]
    paths = found.stdout.split()
    assert len(paths) == 12 and all(p.startswith(str(tmp_path / "venv")) and p.endswith(".yaml") for p in paths), paths
