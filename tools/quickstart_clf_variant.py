"""Train one quick-start Fa-Net cell with its recipe changed and report its VALIDATION accuracy:
the quick start's own ``clf_config`` (``--size`` preset) with the width, input size, epochs,
split, synthetic set or mix replaced. For finding a classifier that learns the synthetic
expressions within the quick start's budget. A recipe search must never read the test part: the
model is selected on the validation part and scored on it; the test part is left for the one
final number (``fape clf eval --split test`` or the quick start itself). The score is the
selected epoch's own validation accuracy, so it is optimistic by the selection; variants are
compared on the same footing.

    python tools/quickstart_clf_variant.py fape-quickstart/data/synth runs/variants/w1 --width 1.0
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fape.classifiers.train_eval import train_and_eval
from fape.config import override, parse_overrides
from fape.experiment import clf_config
from fape.quickstart import SIZES, quickstart_experiment


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="a dataset, e.g. the quick start's data/synth")
    ap.add_argument("out", type=Path, help="run folder")
    ap.add_argument("--size", default="small", choices=list(SIZES), help="quick-start preset to start from")
    ap.add_argument("--split", default="er-ss", help="protocol or split file")
    ap.add_argument("--width", type=float)
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", default="", help="synthesized images added to training")
    ap.add_argument("--mix", type=float, default=-1.0,
                    help="synthetic images per epoch / real training images (-1: all, the quick start's)")
    ap.add_argument("overrides", nargs="*", help="further dotted config overrides, e.g. --data.channels=1")
    args, extra = ap.parse_known_args(argv)
    extra = [*args.overrides, *extra]
    exp = quickstart_experiment(args.size, args.seed, Path(tempfile.gettempdir()))
    exp = override(exp, {"data.root": str(args.data)})
    cfg = clf_config(exp, exp.settings[0], args.split, args.split, args.synthetic, args.seed, "")
    recipe = {"model.kwargs": {**cfg.model.kwargs, "width": args.width} if args.width is not None else None,
              "data.image_size": args.image_size, "train.epochs": args.epochs, "data.mix": args.mix,
              "name": args.out.name}
    cfg = override(cfg, {k: v for k, v in recipe.items() if v is not None})
    for key, val in parse_overrides(extra):
        cfg = override(cfg, {key: val})
    t = time.perf_counter()
    res = train_and_eval(cfg, args.out, split="val")  # selection and score on val: the test part stays unread
    print(f"{args.split} validation accuracy {res['accuracy']:.4f} (n={res['n']}, chance {res['chance']:.3f}), "
          f"recipe {args.size} {recipe} {extra}, {time.perf_counter() - t:.0f} s")
    return res


if __name__ == "__main__":
    main()
