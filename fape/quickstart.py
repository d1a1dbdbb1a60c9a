"""``fape quickstart``: the whole system on the embedded synthetic set, no data or weights needed.

Stages (each timed, reused when its output is complete unless ``--fresh``):

1. ``data``: render the synthetic multi-pose set (54 expressions x 4 poses) with landmarks;
2. ``masks``: pose-mask previews and a contact sheet;
3. ``splits``: the F2ED tasks ER-SS, ER-UE, ER-UP, ER-ZID as hashed split files, and the rows
   no task tests on (the GAN trains on those only, so no synthesized image saw a test face);
4. ``gan``: FaPE-GAN (the ``quick`` setting at this size) with sample grids;
5. ``synthesis``: a balancing set per task: the rare pose of ER-UP (``balance-pose``), the rare
   expressions of ER-UE (``balance-expression``), and +50% per pose for ER-SS and ER-ZID;
6. ``classifiers``: Fa-Net (LightCNN-9) per task without and with the synthesized images;
7. ``metrics``: paired L1/PSNR/SSIM, pose error, identity, domain FID/KID (features of the
   ER-SS classifier), expression agreement; and the classification metrics;
8. ``report``: ``report.md`` (the paper's Table 5 layout), ``results.json``, a bar chart.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from fape.utils.io import atomic_write_json, atomic_write_text, claim_dir

STAGES_FILE = "stages.json"  # per-stage times; also marks a folder as a quick start's output

TASKS = ("er-ss", "er-ue", "er-up", "er-zid")
ORACLE_TASKS = ("er-ue", "er-up")  # tasks with rare cells held back: their "all real" upper bound
PAPER_TABLE5 = {"without": {"er-ss": 72.7, "er-ue": 27.3, "er-up": 36.3, "er-zid": 6.7},
                "with": {"er-ss": 73.6, "er-ue": 30.8, "er-up": 39.9, "er-zid": 7.1}}

# --size preset -> data, GAN, classifier and metric sizes. The GAN and Fa-Net are narrowed so a
# CPU finishes: "small" aims at minutes on 2 cores, "medium" at under an hour. Fa-Net here uses
# Adam with a cosine schedule: the paper's SGD schedule barely moves a from-scratch LightCNN in
# a dozen epochs. It reads gray faces, as LightCNN does: with colour (random backgrounds) or at
# 48 px it reaches half the ER-SS accuracy of gray 64 px in the recipe search of docs/results.md.
SIZES = {
    "tiny": dict(synth=dict(identities=5, frames=1, image_size=32, render_scale=2),
                 gan=["--generator.width=8", "--discriminator.width=8", "--discriminator.layers=2",
                      "--train.max_steps=30", "--train.batch_size=16", "--train.sample_every=30"],
                 clf=dict(width=0.25, size=32, channels=1, epochs=1, batch=32, optim="adam", lr=0.003), pairs=32),
    "small": dict(synth=dict(identities=12, frames=2, image_size=64),
                  gan=["--train.epochs=3", "--train.sample_every=400"],
                  # 56 px and 8 epochs fit the 10-minute budget: 64 px x 12 epochs doubles ER-SS accuracy
                  # (docs/results.md) but took 14.5 min
                  clf=dict(width=0.25, size=56, channels=1, epochs=8, batch=64, optim="adam", lr=0.003), pairs=256),
    # configs/data/synth_medium.yaml and configs/experiments/f2ed_table5_medium.yaml hold the same sizes
    "medium": dict(synth=dict(identities=20, frames=2, image_size=64),
                   gan=["--generator.width=32", "--discriminator.width=32", "--train.epochs=6",
                        "--train.sample_every=1000"],
                   clf=dict(width=0.25, size=64, channels=1, epochs=12, batch=64, optim="adam", lr=0.003), pairs=512),
}


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
PLANS = {"er-up": "balance-pose", "er-ue": "balance-expression", "default": "per-pose:1.5"}


def make_splits(data: Path, out: Path, seed: int) -> dict:
    """Split files per task, and the rows no task tests on (written to ``gan_rows.txt``)."""
    from fape.experiment import make_splits as split_tasks, untested_rows

    files = split_tasks(data, list(TASKS), seed)
    oracle = {t: split_tasks(data, [t], seed, {"oracle": True})[t] for t in ORACLE_TASKS}
    np.savetxt(out / "gan_rows.txt", untested_rows(data, files), fmt="%d")
    atomic_write_json(out / "splits_oracle.json", oracle)
    atomic_write_json(out / "splits.json", files)
    return files


def clf_config(data: Path, split_file: str, synth: str, size: dict, seed: int, name: str, extra=()):
    from fape.classifiers.config import ClfConfig
    from fape.config import load_config

    c = size["clf"]
    return load_config(ClfConfig, None, [
        f"--name={name}", "--model.name=fa_net_lightcnn9", f"--model.kwargs={{width: {c['width']}}}",
        f"--data.root={data}", f"--data.split={split_file}", f"--data.image_size={c['size']}", f"--data.channels={c['channels']}",
        f"--data.synthetic={synth}", "--data.mix=-1", "--data.augment=flip",
        f"--optim.name={c['optim']}", f"--optim.lr={c['lr']}", "--optim.schedule=cosine", "--optim.weight_decay=5e-4",
        f"--train.epochs={c['epochs']}", f"--train.batch_size={c['batch']}", f"--train.seed={seed}",
        f"--train.mixed_precision={_bf16_or_no()}", "--train.channels_last=true", *extra])


def _bf16_or_no() -> str:
    """bf16 autocast: ~1.8x faster LightCNN steps on this project's CPU (benchmarks/clf_step.py);
    off on GPUs without bf16."""
    import torch

    return "bf16" if not torch.cuda.is_available() or torch.cuda.is_bf16_supported() else "no"


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def default_workers() -> int:
    """Classifier cells trained at once: 2 on a CPU with at least 2 cores, else 1. A narrow
    LightCNN keeps 2 threads only partly busy, so two 1-thread cells finish sooner than two
    2-thread cells in turn (benchmarks/parallel_cells.py); a GPU is left to one process."""
    import os

    import torch

    return 1 if torch.cuda.is_available() else max(1, min(2, os.cpu_count() or 1))


def train_classifiers(data: Path, split_files: dict, oracle_files: dict, synth: dict, out: Path, size: dict,
                      seed: int, workers: int = 1) -> dict:
    """Every (task, setting) cell; ``workers`` > 1 trains that many cells at once in spawned
    processes with ``cpu_count // workers`` threads each. A cell's result does not depend on the
    order, only (through float summation order) slightly on its thread count."""
    import os

    from fape.classifiers.train_eval import train_and_eval

    cells = []
    for task in TASKS:
        for setting in ("without", "with", "oracle"):
            if (setting == "with" and not synth.get(task)) or (setting == "oracle" and task not in oracle_files):
                continue
            split = oracle_files[task] if setting == "oracle" else split_files[task]
            cfg = clf_config(data, split, synth.get(task, "") if setting == "with" else "", size, seed,
                             f"{task}-{setting}")
            cells.append((f"{task}/{setting}", cfg, out / "clf" / f"{task}-{setting}"))

    results = {}

    def record(key: str, res: dict) -> None:
        results[key] = {k: res[k] for k in ("accuracy", "macro_f1", "n", "chance")}
        task, setting = key.split("/")
        print(f"    {task} {setting}: test accuracy {res['accuracy']:.3f} (n={res['n']})", flush=True)

    if workers <= 1:
        for key, cfg, run in cells:
            record(key, train_and_eval(cfg, run))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from fape.data.splits import split_meta

        # largest cells first (training images per epoch), so no worker is left with a long cell at the end
        size_of = lambda c: split_meta(c[1].data.split)["counts"]["train"] + _count(c[1].data.synthetic)  # noqa: E731
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                 initargs=(threads,)) as pool:
            futures = {pool.submit(train_and_eval, cfg, run): key for key, cfg, run in sorted(cells, key=size_of, reverse=True)}
            for fut in as_completed(futures):
                record(futures[fut], fut.result())
    results = {key: results[key] for key, _, _ in cells}  # table order, whatever finished first
    atomic_write_json(out / "clf" / "results.json", results)
    return results


def run_metrics(gan_run: Path, data: Path, clf_run: Path, out: Path, pairs: int) -> dict:
    from fape.metrics.gan_report import gan_metrics, write_report

    rep = gan_metrics(gan_run, data, max_pairs=pairs, allow_random_backbone=True,
                      features=f"run:{clf_run}", progress=False, identity_pairs=min(pairs, 64))
    write_report(rep, out / "metrics")
    return rep


# ---------------------------------------------------------------- report
def bar_chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(TASKS))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k, (setting, label) in enumerate((("without", "Fa-Net"), ("with", "FaPE-GAN + Fa-Net"))):
        vals = [100 * results.get(f"{t}/{setting}", {}).get("accuracy", np.nan) for t in TASKS]
        ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=label)
    ax.axhline(100 / 54, color="gray", ls="--", lw=1, label="chance (1/54)")
    ax.set_xticks(x, [t.upper() for t in TASKS])
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.1f}"


def headroom_lines(res: dict) -> list[str]:
    """Headroom = oracle - without and the share of it that synthesis recovers, per oracle task,
    with intervals that resample the test images (one seed here; `fape experiment` resamples seeds too)."""
    from fape.classifiers.evaluate import headroom_bootstrap, headroom_text

    lines = []
    for t in ORACLE_TASKS:
        runs = [res["out"] / "clf" / f"{t}-{s}" for s in ("with", "without", "oracle")]
        if not all((r / "eval" / "test" / "predictions.csv").is_file() for r in runs):
            lines.append(f"- {t.upper()}: n/a (a cell is missing)")
            continue
        rows, correct = zip(*(correct_by_row(r) for r in runs))
        assert all(np.array_equal(rows[0], r) for r in rows), "the three settings share one test part"
        lines.append(f"- {t.upper()}: " + headroom_text(headroom_bootstrap(*([c] for c in correct),
                                                                         images=[rows[0]])))
    return lines


def correct_by_row(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """The run's test rows ``[N]`` (sorted manifest rows) and whether each was classified right ``[N]`` bool."""
    from fape.classifiers.evaluate import read_predictions

    df = read_predictions(run / "eval" / "test" / "predictions.csv").sort_values("row")
    return df["row"].to_numpy(), (df["label"] == df["pred"]).to_numpy()


