"""Every registered classifier's training speed against MobileNetV1 (width 0.5, 48 px), the model
the seed-paper comparison trains (configs/experiments/seed_classifiers.yaml), measured in the
same run: images/s of fape's training step (``clf_step.ours_step``: flip, features + logits,
cross-entropy, SGD), the ratio to the reference, the minutes one FER2013 epoch (28,709 training
images) would take at that rate, and a single face's forward pass in ms (what `fape predict`
runs per face). Rounds interleave the models; medians are printed. These are the measured
reasons a model does not fit the comparison's CPU budget.

    OMP_NUM_THREADS=1 python benchmarks/clf_models.py [--steps 3] [--rounds 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clf_step import ours_step  # noqa: E402  (the same step as benchmarks/clf_step.py)

from fape.classifiers import create_classifier, list_classifiers  # noqa: E402
from fape.classifiers.train import WithFeatures  # noqa: E402

FER2013_TRAIN = 28_709
REFERENCE = ("mobilenet_v1", 48, {"width_mult": 0.5})
# the size each model runs at in the comparison; AlexNet's stride-4 stem needs at least 63 px
SIZES = {"alexnet": 64}


def step_fn(name: str, size: int, kwargs: dict, batch: int):
    torch.manual_seed(0)
    model = create_classifier(name, num_classes=7, in_chans=1, image_size=size, **kwargs)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    imgs = torch.randint(0, 256, (batch, 1, size, size), dtype=torch.uint8)  # [B, 1, S, S] gray
    labels = torch.randint(0, 7, (batch,))
    net = WithFeatures(model)
    return model, params, lambda: ours_step(net, opt, imgs, labels)


@torch.no_grad()
def face_ms(model: torch.nn.Module, size: int, reps: int = 10) -> float:
    """Median ms of one face's forward pass ([1, 1, S, S]), eval mode."""
    model.eval()
    x = torch.zeros(1, 1, size, size)
    model(x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        model(x)
        times.append(1000 * (time.perf_counter() - t))
    model.train()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=None, help="registered names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cases = {"reference": REFERENCE}
    cases.update({n: (n, SIZES.get(n, 48), {}) for n in (args.models or list_classifiers())})
    built = {k: (size, *step_fn(name, size, kw, args.batch)) for k, (name, size, kw) in cases.items()}
    rates: dict[str, list[float]] = {k: [] for k in built}
    for _, _, _, fn in built.values():
        fn()  # warm-up
    for _ in range(args.rounds):
        for k, (_, _, _, fn) in built.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                fn()
            rates[k].append(args.steps * args.batch / (time.perf_counter() - t))
    ref = statistics.median(rates["reference"])
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, gray")
    print("| model | size | parameters | train images/s | ratio to MobileNetV1 x0.5 | FER2013 epoch (min) | ms per face |")
    print("|---|---|---|---|---|---|---|")
    for k, (size, model, params, _) in built.items():
        med = statistics.median(rates[k])
        label = "MobileNetV1 x0.5 (reference)" if k == "reference" else k
        print(f"| {label} | {size} | {params:,} | {med:,.1f} | {med / ref:.2f} | {FER2013_TRAIN / med / 60:.1f} "
              f"| {face_ms(model, size):.2f} |")


if __name__ == "__main__":
    main()
