"""A seed's splits and units (a task, or a fold of a k-fold task), the rows each trains on, and
the synthesized set of every unit (:func:`synthesize_tasks`)."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from fape.errors import ConfigError
from fape.experiment.config import ExperimentConfig
from fape.utils.io import atomic_write_json, atomic_write_text


def make_splits(data: Path, tasks: list[str], seed: int, options: dict | None = None) -> dict[str, str]:
    """A split file per task (a protocol is made and saved with its hash; a file is checked)."""
    from fape.data import splits
    from fape.data.format import read_index

    index = read_index(data)
    files = {}
    for task in tasks:
        if Path(task).suffix in (".csv", ".json"):
            splits.load_split(task)  # checks the hash
            files[task] = str(task)
        else:
            files[task] = str(splits.save_split(data, splits.make_split(index, task, seed, **(options or {}))))
    return files


def task_folds(split_file: str) -> list[int | None]:
    """``[0, ..., K-1]`` for a k-fold split file, ``[None]`` otherwise."""
    from fape.data.splits import split_meta

    k = split_meta(split_file).get("num_folds")
    return list(range(int(k))) if k else [None]


class Unit(NamedTuple):
    """A task's unit: the task, or one fold of a k-fold task."""

    task: str
    fold: int | None

    @property
    def key(self) -> str:
        """Its key in ``synth.json`` and in printed progress: ``TASK`` or ``TASK@foldK``."""
        return self.task if self.fold is None else f"{self.task}@fold{self.fold}"

    @property
    def dir(self) -> str:
        """Its folder name: the task's stem, ``/foldK`` for a fold."""
        return Path(self.task).stem + ("" if self.fold is None else f"/fold{self.fold}")


def task_units(split_files: dict[str, str]) -> dict[str, Unit]:
    """``{unit key: Unit}`` in table order."""
    units = (Unit(t, f) for t, path in split_files.items() for f in task_folds(path))
    return {u.key: u for u in units}


def train_rows(split_file: str, fold: int | None) -> np.ndarray:
    from fape.data import splits

    return splits.load_split(split_file, fold=fold)["train"]


def untested_rows(data: Path, split_files: dict[str, str]) -> np.ndarray:
    """Rows that every task's classifier (every fold's) trains on: what a shared GAN may train
    on. It sees no tested, validation or held-back (oracle-only) row of any task, nor another
    view of a tested sequence."""
    from fape.data.format import read_index

    keep = np.ones(len(read_index(data)), bool)
    for task, fold in task_units(split_files).values():
        train = np.zeros_like(keep)
        train[train_rows(split_files[task], fold)] = True
        keep &= train
    return np.flatnonzero(keep)


def unit_gan_rows(split_files: dict[str, str]) -> dict[str, np.ndarray]:
    """``gan.per_task``: ``{unit key: that unit's training rows}``, what each unit's GAN trains on."""
    return {k: train_rows(split_files[t], f) for k, (t, f) in task_units(split_files).items()}


def shared_gan_rows(exp: ExperimentConfig, data: Path, split_files: dict[str, str]) -> np.ndarray:
    """The rows the seed's one shared GAN trains on: those every task trains on (:func:`untested_rows`)."""
    rows = untested_rows(data, split_files)
    if not len(rows):
        raise ConfigError(f"experiment {exp.name!r}: no row is trained on by every task and fold, so a shared "
                          f"GAN has nothing to train on (k-fold tasks test every row): set gan.per_task: true")
    return rows


def per_pose_plan(data: Path, rows: np.ndarray, path: Path, factor: float = 1.5) -> Path:
    """A YAML plan topping every pose up to ``factor`` x its count in ``rows``."""
    import yaml

    from fape.data.format import read_index

    poses = read_index(data).manifest["pose"].to_numpy()[rows]
    names, counts = np.unique(poses, return_counts=True)
    targets = [{"pose": str(p), "count": int(round(factor * c))} for p, c in zip(names, counts)]
    atomic_write_text(path, yaml.safe_dump({"targets": targets}, sort_keys=False))
    return path


def synthesize_tasks(gan_run: Path | dict[str, Path], data: Path, split_files: dict[str, str], plans: dict, out: Path,
                     seed: int, gate: str = "", judges: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """One synthesized set per unit (task, or fold of a k-fold task) from its training rows:
    ``out/TASK[/foldK]``; ``{unit key: folder or ""}`` ("" when the plan needs no image, or the
    gate rejected every image). ``gan_run``: one run for every unit, or ``{unit key: run}``;
    ``judges``: ``{unit key: {setting: run}}``, the runs that ``expression:@SETTING`` names."""
    import shutil

    from fape.gan.gates import parse_gate
    from fape.gan.synthesize import AllRejected, synthesize

    made = {}
    for key, unit in task_units(split_files).items():
        train = train_rows(split_files[unit.task], unit.fold)
        plan = str(plans.get(unit.task, plans.get("default", "per-pose:1.5")))
        if plan.startswith("per-pose:"):
            plan = str(per_pose_plan(data, train, out / f"plan_{unit.dir.replace('/', '_')}.yaml",
                                     float(plan.split(":")[1])))
        dest = out / unit.dir
        run = gan_run[key] if isinstance(gan_run, dict) else gan_run
        unit_gate = parse_gate(gate, (judges or {}).get(key))
        try:
            res = synthesize(run, data, plan, dest, rows=train, seed=seed, overwrite=True, progress=False,
                             gate=unit_gate)
        except AllRejected as e:  # the unit trains on its real rows, as when its plan needs no image
            shutil.rmtree(e.partial, ignore_errors=True)
            made[key] = ""
            print(f"    {key}: plan {Path(plan).name} -> 0 images (the gate {gate} rejected all)", flush=True)
            continue
        made[key] = str(dest) if res is not None else ""
        n, rej = (res.written, res.rejected) if res is not None else (0, 0)
        print(f"    {key}: plan {Path(plan).name} -> {n} images"
              + (f" ({rej} rejected by the gate {gate})" if gate else ""), flush=True)
    atomic_write_json(out / "synth.json", made)
    return made
