"""``fape gan synthesize``: a balancing set of faces redrawn in new poses by a trained generator.

Plans
=====
A plan is a list of *targets*: ``{expression?, pose?, subject?, count}``. A key that is left out
means "any". Counts are measured on the **counted rows**: the manifest rows listed in ``--rows``
(all rows when omitted), so a train split is balanced against itself. A target asks for at least
``count`` images in its cell; its deficit (``count`` - real images in the cell - images already
planned for earlier targets that fall in the cell) is synthesized. Targets are resolved in order,
so overlapping targets never double-count.

The deficit of a target is spread over the keys it leaves open by *water-filling*: every
concrete (expression, pose, subject) cell the target covers gets images, the emptiest first,
until the deficit is used (ties broken by the seeded generator). E.g. ``{pose: half_left,
count: 500}`` adds half-left images to the expression x subject cells that have fewest.
A concrete cell is only used when it is feasible: a source exists for its (expression,
subject) and a real landmark set exists for its pose. The built-in plans:

* ``balance-pose`` (per expression): for every expression, every pose is topped up to the
  count of that expression's most common pose (ER-UP: the rare half-left pose is filled up
  inside each expression, leaving the expression distribution as it was).
* ``balance-expression``: every expression is topped up to the **median** expression count
  (ER-UE: the rare 20% of expressions reach the others' count; the median ignores a single
  very frequent class). ``balance-expression:max`` tops up to the maximum instead.
* ``balance-identity``: every subject is topped up to the median subject count
  (``balance-identity:max`` to the maximum). Rows without a subject are ignored.

(``balance-pose:median`` also exists.) A YAML plan lists explicit targets (see
``configs/plans/example.yaml``)::

    targets:
      - {pose: half_left, count: 500}
      - {expression: disgust, count: 300}
      - {expression: fear, pose: bird_view, subject: s03, count: 20}

Jobs
====
A plan resolves to jobs ``(source row, target pose, landmark row)``; expression, label and
subject are the source's (G changes pose, not expression or identity). Sources are rows allowed
by ``--rows`` that have landmarks (``landmarks_ok``): the same subject and expression in an
*other* pose when one exists, else the same subject and expression in any pose (then G only
redraws); cells whose subject is open take sources of that subject. Sources of a cell are used
in turn (a seeded permutation, repeated), so each is used about equally often.

The target pose comes from a real landmark set of an allowed image in that pose (same expression
preferred, any subject), aligned to the source face by :func:`align_landmarks` (centroid and
overall scale), so G sees a realistic mask at the source face's position and size.

Output
======
A fape dataset (source label/pose names, the generator's image size and channels) with
provenance columns ``source_path, source_row, landmarks_source, landmarks_row,
checkpoint_sha256, seed, synthetic``; ``landmarks.npy`` holds the aligned target landmarks fed to
G. ``plan_report.json`` / ``plan_report.md`` hold the counts per cell before and after.

The run is deterministic for a seed (all choices from one ``numpy`` Generator; G in eval mode).
Images are written batch by batch into ``.OUT.partial/`` with ``progress.json`` updated
atomically after each batch; a rerun with the same run/plan/seed/data/rows resumes after the last
completed batch; the index files are written at the end and the folder renamed into place.

Quality gate: ``synthesize(..., gate=fn)`` calls ``fn(generated, source, target_landmarks, jobs)``
per batch (tensors ``[B, C, H, W]`` in [-1, 1], ``[B, 68, 2]`` pixels, list of job dicts) and keeps
the images where the returned ``[B]`` bool array is True; rejected jobs are counted in the report.
``fape.gan.gates`` holds the built-in ones (``--gate pose:0.15``).
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from fape.data.format import DatasetInfo, FaceIndex, read_index, save_image, write_index
from fape.data.splits import read_rows  # noqa: F401  (re-exported: the --rows reader)
from fape.utils.io import DATASET_MARKERS, atomic_write_json, atomic_write_text, check_replaceable, replace_dir

PLAN_KEYS = ("expression", "pose", "subject")
BUILTIN_PLANS = ("balance-pose", "balance-expression", "balance-identity")
_DEFAULT_STAT = {"balance-pose": "max", "balance-expression": "median", "balance-identity": "median"}
PROGRESS = "progress.json"
IMAGES_PER_DIR = 1000


def _user_error(msg: str) -> Exception:
    from fape.errors import UserError

    return UserError(msg)


# ---------------------------------------------------------------- alignment
def align_landmarks(target_lm: np.ndarray, source_lm: np.ndarray) -> np.ndarray:
    """Move a target-pose landmark set onto the source face: ``[68, 2] -> [68, 2]``.

    Similarity transform without rotation: the output has the source's centroid and overall
    scale (RMS distance of the points to their centroid), and the target's shape. The overall
    scale (not the inter-ocular distance) is used because eye distance shrinks with yaw.
    """
    t = np.asarray(target_lm, np.float64)
    s = np.asarray(source_lm, np.float64)
    if t.shape != (68, 2) or s.shape != (68, 2):
        raise ValueError(f"align_landmarks needs two [68, 2] arrays, got {t.shape} and {s.shape}")
    if not (np.isfinite(t).all() and np.isfinite(s).all()):
        raise ValueError("align_landmarks: landmarks contain NaN/inf")
    ct, cs = t.mean(0), s.mean(0)
    st = np.sqrt(((t - ct) ** 2).sum(1).mean())
    ss = np.sqrt(((s - cs) ** 2).sum(1).mean())
    if st <= 1e-9 or ss <= 1e-9:
        raise ValueError("align_landmarks: degenerate landmark set (all points coincide)")
    return ((t - ct) * (ss / st) + cs).astype(np.float32)


# ---------------------------------------------------------------- plans
@dataclass
class Target:
    count: int
    expression: str | None = None
    pose: str | None = None
    subject: str | None = None

    def key(self) -> dict:
        return {k: getattr(self, k) for k in PLAN_KEYS if getattr(self, k) is not None}


@dataclass
class Plan:
    name: str  # builtin name or the YAML file path
    kind: str  # "balance-pose" | ... | "yaml"
    stat: str | None = None  # builtin plans: "max" | "median"
    targets: list[Target] = field(default_factory=list)  # YAML plans (builtins are resolved on data)
    text_sha256: str = ""  # YAML file content hash (part of the resume fingerprint)


def parse_plan(spec: str, info: DatasetInfo | None = None) -> Plan:
    """``balance-pose[:max|median]`` ... or a YAML file; names are checked against ``info``."""
    spec = str(spec)
    base, _, stat = spec.partition(":")
    if base in BUILTIN_PLANS:
        stat = stat or _DEFAULT_STAT[base]
        if stat not in ("max", "median"):
            raise _user_error(f"plan {spec!r}: unknown statistic {stat!r} (use {base}:max or {base}:median)")
        return Plan(name=spec, kind=base, stat=stat)
    p = Path(spec)
    if p.suffix.lower() not in (".yaml", ".yml") and not p.is_file():
        raise _user_error(f"unknown plan {spec!r}: use one of {', '.join(BUILTIN_PLANS)} or a PLAN.yaml file")
    if not p.is_file():
        raise _user_error(f"plan file not found: {p}")
    text = p.read_text()
    return Plan(name=str(p), kind="yaml", targets=parse_targets(text, where=str(p), info=info),
                text_sha256=hashlib.sha256(text.encode()).hexdigest())


def parse_targets(text: str, where: str = "plan", info: DatasetInfo | None = None) -> list[Target]:
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise _user_error(f"{where} is not valid YAML: {e}") from None
    if not isinstance(raw, dict) or "targets" not in raw:
        raise _user_error(f"{where}: expected a mapping with a 'targets' list")
    unknown = sorted(set(raw) - {"targets", "name", "description"})
    if unknown:
        raise _user_error(f"{where}: unknown top-level key(s) {unknown} (allowed: targets, name, description)")
    items = raw["targets"]
    if not isinstance(items, list) or not items:
        raise _user_error(f"{where}: 'targets' must be a non-empty list")
    out = []
    for i, t in enumerate(items):
        w = f"{where}: target {i + 1}"
        if not isinstance(t, dict):
            raise _user_error(f"{w} must be a mapping like {{pose: half_left, count: 500}}, got {t!r}")
        bad = sorted(set(t) - set(PLAN_KEYS) - {"count"})
        if bad:
            raise _user_error(f"{w}: unknown key(s) {bad} (allowed: expression, pose, subject, count)")
        c = t.get("count")
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise _user_error(f"{w}: 'count' must be a non-negative integer, got {c!r}")
        vals = {k: (None if t.get(k) is None else str(t[k])) for k in PLAN_KEYS}
        if info is not None:
            if vals["pose"] is not None and vals["pose"] not in info.pose_names:
                raise _user_error(f"{w}: unknown pose {vals['pose']!r} (the dataset has {info.pose_names})")
            if vals["expression"] is not None and vals["expression"] not in info.label_names:
                raise _user_error(f"{w}: unknown expression {vals['expression']!r} "
                                  f"(the dataset has {len(info.label_names)}: {info.label_names[:12]}...)")
        out.append(Target(count=c, **vals))
    return out


def builtin_targets(plan: Plan, counted: pd.DataFrame, sources: pd.DataFrame, poses: Sequence[str]) -> list[Target]:
    """Targets of a built-in plan from the counts of the counted rows."""
    agg = np.max if plan.stat == "max" else np.median
    exprs = sorted(sources["expression"].unique())
    if plan.kind == "balance-pose":
        out = []
        for e in exprs:
            c = counted.loc[counted["expression"] == e, "pose"].value_counts().reindex(list(poses), fill_value=0)
            goal = int(math.ceil(agg(c.to_numpy())))
            out += [Target(count=goal, expression=e, pose=p) for p in poses]
        return out
    if plan.kind == "balance-expression":
        c = counted["expression"].value_counts().reindex(exprs, fill_value=0)
        goal = int(math.ceil(agg(c.to_numpy())))
        return [Target(count=goal, expression=e) for e in exprs]
    if plan.kind == "balance-identity":
        subj = sorted(s for s in sources["subject"].unique() if s != "")
        if not subj:
            raise _user_error("balance-identity: the dataset has no subject ids")
        c = counted.loc[counted["subject"] != "", "subject"].value_counts().reindex(subj, fill_value=0)
        goal = int(math.ceil(agg(c.to_numpy())))
        return [Target(count=goal, subject=s) for s in subj]
    raise ValueError(plan.kind)


def waterfill(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """How many to add to each cell so that ``n`` additions go to the emptiest cells first."""
    counts = np.asarray(counts, np.int64)
    add = np.zeros(len(counts), np.int64)
    if n <= 0 or len(counts) == 0:
        return add
    lo, hi = int(counts.min()), int(counts.max()) + n // len(counts) + 1
    while lo < hi:  # largest level L with sum(max(0, L - c)) <= n
        mid = (lo + hi + 1) // 2
        if np.maximum(0, mid - counts).sum() <= n:
            lo = mid
        else:
            hi = mid - 1
    add = np.maximum(0, lo - counts)
    rem = n - int(add.sum())
    if rem:
        at_level = np.flatnonzero(counts + add == lo)
        add[rng.choice(at_level, rem, replace=False)] += 1
    return add


@dataclass
class Job:
    source_row: int
    pose: str
    landmarks_row: int


@dataclass
class ResolvedPlan:
    jobs: list[Job]
    targets: list[Target]
    report: dict


def resolve_plan(index: FaceIndex, plan: Plan, rows: np.ndarray | None, seed: int) -> ResolvedPlan:
    """Turn a plan into the ordered list of jobs (deterministic for ``seed``)."""
    rng = np.random.default_rng(seed)
    m = index.manifest
    allowed = np.arange(len(m)) if rows is None else np.unique(np.asarray(rows, np.int64))
    counted = m.iloc[allowed]
    ok = allowed[index.landmarks_ok[allowed]]
    src = m.iloc[ok]
    if len(src) == 0:
        raise _user_error(f"{index.root}: none of the allowed rows has landmarks (landmarks_ok.npy is all False); "
                          f"run `fape data landmarks {index.root}` first")
    poses = [p for p in index.info.pose_names if (src["pose"] == p).any()]
    if plan.kind == "yaml":
        targets = plan.targets
    else:
        targets = builtin_targets(plan, counted, src, poses)

    # row groups (positions are manifest rows)
    src_e, src_p, src_s = (src[c].to_numpy(dtype=object) for c in ("expression", "pose", "subject"))
    by_es: dict[tuple, np.ndarray] = {}
    for key, idx in pd.Series(np.arange(len(src))).groupby([src_e, src_s]).groups.items():
        by_es[key] = ok[np.sort(np.asarray(idx))]
    lm_pose: dict[str, np.ndarray] = {p: ok[src_p == p] for p in poses}
    lm_pose_expr: dict[tuple, np.ndarray] = {}
    for key, idx in pd.Series(np.arange(len(src))).groupby([src_p, src_e]).groups.items():
        lm_pose_expr[key] = ok[np.sort(np.asarray(idx))]
    pose_of = m["pose"].to_numpy(dtype=object)

    before: dict[tuple, int] = {k: int(v) for k, v in counted.groupby(["expression", "pose", "subject"]).size().items()}
    planned: dict[tuple, int] = {}
    cursor: dict[tuple, int] = {}  # per (e, p, s): position in its source permutation
    perms: dict[tuple, np.ndarray] = {}
    jobs: list[Job] = []
    target_report = []
    exprs_all = sorted({k[0] for k in by_es})
    subj_all = sorted({k[1] for k in by_es})
    for t in targets:
        have_real = int(_match(counted, t).sum())
        have_planned = sum(v for k, v in planned.items() if _cell_matches(k, t))
        deficit = max(0, t.count - have_real - have_planned)
        cells = [(e, p, s) for e in ([t.expression] if t.expression is not None else exprs_all)
                 for p in ([t.pose] if t.pose is not None else poses)
                 for s in ([t.subject] if t.subject is not None else subj_all)
                 if (e, s) in by_es and p in lm_pose]
        entry = {**t.key(), "count": t.count, "real": have_real, "planned_before": have_planned,
                 "deficit": deficit, "added": 0}
        if deficit and not cells:
            why = []
            if t.pose is not None and t.pose not in lm_pose:
                why.append(f"no allowed image with landmarks in pose {t.pose!r}")
            if not why:
                why.append("no allowed source image with landmarks for this expression/subject")
            entry["unmet"] = deficit
            entry["reason"] = "; ".join(why)
            target_report.append(entry)
            continue
        cur = np.array([before.get(c, 0) + planned.get(c, 0) for c in cells], np.int64)
        add = waterfill(cur, deficit, rng)
        for c, k in zip(cells, add):
            if not k:
                continue
            e, p, s = c
            cand = by_es[(e, s)]
            other = cand[pose_of[cand] != p]
            cand = other if len(other) else cand
            key = (e, p, s)
            if key not in perms:
                perms[key] = rng.permutation(cand)
                cursor[key] = 0
            pool = lm_pose_expr.get((p, e))
            if pool is None or not len(pool):
                pool = lm_pose[p]
            lm_pick = rng.integers(0, len(pool), int(k))
            perm = perms[key]
            for j in range(int(k)):
                r = int(perm[(cursor[key] + j) % len(perm)])
                jobs.append(Job(source_row=r, pose=p, landmarks_row=int(pool[lm_pick[j]])))
            cursor[key] += int(k)
            planned[key] = planned.get(key, 0) + int(k)
        entry["added"] = deficit
        target_report.append(entry)

    report = plan_report(before, planned, target_report, plan, index.info, len(allowed), len(ok))
    return ResolvedPlan(jobs=jobs, targets=list(targets), report=report)


def _match(df: pd.DataFrame, t: Target) -> np.ndarray:
    sel = np.ones(len(df), bool)
    for k in PLAN_KEYS:
        v = getattr(t, k)
        if v is not None:
            sel &= df[k].to_numpy(dtype=object) == v
    return sel


def _cell_matches(cell: tuple, t: Target) -> bool:
    return all(getattr(t, k) is None or getattr(t, k) == v for k, v in zip(PLAN_KEYS, cell))


def plan_report(before: dict, added: dict, targets: list[dict], plan: Plan, info: DatasetInfo,
                n_counted: int, n_sources: int) -> dict:
    cells = sorted(set(before) | set(added))
    rows = [{"expression": e, "pose": p, "subject": s, "before": before.get((e, p, s), 0),
             "added": added.get((e, p, s), 0), "after": before.get((e, p, s), 0) + added.get((e, p, s), 0)}
            for e, p, s in cells]

    def marginal(keys):
        out: dict = {}
        for r in rows:
            k = "/".join(str(r[x]) for x in keys)
            d = out.setdefault(k, {"before": 0, "added": 0, "after": 0})
            for f in ("before", "added", "after"):
                d[f] += r[f]
        return out

    return {
        "plan": plan.name, "kind": plan.kind, "stat": plan.stat,
        "counted_rows": n_counted, "source_rows": n_sources,
        "total": {"before": sum(before.values()), "added": sum(added.values()),
                  "after": sum(before.values()) + sum(added.values())},
        "targets": targets,
        "unmet": sum(t.get("unmet", 0) for t in targets),
        "per_expression": marginal(["expression"]),
        "per_pose": marginal(["pose"]),
        "per_subject": marginal(["subject"]),
        "per_expression_pose": marginal(["expression", "pose"]),
        "cells": rows,
    }


def report_markdown(report: dict, pose_names: Sequence[str]) -> str:
    lines = [f"# Synthesis plan `{report['plan']}`", "",
             f"Counted rows: {report['counted_rows']}; source rows with landmarks: {report['source_rows']}; "
             f"images before {report['total']['before']}, added {report['total']['added']}, "
             f"after {report['total']['after']}.", ""]
    if report.get("rejected_by_gate"):
        lines += [f"Rejected by the quality gate: {report['rejected_by_gate']}", ""]
    if report["unmet"]:
        lines += [f"**Unmet: {report['unmet']} images could not be planned** (see targets).", ""]
    lines += ["## Targets", "", "| cell | count | real | added | unmet |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        cell = ", ".join(f"{k}={t[k]}" for k in PLAN_KEYS if k in t) or "all"
        lines.append(f"| {cell} | {t['count']} | {t['real']} | {t['added']} | {t.get('unmet', 0)}"
                     f"{' (' + t['reason'] + ')' if 'reason' in t else ''} |")
    ep = report["per_expression_pose"]
    exprs = sorted({k.split("/")[0] for k in ep})
    lines += ["", "## Expression x pose (before -> after)", "",
              "| expression | " + " | ".join(pose_names) + " |", "|---" * (len(pose_names) + 1) + "|"]
    for e in exprs:
        cells = []
        for p in pose_names:
            d = ep.get(f"{e}/{p}", {"before": 0, "after": 0})
            cells.append(f"{d['before']} -> {d['after']}")
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    lines += ["", "## Subjects (before -> after)", "", "| subject | before | added | after |", "|---|---|---|---|"]
    for s, d in sorted(report["per_subject"].items()):
        lines.append(f"| {s or '(none)'} | {d['before']} | {d['added']} | {d['after']} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- rows
# ---------------------------------------------------------------- the synthesis loop
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


def _fingerprint(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def job_table(index: FaceIndex, jobs: list[Job], src_lm: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Manifest columns that do not depend on the pixels, and the aligned target landmarks."""
    m = index.manifest
    lm = np.empty((len(jobs), 68, 2), np.float32)
    for j, job in enumerate(jobs):
        lm[j] = align_landmarks(src_lm[job.landmarks_row], src_lm[job.source_row])
    s = np.array([j.source_row for j in jobs], np.int64)
    lr = np.array([j.landmarks_row for j in jobs], np.int64)
    table = pd.DataFrame({
        "path": [f"images/{k // IMAGES_PER_DIR:04d}/{k:07d}.png" for k in range(len(jobs))],
        "subject": m["subject"].to_numpy()[s] if len(s) else [],
        "expression": m["expression"].to_numpy()[s] if len(s) else [],
        "label": m["label"].to_numpy()[s] if len(s) else [],
        "pose": [j.pose for j in jobs],
        "sequence": m["sequence"].to_numpy()[s] if len(s) else [],
        "frame": m["frame"].to_numpy()[s] if len(s) else [],
        "source": "fape-gan",
        "source_path": m["path"].to_numpy()[s] if len(s) else [],
        "source_row": s,
        "landmarks_source": m["path"].to_numpy()[lr] if len(lr) else [],
        "landmarks_row": lr,
    })
    return table, lm


