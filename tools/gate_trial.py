"""Does a synthesis quality gate help? One F2ED task of a finished quick start, with and without it.

Re-synthesizes the task's balancing set from the quick start's GAN and training rows through the
gate (``fape.gan.gates``), then trains the quick start's Fa-Net cell on the real training part
plus (a) the ungated set the quick start made and (b) the gated one, for each seed; the quick
start's own cells give seed 0 without synthesis and with the ungated set, and the other seeds'
cells are trained here. Prints one table: VALIDATION accuracy per seed (a trial chooses a gate, so
it never reads the test part: model selection and score are on the validation part), and the
NME distribution that the gate saw next to real images of the same poses.

    python tools/gate_trial.py fape-quickstart --task er-up --gate pose:0.2 --seeds 0 1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def real_nme(data: Path, rows: np.ndarray, mode: str, n: int = 256) -> np.ndarray:
    """NME of the landmarks dlib finds on ``n`` real images against their own landmarks: what the
    gate's threshold means on faces that are right by construction."""
    from fape.data.dataset import FaceDataset
    from fape.data.format import read_index
    from fape.data.landmarks import landmarks_of_images
    from fape.data.landmarks68 import nme

    idx = read_index(data)
    faces = FaceDataset(idx, channels=3, cache=False, progress=False)
    pick = np.random.default_rng(0).choice(rows, size=min(n, len(rows)), replace=False)
    imgs = np.stack([faces.load(int(r)) for r in pick])  # [n, H, W, 3] uint8
    return nme(landmarks_of_images(imgs, mode), faces.landmarks[pick])


def main() -> None:
    from fape.classifiers.train_eval import train_and_eval
    from fape.data import splits
    from fape.gan.gates import PoseGate, parse_gate
    from fape.gan.synthesize import synthesize
    from fape.config import override
    from fape.experiment import clf_config
    from fape.quickstart import SIZES, quickstart_experiment

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("quickstart", type=Path, help="a finished fape quickstart folder")
    ap.add_argument("--task", default="er-up")
    ap.add_argument("--gate", default="pose:0.2")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--size", default="small", choices=list(SIZES))
    ap.add_argument("--qs-seed", type=int, default=0, help="the quick start's --seed")
    ap.add_argument("--out", type=Path, default=None, help="default: QUICKSTART/gate_trial")
    args = ap.parse_args()
    qs = args.quickstart
    out = args.out or qs / "gate_trial"
    exp = quickstart_experiment(args.size, args.qs_seed, qs)
    data, seed_dir = Path(exp.data.root), Path(exp.out) / "seeds" / f"s{args.qs_seed}"
    split_file = json.loads((seed_dir / "splits.json").read_text())["tasks"][args.task]
    ungated = json.loads((seed_dir / "synth" / "synth.json").read_text())[args.task]
    train = splits.load_split(split_file)["train"]
    gate = parse_gate(args.gate)
    gated = out / f"{args.task}-gated"
    res = synthesize(seed_dir / "gan", data, exp.plans.get(args.task, exp.plans["default"]), gated, rows=train, seed=0,
                     overwrite=True, progress=False, gate=gate)
    print(f"gate {args.gate}: kept {res.written} of {res.jobs} synthesized faces ({res.rejected} rejected)")
    for g in getattr(gate, "gates", [gate]):  # a combined gate (A+B): each one's view of every face
        seen = np.asarray(g.seen)
        if isinstance(g, PoseGate):
            ref = real_nme(data, train, g.mode)
            for name, e in (("synthesized", seen), ("real (train part)", ref)):
                ok = np.isfinite(e)
                print(f"  NME {name}: median {np.median(e[ok]):.3f}, 25-75% {np.percentile(e[ok], 25):.3f}-"
                      f"{np.percentile(e[ok], 75):.3f}, passing {np.mean(ok & (e <= g.max_nme)):.2f}")
        else:  # ExpressionGate: the judge's probability of each face's drawn expression
            print(f"  judge p(drawn): median {np.median(seen):.3f}, 25-75% {np.percentile(seen, 25):.3f}-"
                  f"{np.percentile(seen, 75):.3f}")

    rows = {"without": "", "ungated": ungated, "gated": str(gated)}
    table = {}
    for seed in args.seeds:
        for name, synth in rows.items():
            run = out / f"{name}-s{seed}"
            setting = exp.settings[0 if name == "without" else 1]
            cfg = override(clf_config(exp, setting, args.task, split_file, synth, seed, ""), {"name": run.name})
            table.setdefault(name, {})[seed] = train_and_eval(cfg, run, split="val")["accuracy"]
            print(f"  {name} seed {seed}: {100 * table[name][seed]:.1f}%", flush=True)
    print(f"\n| {args.task} validation accuracy (%) | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean |")
    print("|---|" + "---|" * (len(args.seeds) + 1))
    for name, accs in table.items():
        vals = [100 * accs[s] for s in args.seeds]
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in vals) + f" | {np.mean(vals):.1f} |")


if __name__ == "__main__":
    main()
