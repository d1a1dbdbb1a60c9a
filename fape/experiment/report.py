"""``report.md``: the table of means, intervals, per-class recall and the models' summary."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fape.experiment.cells import count_parameters, run_seconds
from fape.experiment.config import ExperimentConfig


def model_summary(stage: str, cells: dict[str, dict[str, list[str]]], setting: str) -> dict:
    """A row's model: its parameters, its pre-training stage's own test result (read from the
    stage's evaluation, written once when the stage finished) and training time, and its cells'
    training seconds per task (one number per seed)."""
    runs = {task: groups[setting] for task, groups in cells.items() if setting in groups}
    first = next((r for rs in runs.values() for r in rs), None)
    if first is not None and not (Path(first) / "done.json").is_file():
        first = sorted(Path(first).glob("fold*"))[0]  # a k-fold cell: its first fold's model
    out: dict = {"parameters": count_parameters(first) if first else None,
                 "cell_seconds": {task: [run_seconds(r) for r in rs] for task, rs in runs.items()}}
    res = Path(stage) / "eval" / "test" / "results.json"
    if stage and res.is_file():
        r = json.loads(res.read_text())
        out["pretrain"] = {"run": stage, "accuracy": r["accuracy"], "n": r["n"], "seconds": run_seconds(stage)}
    return out


def mean_per_class(results: list[dict]) -> dict[str, float]:
    """Per-class accuracy (recall), mean over a setting's runs (their ``results.json``, read once)."""
    recs = [r["per_class"] for r in results]
    return {c: float(np.mean([r[c]["recall"] for r in recs])) for c in recs[0]}


def report_md(exp: ExperimentConfig, res: dict) -> str:
    tasks = list(res["tasks"])
    head = "| setting | " + " | ".join(Path(t).stem for t in tasks) + " |"
    sep = "|---|" + "---|" * len(tasks)
    lines = [f"# Experiment `{exp.name}`", "", exp.description, "",
             (f"Test accuracy (%), mean +- std over seeds {exp.seeds}; model selection on validation only."
              if exp.part == "test" else f"**Validation** accuracy (%), mean +- std over seeds {exp.seeds}: a search "
              f"(part: val), which read no test image. The best checkpoint was chosen on this part too."), "",
             head, sep]
    for s in exp.settings:
        cells = []
        for t in tasks:
            st = res["tasks"][t]["settings"].get(s.name)
            cells.append(f"{100 * st['mean']:.1f} +- {100 * st['std']:.1f} ({len(st['runs'])})" if st else "-")
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    for s, row in exp.paper.items():
        lines.append(f"| paper: {s} | " + " | ".join(f"{row[t]:.1f}" if t in row else "-" for t in tasks) + " |")
    lines += ["", "Chance: " + ", ".join(f"{Path(t).stem} {100 * res['tasks'][t]['chance']:.1f}%"
                                         for t in tasks if res["tasks"][t].get("chance") is not None), "",
              f"Each seed redraws {'the split, the GAN, the synthesized set and the classifier' if exp.redraw == 'all' else 'the classifier only'}. "
              "Difference from the first setting, with a 95% interval from a hierarchical bootstrap that "
              f"resamples seeds, then {exp.part} images (seed k paired with seed k):", "",
              f"| task | difference | mean (points) | 95% CI | {exp.part} images per seed | seeds |", "|---|---|---|---|---|---|"]
    for t in tasks:
        for name, d in res["tasks"][t]["differences"].items():
            lines.append(f"| {Path(t).stem} | {name} | {100 * d['diff']:+.1f} | [{100 * d['ci_low']:+.1f}, "
                         f"{100 * d['ci_high']:+.1f}] | {', '.join(map(str, d.get('n_images_per_seed', [d['n_images']])))} "
                         f"| {d['n_seeds']} |")
    heads = [(t, res["tasks"][t]["headroom"]) for t in tasks if res["tasks"][t].get("headroom")]
    if heads:
        from fape.classifiers.compare import headroom_text

        lines += ["", "Headroom and the share of it that synthesis recovers (settings with, without, oracle: "
                  f"{', '.join(heads[0][1]['settings'])}):", ""]
        lines += [f"- {Path(t).stem}: {headroom_text(h)}" for t, h in heads]
    if res.get("leaks"):
        lines += ["", f"**These splits leak across views**: {res['leaks']}"]
    for t in tasks:
        pc = res["tasks"][t].get("per_class")
        if pc:
            classes = list(next(iter(pc.values())))
            lines += ["", f"Per-class accuracy (%), {Path(t).stem}, mean over seeds:", "",
                      "| setting | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
            lines += [f"| {s} | " + " | ".join(f"{100 * v[c]:.1f}" for c in classes) + " |" for s, v in pc.items()]
            for name, d in res["tasks"][t].get("per_class_differences", {}).items():
                lines += ["", f"Per-class recall difference {name} (points, 95% interval: seeds, then the "
                          f"class's test images), {Path(t).stem}:", "",
                          "| class | difference | 95% CI | test images per seed |", "|---|---|---|---|"]
                lines += [f"| {c} | {100 * x['diff']:+.1f} | [{100 * x['ci_low']:+.1f}, {100 * x['ci_high']:+.1f}] | "
                          f"{', '.join(map(str, x['n_images_per_seed']))} |" for c, x in d.items()]
    lines += models_md(exp, res, tasks)
    lines += ["", f"Wall time of this invocation: {res['seconds']:.0f} s (finished cells are reused)."]
    return "\n".join(lines) + "\n"


def models_md(exp: ExperimentConfig, res: dict, tasks: list[str]) -> list[str]:
    """Each row's parameters, training time per cell (mean over seeds) and pre-training stage
    (its own test part's accuracy, e.g. FER2013 PrivateTest for a FER2013 stage)."""
    models = res.get("models") or {}
    if not models:
        return []
    lines = ["", "Models: parameters, training minutes (per cell, mean over seeds; a k-fold cell sums its folds) "
             "and the pre-training stage's accuracy on its own test part (n images):", "",
             "| setting | parameters | pre-training stage: test accuracy | stage minutes | "
             + " | ".join(f"{Path(t).stem} minutes" for t in tasks) + " |", "|---|---|---|---|" + "---|" * len(tasks)]
    for s in exp.settings:
        m = models.get(s.name, {})
        pre = m.get("pretrain")
        cells = [f"{np.mean(m['cell_seconds'][t]) / 60:.1f}" if m.get("cell_seconds", {}).get(t) else "-" for t in tasks]
        lines.append(f"| {s.name} | {m['parameters']:,} | " if m.get("parameters") else f"| {s.name} | - | ")
        lines[-1] += (f"{100 * pre['accuracy']:.2f} (n={pre['n']}) | {pre['seconds'] / 60:.1f} | " if pre else "- | - | ") \
            + " | ".join(cells) + " |"
    return lines
