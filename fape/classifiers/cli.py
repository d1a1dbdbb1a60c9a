"""``fape clf ...``: train, eval, compare, chain, kfold; the eval and compare handlers (heavy imports inside
the handlers, so ``fape --help`` stays instant)."""
from __future__ import annotations

import sys
from pathlib import Path

from fape.utils.cli import add_config_arg, add_group, lazy


def register(groups) -> None:
    sub = add_group(groups, "clf", help="train and evaluate expression classifiers (Fa-Net and baselines)",
                    description="Expression classifiers: Fa-Net (LightCNN) and the papers' baselines.")

    q = sub.add_parser("train", help="train (or resume) a classifier run",
                       description="fape clf train -c configs/clf/fanet_jaffe.yaml [--data DIR] [--synthetic DIR "
                                   "--mix 0.5] [--optim.lr=... overrides]. Model selection on the split's "
                                   "validation part only.")
    add_config_arg(q)
    q.add_argument("--data", default=None, help="dataset folder (= --data.root)")
    q.add_argument("--synthetic", default=None, help="synthesized dataset added to training (= --data.synthetic)")
    q.add_argument("--mix", type=float, default=None,
                   help="synthetic images per epoch as a fraction of the real training images (-1 = all)")
    q.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint")
    q.add_argument("--run-dir", default=None, help="exact run folder (default: next numbered folder in runs_dir)")
    q.set_defaults(handler=lazy("fape.classifiers.train", "cli_train"))

    q = sub.add_parser("eval", help="evaluate a run's selected model on a split part",
                       description="Accuracy, per-class and per-pose accuracy, macro-F1, P/R/F1, confusion matrix "
                                   "(CSV, PNG), results.json and predictions.csv in RUN/eval/SPLIT. Every read of "
                                   "the test part is appended to RUN/test_reads.jsonl; from the second read on, a "
                                   "warning says the test number is spent.")
    q.add_argument("--run", required=True, help="a training run folder, or a packaged checkpoint folder "
                                               "(e.g. checkpoints/fanet_fer2013_48) with --data")
    q.add_argument("--split", default="test", help="train | val | test")
    q.add_argument("--data", default=None, help="evaluate on this dataset folder instead of the run's")
    q.add_argument("--split-file", default=None,
                   help="a split csv of the data (fape data split) instead of the run's; a packaged checkpoint "
                        "without one makes its recorded protocol's split in DATA/splits, as training does")
    q.add_argument("--out", default=None, help="default RUN/eval/SPLIT, or runs/eval/NAME/SPLIT for a checkpoint folder; "
                   "SPLIT@DATA.SPLITFILE with other --data or --split-file, so the run's own result is kept")
    q.add_argument("--device", default="cpu")
    q.set_defaults(handler=lazy("fape.classifiers.cli", "cli_eval"))

    q = sub.add_parser("compare", help="mean +- std over seeds, bootstrap CI of differences over seeds and images",
                       description="fape clf compare with=RUN1 with=RUN2 without=RUN3 without=RUN4: groups runs by "
                                   "NAME (or by their config name), prints a Markdown table. Run k of one setting "
                                   "is paired with run k of another (seed k); the interval of a difference "
                                   "resamples the seeds, then the test images within each seed (hierarchical "
                                   "bootstrap; with one seed, the images only).")
    q.add_argument("runs", nargs="+", help="RUN or NAME=RUN (evaluated first with fape clf eval)")
    q.add_argument("--split", default="test")
    q.add_argument("--n-boot", type=int, default=2000)
    q.add_argument("--headroom", nargs=3, metavar=("WITH", "WITHOUT", "ORACLE"), default=None,
                   help="also the headroom ORACLE - WITHOUT and the share of it WITH recovers, with intervals")
    q.add_argument("--per-class", action="store_true",
                   help="also per-class recall, each class's difference from the first setting, and macro-F1 "
                        "with the interval of its difference")
    q.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    q.set_defaults(handler=lazy("fape.classifiers.cli", "cli_compare"))

    q = sub.add_parser("chain", help="run a transfer chain (stage N starts from stage N-1's best)",
                       description="fape clf chain configs/chains/fer2013_to_jaffe.yaml [--train.epochs=2 ...]: "
                                   "overrides apply to every stage.")
    q.add_argument("chain", help="chain YAML")
    q.add_argument("--base", default=None, help="folder stage config paths are relative to (default: .)")
    q.set_defaults(handler=lazy("fape.classifiers.chain", "cli_chain"), takes_overrides=True)

    q = sub.add_parser("kfold", help="train and evaluate every fold of a k-fold protocol, pooled summary",
                       description="fape clf kfold -c configs/clf/fanet_ckplus.yaml [--out DIR] [overrides]: one run "
                                   "per fold (finished folds reused, interrupted ones resumed), each fold's test part "
                                   "evaluated once, pooled and per-fold accuracy in DIR/summary.{json,md}.")
    add_config_arg(q)
    q.add_argument("--out", default=None, help="folder of the fold runs (default: RUNS_DIR/NAME-kfold)")
    q.set_defaults(handler=lazy("fape.classifiers.kfold", "cli_kfold"))


def cli_eval(args, overrides) -> int:
    from fape.classifiers.evaluate import TEST_READS, evaluate_run, list_test_reads, test_reads_dir

    res = evaluate_run(args.run, args.split, args.data, args.out, args.device, split_file=args.split_file)
    print(f"{args.run} [{args.split}] accuracy {res['accuracy']:.4f}  macro-F1 {res['macro_f1']:.4f}  "
          f"(n={res['n']}, chance {res['chance']:.3f}; split {res['split_file']}) -> {res['out']}")
    where = test_reads_dir(Path(args.run))
    reads = len(list_test_reads(where)) if args.split == "test" else 0
    if reads >= 2:
        print(f"fape: warning: test part of {args.run} read {reads} times; a number chosen after looking at test "
              f"is spent (reads listed in {where / TEST_READS})", file=sys.stderr)
    return 0


def cli_compare(args, overrides) -> int:
    from fape.classifiers.compare import (compare, compare_markdown, load_evals, load_results, per_class_markdown,
                                          per_class_report)
    from fape.utils.io import atomic_write_json, atomic_write_text

    groups: dict[str, list[str]] = {}
    for item in args.runs:  # NAME=RUN or RUN (grouped by the run's config name)
        name, _, run = item.rpartition("=")
        if not name:
            from fape.classifiers.io import best_checkpoint
            from fape.utils.checkpoint import load_state

            name = load_state(best_checkpoint(run))["config"]["name"]
        groups.setdefault(name, []).append(run)
    try:
        frames = load_evals(groups, args.split)  # each run's predictions.csv read once, shared below
        res = compare(groups, args.split, args.n_boot, tuple(args.headroom) if args.headroom else None, frames)
        if args.per_class:
            res["per_class"] = per_class_report(groups, args.split, args.n_boot, frames,
                                                load_results(groups, args.split))
    except ValueError as e:
        from fape.errors import UserError

        raise UserError(str(e)) from None
    md = compare_markdown(res) + ("\n" + per_class_markdown(res["per_class"]) if args.per_class else "")
    print(md)
    if args.out:
        atomic_write_text(Path(args.out).with_suffix(".md"), md)
        atomic_write_json(Path(args.out).with_suffix(".json"), res)
    return 0
