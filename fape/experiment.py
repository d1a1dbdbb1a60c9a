"""``fape experiment configs/experiments/NAME.yaml``: a declared comparison, run cell by cell.

An experiment names a dataset, the split protocols that are its table's columns, the settings
that are its rows (without / with synthesized images, with / without a pre-training stage), a
classifier config and the seeds. It runs every (task, setting, seed) cell, reusing finished cells
(a cell is finished when its test evaluation exists; an interrupted one resumes from its last
checkpoint), and writes ``OUT/report.md`` and ``OUT/results.json``: accuracy mean +- std over
seeds, the interval of every setting's difference from the first one (a hierarchical bootstrap
that resamples seeds, then test images), per-class accuracy when asked, and, with an ``oracle``
setting, the headroom (oracle - without) and the share of it that synthesis recovers.

A seed redraws everything random (``redraw: all``, the default): the split (seed ``split_seed +
seed``), the GAN (trained on the rows that every task of that split trains on, with that seed;
with ``gan.per_task: true`` one GAN per task, and per fold of a k-fold task, on that unit's
training rows only), the synthesized sets and the classifier. ``redraw: classifier`` keeps one split, GAN and
synthesized set (``split_seed``) for every seed. The dataset and each setting's pre-training run
are shared. An ``oracle: true`` setting trains on the task's oracle split (the rare cells held
back from the other settings, ``fape.data.splits``); tasks without rare cells skip it. Model
selection is on each split's validation part only.

k-fold protocols (``ckplus-10fold``, ``jaffe-loso``) are tasks too: each fold is a unit with
its own synthesized set and classifier cell (``clf/TASK/SETTING/sSEED/foldK``); every row is
tested in some fold, so no row is untested by every unit and such a task needs
``gan.per_task: true`` (each fold's GAN sees only that fold's training subjects). With
``gan.judge: true`` each GAN first gets its own frozen judge (:func:`gan_judge`, trained on the
GAN's training rows only) for its expression and identity terms. A seed's
result of a k-fold task pools the test predictions of its folds (each image tested once) into
``clf/TASK/SETTING/sSEED/eval/test``: accuracy and per-class recall are pooled, and the
interval resamples seeds, then test images of every fold.

Layout of ``OUT`` (default ``runs/experiments/NAME``)::

    config.yaml  seeds/sSEED/{splits.json, gan/[UNIT/], synth/UNIT/}  pretrain/SETTING/
    clf/TASK/SETTING/sSEED/[foldK/]  report.md  results.json

Judge gate: ``gate: "expression:@Fa-Net"`` (or ``"expression:@Fa-Net:0.5"``, ``"pose:0.3+expression:@Fa-Net"``)
keeps a unit's synthesized faces only when the experiment's own cell of setting ``Fa-Net`` for that
task, fold and seed (trained on the unit's real training rows only) reads them as their drawn
expression (``fape.gan.gates.ExpressionGate``). A seed then runs (:func:`seed_cells`): the cells
that need no synthesized image, judges included, start in the worker pool while the GAN(s) train;
the judges are waited for; synthesis goes through the gate; then the synthetic cells (without a
pool the judges are trained in turn after the GAN). Every step resumes: a finished synthesis (``synth.json``)
is reused without its judges being asked again. With ``redraw: classifier`` the one synthesized
set is judged by the cells of the first seed that makes it. A unit whose faces are all rejected
trains on its real rows, as when its plan needs no image.

A setting may name its own ``classifier`` config, so rows can be different models, each with its
own pre-training stage (``configs/experiments/seed_classifiers.yaml``); ``task_data`` puts a task on
another dataset than ``data.root`` and ``task_overrides`` gives a task its own classifier overrides
(applied last). The report lists each row's parameters, training minutes and its stage's test accuracy.

``--workers N`` trains N classifier cells of a seed at once (spawned processes, the largest cells
first; :class:`CellPool`), and N per-fold GANs at once (:func:`train_gans`). ``fape quickstart`` is this loop on a packaged experiment, one seed.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, NamedTuple

import numpy as np

from fape.errors import ConfigError, OutputError
from fape.utils.io import atomic_write_json, atomic_write_text, claim_dir, exclusive_run

PLANS = ("balance-pose", "balance-expression", "balance-identity")
ORACLE_PROTOCOLS = ("er-ue", "er-up")  # split protocols with held-back rare cells (oracle=true)


@dataclass
class ExpData:
    root: str = ""
    synth: str = ""  # a synth config YAML: build `root` from it when `root` does not exist yet
    synth_overrides: list[str] = field(default_factory=list)  # dotted overrides of that config


@dataclass
class ExpGAN:
    run: str = ""  # an existing FaPE-GAN run: used as is
    config: str = ""  # otherwise one is trained into OUT/gan from this config and overrides
    overrides: list[str] = field(default_factory=list)
    # one GAN per task (per fold of a k-fold task), trained on that unit's training rows only;
    # false: one GAN per seed on the rows every task trains on
    per_task: bool = False
    # train each GAN's own judge first (the experiment's classifier, on the GAN's training rows
    # only) and give it to the GAN as loss.classifier_run: the frozen classifier of its expression
    # and identity terms, whose weights come from overrides (e.g. --loss.expression_weight=1)
    judge: bool = False


@dataclass
class ExpSetting:
    name: str = "without"
    synthetic: bool = False  # add the task's synthesized images to training
    mix: float = -1.0  # synthetic images per epoch / real training images (-1: all of them)
    oracle: bool = False  # train on the task's oracle split: the held-back rare cells are real (upper bound)
    # a stage the cells start from (its best weights): a classifier config YAML, trained once into
    # OUT/pretrain/NAME, or a finished run folder, used as is
    pretrain: str = ""
    pretrain_data: str = ""
    pretrain_overrides: list[str] = field(default_factory=list)
    # this row's classifier config YAML ("" = the experiment's): one model per row compares models
    classifier: str = ""
    overrides: list[str] = field(default_factory=list)  # classifier overrides for this row only


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    out: str = ""  # default runs/experiments/<name>
    description: str = ""
    data: ExpData = field(default_factory=ExpData)
    tasks: list[str] = field(default_factory=lambda: ["er-ss"])  # split protocols or split files
    # {task: dataset root} for tasks on another dataset than data.root (e.g. JAFFE and CK+ columns
    # beside each other); such an experiment has no synthetic or oracle setting
    task_data: dict = field(default_factory=dict)
    task_overrides: dict = field(default_factory=dict)  # {task: classifier overrides}, applied last
    split_seed: int = 0
    split_options: dict = field(default_factory=dict)
    gan: ExpGAN = field(default_factory=ExpGAN)
    # synthesis plan per task (a built-in plan, "per-pose:F" = every pose up to F x its count, or a
    # plan YAML); the key "default" covers the tasks not listed
    plans: dict = field(default_factory=lambda: {"default": "per-pose:1.5"})
    # synthesis quality gate (fape.gan.gates), e.g. "pose:0.15"; "" keeps every face; "expression:@NAME" judges
    # each unit's faces with setting NAME's cell of that unit and seed (module docstring)
    gate: str = ""
    classifier: str = ""  # classifier config YAML ("" = the ClfConfig defaults)
    classifier_overrides: list[str] = field(default_factory=list)
    settings: list[ExpSetting] = field(default_factory=lambda: [ExpSetting("without"),
                                                                ExpSetting("with", synthetic=True)])
    seeds: list[int] = field(default_factory=lambda: [0])
    redraw: Literal["all", "classifier"] = "all"  # what a seed redraws (module docstring)
    per_class: bool = False
    # the part every cell is evaluated on: "test" for a final table, "val" for a search over plans,
    # mixes or recipes, which must never read test (the best checkpoint was chosen on val, so val
    # accuracies run a little high, alike for every setting)
    part: Literal["test", "val"] = "test"
    n_boot: int = 2000
    paper: dict = field(default_factory=dict)  # {setting: {task: accuracy %}} printed beside ours


# ---------------------------------------------------------------- shared steps
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


# ---------------------------------------------------------------- the experiment
def task_root(exp: ExperimentConfig, task: str) -> Path:
    """The dataset a task's split is made on and its cells train on: ``task_data`` or ``data.root``."""
    return Path(exp.task_data.get(task, exp.data.root))


