"""Transfer chains: ``fape clf chain CHAIN.yaml`` runs stages in order, each starting from the
previous stage's selected (best-on-validation) weights, e.g. ImageNet -> FER2013 -> JAFFE.

A chain file::

    name: fer2013_to_jaffe
    runs_dir: runs/chains
    stages:
      - {name: fer2013, config: configs/clf/fanet_fer2013.yaml, overrides: [--train.epochs=30]}
      - {name: jaffe, config: configs/clf/fanet_jaffe.yaml}

Stage folders are ``runs_dir/<name>/<stage>``; finished stages (``done.json``) are reused,
an unfinished one resumes from its last checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fape.config import load_config, override


@dataclass
class Stage:
    name: str
    config: str
    overrides: list[str] = field(default_factory=list)


@dataclass
class ChainConfig:
    name: str = "chain"
    runs_dir: str = "runs/chains"
    stages: list[Stage] = field(default_factory=list)


def run_chain(chain: ChainConfig, extra: list[str] | None = None, base: Path | None = None) -> list[Path]:
    from fape.classifiers.config import ClfConfig
    from fape.classifiers.train import train

    if not chain.stages:
        raise ValueError(f"chain {chain.name!r} has no stages")
    base = base or Path(".")
    runs, prev = [], None
    for st in chain.stages:
        run = Path(chain.runs_dir) / chain.name / st.name
        cfg_path = Path(st.config) if Path(st.config).is_absolute() else base / st.config
        overrides = list(st.overrides) + list(extra or [])
        if (run / "done.json").is_file():
            print(f"[{chain.name}] {st.name}: finished, reused ({run})")
        else:
            resume = (run / "config.yaml").is_file()
            cfg = load_config(ClfConfig, run / "config.yaml" if resume else cfg_path, overrides)
            if prev is not None:  # each stage starts from the previous stage's best weights
                cfg = override(cfg, {"model.init_from": str(prev)})
            print(f"[{chain.name}] {st.name}: {'resuming' if resume else 'training'} -> {run}")
            train(cfg, run, resume=resume)
        runs.append(run)
        prev = run
    return runs


def cli_chain(args, overrides) -> int:
    chain = load_config(ChainConfig, args.chain, [])
    runs = run_chain(chain, overrides, base=Path(args.base) if args.base else Path("."))
    print("stages: " + " -> ".join(str(r) for r in runs))
    return 0
