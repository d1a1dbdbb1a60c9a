"""Does a classifier trained with synthesized images recognise the *synthesis* instead of the class?

When nearly every training image of some classes is synthesized (ER-UE's rare expressions: 8 real
and about 130 synthesized each), "looks synthesized" separates those classes from the others as
well as the expression does, and a classifier may learn that instead. This probe compares, for
the classes that the synthesized set makes mostly synthetic (at least as many synthesized as real
training images), one cell's accuracy on

* synthesized images of those classes (a sample of the cell's own training images), and
* real images of those classes in the cell's validation part (never trained on),

and how often each is predicted as *any* of those classes. High on the first and near 0 on the
second is the shortcut. Reads no test image.

    python tools/synthetic_shortcut.py RUN SYNTH_DIR [--n 400]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def probe(run: Path, synth: Path, n: int = 400, seed: int = 0) -> dict:
    from fape.classifiers.config import ClfConfig
    from fape.config import load_config
    from fape.data.dataset import FaceDataset
    from fape.classifiers.evaluate import eval_split_file
    from fape.data.splits import load_split
    from fape.metrics.gan_report import classifier_pass, load_classifier

    cfg = load_config(ClfConfig, run / "config.yaml")
    clf = load_classifier(f"run:{run}")
    syn = FaceDataset(synth, size=cfg.data.image_size, channels=3, progress=False)
    real = FaceDataset(cfg.data.root, size=cfg.data.image_size, channels=3, progress=False)
    parts = load_split(eval_split_file(run, cfg, None))  # the split the cell trained on (labels.json)
    k = len(real.info.label_names)
    n_real = np.bincount(real.index.manifest["label"].to_numpy()[parts["train"]], minlength=k)  # [K]
    syn_labels = syn.index.manifest["label"].to_numpy()
    added = np.flatnonzero(np.bincount(syn_labels, minlength=k) >= n_real)  # classes mostly synthesized
    rows = np.random.default_rng(seed).permutation(np.flatnonzero(np.isin(syn_labels, added)))[:n]
    val = parts["val"][np.isin(real.index.manifest["label"].to_numpy()[parts["val"]], added)]
    out = {"run": str(run), "synthesized": str(synth), "classes": int(len(added))}
    for name, ds, idx in (("synthesized", syn, rows), ("real validation", real, val)):
        images = np.stack([np.asarray(ds[int(i)]["image"]) for i in idx])  # [N, 3, H, W] uint8
        labels = ds.index.manifest["label"].to_numpy()[idx]
        _, pred = classifier_pass(clf, images)
        out[name] = {"n": int(len(idx)), "accuracy": float(np.mean(pred == labels)),
                     "predicted_as_an_added_class": float(np.mean(np.isin(pred, added)))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a classifier cell (run folder)")
    ap.add_argument("synth", type=Path, help="the synthesized set it trained with (or any other)")
    ap.add_argument("--n", type=int, default=400, help="synthesized images sampled")
    a = ap.parse_args()
    print(json.dumps(probe(a.run, a.synth, a.n), indent=2))


if __name__ == "__main__":
    main()
