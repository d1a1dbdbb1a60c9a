"""``fape gan synthesize``: a balancing set of faces redrawn in new poses by a trained generator.

What to add is a *plan* resolved to *jobs* (``fape.gan.plans``); this module runs the jobs through
G in four steps: check the inputs, resume an interrupted run, generate, write.

Output
======
A fape dataset (source label/pose names, the generator's image size and channels) with
provenance columns per image: ``source_path, source_row, source_expression`` (the face G
redrew), ``landmarks_source, landmarks_row`` (the row whose landmarks give the target: a row in
the target pose, or the first donor's row in the target expression), ``donor_pairs,
donor_paths`` (expression transfer: every donor pair, ``A>B`` rows / paths in the source's and
the target expression, ``;``-separated; "" otherwise), ``landmark_method`` (``align-centroid-scale`` or ``retarget-similarity``,
``fape.gan.plans``), ``generator`` (the run folder), ``checkpoint_sha256, seed, synthetic``.
``expression`` / ``label`` are the output's (the target's under expression transfer).
``landmarks.npy`` holds the target landmarks fed to G. ``plan_report.json`` / ``plan_report.md``
hold the counts per cell before and after.

The run is deterministic for a seed (all choices from one ``numpy`` Generator; G in eval mode).
Images are written batch by batch into ``.OUT.partial/`` with ``progress.json`` updated
atomically after each batch; a rerun with the same run/plan/seed/data/rows resumes after the last
completed batch; the index files are written at the end and the folder renamed into place.

Quality gate: ``synthesize(..., gate=fn)`` calls ``fn(generated, source, target_landmarks, jobs)``
per batch (tensors ``[B, C, H, W]`` in [-1, 1], ``[B, 68, 2]`` pixels, the batch's manifest records:
``expression`` / ``label`` the drawn (target) expression's name / data id, ``source_expression``,
``pose`` ...) and keeps the images where the returned ``[B]`` bool array is True; rejected jobs are
counted in the report, and the gate's ``repr`` is in the report and the resume fingerprint. A gate
with ``check_labels(names)`` is given the drawn expression names before any image is made. When it
rejects every image, :class:`AllRejected` is raised (nothing is written).
``fape.gan.gates`` holds the built-in ones (``--gate pose:0.15``, ``--gate expression:RUN``).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from fape.data.format import DatasetInfo, FaceIndex, read_index, save_image, write_index
from fape.data.retarget import retarget
from fape.data.splits import read_rows
from fape.errors import UserError
from fape.gan.plans import Job, Plan, ResolvedPlan, align_landmarks, check_target_names, parse_plan, report_markdown
from fape.gan.plans import resolve_plan
from fape.utils.io import DATASET_MARKERS, atomic_write_json, atomic_write_text, check_replaceable, replace_dir

if TYPE_CHECKING:  # torch-importing modules stay out of `fape --help`
    from fape.data.dataset import FaceDataset
    from fape.gan.io import LoadedGenerator

PROGRESS = "progress.json"
IMAGES_PER_DIR = 1000


@dataclass
class SynthesisResult:
    out: Path
    written: int
    rejected: int
    jobs: int
    seconds: float
    resumed_from: int = 0


class _Interrupt(Exception):
    pass


class AllRejected(UserError):
    """The quality gate rejected every synthesized image. ``partial``: the interrupted-run folder
    left behind (a rerun with the same inputs ends the same way; delete it to start afresh)."""

    def __init__(self, message: str, partial: Path):
        super().__init__(message)
        self.partial = partial


def job_table(index: FaceIndex, jobs: list[Job], src_lm: np.ndarray, generator: str = "") -> tuple[pd.DataFrame, np.ndarray]:
    """Manifest columns that do not depend on the pixels (with the provenance of every image),
    and the target landmarks ``[N, 68, 2]`` pixels at G's size (``src_lm`` at that size)."""
    m = index.manifest
    lm = np.empty((len(jobs), 68, 2), np.float32)
    for j, job in enumerate(jobs):
        if job.donors:
            pairs = np.asarray(job.donors, np.int64)  # [K, 2] rows (in a, in b)
            lm[j] = retarget(src_lm[job.source_row], src_lm[pairs[:, 0]], src_lm[pairs[:, 1]])
        else:
            lm[j] = align_landmarks(src_lm[job.landmarks_row], src_lm[job.source_row])
    s = np.array([j.source_row for j in jobs], np.int64)
    lr = np.array([j.landmarks_row for j in jobs], np.int64)
    src_expr = m["expression"].to_numpy()[s] if len(s) else np.zeros(0, object)
    expr = np.array([j.expression or e for j, e in zip(jobs, src_expr)], dtype=object)
    lut = {n: i for i, n in enumerate(index.info.label_names)}
    paths = m["path"].to_numpy()
    table = pd.DataFrame({
        "path": [f"images/{k // IMAGES_PER_DIR:04d}/{k:07d}.png" for k in range(len(jobs))],
        "subject": m["subject"].to_numpy()[s] if len(s) else [],
        "expression": expr,
        "label": np.array([lut[e] for e in expr], np.int64),
        "pose": [j.pose for j in jobs],
        "sequence": m["sequence"].to_numpy()[s] if len(s) else [],
        "frame": m["frame"].to_numpy()[s] if len(s) else [],
        "source": "fape-gan",
        "source_path": paths[s] if len(s) else [],
        "source_row": s,
        "source_expression": src_expr,
        "landmarks_source": paths[lr] if len(lr) else [],
        "landmarks_row": lr,
        "donor_pairs": [";".join(f"{a}>{b}" for a, b in j.donors) for j in jobs],
        "donor_paths": [";".join(f"{paths[a]}>{paths[b]}" for a, b in j.donors) for j in jobs],
        "landmark_method": [j.method for j in jobs],
        "generator": str(generator),
    })
    return table, lm


