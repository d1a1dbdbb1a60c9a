"""``fape quickstart``: the whole system on the embedded synthetic set, no data or weights needed.

The quick start is a packaged experiment, the F2ED paper's Table 5 (``configs/experiments/
f2ed_table5{_tiny,,_medium}.yaml`` for ``--size tiny|small|medium``), run for one seed, plus its
data step and its report. Stages (each timed, reused when its output is complete unless ``--fresh``):

1. ``data``: render the synthetic multi-pose set (54 expressions x 4 poses) with landmarks;
2. ``masks``: pose-mask previews and a contact sheet;
3. ``experiment`` (``fape experiment``, in ``OUT/experiment``): the F2ED tasks ER-SS, ER-UE,
   ER-UP, ER-ZID as hashed split files; FaPE-GAN trained on the rows every task trains on (so no
   synthesized image saw a test face); a balancing set per task (the rare pose of ER-UP, the rare
   expressions of ER-UE, +50% per pose for ER-SS and ER-ZID); Fa-Net (LightCNN-9) per task
   without and with the synthesized images, and with the held-back rare cells real (the oracle);
4. ``metrics``: paired L1/PSNR/SSIM, pose error, identity, domain FID/KID (features of the
   ER-SS classifier), expression agreement, on pose pairs of ER-SS's validation part (images
   neither G nor that classifier trained on); and the classification metrics;
5. ``report``: ``report.md`` (the paper's Table 5 layout), ``results.json``, a bar chart.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fape.utils.io import atomic_write_json, atomic_write_text, claim_dir

STAGES_FILE = "stages.json"  # per-stage times; also marks a folder as a quick start's output
RUN_FILE = "quickstart.json"  # the size and seed the folder's stages were made with
ROLES = ("with", "without", "oracle")  # the report's rows, in experiment.headroom_roles order


@dataclass(frozen=True)
class SizePreset:
    """A ``--size`` of the quick start. The data, GAN and classifier sizes live in the experiment
    YAML (packaged presets): "small" aims at minutes on 2 CPU cores, "medium" at under an hour."""
    experiment: str  # the packaged experiment it runs
    metric_pairs: int  # held-out GAN pairs the synthesis metrics are measured on


SIZES = {"tiny": SizePreset("configs/experiments/f2ed_table5_tiny.yaml", 32),
         "small": SizePreset("configs/experiments/f2ed_table5.yaml", 256),
         "medium": SizePreset("configs/experiments/f2ed_table5_medium.yaml", 512)}


class Stages:
    """Run named stages in order; a stage whose ``done`` check passes is reused, not re-run."""

    def __init__(self, out: Path, fresh: bool, total: int):
        self.out, self.fresh, self.total = out, fresh, total
        self.log_path = out / STAGES_FILE
        self.times: dict[str, dict] = {}
        self.count = 0
        if self.log_path.exists() and not fresh:
            self.times = json.loads(self.log_path.read_text())

    def run(self, name: str, fn, done) -> None:
        self.count += 1
        tag = f"[{self.count}/{self.total}] {name}"
        if not self.fresh and name in self.times and done():
            print(f"{tag}: reused ({self.times[name]['seconds']:.1f} s when it ran)", flush=True)
            return
        print(f"{tag} ...", flush=True)
        t = time.perf_counter()
        fn()
        self.times[name] = {"seconds": round(time.perf_counter() - t, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_json(self.log_path, self.times)
        print(f"{tag}: {self.times[name]['seconds']:.1f} s", flush=True)


# ---------------------------------------------------------------- stage bodies
def run_metrics(gan_run: Path, data: Path, clf_run: Path, out: Path, pairs: int) -> dict:
    """The GAN's report on pose pairs of the classifier's validation part: images that neither G
    (trained on the rows every task trains on) nor the classifier trained on, so the expression
    agreement and the classifier's accuracy on the real targets are both held-out figures. (The
    GAN's own held-out subjects are training rows of every task's classifier.)"""
    from fape.classifiers.evaluate import eval_split_file
    from fape.data.splits import load_split
    from fape.metrics.gan_report import gan_metrics, write_report

    split = eval_split_file(clf_run, None, None)  # the split the classifier trained on (labels.json)
    rep = gan_metrics(gan_run, data, max_pairs=pairs, allow_random_backbone=True,
                      features=f"run:{clf_run}", progress=False, identity_pairs=min(pairs, 64),
                      pair_rows=load_split(split)["val"],
                      pairs_from=f"the validation part of the expression classifier's split ({Path(split).name})")
    write_report(rep, out / "metrics")
    return rep


def cell_results(exp, out: Path, seed: int) -> tuple[dict, dict]:
    """The experiment's cells by role: ``({"TASK/ROLE": {accuracy, macro_f1, n, chance}},
    {"TASK/ROLE": run folder})`` with ROLE in :data:`ROLES` (the settings named in the YAML)."""
    from fape.experiment import headroom_roles

    names = dict(zip(ROLES, headroom_roles(exp)))
    results, runs = {}, {}
    for task in exp.tasks:
        for role in ("without", "with", "oracle"):
            name = names[role]
            run = out / "clf" / Path(task).stem / name / f"s{seed}"
            res = run / "eval" / "test" / "results.json"
            if res.is_file():
                r = json.loads(res.read_text())
                results[f"{task}/{role}"] = {k: r[k] for k in ("accuracy", "macro_f1", "n", "chance")}
                runs[f"{task}/{role}"] = run
    return results, runs


# ---------------------------------------------------------------- report
def bar_chart(results: dict, tasks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(tasks))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k, (setting, label) in enumerate((("without", "Fa-Net"), ("with", "FaPE-GAN + Fa-Net"))):
        vals = [100 * results.get(f"{t}/{setting}", {}).get("accuracy", np.nan) for t in tasks]
        ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=label)
    chance = next(iter(results.values()))["chance"]
    ax.axhline(100 * chance, color="gray", ls="--", lw=1, label=f"chance ({100 * chance:.1f}%)")
    ax.set_xticks(x, [t.upper() for t in tasks])
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.1f}"


def headroom_lines(tasks: list[str], experiment: dict) -> list[str]:
    """Headroom = oracle - without and the share of it that synthesis recovers, per task that has an
    oracle, from the experiment's results (intervals resample the test images; one seed here,
    ``fape experiment`` over seeds resamples seeds too)."""
    from fape.classifiers.compare import headroom_text

    return [f"- {t.upper()}: " + headroom_text(experiment["tasks"][t]["headroom"])
            for t in tasks if experiment["tasks"].get(t, {}).get("headroom")]


def report_md(res: dict) -> str:
    c, tasks, paper = res["classification"], res["tasks"], res["paper"]
    row = lambda s: [c.get(f"{t}/{s}", {}).get("accuracy") for t in tasks]  # noqa: E731
    oracle_tasks = [t for t in tasks if f"{t}/oracle" in c]
    chance = next(iter(c.values()))["chance"]
    lines = [
        "# fape quickstart report", "",
        f"Size preset `{res['size']}` (`{res['experiment']}`), seed {res['seed']}; every number below was "
        f"computed by this run (synthetic faces: compare only the direction and size of the GAN's effect with "
        f"the paper).", "",
        "## Expression recognition (the F2ED paper's Table 5 layout)", "",
        "| model / acc (%) | " + " | ".join(t.upper() for t in tasks) + " |",
        "|---|" + "---|" * len(tasks),
        "| Fa-Net | " + " | ".join(_fmt(v) for v in row("without")) + " |",
        "| FaPE-GAN + Fa-Net | " + " | ".join(_fmt(v) for v in row("with")) + " |",
        "| Fa-Net, all real (oracle) | " + " | ".join(_fmt(v) if t in oracle_tasks else "-" for t, v in
                                                     zip(tasks, row("oracle"))) + " |",
        *(f"| paper: {name} | " + " | ".join(f"{vals[t]:.1f}" if t in vals else "-" for t in tasks) + " |"
          for name, vals in paper.items()),
        "", f"Chance level: {100 * chance:.1f}% (prediction is always over all classes). Splits keep "
        f"every view and frame of a subject's expression on one side. The oracle row trains the rare cells "
        f"that the other rows hold back (ER-UE: rare expressions; ER-UP: the rare pose) with the same "
        f"validation and test parts: the upper bound that synthesis aims at.", "",
        *headroom_lines(tasks, res["experiment_results"]), "",
        "![accuracy with and without synthesis](accuracy.png)", "",
        "Confusion matrices: " + ", ".join(f"[{k.replace('/', ' ')}](<{run}/eval/test/confusion.png>)"
                                           for k, run in res["runs"].items()), "",
        "## Synthesis", "",
        "Sample grid (source | target pose mask | generated | target), held-out subjects:", "",
        f"![GAN samples]({res['gan_grid']})", "",
        "Images synthesized per task: " + ", ".join(f"{t} {n}" for t, n in res["synthesized"].items()), "",
        "## Synthesis quality (pairs of the ER-SS validation part: unseen by G and by the classifier)", "",
    ]
    lines += [res["metrics_md"], "", "## Stage times (this machine)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v['seconds']:.1f} |" for k, v in res["stages"].items()]
    return "\n".join(lines) + "\n"


def quickstart_experiment(size: str, seed: int, out: Path):
    """The packaged experiment of ``size`` for one seed, on the quick start's own data and folder.
    Seed ``seed`` draws the split, the GAN, the synthesized sets and the classifiers."""
    from fape.config import load_config, override
    from fape.experiment import ExperimentConfig

    exp = load_config(ExperimentConfig, SIZES[size].experiment)
    return override(exp, {"data.root": str(out / "data" / "synth"), "seeds": [seed], "split_seed": 0,
                          "out": str(out / "experiment"), "redraw": "all"})


def check_same_run(out: Path, size: str, seed: int, fresh: bool) -> None:
    """Finished stages are reused, so a folder made with another size or seed would hand its old
    data, table and metrics to this run under the new seed's name: refuse it (``--fresh`` starts
    over), then record this run's size and seed (``quickstart.json``)."""
    from fape.config import describe_changes, stored_changes
    from fape.errors import OutputError

    want = {"size": size, "seed": int(seed)}
    changes = stored_changes(out / RUN_FILE, want)
    if changes is None and (out / STAGES_FILE).is_file() and json.loads((out / STAGES_FILE).read_text()) and not fresh:
        raise OutputError(f"{out} holds a quick start whose size and seed were not recorded ({out / RUN_FILE} is "
                          f"missing): pass --fresh to start over there, or choose another --out")
    if changes and not fresh:
        raise OutputError(f"{out} holds another quick start ({out / RUN_FILE}): {describe_changes(changes)}; "
                          f"choose another --out, or pass --fresh to start over there")
    atomic_write_json(out / RUN_FILE, want)


