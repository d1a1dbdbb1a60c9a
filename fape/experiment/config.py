"""The experiment's typed config (``configs/experiments/*.yaml``) and the checks that run before
any work: a well-formed experiment (:func:`check_experiment`) and a folder that holds no other
experiment (:func:`check_same_experiment`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fape.errors import ConfigError, OutputError

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
    # each unit's faces with setting NAME's cell of that unit and seed (``fape.experiment`` docstring)
    gate: str = ""
    classifier: str = ""  # classifier config YAML ("" = the ClfConfig defaults)
    classifier_overrides: list[str] = field(default_factory=list)
    settings: list[ExpSetting] = field(default_factory=lambda: [ExpSetting("without"),
                                                                ExpSetting("with", synthetic=True)])
    seeds: list[int] = field(default_factory=lambda: [0])
    redraw: Literal["all", "classifier"] = "all"  # what a seed redraws (``fape.experiment`` docstring)
    per_class: bool = False
    # the part every cell is evaluated on: "test" for a final table, "val" for a search over plans,
    # mixes or recipes, which must never read test (the best checkpoint was chosen on val, so val
    # accuracies run a little high, alike for every setting)
    part: Literal["test", "val"] = "test"
    n_boot: int = 2000
    paper: dict = field(default_factory=dict)  # {setting: {task: accuracy %}} printed beside ours


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