# ---------------------------------------------------------------- 1. check inputs
def check_inputs(run: str | Path, data: str | Path, plan: str | Plan, out: Path, overwrite: bool, batch_size: int,
                 use_ema: bool, device: str | None,
                 index: FaceIndex | None = None) -> tuple[FaceIndex, Plan, LoadedGenerator]:
    """Everything a user can get wrong, before any work: ``(index, plan, loaded generator)``.
    ``index``: the dataset at ``data`` already read (``read_index``); None reads it."""
    from fape.gan import io as gan_io

    if out.exists() and not overwrite:
        raise FileExistsError(f"output folder already exists: {out} (pass --overwrite to replace it)")
    check_replaceable(out, DATASET_MARKERS)  # before any work: only a synthesized set is replaced
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    index = read_index(data) if index is None else index
    if not index.landmarks_ok.any():
        raise UserError(f"{data}: the dataset has no landmarks (landmarks_ok.npy is all False); "
                        f"run `fape data landmarks {data}` first")
    if index.info.image_size is None:
        raise UserError(f"{data}: images have different sizes; re-import with --image-size")
    if not isinstance(plan, Plan):
        plan = parse_plan(plan, index.info)
    elif plan.kind == "yaml":
        check_target_names(plan.targets, plan.name, index.info)
    try:
        loaded = gan_io.load_generator(run, use_ema=use_ema, device=device or _default_device())
    except FileNotFoundError as e:
        raise UserError(f"--run {run}: {e}") from None
    return index, plan, loaded


# ---------------------------------------------------------------- 2. resume
@dataclass
class Progress:
    """The state of a run in ``.OUT.partial/``, mirrored in its ``progress.json`` after every batch."""
    partial: Path
    fingerprint: str  # sha256 of ``inputs``: a rerun resumes only onto the same inputs
    inputs: dict
    total: int  # jobs
    done: int = 0  # jobs finished (written or rejected), always a prefix of the job list
    rejected: list[int] = field(default_factory=list)  # job numbers the gate rejected

    def save(self) -> None:
        atomic_write_json(self.partial / PROGRESS, {"fingerprint": self.fingerprint, "inputs": self.inputs,
                                                    "done": self.done, "total": self.total,
                                                    "rejected": self.rejected})


