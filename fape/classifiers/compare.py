"""Comparing settings over seeds: read the runs' evaluations (``fape clf eval``), pair run k of
every setting on the test images they share, and report accuracy, per-class recall and macro-F1
differences with the intervals of ``fape.classifiers.intervals``, as JSON-ready dicts and Markdown.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fape.classifiers.evaluate import read_predictions
from fape.classifiers.intervals import headroom_bootstrap, hierarchical_bootstrap, macro_f1_bootstrap


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
