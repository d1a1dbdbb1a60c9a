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

from fape.experiment.cells import CellPool, cell_run, count_images, default_workers, pool_folds, train_cells
from fape.experiment.config import (ORACLE_PROTOCOLS, PLANS, ExpData, ExperimentConfig, ExpGAN, ExpSetting,
                                    check_experiment, check_same_experiment)
from fape.experiment.gans import gan_judge, train_gans
from fape.experiment.report import report_md
from fape.experiment.run import clf_config, headroom_roles, run_experiment, seed_cells, synth_config
from fape.experiment.units import (Unit, make_splits, per_pose_plan, shared_gan_rows, synthesize_tasks, task_units,
                                   train_rows, unit_gan_rows)

__all__ = ["CellPool", "ExpData", "ExpGAN", "ExpSetting", "ExperimentConfig", "ORACLE_PROTOCOLS", "PLANS", "Unit",
           "cell_run", "check_experiment", "check_same_experiment", "clf_config", "count_images", "default_workers",
           "gan_judge", "headroom_roles", "make_splits", "per_pose_plan", "pool_folds", "report_md",
           "run_experiment", "seed_cells", "shared_gan_rows", "synth_config", "synthesize_tasks", "task_units",
           "train_cells", "train_gans", "train_rows", "unit_gan_rows"]