def _rows_sha(rows: np.ndarray | None) -> str | None:
    return None if rows is None else hashlib.sha256(np.asarray(rows, np.int64).tobytes()).hexdigest()


def fingerprint_inputs(loaded: LoadedGenerator, plan: Plan, index: FaceIndex, rows: np.ndarray | None, seed: int, use_ema: bool,
                       gate: Callable | None, table: pd.DataFrame, target_lm: np.ndarray,
                       donor_rows: np.ndarray | None = None) -> dict:
    """What a resumed run must share with the interrupted one (JSON-able)."""
    return {
        "checkpoint_sha256": loaded.sha256, "plan": plan.name, "plan_sha256": plan.text_sha256,
        "seed": int(seed), "data_manifest_sha256": index.info.manifest_sha256,
        "rows": _rows_sha(rows), "donor_rows": _rows_sha(donor_rows),
        "use_ema": use_ema, "image_size": int(loaded.cfg.data.image_size), "channels": int(loaded.cfg.data.channels),
        "gate": None if gate is None else getattr(gate, "__qualname__", repr(gate)),
        "jobs": hashlib.sha256(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()
                               + target_lm.tobytes()).hexdigest(),
    }


def resume(out: Path, inputs: dict, total: int, overwrite: bool) -> Progress:
    """Open ``.OUT.partial/``: continue an interrupted run of the same inputs, else start afresh.

    A partial folder of other inputs is replaced only with ``overwrite``, and one without a
    readable ``progress.json`` (not ours) never."""
    partial = out.parent / f".{out.name}.partial"
    state = Progress(partial, _fingerprint(inputs), inputs, total)
    if partial.exists():
        prog = _read_progress(partial)
        if prog is not None and prog.get("fingerprint") == state.fingerprint:
            state.done, state.rejected = int(prog["done"]), list(prog.get("rejected", []))
        elif overwrite and prog is not None:  # our own interrupted run (it has a progress file)
            shutil.rmtree(partial)
        elif prog is None:
            raise UserError(f"{partial} exists but holds no readable {PROGRESS}, so it is not an interrupted "
                            f"synthesis of fape's; it is left alone: move it away or choose another --out")
        else:
            old = prog.get("inputs", {})
            diff = [k for k in inputs if old.get(k) != inputs[k]]
            raise UserError(
                f"{partial} holds an interrupted synthesis of different inputs"
                f"{' (differs in: ' + ', '.join(diff) + ')' if diff else ''}; delete it or pass --overwrite")
    partial.mkdir(parents=True, exist_ok=True)
    if not state.done:
        state.save()
    return state