def synthesize(run: str | Path, data: str | Path, plan: str | Plan, out: str | Path, rows: np.ndarray | None = None,
               rows_file: str | None = None, seed: int = 0, batch_size: int = 64, device: str | None = None,
               use_ema: bool = True, overwrite: bool = False, gate: Callable | None = None,
               progress: bool = True, _fail_after_batches: int | None = None) -> SynthesisResult | None:
    """Plan, then generate; see the module docstring. Returns None when the plan needs no images."""
    import torch
    from tqdm import tqdm

    from fape.data.dataset import FaceDataset, to_float, to_uint8
    from fape.gan import io as gan_io

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"output folder already exists: {out} (pass --overwrite to replace it)")
    check_replaceable(out, DATASET_MARKERS)  # before any work: only a synthesized set is replaced
    if batch_size < 1:
        raise _user_error(f"--batch-size must be >= 1, got {batch_size}")
    index = read_index(data)
    if not index.landmarks_ok.any():
        raise _user_error(f"{data}: the dataset has no landmarks (landmarks_ok.npy is all False); "
                          f"run `fape data landmarks {data}` first")
    if index.info.image_size is None:
        raise _user_error(f"{data}: images have different sizes; re-import with --size")
    if not isinstance(plan, Plan):
        plan = parse_plan(plan, index.info)
    elif plan.kind == "yaml":
        parse_targets(yaml_dump_targets(plan.targets), plan.name, index.info)  # check names

    try:
        loaded = gan_io.load_generator(run, use_ema=use_ema, device=device or _default_device())
    except FileNotFoundError as e:
        raise _user_error(f"--run {run}: {e}") from None
    cfg = loaded.cfg
    size = int(cfg.data.image_size)
    channels = int(cfg.data.channels)

    resolved = resolve_plan(index, plan, rows, seed)
    jobs = resolved.jobs
    report = resolved.report
    if not jobs:
        return None

    faces = FaceDataset(index, size=(size, size), channels=channels, cache=False, progress=False)
    table, target_lm = job_table(index, jobs, faces.landmarks)
    table["checkpoint_sha256"] = loaded.sha256
    table["seed"] = int(seed)
    table["synthetic"] = 1

    fp_payload = {
        "checkpoint_sha256": loaded.sha256, "plan": plan.name, "plan_sha256": plan.text_sha256,
        "seed": int(seed), "data_manifest_sha256": index.info.manifest_sha256,
        "rows": None if rows is None else hashlib.sha256(np.asarray(rows, np.int64).tobytes()).hexdigest(),
        "use_ema": use_ema, "image_size": size, "channels": channels,
        "gate": None if gate is None else getattr(gate, "__qualname__", repr(gate)),
        "jobs": hashlib.sha256(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes()
                               + target_lm.tobytes()).hexdigest(),
    }
    fingerprint = _fingerprint(fp_payload)
    partial = out.parent / f".{out.name}.partial"
    done, rejected = 0, []
    if partial.exists():
        prog = _read_progress(partial)
        if prog is not None and prog.get("fingerprint") == fingerprint:
            done, rejected = int(prog["done"]), list(prog.get("rejected", []))
        elif overwrite and prog is not None:  # our own interrupted run (it has a progress file)
            shutil.rmtree(partial)
        elif prog is None:
            raise _user_error(f"{partial} exists but holds no readable {PROGRESS}, so it is not an interrupted "
                              f"synthesis of fape's; it is left alone: move it away or choose another --out")
        else:
            old = prog.get("inputs", {})
            diff = [k for k in fp_payload if old.get(k) != fp_payload[k]]
            raise _user_error(
                f"{partial} holds an interrupted synthesis of different inputs"
                f"{' (differs in: ' + ', '.join(diff) + ')' if diff else ''}; delete it or pass --overwrite")
    partial.mkdir(parents=True, exist_ok=True)
    if not done:
        _write_progress(partial, fingerprint, fp_payload, 0, [], len(jobs))

    G = loaded.G.eval()
    first = next(G.parameters(), None)
    dev = first.device if first is not None else torch.device(device or _default_device())
    t0 = time.perf_counter()
    resumed_from = done
    if done and progress:
        print(f"resuming {partial}: {done}/{len(jobs)} images already done", file=sys.stderr)
    bar = tqdm(total=len(jobs), initial=done, desc="synthesize", unit="img", disable=not progress)
    batches = 0
    with torch.inference_mode():
        for b0 in range(done, len(jobs), batch_size):
            b1 = min(b0 + batch_size, len(jobs))
            src_rows = table["source_row"].to_numpy()[b0:b1]
            imgs = np.stack([faces.load(int(r)) for r in src_rows])  # [B, H, W, C] uint8
            x = to_float(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()).to(dev)
            lm = torch.from_numpy(target_lm[b0:b1]).to(dev)
            mask = gan_io.pose_masks(lm, cfg.data).to(dev)
            y = G(x, mask)
            keep = np.ones(b1 - b0, bool)
            if gate is not None:
                keep = np.asarray(gate(y, x, lm, table.iloc[b0:b1].to_dict("records")), bool).reshape(-1)
            out_u8 = to_uint8(y).permute(0, 2, 3, 1).cpu().numpy()
            for k in range(b1 - b0):
                if keep[k]:
                    save_image(partial / table["path"].iat[b0 + k], out_u8[k])
                else:
                    rejected.append(b0 + k)
            done = b1
            _write_progress(partial, fingerprint, fp_payload, done, rejected, len(jobs))
            bar.update(b1 - b0)
            batches += 1
            if _fail_after_batches is not None and batches >= _fail_after_batches:
                raise _Interrupt(f"simulated interruption after {batches} batch(es)")
    bar.close()
    secs = time.perf_counter() - t0

    keep_mask = np.ones(len(jobs), bool)
    keep_mask[np.asarray(rejected, np.int64)] = False
    if not keep_mask.any():
        raise _user_error("the quality gate rejected every synthesized image; nothing to write")
    manifest = table[keep_mask].reset_index(drop=True)
    report = {**report, "rejected_by_gate": len(rejected), "written": int(keep_mask.sum())}
    info = DatasetInfo(
        name=out.name, label_names=list(index.info.label_names), pose_names=list(index.info.pose_names),
        image_size=[size, size], channels=channels,
        origin={"kind": "fape-gan-synthesis", "run": str(run), "checkpoint": str(loaded.checkpoint),
                "weights": loaded.weights.name, "sha256": loaded.sha256, "plan": plan.name,
                "plan_targets": [{**t.key(), "count": t.count} for t in resolved.targets],
                "source_data": str(data), "source_manifest_sha256": index.info.manifest_sha256,
                "rows": rows_file, "seed": int(seed), "use_ema": use_ema},
        landmarks_source="fape-gan-target-pose",
        extra={"plan_report": "plan_report.json"},
    )
    write_index(partial, manifest, info, target_lm[keep_mask], np.ones(int(keep_mask.sum()), bool))
    atomic_write_json(partial / "plan_report.json", report)
    atomic_write_text(partial / "plan_report.md", report_markdown(report, index.info.pose_names))
    (partial / PROGRESS).unlink(missing_ok=True)
    replace_dir(partial, out, DATASET_MARKERS)
    n = int(keep_mask.sum())
    made = len(jobs) - resumed_from
    if progress:
        print(f"synthesized {made} images in {secs:.1f}s ({made / max(secs, 1e-9):.1f} images/s); "
              f"{n} written to {out}" + (f", {len(rejected)} rejected by the gate" if rejected else ""))
    return SynthesisResult(out=out, written=n, rejected=len(rejected), jobs=len(jobs), seconds=secs,
                           resumed_from=resumed_from)