def clf_config(exp: ExperimentConfig, setting: ExpSetting, task: str, split_file: str, synth: str,
             seed: int, init_from: str, fold: int | None = None):
    from fape.classifiers.config import ClfConfig
    from fape.config import load_config, override

    cfg = load_config(ClfConfig, setting.classifier or exp.classifier or None,
                      [*exp.classifier_overrides, *setting.overrides, *exp.task_overrides.get(task, [])])
    cell = {"name": f"{exp.name}-{Path(task).stem}-{setting.name}" + (f"-fold{fold}" if fold is not None else ""),
            "data.root": str(task_root(exp, task)), "data.split": split_file, "train.seed": seed,
            "data.synthetic": synth if setting.synthetic else "", "data.mix": setting.mix,
            **({"data.fold": fold} if fold is not None else {})}
    return override(cfg, {**cell, **({"model.init_from": init_from} if init_from else {})})


def synth_config(exp: ExperimentConfig, root: Path, seed: int | None = None):
    """The synthetic set's config: ``data.synth`` with its overrides, written to ``root``."""
    from fape.config import load_config, override
    from fape.data.synth import SynthConfig

    cfg = override(load_config(SynthConfig, exp.data.synth, exp.data.synth_overrides), {"out": str(root)})
    return cfg if seed is None else override(cfg, {"seed": seed})


def _build_data(exp: ExperimentConfig) -> Path:
    from fape.data.synth import synthesize

    root = Path(exp.data.root)
    for task, other in exp.task_data.items():
        if not (Path(other) / "dataset.json").is_file():
            raise FileNotFoundError(f"dataset of task {task!r} not found: {Path(other) / 'dataset.json'} (import it)")
    if (root / "dataset.json").is_file():
        return root
    if not exp.data.synth:
        raise FileNotFoundError(f"dataset not found: {root / 'dataset.json'} (import it, or give data.synth "
                                f"to build the synthetic set there)")
    print(f"  building {root} from {exp.data.synth}", flush=True)
    synthesize(synth_config(exp, root), root, overwrite=True)
    return root


def _gans(exp: ExperimentConfig, data: Path, split_files: dict, out: Path, seed: int | None = None,
          workers: int = 1) -> Path | dict:
    """The seed's GAN run, or ``{unit key: run}`` with ``gan.per_task`` (``OUT/gan/UNIT``), the
    units' GANs ``workers`` at a time (:func:`train_gans`)."""
    if exp.gan.run:
        return Path(exp.gan.run)
    if not exp.gan.per_task:
        return _gan(exp, data, shared_gan_rows(exp, data, split_files), out / "gan", seed)
    units = task_units(split_files)
    jobs = {k: (r, out / "gan" / units[k].dir) for k, r in unit_gan_rows(split_files).items()}
    return train_gans(exp, data, jobs, seed, workers)


