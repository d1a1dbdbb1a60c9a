"""Summary of k-fold runs made by hand (``fape clf kfold`` writes it itself): accuracy pooled over
every test image of every fold, and mean +- std of the per-fold accuracies, from each fold run's
``eval/test/predictions.csv`` (run ``fape clf eval --run RUN --split test`` first).

    python tools/kfold_summary.py runs/clf/ckplus_fold{0..9}
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from fape.classifiers.kfold import summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    print(json.dumps(summary(ap.parse_args().runs), indent=1))


if __name__ == "__main__":
    main()
