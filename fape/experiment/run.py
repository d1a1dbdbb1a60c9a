"""One experiment, seed by seed (:func:`run_experiment`): splits, GANs, synthesized sets, cells,
then ``results.json`` and ``report.md``."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from fape.experiment.cells import CellPool, cell_run, pool_folds
from fape.experiment.config import (ORACLE_PROTOCOLS, ExperimentConfig, ExpSetting, check_experiment,
                                    check_same_experiment)
from fape.experiment.gans import seed_gans
from fape.experiment.report import mean_per_class, model_summary, report_md
from fape.experiment.units import make_splits, synthesize_tasks, task_units
from fape.utils.io import atomic_write_json, atomic_write_text, claim_dir


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
    and reused, and the seed's folder ``OUT/seeds/sSEED`` (``fape.experiment`` docstring)."""
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
    gan_run = seed_gans(exp, data, split_files, base, seed if exp.redraw == "all" else None, gan_workers)
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
    results and ``report.md`` / ``results.json`` in ``out`` (``fape.experiment`` docstring). ``out`` may hold
    this experiment's earlier run, or another one with ``supersede`` (:func:`check_same_experiment`)."""
    from fape.classifiers.compare import compare, load_evals, load_results, per_class_differences
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
            cmp["per_class"] = {name: mean_per_class(results_[name]) for name in groups}
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
