"""A plan resolved on a dataset's rows into ordered synthesis jobs: built-in targets, water-filling of a
target's deficit over its cells, and the sources and target landmarks of each job (align or retarget;
the rules: ``fape.gan.plans``, Jobs and Real sets)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from fape.data.format import FaceIndex
from fape.data.retarget import METHOD as RETARGET
from fape.errors import UserError
from fape.gan.plans.align import ALIGN
from fape.gan.plans.report import plan_report
from fape.gan.plans.spec import PLAN_KEYS, Plan, Target
from fape.gan.transfer import TransferPool, require_pairs


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
    """ALIGN or RETARGET for ``plan.landmarks`` on the source rows (``fape.gan.plans`` docstring); donor rows
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
