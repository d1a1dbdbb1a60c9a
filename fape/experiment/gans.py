"""The experiment's FaPE-GANs: one per seed, or one per unit (``gan.per_task``) trained
``workers`` at a time, each with its own frozen judge when ``gan.judge`` is on."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fape.experiment.config import ExperimentConfig
from fape.experiment.units import make_splits, shared_gan_rows, task_units, unit_gan_rows
from fape.utils.io import exclusive_run


def seed_gans(exp: ExperimentConfig, data: Path, split_files: dict, out: Path, seed: int | None = None,
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
