"""Package a classifier run's selected model as a self-contained checkpoint folder for shipping
(``checkpoints/NAME/``): ``model.safetensors`` (weights only) and ``state.json`` (config, label
order, preprocessing recipe, what selected it, test results when the run was evaluated, and the
weights' sha256). ``fape predict --model FOLDER`` and ``load_run`` read it like any checkpoint.

    python tools/package_model.py RUN checkpoints/fanet_fer2013_48
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from fape.classifiers.io import best_checkpoint
from fape.data.format import read_info
from fape.predict.preprocess import preprocess_spec
from fape.utils import checkpoint as ck
from fape.utils.io import atomic_write_json, sha256_file


def package(run: Path, out: Path) -> Path:
    src = best_checkpoint(run)
    state = ck.load_state(src)
    cfg = state["config"]
    prep = state.get("preprocess")
    if prep is None:  # runs from before the recipe was saved: derive it from the training dataset
        origin = read_info(cfg["data"]["root"]).origin
        prep = preprocess_spec(cfg["data"]["image_size"], cfg["data"]["channels"], origin)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "model.safetensors", out / "model.safetensors.tmp")
    (out / "model.safetensors.tmp").replace(out / "model.safetensors")
    test = Path(run) / "eval" / "test" / "results.json"
    done = Path(run) / "done.json"
    atomic_write_json(out / "state.json", {
        "step": state["step"], "config": cfg, "label_names": state["label_names"], "preprocess": prep,
        "best": state["best"], "trained_steps": json.loads(done.read_text())["step"] if done.is_file() else None,
        "test": {k: v for k, v in json.loads(test.read_text()).items()
                 if k in ("accuracy", "macro_f1", "n", "split", "per_class")} if test.is_file() else None,
        "source_run": str(run), "model_sha256": sha256_file(out / "model.safetensors")})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("out")
    args = ap.parse_args()
    print(package(Path(args.run), Path(args.out)))


if __name__ == "__main__":
    main()