def train_gans(exp: ExperimentConfig, data: Path, jobs: dict[str, tuple[np.ndarray, Path]], seed: int | None,
               workers: int = 1) -> dict[str, Path]:
    """``{key: (manifest rows, run folder)}`` -> ``{key: run}``: each GAN trained (or resumed, or
    reused) by :func:`_gan`. With ``workers`` > 1 and more than one to train, they train
    ``workers`` at once in spawned processes of ``cpu_count // workers`` torch threads each: a
    per-fold GAN's small steps do not keep every core busy, so two 1-thread GANs finish a
    fold set sooner than one 2-thread GAN after another (``benchmarks/parallel_cells.py --kind gan``).
    Each GAN depends only on its own rows and seed, not on which process trains it; a failed one
    stops the rest, and every one resumes from its last snapshot on the next run."""
    todo = {k: j for k, j in jobs.items() if not (j[1] / "done.json").is_file()}
    if workers > 1 and len(todo) > 1:
        from fape.utils.procs import threads_per_worker, worker_pool

        n = min(workers, len(todo))
        with worker_pool(n, threads_per_worker(n)) as pool:
            futures = [pool.submit(_gan, exp, data, rows, run, seed) for rows, run in todo.values()]
            for f in futures:
                f.result()
    return {k: _gan(exp, data, rows, run, seed) for k, (rows, run) in jobs.items()}  # the rest in turn


def _gan(exp: ExperimentConfig, data: Path, rows_: np.ndarray, run: Path, seed: int | None = None) -> Path:
    """Train (or resume, or reuse) one GAN into ``run`` on the manifest rows ``rows_``."""
    if (run / "done.json").is_file():
        return run
    with exclusive_run(run):  # two experiment processes on one folder never train one GAN
        return _train_gan(exp, data, rows_, run, seed)


def _train_gan(exp: ExperimentConfig, data: Path, rows_: np.ndarray, run: Path, seed: int | None) -> Path:
    from fape.config import load_config, override
    from fape.gan.config import GANConfig
    from fape.gan.train import train as train_gan

    if (run / "done.json").is_file():  # another process finished it between the check and the lock
        return run
    if (run / "config.yaml").is_file():
        train_gan(load_config(GANConfig, run / "config.yaml"), run, resume=True)
        return run
    if not exp.gan.config:
        raise ValueError(f"experiment {exp.name!r}: a setting uses synthetic images but neither gan.run "
                         f"nor gan.config is given")
    rows = run.parent / f"{run.name}_rows.txt"  # beside the run: the run folder is the trainer's
    rows.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(rows, rows_, fmt="%d")
    cfg = override(load_config(GANConfig, exp.gan.config, exp.gan.overrides), {"data.root": str(data), "data.rows": str(rows)})
    if seed is not None:
        cfg = override(cfg, {"train.seed": seed, "data.split_seed": seed})
    if exp.gan.judge:
        judge = gan_judge(exp, data, cfg, run.parent / f"{run.name}_judge")
        cfg = override(cfg, {"loss.classifier_run": str(judge)})
    train_gan(cfg, run)
    return run


def gan_judge(exp: ExperimentConfig, data: Path, gan_cfg, run: Path) -> Path:
    """``gan.judge``: the frozen classifier of one GAN's expression and identity terms, trained (or
    reused) into ``run`` on that GAN's own training rows only. Its split is the ``gan-rows``
    protocol on the GAN's ``data.rows``, held-out fraction and seed: it trains and selects on the
    rows the GAN trains on (10% of them select) and is tested on the subjects the GAN holds out, so
    ``fape.gan.preserve`` accepts it and no unit's test or validation subject reaches G through it.
    The model and recipe are the experiment's classifier and overrides, seeded like the GAN."""
    from fape.classifiers.config import ClfConfig
    from fape.classifiers.train_eval import train_and_eval
    from fape.config import load_config, override

    d = gan_cfg.data
    split = make_splits(data, ["gan-rows"], gan_cfg.train.seed,
                        {"rows": d.rows, "heldout_subjects": d.heldout_subjects, "holdout_seed": d.split_seed})
    cfg = override(load_config(ClfConfig, exp.classifier or None, exp.classifier_overrides),
                   {"name": f"{exp.name}-gan-judge", "data.root": str(data), "data.split": split["gan-rows"],
                    "train.seed": gan_cfg.train.seed})
    res = train_and_eval(cfg, run)
    print(f"  GAN judge {run}: accuracy {res['accuracy']:.4f} on the GAN's held-out subjects (n={res['n']})",
          flush=True)
    return run


def cell_run(out: Path, task: str, setting: str, seed: int, fold: int | None) -> Path:
    """A classifier cell's run folder: ``OUT/clf/TASK/SETTING/sSEED[/foldK]``."""
    run = out / "clf" / Path(task).stem / setting / f"s{seed}"
    return run if fold is None else run / f"fold{fold}"


def judge_runs(exp: ExperimentConfig, out: Path, seed: int, split_files: dict[str, str]) -> dict[str, dict[str, str]]:
    """``gate: expression:@NAME``: ``{unit key: {NAME: run}}``, setting NAME's cells of seed ``seed``.
    They are the very cells of the table (same config and folder): :func:`seed_cells` has them
    trained before synthesis, and the table reuses them."""
    from fape.gan.gates import judge_settings

    names = judge_settings(exp.gate)
    return {key: {name: str(cell_run(out, task, name, seed, fold)) for name in names}
            for key, (task, fold) in task_units(split_files).items()} if names else {}


def _seed_splits(exp: ExperimentConfig, data: Path, out: Path, seed: int) -> tuple[dict, dict, Path]:
    """The split files and oracle split files of seed ``seed`` (``{task: path}`` each), made once
    and reused, and the seed's folder ``OUT/seeds/sSEED`` (module docstring)."""
    split_seed = exp.split_seed + (seed if exp.redraw == "all" else 0)
    base = out / "seeds" / (f"s{seed}" if exp.redraw == "all" else "shared")
    base.mkdir(parents=True, exist_ok=True)
    split_files = {t: make_splits(task_root(exp, t), [t], split_seed, exp.split_options)[t] for t in exp.tasks}
    oracle_files = {}
    if any(s.oracle for s in exp.settings):
        for task in exp.tasks:
            if task in ORACLE_PROTOCOLS:
                oracle_files[task] = make_splits(data, [task], split_seed, {**exp.split_options, "oracle": True})[task]
    atomic_write_json(base / "splits.json", {"split_seed": split_seed, "tasks": split_files, "oracle": oracle_files})
    return split_files, oracle_files, base


