"""``fape data synth`` with one worker process per core against rendering in this process.

Renders the same set (default: the quick start's small set, 12 subjects x 54 expressions x 2
frames x 4 poses at 64 px) with ``workers=1`` and with ``workers=N``, alternating, into temporary
folders; prints each wall time (median over rounds) and their ratio. Both give the same bytes
(tests/test_synth.py).

    python benchmarks/synth_workers.py [--workers 2] [--rounds 2] [--identities 12]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from fape.config import load_config
from fape.data.synth import SynthConfig, synthesize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--identities", type=int, default=12)
    args = ap.parse_args()
    cfg = load_config(SynthConfig, "configs/data/synth_small.yaml", [f"--identities={args.identities}"])
    times: dict[int, list[float]] = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for w in times:
                t = time.perf_counter()
                synthesize(cfg, Path(tmp) / f"r{r}w{w}", progress=False, workers=w)
                times[w].append(time.perf_counter() - t)
    one, many = statistics.median(times[1]), statistics.median(times[args.workers])
    n = args.identities * cfg.expressions * cfg.frames * len(cfg.poses)
    print(f"{n} images: 1 worker {one:.1f} s, {args.workers} workers {many:.1f} s; ratio (1 / {args.workers}) {one / many:.2f}x")


if __name__ == "__main__":
    main()
