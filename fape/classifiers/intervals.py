"""Bootstrap intervals of differences between classifier settings: over test images
(``paired_bootstrap``), over seeds then test images (``hierarchical_bootstrap``, and the headroom
and its recovered share, ``headroom_bootstrap``), and of a macro-F1 difference
(``macro_f1_bootstrap``). The bootstrap and what it covers are described below."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from fape.classifiers.metrics import weighted_macro_f1


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """CI of ``acc(A) - acc(B)`` by resampling test images with replacement, the same images for
    both settings. ``correct_*`` are ``[S, N]`` (seeds x images, 0/1): each resample takes the
    mean over seeds of the per-seed accuracy differences."""
    rng = np.random.default_rng(seed)
    diff = correct_a.astype(np.float64) - correct_b.astype(np.float64)  # [S, N]
    n = diff.shape[1]
    per_image = diff.mean(0)  # [N] mean over seeds, linear so resampling images commutes
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = per_image[idx].mean(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"diff": float(per_image.mean()), "ci_low": float(lo), "ci_high": float(hi), "level": level,
            "n_images": int(n), "n_seeds": int(diff.shape[0]), "n_boot": n_boot}


# Hierarchical bootstrap over seeds and test images.
#
# Data: arm k (a setting: with, without, oracle) scored on seed s's test images,
# x[s, i, k] in {0, 1} (or any number), s = 1..S, i = 1..N_s. Within a seed all arms are scored on
# the same images (paired). Seeds may share their test images (one split, seeds redraw the
# GAN and classifier), have disjoint ones, or overlapping ones (each seed redraws the split);
# ``images`` names each seed's images, so one image is one unit wherever it appears.
#
# Estimand and estimate: the mean over seeds of each arm's accuracy,
#     theta_k = (1/S) sum_s (1/N_s) sum_i x[s, i, k].
# One replicate b resamples both factors (Owen 2007, "pigeonhole bootstrap", for crossed
# seeds x images; it reduces to the two-stage cluster bootstrap of Davison & Hinkley 1997,
# sec. 3.8, when the test sets are disjoint):
#     1. seeds: counts (w_1..w_S) ~ Multinomial(S, 1/S), i.e. S seeds drawn with replacement;
#     2. images: a weight v_u ~ Poisson(1) for every distinct test image u (the Poisson form
#        of drawing images with replacement; Hanley & MacGibbon 2006), the same weight for every
#        arm (paired) and for every seed that scored u (an image hard for one seed is usually
#        hard for another, so shared images must move together);
#     3. theta*_k = (1/S) sum_s w_s (sum_i v_{u(s,i)} x[s, i, k]) / (sum_i v_{u(s,i)}).
# A difference d = theta_a - theta_b, or the share of headroom recovered
#     r = (theta_with - theta_without) / (theta_oracle - theta_without),
# is computed in every replicate from the same theta*, and its interval is the percentile
# interval [q_{(1-level)/2}, q_{(1+level)/2}] of the B replicate values.
# What it covers: seed-to-seed variation (whatever the seeds redraw: split, GAN, classifier
# initialisation and data order) and the finite test set. With x = mu + a_s + b_i + e_si
# (seed effect, image effect, seed x image noise) on a shared test set of N images,
#     var(theta)            = s_a^2/S         + s_b^2/N + s_e^2/(SN),
#     E[replicate variance] = ((S-1)/S) s_a^2/S + s_b^2/N + (3 - 2/S) s_e^2/(SN)
# (from E[w_s w_s'] = 1 + d_ss' - 1/S, E[v_u v_u'] = 1 + d_uu'; Owen 2007 finds the same 3);
# disjoint test sets give the same with s_b folded into s_e. So the interval is conservative
# in the noise term (pure noise: variance x(3 - 2/S), checked by simulation) and short by
# (S-1)/S in the seed term; with 2-3 seeds stage 1 has few distinct outcomes: read it as rough.
# tests/test_clf_intervals.py checks coverage on simulated experiments of both designs.
def _arms_per_seed(arms: Sequence, names: Sequence[str]) -> list[np.ndarray]:
    """Per seed, the arms' outcomes on that seed's test images, ``[K, N_s]`` float64. Each arm is
    ``[S, N]`` or a list of S 1-D arrays; within a seed all arms must have the same length."""
    seqs = [list(a) for a in arms]  # [K][S] of [N_s]
    n_seeds = {len(a) for a in seqs}
    if len(n_seeds) != 1 or not min(n_seeds):
        raise ValueError(f"arms {list(names)} need the same number of seeds (>= 1), got {[len(a) for a in seqs]}")
    out = []
    for s in range(len(seqs[0])):
        vals = [np.asarray(a[s], np.float64).ravel() for a in seqs]
        if len({len(v) for v in vals}) != 1 or not len(vals[0]):
            raise ValueError(f"seed {s}: arms {list(names)} must be scored on the same, non-empty test images "
                             f"(lengths {[len(v) for v in vals]})")
        out.append(np.stack(vals))
    return out


def _image_units(sizes: list[int], images: Sequence | None) -> tuple[list[np.ndarray], int]:
    """Per seed, each score's image as an index into the distinct images ``[N_s]``, and their
    number U. ``images=None``: seeds of one size share their images (column i is one image),
    seeds of different sizes have disjoint ones."""
    if images is None:
        if len(set(sizes)) == 1:
            return [np.arange(sizes[0])] * len(sizes), sizes[0]
        starts = np.cumsum([0, *sizes])
        return [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:])], int(starts[-1])
    ids = [np.asarray(i).ravel() for i in images]
    if len(ids) != len(sizes) or any(len(i) != n for i, n in zip(ids, sizes)):
        raise ValueError(f"images: need one id per score of every seed ({sizes}), got {[len(i) for i in ids]}")
    if any(len(np.unique(i)) != len(i) for i in ids):
        raise ValueError("images: an image is listed twice within one seed")
    union, inverse = np.unique(np.concatenate(ids), return_inverse=True)
    return np.split(inverse.ravel(), np.cumsum(sizes)[:-1]), len(union)


def seed_image_replicates(per_seed: list[np.ndarray], units: list[np.ndarray], n_units: int, n_boot: int,
                          rng: np.random.Generator, block: int = 256) -> np.ndarray:
    """``[B, K]`` replicate means theta*_k of the bootstrap above: seeds drawn with replacement,
    images Poisson-weighted (shared by arms and by seeds that scored the same image). A replicate
    in which a drawn seed's images all got weight 0 (chance ~exp(-N_s)) is NaN."""
    n_seeds, k = len(per_seed), per_seed[0].shape[0]
    out = np.empty((n_boot, k))
    for start in range(0, n_boot, block):  # blocks bound memory at block x U weights
        b = min(block, n_boot - start)
        w = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=b)  # [b, S] draws of each seed
        v = rng.poisson(1.0, size=(b, n_units)).astype(np.float64)  # [b, U] draws of each image
        total = np.zeros((b, k))
        for s, (x, u) in enumerate(zip(per_seed, units)):
            vs = v[:, u]  # [b, N_s]
            mass = vs.sum(1, keepdims=True)  # [b, 1] images drawn for seed s
            acc = np.divide(vs @ x.T, mass, out=np.full((b, k), np.nan), where=mass > 0)  # [b, K]
            total += np.where(w[:, s:s + 1] > 0, w[:, s:s + 1] * acc, 0.0)
        out[start:start + b] = total / n_seeds
    return out


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _method(n_seeds: int, n_boot: int) -> str:
    if n_seeds > 1:
        return (f"hierarchical bootstrap, {n_boot} replicates: seeds resampled with replacement, then test images "
                f"(Poisson weights), the same images for every setting and every seed that scored them; "
                f"percentile interval")
    return (f"paired bootstrap, {n_boot} replicates: test images resampled (Poisson weights), the same images for "
            f"every setting (one seed: seed-to-seed variation is not in the interval); percentile interval")