def _seed_synth(exp: ExperimentConfig, data: Path, out: Path, seed: int, split_files: dict[str, str], base: Path,
                judge_cells: Callable[[], dict[str, dict[str, str]]], gan_workers: int = 1) -> dict[str, str]:
    """The seed's GAN(s) and synthesized sets (``{unit key: folder or ""}``), made once and reused.
    ``judge_cells()``: the finished judge cells of a judge gate (:func:`judge_runs`), asked for
    after the GAN trains and only when there is something to synthesize. Per-unit GANs train
    ``gan_workers`` at a time."""
    split_seed = exp.split_seed + (seed if exp.redraw == "all" else 0)
    gan_run = _gans(exp, data, split_files, base, seed if exp.redraw == "all" else None, gan_workers)
    synth_json = base / "synth" / "synth.json"
    if synth_json.is_file():
        return json.loads(synth_json.read_text())
    return synthesize_tasks(gan_run, data, split_files, exp.plans, base / "synth", split_seed, exp.gate,
                            judge_cells())


def seed_cells(exp: ExperimentConfig, data: Path, out: Path, seed: int, init: dict[str, str],
               pool: "CellPool | None" = None) -> list[tuple]:
    """The classifier cells of one seed in table order (tasks, then settings):
    ``(task, setting, ClfConfig or None, run folder, reason it is skipped or "", fold or None)``.
    Makes the seed's splits, GAN, judge cells and synthesized sets first. With a ``pool``, the cells
    that need no synthesized image are handed to it before the GAN trains, so that they train
    while it does (this process then keeps one thread), per-unit GANs train ``pool.workers`` at a
    time, and a judge gate's cells are waited for before synthesis. Without one, judge cells are trained here, in turn."""
    split_files, oracle_files, base = _seed_splits(exp, data, out, seed)
    units = task_units(split_files)

    def cells(synthetic: bool, synth: dict[str, str]) -> list[tuple]:
        found = []
        for task in exp.tasks:
            for s in exp.settings:
                if s.synthetic != synthetic:
                    continue
                for key, (t, fold) in units.items():
                    if t != task:
                        continue
                    run = cell_run(out, task, s.name, seed, fold)
                    # a fold whose plan needs no image trains on its real rows (the pooled result needs every fold)
                    skip = ("no synthesized images" if s.synthetic and not synth.get(key) and fold is None else
                            "no oracle split (no rare cells)" if s.oracle and task not in oracle_files else "")
                    split = oracle_files.get(task, "") if s.oracle else split_files[task]
                    cfg = None if skip else clf_config(exp, s, task, split, synth.get(key, ""), seed, init[s.name], fold)
                    found.append((task, s, cfg, run, skip, fold))
        return found

    plain = cells(False, {})
    synth: dict[str, str] = {}
    if any(s.synthetic for s in exp.settings):
        own = pool if pool is not None else CellPool(1, exp.part)  # in turn: judge cells only, here
        if pool is not None:  # the plain cells train while the GAN does
            pool.submit([(c[2], c[3]) for c in plain if c[2] is not None])

        def judge_cells() -> dict[str, dict[str, str]]:
            judges = judge_runs(exp, out, seed, split_files)
            wanted = {r for per_unit in judges.values() for r in per_unit.values()}
            for task, s, cfg, run, _, fold in plain:
                if str(run) in wanted and cfg is not None:
                    own.submit([(cfg, run)])
                    res = own.result(run)
                    print(f"  judge {s.name} for {task}" + (f" fold{fold}" if fold is not None else "")
                          + f" seed {seed}: {exp.part} accuracy {res['accuracy']:.4f} (n={res['n']})", flush=True)
            return judges

        with own.sharing_cpu():
            synth = _seed_synth(exp, data, out, seed, split_files, base, judge_cells,
                                pool.workers if pool is not None else 1)
    order = {(t, s.name): (exp.tasks.index(t), [x.name for x in exp.settings].index(s.name)) for t in exp.tasks
             for s in exp.settings}
    every = plain + cells(True, synth)
    return sorted(every, key=lambda c: (*order[(c[0], c[1].name)], -1 if c[5] is None else c[5]))


def headroom_roles(exp: ExperimentConfig) -> tuple[str, str, str] | None:
    """(with, without, oracle) setting names when the experiment has one of each (the first
    plain setting is "without"), else None."""
    plain = [s.name for s in exp.settings if not s.synthetic and not s.oracle and not s.pretrain]
    synth = [s.name for s in exp.settings if s.synthetic and not s.oracle]
    oracle = [s.name for s in exp.settings if s.oracle and not s.synthetic]
    return (synth[0], plain[0], oracle[0]) if plain and synth and oracle else None


def _pretrain(exp: ExperimentConfig, setting: ExpSetting, out: Path) -> str:
    from fape.classifiers.config import ClfConfig
    from fape.classifiers.train_eval import train_and_eval
    from fape.config import load_config, override

    if not setting.pretrain:
        return ""
    if Path(setting.pretrain).is_dir():
        from fape.classifiers.io import best_checkpoint

        best_checkpoint(setting.pretrain)  # a clear error when it is not a finished run
        return str(setting.pretrain)
    run = out / "pretrain" / setting.name
    cfg = override(load_config(ClfConfig, setting.pretrain, setting.pretrain_overrides),
                   {"name": f"{exp.name}-pretrain-{setting.name}",
                    **({"data.root": setting.pretrain_data} if setting.pretrain_data else {})})
    print(f"  pre-training for {setting.name}: {run}", flush=True)
    train_and_eval(cfg, run)
    return str(run)