def run(out: Path, size: str = "small", seed: int = 0, fresh: bool = False, workers: int | None = None) -> Path:
    from fape.data.preview import contact_sheet, mask_previews
    from fape.data.synth import synthesize
    from fape.experiment import count_images, default_workers, run_experiment, synth_config
    from fape.utils.checkpoint import latest_checkpoint

    t0 = time.perf_counter()
    # --out may be a user's folder: write (and --fresh clean) only an empty one or our own
    claim_dir(out, (STAGES_FILE,))
    if not (out / STAGES_FILE).exists():
        atomic_write_json(out / STAGES_FILE, {})  # marks the folder as a quick start's from the start
    if fresh:  # trainers resume from what they find: start them from nothing
        import shutil

        for d in ("experiment", "metrics"):
            shutil.rmtree(out / d, ignore_errors=True)
    check_same_run(out, size, seed, fresh)
    stages = Stages(out, fresh, total=5)
    exp = quickstart_experiment(size, seed, out)
    data, exp_dir = Path(exp.data.root), Path(exp.out)
    stages.run("data", lambda: synthesize(synth_config(exp, data, seed), data, overwrite=True),
               done=lambda: (data / "dataset.json").exists())

    sheet = out / "contact_sheet.png"
    stages.run("masks", lambda: (contact_sheet(data, sheet, n=24, seed=seed),
                                 mask_previews(data, out / "masks", "lines", n=8)), done=sheet.exists)

    workers = default_workers() if workers is None else workers
    stages.run("experiment", lambda: run_experiment(exp, exp_dir, workers),
               done=lambda: (exp_dir / "results.json").exists())
    seed_dir = exp_dir / "seeds" / f"s{seed}"
    clf, runs = cell_results(exp, exp_dir, seed)
    gan_run = seed_dir / "gan"
    stages.run("metrics", lambda: run_metrics(gan_run, data, runs[f"{exp.tasks[0]}/without"], out,
                                              SIZES[size].metric_pairs),
               done=lambda: (out / "metrics" / "metrics.json").exists())

    def report() -> None:
        grid = sorted((gan_run / "samples").glob("*.png"))[-1]
        synth = json.loads((seed_dir / "synth" / "synth.json").read_text())
        splits = json.loads((seed_dir / "splits.json").read_text())
        results = {"size": size, "experiment": SIZES[size].experiment, "seed": seed, "workers": workers,
                   "tasks": list(exp.tasks), "classification": clf,
                   "runs": {k: str(r.relative_to(out)) for k, r in runs.items()},
                   "splits": splits["tasks"], "oracle_splits": splits["oracle"],
                   "synthesized": {t: count_images(p) for t, p in synth.items()},
                   "paper": exp.paper,
                   "gan_checkpoint": str(latest_checkpoint(gan_run)), "gan_grid": str(grid.relative_to(out)),
                   "metrics": json.loads((out / "metrics" / "metrics.json").read_text()),
                   "experiment_results": json.loads((exp_dir / "results.json").read_text()),
                   "stages": stages.times}
        results["metrics_md"] = (out / "metrics" / "metrics.md").read_text().split("\n", 1)[1]
        bar_chart(clf, list(exp.tasks), out / "accuracy.png")
        atomic_write_json(out / "results.json", {k: v for k, v in results.items()
                                                 if k not in ("metrics_md", "experiment_results")})
        atomic_write_text(out / "report.md", report_md(results))

    stages.run("report", report, done=lambda: False)
    total = time.perf_counter() - t0
    print(f"fape quickstart: done in {total:.0f} s; report: {out / 'report.md'}")
    return out / "report.md"


def register(groups) -> None:
    p = groups.add_parser("quickstart", help="run the whole pipeline on the embedded synthetic set",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="fape-quickstart", help="report folder (default: ./fape-quickstart)")
    p.add_argument("--size", choices=list(SIZES), default="small",
                   help="preset: the packaged experiment it runs (configs/experiments/f2ed_table5*.yaml)")
    p.add_argument("--seed", type=int, default=0, help="draws the split, the GAN, the synthesized sets and Fa-Net")
    p.add_argument("--fresh", action="store_true", help="re-run every stage instead of reusing finished ones")
    p.add_argument("--workers", type=int, default=None,
                   help="classifier cells trained at once (default: 2 on a CPU with 2+ cores, 1 on a GPU)")
    p.set_defaults(handler=lambda args, overrides: run(Path(args.out), args.size, args.seed, args.fresh,
                                                       args.workers) and 0)