def _bootstrap_arms(arms: Sequence, names: Sequence[str], images, n_boot: int, seed: int):
    """Point estimates ``[K]``, replicates ``[B, K]`` and the size fields of a result."""
    per_seed = _arms_per_seed(arms, names)
    sizes = [int(x.shape[1]) for x in per_seed]
    units, n_units = _image_units(sizes, images)
    reps = seed_image_replicates(per_seed, units, n_units, n_boot, np.random.default_rng(seed))
    point = np.mean([x.mean(1) for x in per_seed], 0)
    info = {"n_seeds": len(sizes), "n_images": sum(sizes), "n_images_per_seed": sizes, "n_distinct_images": n_units,
            "n_boot": n_boot, "method": _method(len(sizes), n_boot)}
    return point, reps, info


def hierarchical_bootstrap(correct_a, correct_b, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                           images: Sequence | None = None) -> dict:
    """Interval of ``acc(A) - acc(B)`` that resamples both seeds and test images (the bootstrap
    described above). ``correct_a``, ``correct_b``: ``[S, N]`` 0/1 (seed x image), or lists of S
    per-seed arrays whose length may differ between seeds (a seed that redraws the split) but not
    between A and B within a seed. ``images``: per seed, the ids of its scored images (e.g.
    manifest rows), so that an image shared by seeds is resampled as one; default: same-size
    seeds share their images column by column, different-size seeds share none. ``diff`` is the
    mean over seeds of the per-seed accuracy differences; ``n_images`` the number of paired
    scores per setting, sum of N_s."""
    point, reps, info = _bootstrap_arms([correct_a, correct_b], ["a", "b"], images, n_boot, seed)
    lo, hi = _interval(reps[:, 0] - reps[:, 1], level)
    return {"diff": float(point[0] - point[1]), "ci_low": lo, "ci_high": hi, "level": level, **info}