def run_experiment(exp: ExperimentConfig, out: Path | None = None, workers: int = 1, supersede: bool = False) -> dict:
    """Every (seed, task, setting) cell, ``workers`` cells at once (:class:`CellPool`); the
    results and ``report.md`` / ``results.json`` in ``out`` (module docstring). ``out`` may hold
    this experiment's earlier run, or another one with ``supersede`` (:func:`check_same_experiment`)."""
    from fape.classifiers.evaluate import compare, load_evals, load_results, per_class_differences
    from fape.config import save_config

    t0 = time.perf_counter()
    check_experiment(exp)
    out = Path(out or exp.out or f"runs/experiments/{exp.name}")
    claim_dir(out, ("config.yaml",))  # an experiment's folder, an empty one, or a new one: never a user's
    check_same_experiment(exp, out, supersede)
    save_config(exp, out / "config.yaml")
    data = _build_data(exp)
    init = {s.name: _pretrain(exp, s, out) for s in exp.settings}

    cells: dict[str, dict[str, list[str]]] = {}
    n_cells, k = len(exp.tasks) * len(exp.settings) * len(exp.seeds), 0
    for seed in exp.seeds:  # seed-major: a stopped experiment has whole seeds done first
        jobs = []  # (label, config, run folder) of this seed's cells, in table order
        folds: dict[Path, list[Path]] = {}  # k-fold tasks: the seed's result folder -> its fold runs
        with CellPool(workers, exp.part) as pool:
            for task, s, cfg, run, skip, fold in seed_cells(exp, data, out, seed, init,
                                                            pool if pool.parallel else None):
                k += fold in (None, 0)  # a k-fold cell counts once
                label = f"[{k}/{n_cells}] {task} {s.name} seed {seed}" + (f" fold{fold}" if fold is not None else "")
                if skip:
                    print(f"{label}: {skip}, skipped", flush=True)
                    continue
                jobs.append((label, cfg, run))
                result = run if fold is None else run.parent
                if fold is not None:
                    folds.setdefault(result, []).append(run)
                runs = cells.setdefault(task, {}).setdefault(s.name, [])
                if str(result) not in runs:
                    runs.append(str(result))
            pool.submit([(cfg, run) for _, cfg, run in jobs])
            for label, _, run in jobs:  # in table order
                res = pool.result(run)
                print(f"{label}: {exp.part} accuracy {res['accuracy']:.4f} (n={res['n']})", flush=True)
        for result, fold_runs in folds.items():
            res = pool_folds(fold_runs, result)
            print(f"  {result.relative_to(out)}: pooled test accuracy {res['accuracy']:.4f} over "
                  f"{len(fold_runs)} folds (n={res['n']})", flush=True)

    results = {"name": exp.name, "tasks": {}, "seconds": None}
    ref = exp.settings[0].name
    roles = headroom_roles(exp)
    for task, groups in cells.items():
        frames, results_ = load_evals(groups, exp.part), load_results(groups, exp.part)  # each file read once
        cmp = compare(groups, exp.part, exp.n_boot,
                      headroom=roles if roles and all(r in groups for r in roles) else None, frames=frames)
        cmp["differences"] = {}  # each setting against the first, "B - REF"
        for b in groups:
            if b != ref and ref in groups:
                pair = {b: groups[b], ref: groups[ref]}
                cmp["differences"].update(compare(pair, exp.part, exp.n_boot,
                                                  frames={k: frames[k] for k in pair})["differences"])
        if exp.per_class:
            cmp["per_class"] = {name: _per_class(results_[name]) for name in groups}
            if ref in groups:
                cmp["per_class_differences"] = per_class_differences(
                    groups, ref, exp.n_boot, exp.part, frames=frames, classes=list(results_[ref][0]["per_class"]))
        cmp["chance"] = next(iter(results_.values()))[0]["chance"]
        results["tasks"][task] = cmp
    if exp.split_options.get("leak_unit") == "sequence+pose":
        results["leaks"] = ("split_options.leak_unit=sequence+pose is the paper's image-level protocol: other views "
                            "of a tested sequence are in training")
    results["models"] = {s.name: model_summary(init[s.name], cells, s.name) for s in exp.settings}
    results["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "report.md", report_md(exp, results))
    print(f"fape experiment {exp.name}: {out / 'report.md'}")
    return results


GROWABLE = ("seeds",)  # experiment keys that may grow in a resumed folder: the finished cells stay the report's


def check_same_experiment(exp: ExperimentConfig, out: Path, supersede: bool = False) -> None:
    """Resuming is running the same experiment into its folder again, or growing it by seeds (a
    seed list that keeps every seed there: the finished cells are still the report's). Anything
    else (settings, overrides, fewer seeds...) would overwrite ``config.yaml``, ``results.json``
    and ``report.md``, and with them the record of what the finished cells were trained with:
    refuse, naming the keys. ``out`` itself is not compared (it is where the folder is, not what
    ran in it). With ``supersede`` (``--supersede``), a changed experiment may run there on
    purpose, reusing the finished GANs, sets and cells whose folders it shares: the previous
    config, results and report are moved to ``OUT/superseded/K/`` first, so none is lost."""
    from fape.config import describe_changes, stored_changes, to_dict

    stored_file = out / "config.yaml"
    changes = stored_changes(stored_file, to_dict(exp), ignore=("out",), may_grow=GROWABLE)
    if changes and supersede:
        k = 0
        while (out / "superseded" / str(k)).exists():
            k += 1
        keep = out / "superseded" / str(k)
        keep.mkdir(parents=True)
        for name in ("config.yaml", "results.json", "report.md"):
            if (out / name).is_file():
                (out / name).rename(keep / name)  # same file system: an atomic move
        print(f"  {out}: the previous experiment's config, results and report moved to {keep}", flush=True)
        return
    if changes:
        raise OutputError(f"{out} holds another experiment ({stored_file}): {describe_changes(changes)}. Running this "
                          f"one there would overwrite its config and report; choose another --out, or pass --supersede to "
                          f"run it there on purpose (the old config, results and report move to {out / 'superseded'})")


def check_experiment(exp: ExperimentConfig) -> None:
    """What must hold before any work: tasks, settings and seeds, distinct setting names;
    ``task_data`` only with plain settings (a GAN and held-back rows are ``data.root``'s); and a
    search (``part: val``) only on single-split tasks (a k-fold task's folds are pooled so that
    each image is tested once, while a validation image is in several folds); a gate that parses,
    whose judges (``expression:@NAME``) are plain settings of the experiment: trained on real rows
    only, neither synthetic nor oracle (held-back rows), on ``data.root``."""
    from fape.data.splits import PROTOCOLS
    from fape.gan.gates import judge_settings

    if not exp.settings or not exp.tasks or not exp.seeds:
        raise ValueError(f"experiment {exp.name!r} needs at least one task, setting and seed")
    names = [s.name for s in exp.settings]
    if len(set(names)) != len(names):
        raise ValueError(f"experiment {exp.name!r}: setting names repeat: {names}")
    if exp.task_data and any(s.synthetic or s.oracle for s in exp.settings):
        raise ConfigError(f"experiment {exp.name!r}: task_data (tasks on other datasets) cannot be combined with "
                          f"synthetic or oracle settings: their GAN and held-back rows are data.root's")
    try:
        judges = judge_settings(exp.gate)
    except ValueError as e:
        raise ConfigError(f"experiment {exp.name!r}: gate: {e}") from None
    by_name = {s.name: s for s in exp.settings}
    for name in judges:
        if name not in by_name:
            raise ConfigError(f"experiment {exp.name!r}: gate {exp.gate!r} names the setting {name!r} as its judge, "
                              f"but the settings are {names}")
        if by_name[name].synthetic or by_name[name].oracle:
            raise ConfigError(f"experiment {exp.name!r}: gate {exp.gate!r}: the judge setting {name!r} must train "
                              f"on the unit's real training rows only (not synthetic, not oracle)")
    if exp.gan.judge:
        from fape.config import load_config
        from fape.gan.config import GANConfig

        loss = load_config(GANConfig, exp.gan.config or None, exp.gan.overrides).loss if not exp.gan.run else None
        if loss is None or not (loss.expression_weight or loss.identity_weight):
            raise ConfigError(f"experiment {exp.name!r}: gan.judge trains a judge for a GAN's expression and identity "
                              f"terms, but " + ("gan.run is a finished GAN" if loss is None else
                                                "both weights are 0 (add --loss.expression_weight=W to gan.overrides)"))
    kfold = [t for t in exp.tasks if t in PROTOCOLS and PROTOCOLS[t].kfold]
    if exp.part != "test" and kfold:
        raise ConfigError(f"experiment {exp.name!r}: part: {exp.part} cannot pool the folds of the k-fold "
                          f"task(s) {kfold}; search on a single-split task")


def run_seconds(result: str | Path) -> float:
    """Training wall time of a cell (``done.json``), summed over its folds for a k-fold cell."""
    done = [Path(result) / "done.json"] if (Path(result) / "done.json").is_file() else \
        sorted(Path(result).glob("fold*/done.json"))
    return float(sum(json.loads(d.read_text())["train_seconds"] for d in done))


def count_parameters(run: str | Path) -> int:
    """Parameters of a finished run's selected model (weights only, no BatchNorm statistics)."""
    from fape.classifiers.io import load_run

    return sum(p.numel() for p in load_run(run).model.parameters())


def model_summary(stage: str, cells: dict[str, dict[str, list[str]]], setting: str) -> dict:
    """A row's model: its parameters, its pre-training stage's own test result (read from the
    stage's evaluation, written once when the stage finished) and training time, and its cells'
    training seconds per task (one number per seed)."""
    runs = {task: groups[setting] for task, groups in cells.items() if setting in groups}
    first = next((r for rs in runs.values() for r in rs), None)
    if first is not None and not (Path(first) / "done.json").is_file():
        first = sorted(Path(first).glob("fold*"))[0]  # a k-fold cell: its first fold's model
    out: dict = {"parameters": count_parameters(first) if first else None,
                 "cell_seconds": {task: [run_seconds(r) for r in rs] for task, rs in runs.items()}}
    res = Path(stage) / "eval" / "test" / "results.json"
    if stage and res.is_file():
        r = json.loads(res.read_text())
        out["pretrain"] = {"run": stage, "accuracy": r["accuracy"], "n": r["n"], "seconds": run_seconds(stage)}
    return out


def pool_folds(fold_runs: list[Path], out: Path) -> dict:
    """The test predictions of a k-fold cell's folds as one result (each image tested once):
    ``out/eval/test/{predictions.csv, results.json}``, read by :func:`compare` like a run's."""
    import pandas as pd

    from fape.classifiers.evaluate import classification_metrics, read_predictions

    frames = [read_predictions(Path(r) / "eval" / "test" / "predictions.csv") for r in fold_runs]
    df = pd.concat(frames, ignore_index=True)
    if df["row"].duplicated().any():
        raise ValueError(f"{out}: an image is in the test part of two folds")
    names = list(json.loads((Path(fold_runs[0]) / "eval" / "test" / "results.json").read_text())["per_class"])
    res = classification_metrics(df["label"].to_numpy(), df["pred"].to_numpy(), names)
    res.update(folds=[str(r) for r in fold_runs], split="test")
    dest = out / "eval" / "test"
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest / "predictions.csv", df.to_csv(index=False))
    atomic_write_json(dest / "results.json", res)
    return res


