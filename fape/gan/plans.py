"""Synthesis plans: which faces ``fape gan synthesize`` adds, resolved to jobs on a dataset.

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
  ``balance-expression:contempt,fear,sadness`` (or ``balance-expression:max:contempt,fear``)
  tops up only the listed classes, to the median (max) over every class.
* ``balance-identity``: every subject is topped up to the median subject count
  (``balance-identity:max`` to the maximum). Rows without a subject are ignored.

(``balance-pose:median`` also exists.) A YAML plan lists explicit targets (see
``configs/plans/example.yaml``), and optionally how target landmarks are made
(``landmarks: auto | align | retarget``, below)::

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
overall scale), so G sees a realistic mask at the source face's position and size
(landmark method ``align-centroid-scale``).

Real sets: expression transfer
==============================
On a set with subject ids and one pose (CK+48, JAFFE imported by ``fape data import``) a plan
*changes the expression*: a job of cell ``(b, pose, s)`` takes a source row of subject s in
another expression a and the landmarks ``retarget(source, D_a, D_b)`` of a donor pair, two rows
of one subject in a and b (``fape.gan.transfer``, ``fape.data.retarget``; landmark method
``retarget-similarity``; the mean change of ``donors: K`` pairs of different subjects, default
3, a YAML plan's key). The output row has expression b and the source's subject. Sources and
donors are allowed rows (``--rows``) only. Subjects that never showed b get it too (the cells
with fewest images first). ``landmarks: auto`` (the default) picks ``retarget`` when every
source row has a subject, there is one pose and some subject shows two expressions, else
``align``; ``retarget`` on a set without subject ids (FER2013) is an error. A built-in plan
takes the mode as a part of its name: ``balance-expression:max:retarget`` transfers expressions
on a multi-pose set too. There a job
keeps its cell's pose: source and donor pairs are rows in that pose, so F2ED's ER-UE can draw a
rare expression, shown by one training subject, on the faces of all the others.

Donors from another set: ``donor_rows`` (``--donor-rows``) are rows that only give donor pairs
(never counted, never sources), and source rows without a subject id are one cell, subject
``""``. On a merged FER2013 + CK+48 + JAFFE set (``fape data merge``), ``--rows`` = FER2013's
Training rows and ``--donor-rows`` = the CK+48 and JAFFE rows draw FER2013's rare expressions
on FER2013 training faces with the lab sets' expression changes. Donor rows make ``landmarks:
auto`` retarget.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from fape.data.format import DatasetInfo, FaceIndex
from fape.data.retarget import METHOD as RETARGET
from fape.errors import UserError
from fape.gan.transfer import TransferPool, require_pairs

PLAN_KEYS = ("expression", "pose", "subject")
BUILTIN_PLANS = ("balance-pose", "balance-expression", "balance-identity")
_DEFAULT_STAT = {"balance-pose": "max", "balance-expression": "median", "balance-identity": "median"}
ALIGN = "align-centroid-scale"
LANDMARK_MODES = ("auto", "align", "retarget")
DONORS = 3  # donor pairs per expression-transfer job (fape.data.retarget: the mean of 3 is less noisy)


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
    classes: list[str] = field(default_factory=list)  # balance-expression:A,B: top up only these
    landmarks: str = "auto"  # "auto" | "align" | "retarget" (module docstring)
    donors: int = DONORS  # donor pairs per expression-transfer job


def parse_plan(spec: str, info: DatasetInfo | None = None) -> Plan:
    """``balance-pose[:max|median]``, ``balance-expression[:max|median][:CLASS,CLASS...]`` ... or a
    YAML file; names are checked against ``info``."""
    spec = str(spec)
    base, *parts = spec.split(":")
    if base in BUILTIN_PLANS:
        stat, classes, landmarks = _DEFAULT_STAT[base], [], "auto"
        for part in parts:
            if part in ("max", "median"):
                stat = part
            elif part in LANDMARK_MODES:
                landmarks = part
            elif base == "balance-expression" and part and not classes:
                classes = [c.strip() for c in part.split(",") if c.strip()]
                _check_expressions(classes, info, f"plan {spec!r}")
            else:
                extra = " or a class list (balance-expression:contempt,fear)" if base == "balance-expression" else ""
                raise UserError(f"plan {spec!r}: unknown part {part!r} (use {base}:max or {base}:median, "
                                f"{base}:retarget or {base}:align{extra})")
        return Plan(name=spec, kind=base, stat=stat, classes=classes, landmarks=landmarks)
    from fape.config import preset_path

    p = preset_path(spec)  # configs/plans/... names the packaged plan from any folder
    if p.suffix.lower() not in (".yaml", ".yml") and not p.is_file():
        raise UserError(f"unknown plan {spec!r}: use one of {', '.join(BUILTIN_PLANS)} or a PLAN.yaml file")
    if not p.is_file():
        raise UserError(f"plan file not found: {p}")
    text = p.read_text()
    raw = _load_plan(text, str(p))
    return Plan(name=str(p), kind="yaml", targets=_targets(raw["targets"], str(p), info),
                text_sha256=hashlib.sha256(text.encode()).hexdigest(), **_transfer_keys(raw, str(p)))


def _check_expressions(names: list[str], info: DatasetInfo | None, where: str) -> None:
    if info is not None:
        bad = [n for n in names if n not in info.label_names]
        if bad:
            raise UserError(f"{where}: unknown expression(s) {bad} (the dataset has {info.label_names[:12]})")


def _load_plan(text: str, where: str) -> dict:
    """A YAML plan's mapping, its top-level keys checked (read once: targets and transfer keys
    both come from it)."""
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{where} is not valid YAML: {e}") from None
    if not isinstance(raw, dict) or "targets" not in raw:
        raise UserError(f"{where}: expected a mapping with a 'targets' list")
    unknown = sorted(set(raw) - {"targets", "name", "description", "landmarks", "donors"})
    if unknown:
        raise UserError(f"{where}: unknown top-level key(s) {unknown} "
                        f"(allowed: targets, name, description, landmarks, donors)")
    return raw


def _transfer_keys(raw: dict, where: str) -> dict:
    """A YAML plan's ``landmarks`` and ``donors`` (module docstring)."""
    mode, k = str(raw.get("landmarks", "auto")), raw.get("donors", DONORS)
    if mode not in LANDMARK_MODES:
        raise UserError(f"{where}: landmarks must be one of {', '.join(LANDMARK_MODES)}, got {mode!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserError(f"{where}: donors must be a positive integer, got {k!r}")
    return {"landmarks": mode, "donors": k}


def _targets(items, where: str, info: DatasetInfo | None) -> list[Target]:
    if not isinstance(items, list) or not items:
        raise UserError(f"{where}: 'targets' must be a non-empty list")
    out = []
    for i, t in enumerate(items):
        w = f"{where}: target {i + 1}"
        if not isinstance(t, dict):
            raise UserError(f"{w} must be a mapping like {{pose: half_left, count: 500}}, got {t!r}")
        bad = sorted(set(t) - set(PLAN_KEYS) - {"count"})
        if bad:
            raise UserError(f"{w}: unknown key(s) {bad} (allowed: expression, pose, subject, count)")
        c = t.get("count")
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise UserError(f"{w}: 'count' must be a non-negative integer, got {c!r}")
        out.append(Target(count=c, **{k: (None if t.get(k) is None else str(t[k])) for k in PLAN_KEYS}))
    check_target_names(out, where, info)
    return out


def check_target_names(targets: list[Target], where: str, info: DatasetInfo | None) -> None:
    """Every target's pose and expression is one of the dataset's (``info``; None checks nothing)."""
    if info is None:
        return
    for i, t in enumerate(targets):
        w = f"{where}: target {i + 1}"
        if t.pose is not None and t.pose not in info.pose_names:
            raise UserError(f"{w}: unknown pose {t.pose!r} (the dataset has {info.pose_names})")
        if t.expression is not None:
            _check_expressions([t.expression], info, w)


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
        return [Target(count=goal, expression=e) for e in (plan.classes or exprs)]
    if plan.kind == "balance-identity":
        subj = sorted(s for s in sources["subject"].unique() if s != "")
        if not subj:
            raise UserError("balance-identity: the dataset has no subject ids")
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
    landmarks_row: int  # the row whose landmarks give the target (align: that pose; retarget: 1st donor in b)
    donors: list[tuple[int, int]] = field(default_factory=list)  # retarget: (row in a, row in b) pairs
    expression: str | None = None  # the output's expression (None: the source's)
    method: str = ALIGN  # landmark method: ALIGN or RETARGET


@dataclass
class ResolvedPlan:
    jobs: list[Job]
    targets: list[Target]
    report: dict


def resolve_plan(index: FaceIndex, plan: Plan, rows: np.ndarray | None, seed: int,
                 donor_rows: np.ndarray | None = None) -> ResolvedPlan:
    """Turn a plan into the ordered list of jobs (deterministic for ``seed``). ``donor_rows``:
    rows that only give expression-transfer donor pairs (never counted, never sources)."""
    rng = np.random.default_rng(seed)
    m = index.manifest
    allowed = np.arange(len(m)) if rows is None else np.unique(np.asarray(rows, np.int64))
    counted = m.iloc[allowed]
    ok = allowed[index.landmarks_ok[allowed]]
    donor_ok = None
    if donor_rows is not None:
        donor_ok = np.unique(np.asarray(donor_rows, np.int64))
        donor_ok = donor_ok[index.landmarks_ok[donor_ok]]
    src = m.iloc[ok]
    if len(src) == 0:
        raise UserError(f"{index.root}: none of the allowed rows has landmarks (landmarks_ok.npy is all False); "
                          f"run `fape data landmarks {index.root}` first")
    poses = [p for p in index.info.pose_names if (src["pose"] == p).any()]
    if plan.kind == "yaml":
        targets = plan.targets
    else:
        targets = builtin_targets(plan, counted, src, poses)
    pool = TransferPool(m, ok, donor_ok)
    method = landmark_method(plan, src, pool, index.root, donors_given=donor_ok is not None)

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
    if method == RETARGET:
        subj_all = sorted({k[0] for k in pool.source_subjects})

    def feasible(e, p, s):
        return len(pool.sources(e, p, s)) > 0 if method == RETARGET else (e, s) in by_es and p in lm_pose
    for t in targets:
        have_real = int(_match(counted, t).sum())
        have_planned = sum(v for k, v in planned.items() if _cell_matches(k, t))
        deficit = max(0, t.count - have_real - have_planned)
        cells = [(e, p, s) for e in ([t.expression] if t.expression is not None else exprs_all)
                 for p in ([t.pose] if t.pose is not None else poses)
                 for s in ([t.subject] if t.subject is not None else subj_all)
                 if deficit and feasible(e, p, s)]  # a met target needs no cells (and retarget's are costly)
        entry = {**t.key(), "count": t.count, "real": have_real, "planned_before": have_planned,
                 "deficit": deficit, "added": 0}
        if deficit and not cells:
            why = []
            if t.pose is not None and t.pose not in lm_pose:
                why.append(f"no allowed image with landmarks in pose {t.pose!r}")
            if not why:
                why.append("no allowed source of another expression with a donor pair" if method == RETARGET
                           else "no allowed source image with landmarks for this expression/subject")
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
            key = (e, p, s)
            if key not in perms:
                if method == RETARGET:
                    cand = pool.sources(e, p, s, plan.donors)
                else:
                    cand = by_es[(e, s)]
                    other = cand[pose_of[cand] != p]
                    cand = other if len(other) else cand
                perms[key] = rng.permutation(cand)
                cursor[key] = 0
            perm = perms[key]
            rows_k = [int(perm[(cursor[key] + j) % len(perm)]) for j in range(int(k))]
            jobs += (_retarget_jobs(pool, rows_k, e, p, plan.donors, rng) if method == RETARGET
                     else _align_jobs(lm_pose_expr.get((p, e)), lm_pose[p], rows_k, p, rng))
            cursor[key] += int(k)
            planned[key] = planned.get(key, 0) + int(k)
        entry["added"] = deficit
        target_report.append(entry)

    report = plan_report(before, planned, target_report, plan, index.info, len(allowed), len(ok))
    report["landmark_method"] = method
    return ResolvedPlan(jobs=jobs, targets=list(targets), report=report)


def landmark_method(plan: Plan, src: pd.DataFrame, pool: TransferPool, root, donors_given: bool = False) -> str:
    """ALIGN or RETARGET for ``plan.landmarks`` on the source rows (module docstring); donor rows
    given make ``auto`` retarget (they have no other use)."""
    if plan.landmarks == "align":
        return ALIGN
    if plan.landmarks == "retarget" or donors_given:
        require_pairs(pool, root)
        return RETARGET
    real = (src["subject"] != "").all() and src["pose"].nunique() == 1 and pool.has_pairs()
    return RETARGET if real else ALIGN


def _align_jobs(same_expr: np.ndarray | None, any_expr: np.ndarray, sources: list[int], pose: str,
                rng: np.random.Generator) -> list[Job]:
    """Pose jobs: each source with the landmarks of a random allowed row in ``pose`` (of the same
    expression when there is one)."""
    pool = same_expr if same_expr is not None and len(same_expr) else any_expr
    pick = rng.integers(0, len(pool), len(sources))
    return [Job(source_row=r, pose=pose, landmarks_row=int(pool[j])) for r, j in zip(sources, pick)]


def _retarget_jobs(pool: TransferPool, sources: list[int], expression: str, pose: str, k: int,
                   rng: np.random.Generator) -> list[Job]:
    """Expression-transfer jobs: each source (expression a) with ``k`` random donor pairs (a, ``expression``)."""
    jobs = []
    for r in sources:
        pairs = pool.donors(pose, pool.expr[r], expression, k, rng)
        jobs.append(Job(source_row=r, pose=pose, landmarks_row=pairs[0][1], donors=pairs, expression=expression,
                        method=RETARGET))
    return jobs


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
             f"after {report['total']['after']}; landmark method {report.get('landmark_method', ALIGN)}.", ""]
    if report.get("rejected_by_gate"):
        per = report.get("rejected_by_gate_per_expression") or {}
        lines += [f"Rejected by the quality gate: {report['rejected_by_gate']}"
                  + (f" (`{report['gate']}`)" if report.get("gate") else "")
                  + (" by drawn expression: " + ", ".join(f"{e} {n}" for e, n in per.items()) if per else ""), ""]
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
