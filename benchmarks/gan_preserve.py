"""The GAN's frozen-classifier terms (``fape.gan.preserve``): the expression term alone, as recipe C
runs it now (``identity_weight`` 0), against the old way, which also ran the identity term's second
classifier pass on the source every step.

Each variant computes its terms on a batch of generated faces and backpropagates them into the
faces, as ``gan_step`` does for G. The judge is the shipped Fa-Net (``checkpoints/fanet_fer2013_48``,
48 px gray), the classifier recipe C's judges use. Rounds interleave the variants (A B A B ...) so a
busy machine slows them alike; the table shows the median ms per step and the ratio.

    python benchmarks/gan_preserve.py [--batch 16] [--size 64] [--steps 20] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from fape.classifiers.io import load_run
from fape.gan.preserve import make_preservation

REPO = Path(__file__).resolve().parents[1]


def step_ms(terms, batch: dict, fake: torch.Tensor, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        x = fake.clone().requires_grad_(True)
        sum(terms(batch, x).values()).backward()  # into the generated faces, as G's loss does
    return 1000 * (time.perf_counter() - t0) / steps


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default=str(REPO / "checkpoints/fanet_fer2013_48"), help="the frozen judge")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64, help="generated faces, pixels (the real-face GAN's 64)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    labels = load_run(args.run, "cpu").label_names  # the judge's own expressions, in its order
    g = torch.Generator().manual_seed(0)
    fake = torch.rand(args.batch, 1, args.size, args.size, generator=g) * 2 - 1  # [N, 1, S, S] in [-1, 1]
    batch = {"source_f": torch.rand(args.batch, 1, args.size, args.size, generator=g) * 2 - 1,
             "target_label": torch.randint(0, len(labels), (args.batch,), generator=g)}
    variants = {"both terms (before)": make_preservation(args.run, labels, "cpu", terms=("identity", "expression")),
                "expression only (now)": make_preservation(args.run, labels, "cpu", terms=("expression",))}
    times = {k: [] for k in variants}
    for terms in variants.values():
        step_ms(terms, batch, fake, 2)  # warm-up
    for _ in range(args.rounds):
        for name, terms in variants.items():
            times[name].append(step_ms(terms, batch, fake, args.steps))
    ref = statistics.median(times["both terms (before)"])
    print(f"threads {torch.get_num_threads()}, batch {args.batch}, {args.size} px, median of {args.rounds} rounds")
    print("| variant | ms per step | speed vs before |\n|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {statistics.median(t):.1f} | {ref / statistics.median(t):.2f}x |")


if __name__ == "__main__":
    main()
