"""Expression partners of a GAN epoch: one ``searchsorted`` against the plain per-source loop.

``PairSampler.draw`` picks, for every source of an expression pair, a partner by inverse-CDF
over that source's run of partners (``fape.data.pairs``). The plain way walks the sources in
Python and searches each run; fape offsets every run by its row so that one ``searchsorted``
answers all sources. Both read the same CSR arrays (``eptr``, ``eidx``, ``ecdf``) and the same
uniforms here, and the script checks that they pick the same partners before timing them.

The data: a synthetic-style manifest of ``--subjects`` x 54 expressions x 2 frames x 4 poses
(the medium set has 20 subjects: 8,640 rows), every row a source, as in an epoch with
``pairs.expression`` weight 1.

    python benchmarks/pair_draw.py [--subjects 20] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd


def manifest(subjects: int) -> pd.DataFrame:
    rows = [dict(subject=f"s{s}", expression=f"e{e}", pose=p, sequence=f"s{s}_e{e}", frame=f)
            for s in range(subjects) for e in range(54) for f in range(2) for p in ("HL", "F", "HR", "BV")]
    return pd.DataFrame(rows)


def plain(sampler, src: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The per-source loop (the reference)."""
    out = src.copy()
    for k, (i, x) in enumerate(zip(src, u)):
        a, b = sampler.eptr[i], sampler.eptr[i + 1]
        if b > a:
            out[k] = sampler.eidx[a + min(int(np.searchsorted(sampler.ecdf[a:b], x, side="right")), b - a - 1)]
    return out


def main() -> None:
    from fape.data.pairs import PairConfig, PairSampler

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    m = manifest(args.subjects)
    sampler = PairSampler(m, np.ones(len(m), bool), PairConfig(pose=1.0, expression=1.0))
    src = sampler.sources
    u = np.random.default_rng(0).random(len(src))
    assert np.array_equal(plain(sampler, src, u), sampler._expression_targets(src, u)), "the two ways disagree"
    times = {"plain loop": [], "fape (one searchsorted)": []}
    for _ in range(args.rounds):
        for name, fn in (("plain loop", lambda: plain(sampler, src, u)),
                         ("fape (one searchsorted)", lambda: sampler._expression_targets(src, u))):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    ref, ours = (statistics.median(times[k]) for k in times)
    print(f"{len(src):,} sources, {len(sampler.eidx):,} expression partners; medians of {args.rounds} rounds")
    print(f"plain loop {1000 * ref:.1f} ms, fape {1000 * ours:.2f} ms: {ref / ours:.0f}x faster (same partners)")


if __name__ == "__main__":
    main()