def headroom_bootstrap(correct_with, correct_without, correct_oracle, n_boot: int = 2000, seed: int = 0,
                       level: float = 0.95, images: Sequence | None = None) -> dict:
    """Gain ``with - without``, headroom ``oracle - without`` and the share of the headroom that
    synthesis recovers, ``gain / headroom``, each with its interval from the same replicates
    (seeds, then images; arms and ``images`` as in ``hierarchical_bootstrap``, all three scored
    on the same images within a seed).

    The share is undefined (NaN, never a division warning) where the headroom is <= 0. When the
    headroom's interval reaches 0 the share's confidence set is unbounded: its interval is NaN,
    ``headroom_includes_zero`` is true and ``share_defined`` false (also false when the whole
    interval is below 0: the oracle is worse). Otherwise the share's interval is taken over the replicates
    with a positive headroom (fewer than (1 - level) / 2 of them are dropped; ``share_dropped``)."""
    point, reps, info = _bootstrap_arms([correct_with, correct_without, correct_oracle],
                                        ["with", "without", "oracle"], images, n_boot, seed)  # [3], [B, 3]
    gain, room = point[0] - point[1], point[2] - point[1]
    gain_b, room_b = reps[:, 0] - reps[:, 1], reps[:, 2] - reps[:, 1]
    g_lo, g_hi = _interval(gain_b, level)
    h_lo, h_hi = _interval(room_b, level)
    defined = h_lo > 0  # the share's interval is bounded only when the headroom's lies above 0
    ok = room_b > 0  # NaN replicates (see seed_image_replicates) compare False: dropped too
    share_b = np.divide(gain_b, room_b, out=np.full_like(gain_b, np.nan), where=ok)
    s_lo, s_hi = _interval(share_b[ok], level) if defined else (float("nan"),) * 2
    return {"gain": {"diff": float(gain), "ci_low": g_lo, "ci_high": g_hi},
            "headroom": {"diff": float(room), "ci_low": h_lo, "ci_high": h_hi},
            "share": {"share": float(gain / room) if room > 0 else float("nan"), "ci_low": s_lo, "ci_high": s_hi},
            "headroom_includes_zero": bool(h_lo <= 0 <= h_hi), "share_defined": bool(defined),
            "share_dropped": float(1 - ok.mean()), "level": level, **info}


def macro_f1_bootstrap(frames_a: list, frames_b: list, k: int, n_boot: int = 2000, seed: int = 0,
                       level: float = 0.95) -> dict:
    """Interval of ``macroF1(A) - macroF1(B)``: run s of A and of B (seed s) on the test images both
    scored; each replicate resamples the seeds, then each chosen seed's images (multinomial
    weights, the same for A and B: paired), and averages the per-seed differences. Macro-F1 is
    not a mean over images, so unlike accuracy it is recomputed per replicate."""
    rng = np.random.default_rng(seed)
    seeds = []
    for fa, fb in zip(frames_a, frames_b):
        common = np.array(sorted(set(fa.index) & set(fb.index)), np.int64)
        lab = fa.loc[common, "label"].to_numpy(np.int64)
        seeds.append((lab, fa.loc[common, "pred"].to_numpy(np.int64), fb.loc[common, "pred"].to_numpy(np.int64)))
    per_seed = [(weighted_macro_f1(l, a, k), weighted_macro_f1(l, b, k)) for l, a, b in seeds]
    reps = np.empty(n_boot)
    for r in range(n_boot):
        d = []
        for s in rng.integers(0, len(seeds), len(seeds)):
            lab, a, b = seeds[s]
            w = np.bincount(rng.integers(0, len(lab), len(lab)), minlength=len(lab)).astype(np.float64)
            d.append(weighted_macro_f1(lab, a, k, w) - weighted_macro_f1(lab, b, k, w))
        reps[r] = np.mean(d)
    lo, hi = _interval(reps, level)
    return {"a": float(np.mean([x[0] for x in per_seed])), "b": float(np.mean([x[1] for x in per_seed])),
            "diff": float(np.mean([x[0] - x[1] for x in per_seed])), "ci_low": lo, "ci_high": hi, "level": level,
            "n_seeds": len(seeds), "n_images_per_seed": [len(x[0]) for x in seeds]}
