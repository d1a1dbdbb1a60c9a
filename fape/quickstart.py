"""``fape quickstart``: the main job on the embedded default, no data or weights needed.

Stages (each timed, skipped when its output is already complete unless ``--fresh``):

1. ``data``: render the synthetic multi-pose face set (54 expressions x 4 poses) with its
   ground-truth landmarks;
2. ``masks``: pose-mask previews and a contact sheet (image | landmarks | mask);
3. ``report``: ``report.md`` and ``results.json`` with the data summary and stage times.

Later issues add the GAN, synthesis, classifier and metric stages to the same runner.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from fape.utils.io import atomic_write_json, atomic_write_text

SIZES = {  # --size preset -> overrides of SynthConfig
    "tiny": dict(identities=2, expressions=54, frames=1, image_size=32, render_scale=2),
    "small": dict(identities=12, expressions=54, frames=2, image_size=64),
    "medium": dict(identities=40, expressions=54, frames=3, image_size=96),
}


class Stages:
    """Run named stages in order; a stage whose ``done`` check passes is reused, not re-run."""

    def __init__(self, out: Path, fresh: bool):
        self.out, self.fresh = out, fresh
        self.log_path = out / "stages.json"
        self.times: dict[str, dict] = {}
        self.count = 0
        if self.log_path.exists() and not fresh:
            self.times = json.loads(self.log_path.read_text())

    def run(self, name: str, fn, done) -> None:
        self.count += 1
        n = self.count
        if not self.fresh and done() and name in self.times:
            print(f"[{n}] {name}: reused ({self.times[name]['seconds']:.1f} s when it ran)")
            return
        print(f"[{n}] {name} ...", flush=True)
        t = time.perf_counter()
        fn()
        self.times[name] = {"seconds": round(time.perf_counter() - t, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_json(self.log_path, self.times)
        print(f"[{n}] {name}: {self.times[name]['seconds']:.1f} s", flush=True)


def run(out: Path, size: str = "small", seed: int = 0, fresh: bool = False) -> Path:
    from fape.data.dataset import summary
    from fape.data.format import read_index
    from fape.data.preview import contact_sheet, mask_previews
    from fape.data.synth import SynthConfig, synthesize

    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out, fresh)
    data = out / "data" / "synth"
    synth_cfg = dataclasses.replace(SynthConfig(), out=str(data), seed=seed, **SIZES[size])

    stages.run("data", lambda: synthesize(synth_cfg, data, overwrite=True),
               done=lambda: (data / "dataset.json").exists())
    sheet = out / "contact_sheet.png"
    masks = out / "masks"
    stages.run("masks", lambda: (contact_sheet(data, sheet, n=24, seed=seed),
                                 mask_previews(data, masks, "lines", n=8),
                                 mask_previews(data, masks, "heatmaps", n=4)),
               done=lambda: sheet.exists())

    def report() -> None:
        s = summary(read_index(data))
        results = {"size": size, "seed": seed, "data": s, "stages": stages.times}
        atomic_write_json(out / "results.json", results)
        atomic_write_text(out / "report.md", _report_md(results, data, sheet))

    stages.run("report", report, done=lambda: False)
    total = sum(v["seconds"] for v in stages.times.values())
    print(f"fape quickstart: done in {total:.0f} s of stage time; report: {out / 'report.md'}")
    return out / "report.md"


def _report_md(results: dict, data: Path, sheet: Path) -> str:
    s = results["data"]
    lines = [
        "# fape quickstart report",
        "",
        f"Size preset `{results['size']}`, seed {results['seed']}.",
        "",
        "## Synthetic multi-pose data",
        "",
        f"- folder: `{data}`",
        f"- {s['images']} images, {s['classes']} expressions, {s['subjects']} subjects, "
        f"image size {s['image_size']} x {s['channels']} channels",
        f"- landmarks: {s['landmarks_ok']} of {s['images']} ({s['landmarks_source']})",
        "- images per pose: " + ", ".join(f"{k} {v}" for k, v in s["poses"].items()),
        "",
        f"![contact sheet]({sheet.name})",
        "",
        "## Stage times (this machine)",
        "",
        "| stage | seconds |",
        "|---|---|",
    ] + [f"| {k} | {v['seconds']:.1f} |" for k, v in results["stages"].items()]
    return "\n".join(lines) + "\n"


def register(groups) -> None:
    p = groups.add_parser("quickstart", help="run the whole pipeline on the embedded synthetic set",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="fape-quickstart", help="report folder (default: ./fape-quickstart)")
    p.add_argument("--size", choices=list(SIZES), default="small", help="data/model size preset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="re-run every stage instead of reusing finished ones")
    p.set_defaults(handler=lambda args, overrides: run(Path(args.out), args.size, args.seed, args.fresh) and 0)
