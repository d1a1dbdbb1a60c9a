"""``fape experiment``: the command (the library never imports it)."""
from __future__ import annotations

from pathlib import Path

from fape.experiment.cells import default_workers
from fape.experiment.config import ExperimentConfig
from fape.experiment.run import run_experiment


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