def default_workers() -> int:
    """Classifier cells trained at once: 2 on a CPU with at least 2 cores, else 1. A narrow
    LightCNN keeps 2 threads only partly busy, so two 1-thread cells finish sooner than two
    2-thread cells in turn (benchmarks/parallel_cells.py); a GPU is left to one process."""
    import os

    import torch

    return 1 if torch.cuda.is_available() else max(1, min(2, os.cpu_count() or 1))


def count_images(dataset: str) -> int:
    """Images of a fape dataset folder (``dataset.json``); 0 for "" (no synthesized set)."""
    return int(json.loads((Path(dataset) / "dataset.json").read_text())["num_images"]) if dataset else 0


def _train_images(cfg) -> int:
    """Training images per epoch of a cell (real + synthesized): the pool starts the largest first."""
    from fape.data.splits import load_split

    fold = cfg.data.fold if cfg.data.fold >= 0 else None  # k-fold files: the cell's own fold
    return len(load_split(cfg.data.split, fold)["train"]) + count_images(cfg.data.synthetic)


class CellPool:
    """Classifier cells, ``workers`` at once in spawned processes with ``cpu_count // workers`` threads
    each (or in turn in this process for ``workers`` <= 1). Cells can be added while others train
    (:meth:`submit`, largest first within each call, so no worker is left with a long cell at the
    end); :meth:`result` waits for one (in turn: trains it). A cell's result does not depend on the
    order, only (through float summation order) slightly on its thread count. Finished cells are
    reused (``train_and_eval``)."""

    def __init__(self, workers: int, part: str = "test"):
        self.workers, self.part = int(workers), part
        self.parallel = self.workers > 1
        self._cfg: dict[str, object] = {}  # run folder -> ClfConfig
        self._done: dict[str, dict] = {}  # run folder -> result (in turn)
        self._futures: dict = {}  # run folder -> Future (parallel)
        self._pool = None

    def __enter__(self) -> "CellPool":
        if self.parallel:
            from fape.utils.procs import spawn_pool, threads_per_worker

            self.threads = threads_per_worker(self.workers)
            self._pool = spawn_pool(self.workers, self.threads)
        return self

    def __exit__(self, kind, *_) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=kind is not None)

    def submit(self, jobs: list[tuple[object, Path]]) -> None:
        """Add ``(ClfConfig, run folder)`` cells; a folder already added is not added again."""
        from fape.classifiers.train_eval import train_and_eval

        new = [(cfg, run) for cfg, run in jobs if str(run) not in self._cfg]
        for cfg, run in new:
            self._cfg[str(run)] = cfg
        if self._pool is not None:
            for cfg, run in sorted(new, key=lambda j: _train_images(j[0]), reverse=True):
                self._futures[str(run)] = self._pool.submit(train_and_eval, cfg, run, False, self.part)

    def result(self, run: str | Path) -> dict:
        """The evaluation of cell ``run`` (added before), once it is trained."""
        from fape.classifiers.train_eval import train_and_eval

        key = str(run)
        if self._pool is not None:
            return self._futures[key].result()
        if key not in self._done:
            self._done[key] = train_and_eval(self._cfg[key], Path(key), split=self.part)
        return self._done[key]

    @contextlib.contextmanager
    def sharing_cpu(self):
        """This process's own work while the workers train (the GAN, synthesis): one torch thread,
        since OpenMP threads that find every core busy spin and run several times slower (the
        quick start's GAN: 22 s with 1 thread, 120 s with 2 beside two busy cores)."""
        import torch

        if self._pool is None:
            yield
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def train_cells(jobs: list[tuple[str, object, Path]], workers: int = 1, part: str = "test"):
    """Train ``(label, ClfConfig, run folder)`` cells and evaluate each on ``part``; yields ``(label, result)``
    in table order (:class:`CellPool`)."""
    with CellPool(workers if len(jobs) > 1 else 1, part) as pool:
        pool.submit([(cfg, run) for _, cfg, run in jobs])
        for label, _, run in jobs:
            yield label, pool.result(run)