def report_md(res: dict) -> str:
    c = res["classification"]
    row = lambda s: [c.get(f"{t}/{s}", {}).get("accuracy") for t in TASKS]  # noqa: E731
    lines = [
        "# fape quickstart report", "",
        f"Size preset `{res['size']}`, seed {res['seed']}; every number below was computed by this run "
        f"(synthetic faces: compare only the direction and size of the GAN's effect with the paper).", "",
        "## Expression recognition (the F2ED paper's Table 5 layout)", "",
        "| model / acc (%) | " + " | ".join(t.upper() for t in TASKS) + " |",
        "|---|" + "---|" * len(TASKS),
        "| Fa-Net | " + " | ".join(_fmt(v) for v in row("without")) + " |",
        "| FaPE-GAN + Fa-Net | " + " | ".join(_fmt(v) for v in row("with")) + " |",
        "| Fa-Net, all real (oracle) | " + " | ".join(_fmt(v) if t in ORACLE_TASKS else "-" for t, v in
                                                     zip(TASKS, row("oracle"))) + " |",
        "| paper: Fa-Net | " + " | ".join(f"{PAPER_TABLE5['without'][t]:.1f}" for t in TASKS) + " |",
        "| paper: FaPE-GAN + Fa-Net | " + " | ".join(f"{PAPER_TABLE5['with'][t]:.1f}" for t in TASKS) + " |",
        "", f"Chance level: {100 / 54:.1f}% (54 expressions; prediction is always over all 54). Splits keep "
        f"every view and frame of a subject's expression on one side. The oracle row trains the rare cells "
        f"that the other rows hold back (ER-UE: rare expressions; ER-UP: the rare pose) with the same "
        f"validation and test parts: the upper bound that synthesis aims at.", "",
        *headroom_lines(res), "",
        "![accuracy with and without synthesis](accuracy.png)", "",
        "Confusion matrices: " + ", ".join(f"[{t} {s}](clf/{t}-{s}/eval/test/confusion.png)"
                                           for t in TASKS for s in ("without", "with") if f"{t}/{s}" in c), "",
        "## Synthesis", "",
        "Sample grid (source | target pose mask | generated | target), held-out subjects:", "",
        f"![GAN samples]({res['gan_grid']})", "",
        "Images synthesized per task: " + ", ".join(f"{t} {n}" for t, n in res["synthesized"].items()), "",
        "## Synthesis quality (held-out pairs)", "",
    ]
    lines += [res["metrics_md"], "", "## Stage times (this machine)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v['seconds']:.1f} |" for k, v in res["stages"].items()]
    return "\n".join(lines) + "\n"