def yaml_dump_targets(targets: list[Target]) -> str:
    import yaml

    return yaml.safe_dump({"targets": [{**t.key(), "count": t.count} for t in targets]})


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _read_progress(partial: Path) -> dict | None:
    p = partial / PROGRESS
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_progress(partial: Path, fingerprint: str, inputs: dict, done: int, rejected: list, total: int) -> None:
    atomic_write_json(partial / PROGRESS, {"fingerprint": fingerprint, "inputs": inputs, "done": done,
                                           "total": total, "rejected": rejected})


# ---------------------------------------------------------------- CLI
def cli_synthesize(args, overrides) -> int:
    from fape.gan.gates import parse_gate

    try:
        gate = parse_gate(args.gate)
    except ValueError as e:
        raise _user_error(f"--gate: {e}") from None
    rows = None
    if args.rows:
        rows = read_rows(args.rows, len(read_index(args.data).manifest))
    res = synthesize(args.run, args.data, args.plan, args.out, rows=rows, rows_file=args.rows, seed=args.seed,
                     batch_size=args.batch_size, device=args.device, use_ema=not args.no_ema,
                     overwrite=args.overwrite, gate=gate)
    if res is None:
        print(f"plan {args.plan}: every cell already has its target count; nothing to synthesize "
              f"(no dataset written)")
    return 0
