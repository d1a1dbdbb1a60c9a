"""The plan report: counts per cell before and after, per target, per marginal (JSON), and its Markdown."""
from __future__ import annotations

from typing import Sequence

from fape.data.format import DatasetInfo
from fape.gan.plans.align import ALIGN
from fape.gan.plans.spec import PLAN_KEYS, Plan


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