def _count(path: str) -> int:
    if not path:
        return 0
    return int(json.loads((Path(path) / "dataset.json").read_text())["num_images"])


def run(out: Path, size: str = "small", seed: int = 0, fresh: bool = False, workers: int | None = None) -> Path:
    from fape.config import load_config
    from fape.data.preview import contact_sheet, mask_previews
    from fape.data.synth import SynthConfig, synthesize
    from fape.experiment import synthesize_tasks
    from fape.gan.config import GANConfig
    from fape.gan.train import train as train_gan
    from fape.utils.checkpoint import latest_checkpoint

    t0 = time.perf_counter()
    preset = SIZES[size]
    # --out may be a user's folder: write (and --fresh clean) only an empty one or our own
    claim_dir(out, (STAGES_FILE,))
    if not (out / STAGES_FILE).exists():
        atomic_write_json(out / STAGES_FILE, {})  # marks the folder as a quick start's from the start
    if fresh:  # trainers resume from what they find: start them from nothing
        import shutil

        for d in ("gan", "synth", "clf", "metrics"):
            shutil.rmtree(out / d, ignore_errors=True)
    stages = Stages(out, fresh, total=8)
    data = out / "data" / "synth"
    synth_cfg = dataclasses.replace(SynthConfig(), out=str(data), seed=seed, **preset["synth"])
    stages.run("data", lambda: synthesize(synth_cfg, data, overwrite=True), done=lambda: (data / "dataset.json").exists())

    sheet = out / "contact_sheet.png"
    stages.run("masks", lambda: (contact_sheet(data, sheet, n=24, seed=seed),
                                 mask_previews(data, out / "masks", "lines", n=8)), done=sheet.exists)

    box: dict = {}
    stages.run("splits", lambda: box.update(splits=make_splits(data, out, seed)),
               done=lambda: (out / "splits.json").exists())
    split_files = box.get("splits") or json.loads((out / "splits.json").read_text())
    oracle_files = json.loads((out / "splits_oracle.json").read_text())

    gan_run = out / "gan"

    def gan() -> None:
        if (gan_run / "config.yaml").exists():  # an interrupted run continues with its own config
            train_gan(load_config(GANConfig, gan_run / "config.yaml"), gan_run, resume=True)
            return
        over = [f"--data.root={data}", f"--data.image_size={preset['synth']['image_size']}",
                f"--data.rows={out / 'gan_rows.txt'}", f"--train.seed={seed}", *preset["gan"]]
        train_gan(load_config(GANConfig, None, QUICK_GAN + over), gan_run)

    stages.run("gan", gan, done=lambda: (gan_run / "done.json").exists())
    stages.run("synthesis", lambda: box.update(synth=synthesize_tasks(gan_run, data, split_files, PLANS,
                                                                      out / "synth", seed)),
               done=lambda: (out / "synth" / "synth.json").exists())
    synth = box.get("synth") or json.loads((out / "synth" / "synth.json").read_text())
    workers = default_workers() if workers is None else workers
    stages.run("classifiers", lambda: box.update(clf=train_classifiers(data, split_files, oracle_files, synth, out, preset, seed,
                                                                       workers)),
               done=lambda: (out / "clf" / "results.json").exists())
    clf = box.get("clf") or json.loads((out / "clf" / "results.json").read_text())
    stages.run("metrics", lambda: run_metrics(gan_run, data, out / "clf" / "er-ss-without", out, preset["pairs"]),
               done=lambda: (out / "metrics" / "metrics.json").exists())

    def report() -> None:
        grid = sorted((gan_run / "samples").glob("*.png"))[-1]
        results = {"size": size, "seed": seed, "workers": workers, "classification": clf, "splits": split_files,
                   "oracle_splits": oracle_files,
                   "synthesized": {t: _count(p) for t, p in synth.items()},
                   "gan_checkpoint": str(latest_checkpoint(gan_run)), "gan_grid": str(grid.relative_to(out)),
                   "metrics": json.loads((out / "metrics" / "metrics.json").read_text()),
                   "metrics_md": (out / "metrics" / "metrics.md").read_text().split("\n", 1)[1],
                   "stages": stages.times}
        bar_chart(clf, out / "accuracy.png")
        atomic_write_json(out / "results.json", {k: v for k, v in results.items() if k != "metrics_md"})
        atomic_write_text(out / "report.md", report_md({**results, "out": out}))

    stages.run("report", report, done=lambda: False)
    total = time.perf_counter() - t0
    print(f"fape quickstart: done in {total:.0f} s; report: {out / 'report.md'}")
    return out / "report.md"


# the quick preset (configs/gan/quick.yaml) in code, so an installed package needs no files
QUICK_GAN = ["--name=quickstart", "--data.mask_style=lines", "--data.pairs.pose=1.0", "--data.pairs.mirror=0.1",
             "--data.pairs.identity=0.05", "--generator.name=unet", "--generator.width=16", "--generator.dropout=0",
             "--discriminator.width=16", "--discriminator.condition_on_source=true", "--train.batch_size=16",
             "--train.ema_decay=0.99", "--train.ckpt_every=400", "--data.heldout_subjects=0.2"]


def register(groups) -> None:
    p = groups.add_parser("quickstart", help="run the whole pipeline on the embedded synthetic set",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="fape-quickstart", help="report folder (default: ./fape-quickstart)")
    p.add_argument("--size", choices=list(SIZES), default="small", help="data/model size preset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="re-run every stage instead of reusing finished ones")
    p.add_argument("--workers", type=int, default=None,
                   help="classifier cells trained at once (default: 2 on a CPU with 2+ cores, 1 on a GPU)")
    p.set_defaults(handler=lambda args, overrides: run(Path(args.out), args.size, args.seed, args.fresh,
                                                       args.workers) and 0)