def _fingerprint(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _read_progress(partial: Path) -> dict | None:
    p = partial / PROGRESS
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ---------------------------------------------------------------- 3. generate
def generate(loaded: LoadedGenerator, faces: FaceDataset, table: pd.DataFrame, target_lm: np.ndarray, state: Progress, batch_size: int,
             gate: Callable | None, device: str | None, progress: bool,
             _fail_after_batches: int | None = None) -> float:
    """Run the jobs after ``state.done`` through G (and the gate) batch by batch, saving images
    into ``state.partial`` and the progress after each batch. Returns the seconds spent."""
    import torch
    from tqdm import tqdm

    from fape.data.dataset import to_float, to_uint8
    from fape.gan import io as gan_io
    from fape.gan.data import generate

    G = loaded.G.eval()
    first = next(G.parameters(), None)
    dev = first.device if first is not None else torch.device(device or _default_device())
    t0 = time.perf_counter()
    total = state.total
    if state.done and progress:
        print(f"resuming {state.partial}: {state.done}/{total} images already done", file=sys.stderr)
    bar = tqdm(total=total, initial=state.done, desc="synthesize", unit="img", disable=not progress)
    batches = 0
    with torch.inference_mode():
        for b0 in range(state.done, total, batch_size):
            b1 = min(b0 + batch_size, total)
            src_rows = table["source_row"].to_numpy()[b0:b1]
            imgs = np.stack([faces.load(int(r)) for r in src_rows])  # [B, H, W, C] uint8
            x = to_float(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()).to(dev)
            lm = torch.from_numpy(target_lm[b0:b1]).to(dev)  # [B, 68, 2] pixels, aligned onto the source
            src_lm = torch.from_numpy(faces.landmarks[src_rows]).to(dev)  # [B, 68, 2] pixels
            mask = gan_io.pose_masks(lm, loaded.cfg.data).to(dev)
            y = generate(G, {"source_f": x, "mask": mask, "source_landmarks": src_lm, "target_landmarks": lm})
            keep = np.ones(b1 - b0, bool)
            if gate is not None:
                keep = np.asarray(gate(y, x, lm, table.iloc[b0:b1].to_dict("records")), bool).reshape(-1)
            out_u8 = to_uint8(y).permute(0, 2, 3, 1).cpu().numpy()
            for k in range(b1 - b0):
                if keep[k]:
                    save_image(state.partial / table["path"].iat[b0 + k], out_u8[k])
                else:
                    state.rejected.append(b0 + k)
            state.done = b1
            state.save()
            bar.update(b1 - b0)
            batches += 1
            if _fail_after_batches is not None and batches >= _fail_after_batches:
                raise _Interrupt(f"simulated interruption after {batches} batch(es)")
    bar.close()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- 4. write
def write_output(state: Progress, out: Path, table: pd.DataFrame, target_lm: np.ndarray, info: DatasetInfo,
                 report: dict) -> int:
    """Index files and plan report of the kept images into ``state.partial``, then rename it to
    ``out``. Returns the number of images written."""
    keep_mask = np.ones(state.total, bool)
    keep_mask[np.asarray(state.rejected, np.int64)] = False
    if not keep_mask.any():
        raise AllRejected(f"the quality gate rejected all {state.total} synthesized images; nothing written to {out}",
                          state.partial)
    manifest = table[keep_mask].reset_index(drop=True)
    rejected = table["expression"].to_numpy()[~keep_mask]  # the drawn expression of each rejected face
    report = {**report, "rejected_by_gate": len(state.rejected), "written": int(keep_mask.sum()),
              "rejected_by_gate_per_expression": {str(e): int((rejected == e).sum()) for e in sorted(set(rejected))}}
    partial = state.partial
    write_index(partial, manifest, info, target_lm[keep_mask], np.ones(int(keep_mask.sum()), bool))
    atomic_write_json(partial / "plan_report.json", report)
    atomic_write_text(partial / "plan_report.md", report_markdown(report, info.pose_names))
    (partial / PROGRESS).unlink(missing_ok=True)
    replace_dir(partial, out, DATASET_MARKERS)
    return int(keep_mask.sum())


def output_info(out: Path, index: FaceIndex, loaded: LoadedGenerator, plan: Plan, resolved: ResolvedPlan,
                run: str | Path, data: str | Path, rows_file: str | None, seed: int, use_ema: bool,
                donor_rows_file: str | None = None) -> DatasetInfo:
    """The synthesized set's ``dataset.json``: the source's names, G's image format, provenance."""
    size, channels = int(loaded.cfg.data.image_size), int(loaded.cfg.data.channels)
    return DatasetInfo(
        name=out.name, label_names=list(index.info.label_names), pose_names=list(index.info.pose_names),
        image_size=[size, size], channels=channels,
        origin={"kind": "fape-gan-synthesis", "run": str(run), "checkpoint": str(loaded.checkpoint),
                "weights": loaded.weights.name, "sha256": loaded.sha256, "plan": plan.name,
                "plan_targets": [{**t.key(), "count": t.count} for t in resolved.targets],
                "source_data": str(data), "source_manifest_sha256": index.info.manifest_sha256,
                "rows": rows_file, "donor_rows": donor_rows_file, "seed": int(seed), "use_ema": use_ema,
                "landmark_method": resolved.report.get("landmark_method", "")},
        landmarks_source="fape-gan-target-pose",
        extra={"plan_report": "plan_report.json"},
    )


# ---------------------------------------------------------------- the four steps
def synthesize(run: str | Path, data: str | Path, plan: str | Plan, out: str | Path, rows: np.ndarray | None = None,
               rows_file: str | None = None, seed: int = 0, batch_size: int = 64, device: str | None = None,
               use_ema: bool = True, overwrite: bool = False, gate: Callable | None = None,
               progress: bool = True, _fail_after_batches: int | None = None, donor_rows: np.ndarray | None = None,
               donor_rows_file: str | None = None, index: FaceIndex | None = None) -> SynthesisResult | None:
    """Plan, then generate; see the module docstring. Returns None when the plan needs no images.
    ``donor_rows``: rows that only give expression-transfer donor pairs (``fape.gan.plans``).
    ``index``: the dataset at ``data`` already read (``read_index``), so a caller that read it to
    check ``rows`` does not make it read twice; None reads it."""
    from fape.data.dataset import FaceDataset

    out = Path(out)
    index, plan, loaded = check_inputs(run, data, plan, out, overwrite, batch_size, use_ema, device, index)
    resolved = resolve_plan(index, plan, rows, seed, donor_rows)
    if not resolved.jobs:
        return None
    size, channels = int(loaded.cfg.data.image_size), int(loaded.cfg.data.channels)
    faces = FaceDataset(index, size=(size, size), channels=channels, cache=False, progress=False)
    table, target_lm = job_table(index, resolved.jobs, faces.landmarks, str(run))
    table["checkpoint_sha256"] = loaded.sha256
    table["seed"] = int(seed)
    table["synthetic"] = 1

    inputs = fingerprint_inputs(loaded, plan, index, rows, seed, use_ema, gate, table, target_lm, donor_rows)
    check = getattr(gate, "check_labels", None)
    if check is not None:  # a judge that cannot read a drawn expression fails before any work
        try:
            check(sorted(set(table["expression"])))
        except ValueError as e:
            raise UserError(f"--gate: {e}") from None
    state = resume(out, inputs, len(resolved.jobs), overwrite)
    resumed_from = state.done
    secs = generate(loaded, faces, table, target_lm, state, batch_size, gate, device, progress, _fail_after_batches)
    info = output_info(out, index, loaded, plan, resolved, run, data, rows_file, seed, use_ema, donor_rows_file)
    report = {**resolved.report, "gate": None if gate is None else repr(gate)}
    n = write_output(state, out, table, target_lm, info, report)
    made = state.total - resumed_from
    rejected = len(state.rejected)
    if progress:
        print(f"synthesized {made} images in {secs:.1f}s ({made / max(secs, 1e-9):.1f} images/s); "
              f"{n} written to {out}" + (f", {rejected} rejected by the gate" if rejected else ""))
    return SynthesisResult(out=out, written=n, rejected=rejected, jobs=state.total, seconds=secs,
                           resumed_from=resumed_from)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ---------------------------------------------------------------- CLI
def cli_synthesize(args, overrides) -> int:
    from fape.gan.gates import parse_gate

    try:
        gate = parse_gate(args.gate)
    except ValueError as e:
        raise UserError(f"--gate: {e}") from None
    index = read_index(args.data)  # read once: checks the row files here, then is passed on to synthesize
    n = len(index.manifest)
    rows = read_rows(args.rows, n) if args.rows else None
    donor_rows = read_rows(args.donor_rows, n, "--donor-rows") if args.donor_rows else None
    res = synthesize(args.run, args.data, args.plan, args.out, rows=rows, rows_file=args.rows, seed=args.seed,
                     batch_size=args.batch_size, device=args.device, use_ema=not args.no_ema,
                     overwrite=args.overwrite, gate=gate, donor_rows=donor_rows, donor_rows_file=args.donor_rows,
                     index=index)
    if res is None:
        print(f"plan {args.plan}: every cell already has its target count; nothing to synthesize "
              f"(no dataset written)")
    return 0
