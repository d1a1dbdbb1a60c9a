"""Plans as given: a built-in name (``balance-pose[:max|median]`` ...) or a YAML file of targets, parsed
into a :class:`Plan` and checked against the dataset's names (the rules: ``fape.gan.plans``, Plans)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from fape.data.format import DatasetInfo
from fape.errors import UserError

PLAN_KEYS = ("expression", "pose", "subject")
BUILTIN_PLANS = ("balance-pose", "balance-expression", "balance-identity")
_DEFAULT_STAT = {"balance-pose": "max", "balance-expression": "median", "balance-identity": "median"}
LANDMARK_MODES = ("auto", "align", "retarget")
DONORS = 3  # donor pairs per expression-transfer job (fape.data.retarget: the mean of 3 is less noisy)


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
    landmarks: str = "auto"  # "auto" | "align" | "retarget" (``fape.gan.plans`` docstring)
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
    """A YAML plan's ``landmarks`` and ``donors`` (``fape.gan.plans`` docstring)."""
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