def _per_class(results: list[dict]) -> dict[str, float]:
    """Per-class accuracy (recall), mean over a setting's runs (their ``results.json``, read once)."""
    recs = [r["per_class"] for r in results]
    return {c: float(np.mean([r[c]["recall"] for r in recs])) for c in recs[0]}


def report_md(exp: ExperimentConfig, res: dict) -> str:
    tasks = list(res["tasks"])
    head = "| setting | " + " | ".join(Path(t).stem for t in tasks) + " |"
    sep = "|---|" + "---|" * len(tasks)
    lines = [f"# Experiment `{exp.name}`", "", exp.description, "",
             (f"Test accuracy (%), mean +- std over seeds {exp.seeds}; model selection on validation only."
              if exp.part == "test" else f"**Validation** accuracy (%), mean +- std over seeds {exp.seeds}: a search "
              f"(part: val), which read no test image. The best checkpoint was chosen on this part too."), "",
             head, sep]
    for s in exp.settings:
        cells = []
        for t in tasks:
            st = res["tasks"][t]["settings"].get(s.name)
            cells.append(f"{100 * st['mean']:.1f} +- {100 * st['std']:.1f} ({len(st['runs'])})" if st else "-")
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    for s, row in exp.paper.items():
        lines.append(f"| paper: {s} | " + " | ".join(f"{row[t]:.1f}" if t in row else "-" for t in tasks) + " |")
    lines += ["", "Chance: " + ", ".join(f"{Path(t).stem} {100 * res['tasks'][t]['chance']:.1f}%"
                                         for t in tasks if res["tasks"][t].get("chance") is not None), "",
              f"Each seed redraws {'the split, the GAN, the synthesized set and the classifier' if exp.redraw == 'all' else 'the classifier only'}. "
              "Difference from the first setting, with a 95% interval from a hierarchical bootstrap that "
              f"resamples seeds, then {exp.part} images (seed k paired with seed k):", "",
              f"| task | difference | mean (points) | 95% CI | {exp.part} images per seed | seeds |", "|---|---|---|---|---|---|"]
    for t in tasks:
        for name, d in res["tasks"][t]["differences"].items():
            lines.append(f"| {Path(t).stem} | {name} | {100 * d['diff']:+.1f} | [{100 * d['ci_low']:+.1f}, "
                         f"{100 * d['ci_high']:+.1f}] | {', '.join(map(str, d.get('n_images_per_seed', [d['n_images']])))} "
                         f"| {d['n_seeds']} |")
    heads = [(t, res["tasks"][t]["headroom"]) for t in tasks if res["tasks"][t].get("headroom")]
    if heads:
        from fape.classifiers.evaluate import headroom_text

        lines += ["", "Headroom and the share of it that synthesis recovers (settings with, without, oracle: "
                  f"{', '.join(heads[0][1]['settings'])}):", ""]
        lines += [f"- {Path(t).stem}: {headroom_text(h)}" for t, h in heads]
    if res.get("leaks"):
        lines += ["", f"**These splits leak across views**: {res['leaks']}"]
    for t in tasks:
        pc = res["tasks"][t].get("per_class")
        if pc:
            classes = list(next(iter(pc.values())))
            lines += ["", f"Per-class accuracy (%), {Path(t).stem}, mean over seeds:", "",
                      "| setting | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
            lines += [f"| {s} | " + " | ".join(f"{100 * v[c]:.1f}" for c in classes) + " |" for s, v in pc.items()]
            for name, d in res["tasks"][t].get("per_class_differences", {}).items():
                lines += ["", f"Per-class recall difference {name} (points, 95% interval: seeds, then the "
                          f"class's test images), {Path(t).stem}:", "",
                          "| class | difference | 95% CI | test images per seed |", "|---|---|---|---|"]
                lines += [f"| {c} | {100 * x['diff']:+.1f} | [{100 * x['ci_low']:+.1f}, {100 * x['ci_high']:+.1f}] | "
                          f"{', '.join(map(str, x['n_images_per_seed']))} |" for c, x in d.items()]
    lines += models_md(exp, res, tasks)
    lines += ["", f"Wall time of this invocation: {res['seconds']:.0f} s (finished cells are reused)."]
    return "\n".join(lines) + "\n"


def models_md(exp: ExperimentConfig, res: dict, tasks: list[str]) -> list[str]:
    """Each row's parameters, training time per cell (mean over seeds) and pre-training stage
    (its own test part's accuracy, e.g. FER2013 PrivateTest for a FER2013 stage)."""
    models = res.get("models") or {}
    if not models:
        return []
    lines = ["", "Models: parameters, training minutes (per cell, mean over seeds; a k-fold cell sums its folds) "
             "and the pre-training stage's accuracy on its own test part (n images):", "",
             "| setting | parameters | pre-training stage: test accuracy | stage minutes | "
             + " | ".join(f"{Path(t).stem} minutes" for t in tasks) + " |", "|---|---|---|---|" + "---|" * len(tasks)]
    for s in exp.settings:
        m = models.get(s.name, {})
        pre = m.get("pretrain")
        cells = [f"{np.mean(m['cell_seconds'][t]) / 60:.1f}" if m.get("cell_seconds", {}).get(t) else "-" for t in tasks]
        lines.append(f"| {s.name} | {m['parameters']:,} | " if m.get("parameters") else f"| {s.name} | - | ")
        lines[-1] += (f"{100 * pre['accuracy']:.2f} (n={pre['n']}) | {pre['seconds'] / 60:.1f} | " if pre else "- | - | ") \
            + " | ".join(cells) + " |"
    return lines


def cli_experiment(args, overrides) -> int:
    from fape.config import load_config

    exp = load_config(ExperimentConfig, args.config, overrides)
    run_experiment(exp, Path(args.out) if args.out else None,
                   default_workers() if args.workers is None else args.workers, supersede=args.supersede)
    return 0


def register(groups) -> None:
    p = groups.add_parser("experiment", help="run a declared comparison (settings x tasks x seeds)",
                          description="fape experiment configs/experiments/NAME.yaml [--seeds=[0,1,2] ...]: every "
                                      "cell is trained and evaluated once, finished cells are reused; writes "
                                      "report.md and results.json (mean +- std, paired bootstrap CIs).")
    p.add_argument("config", help="experiment YAML")
    p.add_argument("--out", default=None, help="output folder (default: the YAML's out, or runs/experiments/NAME)")
    p.add_argument("--workers", type=int, default=None,
                   help="classifier cells, and per-fold GANs (gan.per_task), trained at once (default: 2 on a "
                        "CPU with 2+ cores, 1 on a GPU)")
    p.add_argument("--supersede", action="store_true",
                   help="OUT holds another experiment (a changed config): run this one there anyway, reusing the "
                        "finished GANs, sets and cells it shares; the old config.yaml, results.json and report.md "
                        "move to OUT/superseded/K/")
    p.set_defaults(handler=lambda args, overrides: cli_experiment(args, overrides), takes_overrides=True)
