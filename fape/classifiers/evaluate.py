"""Evaluation of a trained classifier and comparison of settings over seeds.

Metrics are small pure functions of (labels, predictions); ``evaluate_run`` writes them with
the per-image predictions (so comparisons can pair images), a confusion matrix as CSV and PNG.
"""
from __future__ import annotations

import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from fape.utils.io import append_jsonl, atomic_write_json, atomic_write_text, sha256_file


def confusion(labels: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """``C[i, j]`` = images of true class i predicted as j, ``[K, K]`` int."""
    return np.bincount(labels * k + preds, minlength=k * k).reshape(k, k)


def per_class_prf(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision ``C_jj / sum_i C_ij``, recall ``C_ii / sum_j C_ij``, F1 = their harmonic mean
    (0 where undefined), and support, each ``[K]``."""
    tp = np.diag(cm).astype(np.float64)
    pred_n, true_n = cm.sum(0), cm.sum(1)
    precision = np.divide(tp, pred_n, out=np.zeros_like(tp), where=pred_n > 0)
    recall = np.divide(tp, true_n, out=np.zeros_like(tp), where=true_n > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": true_n}


def classification_metrics(labels: np.ndarray, preds: np.ndarray, names: list[str],
                           groups: dict[str, np.ndarray] | None = None) -> dict:
    """Accuracy, macro-F1 over classes present in ``labels``, per-class precision/recall/F1
    (recall = per-class accuracy), and accuracy per value of each grouping (e.g. pose)."""
    k = len(names)
    cm = confusion(labels, preds, k)
    prf = per_class_prf(cm)
    present = prf["support"] > 0
    out = {
        "n": int(len(labels)),
        "accuracy": float((labels == preds).mean()) if len(labels) else float("nan"),
        "macro_f1": float(prf["f1"][present].mean()) if present.any() else float("nan"),
        "chance": 1.0 / k,
        "per_class": {n: {"precision": float(prf["precision"][i]), "recall": float(prf["recall"][i]),
                          "f1": float(prf["f1"][i]), "support": int(prf["support"][i])}
                      for i, n in enumerate(names)},
        "confusion": cm.tolist(),
    }
    for gname, g in (groups or {}).items():
        out[f"per_{gname}"] = {str(v): float((labels[g == v] == preds[g == v]).mean()) for v in np.unique(g)}
    return out


def confusion_png(cm: np.ndarray, names: list[str], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(names)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(4.0, 0.22 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), names, rotation=90, fontsize=max(4, 9 - k // 10))
    ax.set_yticks(range(k), names, fontsize=max(4, 9 - k // 10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 12:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


TEST_READS = "test_reads.jsonl"  # RUN/test_reads.jsonl: one line per evaluation of the run's test part


def record_test_read(run: Path, split_file: str | Path, **extra) -> int:
    """Append a line to ``RUN/test_reads.jsonl`` (UTC time, the split file and its sha256, the
    command line, and ``extra``) and return how many reads it now lists. Git-free, and atomic per
    line, so concurrent evaluations of one run each leave their own line."""

    split_file = Path(split_file)
    append_jsonl(Path(run) / TEST_READS, {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "split_file": str(split_file),
        "split_sha256": sha256_file(split_file) if split_file.is_file() else None,
        "command": shlex.join(sys.argv), **extra})
    return len(list_test_reads(run))


def list_test_reads(run: str | Path) -> list[dict]:
    """Every recorded evaluation of ``run``'s test part, oldest first (empty: never read)."""
    from fape.utils.runs import read_jsonl

    return read_jsonl(Path(run) / TEST_READS)


def eval_split_file(run: Path, cfg, index, split_file: str | Path | None = None) -> Path:
    """The split to evaluate on: ``split_file`` when given; else the run's own (``labels.json``);
    else, for a checkpoint folder without its run (a packaged model), the split its config names,
    made on ``index`` by the recorded protocol and seed exactly as training makes it."""
    if split_file is not None:
        return Path(split_file)
    if (run / "labels.json").is_file():
        return Path(json.loads((run / "labels.json").read_text())["split"])
    from fape.classifiers.data import resolve_split

    return resolve_split(cfg, index)[3]


def test_reads_dir(run: Path) -> Path:
    """Where the reads of ``run``'s test part are recorded: the run folder, or for a packaged
    checkpoint (never written into) its eval folder under the current folder."""
    return run if (run / "labels.json").is_file() else default_eval_dir(run, "test").parent


def default_eval_dir(run: Path, split: str) -> Path:
    """RUN/eval/SPLIT for a training run; a packaged checkpoint (perhaps inside site-packages) is
    never written into: runs/eval/NAME/SPLIT under the current folder."""
    return run / "eval" / split if (run / "labels.json").is_file() else Path("runs") / "eval" / run.name / split


def evaluate_run(run: str | Path, split: str = "test", data: str | None = None, out: str | Path | None = None,
                 device: str = "cpu", checkpoint: str | Path | None = None,
                 split_file: str | Path | None = None) -> dict:
    """Evaluate a run's selected model on a part of its split; writes results.json,
    predictions.csv, confusion.csv and confusion.png into ``out`` (default: ``default_eval_dir``).
    ``run`` may be a training run or a packaged checkpoint folder (``state.json``, no run files).
    Each evaluation of the test part is appended to ``test_reads.jsonl`` beside the eval folder
    (``RUN/test_reads.jsonl`` for a training run; ``record_test_read``).
    ``checkpoint``: other weights of the same model to evaluate on the run's split (e.g. the
    packaged copy of a shipped model). ``split_file``: a split csv of ``data`` to use instead of
    the run's (see ``eval_split_file``)."""
    import pandas as pd

    from fape.classifiers.io import load_run, predict
    from fape.data import splits
    from fape.data.dataset import FaceDataset
    from fape.data.format import read_index

    run = Path(run)
    loaded = load_run(checkpoint or run, device)
    cfg = loaded.cfg
    root = data or cfg.data.root
    index = read_index(root)
    split_file = eval_split_file(run, cfg, index, split_file)
    parts = splits.load_split(split_file, fold=cfg.data.fold if cfg.data.fold >= 0 else None)
    if split not in parts:
        raise ValueError(f"split part {split!r} not in {split_file} (has {sorted(parts)})")
    lut = {n: i for i, n in enumerate(loaded.label_names)}
    label_map = np.array([lut.get(n, -1) for n in index.info.label_names], np.int64)
    faces = FaceDataset(index, size=cfg.data.image_size, channels=cfg.data.channels, progress=False)
    rows = parts[split]
    rows = rows[label_map[faces.labels[rows]] >= 0]
    probs = predict(loaded.model, faces, rows, device)
    if split == "test":  # every path that scores a test part comes through here, so every read is on record
        record_test_read(test_reads_dir(run), split_file, data=str(root), checkpoint=str(loaded.checkpoint),
                         n=int(len(rows)))
    labels, preds = label_map[faces.labels[rows]], probs.argmax(1)
    m = index.manifest.iloc[rows]
    groups = {"pose": m["pose"].to_numpy()} if (m["pose"] != "").any() else {}
    res = classification_metrics(labels, preds, loaded.label_names, groups)
    res.update(run=str(run), split=split, split_file=str(split_file), data=str(root),
               checkpoint=str(loaded.checkpoint))
    out = Path(out) if out else default_eval_dir(run, split)
    res["out"] = str(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", res)
    pred_df = pd.DataFrame({"row": rows, "path": m["path"].to_numpy(), "label": labels, "pred": preds,
                            "prob": probs[np.arange(len(rows)), preds]})
    atomic_write_text(out / "predictions.csv", pred_df.to_csv(index=False))
    cm = np.asarray(res["confusion"])
    atomic_write_text(out / "confusion.csv", pd.DataFrame(cm, index=loaded.label_names,
                                                           columns=loaded.label_names).to_csv())
    confusion_png(cm, loaded.label_names, out / "confusion.png",
                  f"{run.name} {split}: acc {res['accuracy']:.3f}")
    return res


# ---------------------------------------------------------------- comparing settings
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


def headroom_text(res: dict) -> str:
    """One Markdown line for a report: headroom and the share recovered, with intervals and n."""
    g, h, s = res["gain"], res["headroom"], res["share"]
    pct = f"{100 * res['level']:.0f}%"
    pts = lambda d: f"{100 * d['diff']:+.1f} [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]"  # noqa: E731
    if not res["share_defined"]:
        share = "undefined: the headroom's interval " + ("includes 0" if res["headroom_includes_zero"] else "is below 0")
    else:
        share = f"{100 * s['share']:.0f}% [{100 * s['ci_low']:.0f}%, {100 * s['ci_high']:.0f}%]"
    return (f"Headroom (oracle - without) {pts(h)} points; gain (with - without) {pts(g)} points; share of the "
            f"headroom recovered: {share} ({pct} intervals; {res['n_seeds']} seeds, {res['n_images']} test "
            f"scores per setting; {res['method']}).")


def read_predictions(path: Path) -> "pd.DataFrame":  # noqa: F821
    """A ``predictions.csv`` of ``fape clf eval``, checked for the columns compare / k-fold read."""
    import pandas as pd

    from fape.data.format import require_columns

    df = pd.read_csv(path)
    require_columns(df, ("row", "label", "pred"), str(path))
    return df


def _correct(run: Path, split: str) -> "pd.DataFrame":  # noqa: F821
    p = Path(run) / "eval" / split / "predictions.csv"
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found: run `fape clf eval --run {run} --split {split}` first")
    df = read_predictions(p)
    return df.assign(correct=(df["label"] == df["pred"]).astype(int)).set_index("row")


def load_evals(groups: dict[str, list[str]], split: str) -> dict[str, list["pd.DataFrame"]]:  # noqa: F821
    """Every run's ``RUN/eval/SPLIT/predictions.csv``, read once, indexed by manifest row with a
    0/1 ``correct`` column: ``{setting: [frame per run]}`` in ``groups``' order. ``compare``,
    ``per_class_differences`` and ``per_class_report`` take it, so one invocation reads each file once."""
    return {name: [_correct(Path(r), split) for r in runs] for name, runs in groups.items()}


def load_results(groups: dict[str, list[str]], split: str) -> dict[str, list[dict]]:
    """Every run's ``RUN/eval/SPLIT/results.json`` (``evaluate_run``), read once:
    ``{setting: [results per run]}`` in ``groups``' order."""
    return {name: [json.loads((Path(r) / "eval" / split / "results.json").read_text()) for r in runs]
            for name, runs in groups.items()}


def _paired_seeds(frames: list[list["pd.DataFrame"]], names: list[str]) -> tuple[list, list]:  # noqa: F821
    """Per seed k, the ``[K, N_k]`` correctness of run k of every setting on the test images all
    of them scored (runs paired by position; a seed may have its own test set), and those
    images' manifest rows ``[N_k]`` (one image is one unit across seeds)."""
    n = min(len(f) for f in frames)
    scores, rows = [], []
    for k in range(n):
        common = np.array(sorted(set.intersection(*(set(f[k].index) for f in frames))), np.int64)
        if not len(common):
            raise ValueError(f"seed {k}: runs {k + 1} of {names} share no test image (different splits?)")
        scores.append(np.stack([f[k].loc[common, "correct"].to_numpy() for f in frames]))
        rows.append(common)
    return scores, rows


def compare(groups: dict[str, list[str]], split: str = "test", n_boot: int = 2000,
            headroom: tuple[str, str, str] | None = None,
            frames: dict[str, list["pd.DataFrame"]] | None = None) -> dict:  # noqa: F821
    """Mean +- std of accuracy per setting over its runs (seeds), and for every pair of settings
    the interval of the accuracy difference from ``hierarchical_bootstrap``: run k of A is paired
    with run k of B (seed k) on the images both scored, and each replicate resamples the seeds,
    then the images (an image, a manifest row, scored by several seeds is one unit). ``headroom``: names (with, without, oracle) for ``headroom_bootstrap``.
    ``frames``: the runs' predictions already read (``load_evals(groups, split)``); None reads them."""
    correct = load_evals(groups, split) if frames is None else frames
    stats = {}
    for name, runs in groups.items():
        accs = [f["correct"].mean() for f in correct[name]]
        stats[name] = {"runs": runs, "mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                       "accs": [float(a) for a in accs]}
    pairs = {}
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            per_seed, rows = _paired_seeds([correct[a], correct[b]], [a, b])
            pairs[f"{a} - {b}"] = hierarchical_bootstrap([x[0] for x in per_seed], [x[1] for x in per_seed],
                                                         n_boot=n_boot, images=rows)
    out = {"split": split, "settings": stats, "differences": pairs}
    if headroom:
        missing = [h for h in headroom if h not in correct]
        if missing:
            raise ValueError(f"headroom settings {missing} not among {names}")
        per_seed, rows = _paired_seeds([correct[h] for h in headroom], list(headroom))
        arms = ([x[k] for x in per_seed] for k in range(3))  # with, without, oracle: [S] of [N_s]
        out["headroom"] = {"settings": list(headroom), **headroom_bootstrap(*arms, n_boot=n_boot, images=rows)}
    return out


def per_class_differences(groups: dict[str, list[str]], ref: str, n_boot: int, part: str = "test",
                          frames: dict[str, list["pd.DataFrame"]] | None = None,  # noqa: F821
                          classes: list[str] | None = None) -> dict[str, dict[str, dict]]:
    """Per class, the recall difference of every setting from ``ref`` with its interval
    (``hierarchical_bootstrap`` on the paired images of that class: seeds, then images):
    ``{"B - REF": {class: result}}``. Classes a seed does not test are left out.
    ``frames`` (``load_evals``) and ``classes`` (the class names, in label order, of ``ref``'s
    first run's results.json): already read; None reads them."""
    names = list(json.loads((Path(groups[ref][0]) / "eval" / part / "results.json").read_text())["per_class"]) \
        if classes is None else classes
    frames = load_evals(groups, part) if frames is None else frames
    out = {}
    for b in groups:
        if b == ref:
            continue
        per_seed, rows = _paired_seeds([frames[b], frames[ref]], [b, ref])
        labels = [frames[ref][k].loc[r, "label"].to_numpy() for k, r in enumerate(rows)]  # [N_k] each
        diffs = {}
        for c, name in enumerate(names):
            sel = [lab == c for lab in labels]
            if all(m.any() for m in sel):
                diffs[name] = hierarchical_bootstrap([x[0][m] for x, m in zip(per_seed, sel)],
                                                     [x[1][m] for x, m in zip(per_seed, sel)], n_boot=n_boot,
                                                     images=[r[m] for r, m in zip(rows, sel)])
        out[f"{b} - {ref}"] = diffs
    return out


def weighted_macro_f1(labels: np.ndarray, preds: np.ndarray, k: int, weights: np.ndarray | None = None) -> float:
    """Macro-F1 over the classes present (``classification_metrics``'s definition) with a weight
    per image (a bootstrap's multiplicities; None = 1 each). ``labels``, ``preds``: ``[N]`` ids < k."""
    cm = np.bincount(labels * k + preds, weights=weights, minlength=k * k).reshape(k, k)
    prf = per_class_prf(cm)
    present = prf["support"] > 0
    return float(prf["f1"][present].mean()) if present.any() else float("nan")


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


def per_class_report(groups: dict[str, list[str]], split: str, n_boot: int,
                     frames: dict[str, list["pd.DataFrame"]] | None = None,  # noqa: F821
                     results: dict[str, list[dict]] | None = None) -> dict:
    """``fape clf compare --per-class``: per-class recall of every setting (mean over its runs),
    every setting's recall difference from the first with intervals (``per_class_differences``),
    and macro-F1 with the interval of its difference (``macro_f1_bootstrap``). ``frames``
    (``load_evals``) and ``results`` (``load_results``): the runs' files already read; None reads
    them, each file once."""
    names = list(groups)
    ref = names[0]
    results = load_results(groups, split) if results is None else results
    classes = list(results[ref][0]["per_class"])
    recall = {n: {c: float(np.mean([res["per_class"][c]["recall"] for res in results[n]])) for c in classes}
              for n in names}
    frames = load_evals(groups, split) if frames is None else frames
    f1 = {f"{b} - {ref}": macro_f1_bootstrap(frames[b], frames[ref], len(classes), n_boot) for b in names[1:]}
    return {"classes": classes, "recall": recall,
            "recall_differences": per_class_differences(groups, ref, n_boot, split, frames, classes),
            "macro_f1_differences": f1}


def per_class_markdown(rep: dict) -> str:
    names = list(rep["recall"])
    diffs = list(rep["recall_differences"])
    lines = ["| class | " + " | ".join(names) + " | " + " | ".join(f"{d} [95% CI]" for d in diffs) + " |",
             "|---" * (1 + len(names) + len(diffs)) + "|"]
    for c in rep["classes"]:
        cells = [f"{100 * rep['recall'][n][c]:.1f}" for n in names]
        for d in diffs:
            x = rep["recall_differences"][d].get(c)
            cells.append("" if x is None else f"{100 * x['diff']:+.1f} [{100 * x['ci_low']:+.1f}, {100 * x['ci_high']:+.1f}]")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "| macro-F1 | first | second | difference [95% CI] |", "|---|---|---|---|"]
    for d, x in rep["macro_f1_differences"].items():
        lines.append(f"| {d} | {100 * x['b']:.1f} | {100 * x['a']:.1f} | "
                     f"{100 * x['diff']:+.1f} [{100 * x['ci_low']:+.1f}, {100 * x['ci_high']:+.1f}] |")
    lines += ["", "Recall: per class, mean over a setting's runs. Intervals resample seeds, then test images "
              "(per class: that class's images; macro-F1: every image, recomputed per replicate)."]
    return "\n".join(lines) + "\n"


def compare_markdown(res: dict) -> str:
    lines = ["| setting | runs | accuracy (mean +- std) |", "|---|---|---|"]
    for name, s in res["settings"].items():
        lines.append(f"| {name} | {len(s['runs'])} | {100 * s['mean']:.1f} +- {100 * s['std']:.1f} |")
    if res["differences"]:
        lines += ["", "| difference | mean | 95% CI | test images per seed | seeds |", "|---|---|---|---|---|"]
        for name, d in res["differences"].items():
            per_seed = sorted(set(d["n_images_per_seed"]))
            lines.append(f"| {name} | {100 * d['diff']:+.1f} | [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}] "
                         f"| {'/'.join(map(str, per_seed))} | {d['n_seeds']} |")
        methods = dict.fromkeys(d["method"] for d in res["differences"].values())
        lines += [""] + [f"Intervals: {m}. Run k of one setting is paired with run k of the other (seed k)."
                         for m in methods]
    if res.get("headroom"):
        lines += ["", f"{' / '.join(res['headroom']['settings'])}: {headroom_text(res['headroom'])}"]
    return "\n".join(lines) + "\n"


def cli_eval(args, overrides) -> int:
    res = evaluate_run(args.run, args.split, args.data, args.out, args.device, split_file=args.split_file)
    print(f"{args.run} [{args.split}] accuracy {res['accuracy']:.4f}  macro-F1 {res['macro_f1']:.4f}  "
          f"(n={res['n']}, chance {res['chance']:.3f}; split {res['split_file']}) -> {res['out']}")
    where = test_reads_dir(Path(args.run))
    reads = len(list_test_reads(where)) if args.split == "test" else 0
    if reads >= 2:
        print(f"fape: warning: test part of {args.run} read {reads} times; a number chosen after looking at test "
              f"is spent (reads listed in {where / TEST_READS})", file=sys.stderr)
    return 0


def cli_compare(args, overrides) -> int:
    groups: dict[str, list[str]] = {}
    for item in args.runs:  # NAME=RUN or RUN (grouped by the run's config name)
        name, _, run = item.rpartition("=")
        if not name:
            from fape.utils.checkpoint import load_state
            from fape.classifiers.io import best_checkpoint

            name = load_state(best_checkpoint(run))["config"]["name"]
        groups.setdefault(name, []).append(run)
    try:
        frames = load_evals(groups, args.split)  # each run's predictions.csv read once, shared below
        res = compare(groups, args.split, args.n_boot, tuple(args.headroom) if args.headroom else None, frames)
        if args.per_class:
            res["per_class"] = per_class_report(groups, args.split, args.n_boot, frames,
                                                load_results(groups, args.split))
    except ValueError as e:
        from fape.errors import UserError

        raise UserError(str(e)) from None
    md = compare_markdown(res) + ("\n" + per_class_markdown(res["per_class"]) if args.per_class else "")
    print(md)
    if args.out:
        atomic_write_text(Path(args.out).with_suffix(".md"), md)
        atomic_write_json(Path(args.out).with_suffix(".json"), res)
    return 0
