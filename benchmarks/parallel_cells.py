"""Classifier cells (or per-fold GANs) in parallel: two 1-thread processes against one process using every core.

``fape quickstart`` trains 8 small Fa-Net cells. On a CPU, a narrow LightCNN step does not keep
every thread busy, so training two cells at once with ``cpu_count // 2`` threads each may finish
the set sooner than training them in turn with all threads. This measures the training
throughput (images/s, summed over processes) of the quick start's step (LightCNN-9 width 0.25,
gray 64 px, batch 64, bf16 autocast, channels-last, Adam) both ways, in the same run:

* reference: one process, ``cpu_count`` threads;
* parallel: ``--workers`` processes started together, ``cpu_count // workers`` threads each.

    python benchmarks/parallel_cells.py [--steps 40] [--rounds 3] [--workers 2] [--kind clf|gan]

The ratio (parallel / reference) above 1 means the quick start's ``--workers`` default saves time.
``--kind gan`` times a per-fold GAN step instead (``configs/gan/real_expression.yaml``: warp_unet
width 16, gray 64 px, batch 16, fp32, fape's ``gan_step``), which ``fape experiment --workers``
trains two at a time for the JAFFE and CK+ experiments (``fape.experiment.train_gans``).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time


def _gan_step(threads: int):
    """One per-fold GAN training step on a fixed batch (``benchmarks/gan_step.py``'s "ours"), and its batch size."""
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gan_step import REPO, fake_batch, make_variant, networks

    from fape.config import load_config
    from fape.gan.config import GANConfig

    torch.set_num_threads(threads)
    cfg = load_config(GANConfig, REPO / "configs/gan/real_expression.yaml")
    raw = fake_batch(cfg, cfg.train.batch_size)
    step = make_variant("ours", cfg, *networks(cfg))
    return (lambda: step(raw)), cfg.train.batch_size


def _clf_step(threads: int):
    """One quick-start Fa-Net training step on a fixed batch, and its batch size."""
    import torch
    import torch.nn.functional as F

    from fape.classifiers import create_classifier

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = create_classifier("fa_net_lightcnn9", num_classes=54, in_chans=1, image_size=64, width=0.25)
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    x = torch.rand(64, 1, 64, 64).mul(2).sub(1).contiguous(memory_format=torch.channels_last)  # [64, 1, 64, 64]
    y = torch.randint(0, 54, (64,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, 64


def _throughput(threads: int, steps: int, start, out, kind: str = "clf") -> None:
    """Train ``steps`` quick-start steps (or GAN steps) with ``threads`` threads; put images/s on ``out``."""
    step, batch = (_gan_step if kind == "gan" else _clf_step)(threads)
    for _ in range(3):  # warm-up: allocator, oneDNN kernels
        step()
    if start is not None:
        start.wait()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    out.put(batch * steps / (time.perf_counter() - t))


def run(workers: int, threads: int, steps: int, kind: str = "clf") -> float:
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_throughput, args=(threads, steps, start, out, kind)) for _ in range(workers)]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kind", choices=("clf", "gan"), default="clf",
                    help="clf: the quick start's Fa-Net step; gan: a per-fold FaPE-GAN step (real_expression)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    ref, par = [], []
    for _ in range(args.rounds):  # interleaved, so drift in the machine's load hits both
        ref.append(run(1, cores, args.steps, args.kind))
        par.append(run(args.workers, max(1, cores // args.workers), args.steps, args.kind))
    r, p = statistics.median(ref), statistics.median(par)
    what = ("per-fold FaPE-GAN step (real_expression: warp_unet, gray 64 px, batch 16)" if args.kind == "gan"
            else "quick-start Fa-Net step (gray 64 px, batch 64)")
    print(f"{cores} cores, {args.steps} steps x {args.rounds} rounds, {what}")
    print("| setting | images/s (median, summed) |")
    print("|---|---|")
    print(f"| reference: 1 process x {cores} threads | {r:.0f} |")
    print(f"| {args.workers} processes x {max(1, cores // args.workers)} thread(s) | {p:.0f} |")
    print(f"ratio parallel / reference: {p / r:.2f}")


if __name__ == "__main__":
    main()
