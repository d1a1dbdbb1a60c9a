"""Classifier cells in parallel: two 1-thread processes against one process using every core.

``fape quickstart`` trains 8 small Fa-Net cells. On a CPU, a narrow LightCNN step does not keep
every thread busy, so training two cells at once with ``cpu_count // 2`` threads each may finish
the set sooner than training them in turn with all threads. This measures the training
throughput (images/s, summed over processes) of the quick start's step (LightCNN-9 width 0.25,
gray 64 px, batch 64, bf16 autocast, channels-last, Adam) both ways, in the same run:

* reference: one process, ``cpu_count`` threads;
* parallel: ``--workers`` processes started together, ``cpu_count // workers`` threads each.

    python benchmarks/parallel_cells.py [--steps 40] [--rounds 3] [--workers 2]

The ratio (parallel / reference) above 1 means the quick start's ``--workers`` default saves time.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time


def _throughput(threads: int, steps: int, start, out) -> None:
    """Train ``steps`` quick-start steps with ``threads`` threads; put images/s on ``out``."""
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

    for _ in range(3):  # warm-up: allocator, oneDNN kernels
        step()
    if start is not None:
        start.wait()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    out.put(64 * steps / (time.perf_counter() - t))


def run(workers: int, threads: int, steps: int) -> float:
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_throughput, args=(threads, steps, start, out)) for _ in range(workers)]
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
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    ref, par = [], []
    for _ in range(args.rounds):  # interleaved, so drift in the machine's load hits both
        ref.append(run(1, cores, args.steps))
        par.append(run(args.workers, max(1, cores // args.workers), args.steps))
    r, p = statistics.median(ref), statistics.median(par)
    print(f"{cores} cores, {args.steps} steps x {args.rounds} rounds, quick-start Fa-Net step (gray 64 px, batch 64)")
    print("| setting | images/s (median, summed) |")
    print("|---|---|")
    print(f"| reference: 1 process x {cores} threads | {r:.0f} |")
    print(f"| {args.workers} processes x {max(1, cores // args.workers)} thread(s) | {p:.0f} |")
    print(f"ratio parallel / reference: {p / r:.2f}")


if __name__ == "__main__":
    main()
