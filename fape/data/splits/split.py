"""The ``Split`` object (parts per fold, its file name, csv bytes and JSON summary), :func:`make_split`
and :func:`check_leaks`."""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fape.data.splits.builders import BUILDERS
from fape.data.splits.protocols import PARTS, PROTOCOLS, VIEW, leak_unit, resolve_options
from fape.errors import LeakError, SplitError


# ------------------------------------------------------------------ the split object
@dataclass
class Split:
    protocol: str
    seed: int
    options: dict  # resolved options (defaults filled in)
    folds: list  # [ {part: int64 rows} ], one entry for non-k-fold protocols
    manifest: pd.DataFrame = field(repr=False)
    manifest_sha256: str = ""
    dataset: str = ""
    label_names: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # protocol facts for the JSON

    @property
    def kfold(self) -> bool:
        return PROTOCOLS[self.protocol].kfold

    @property
    def parts(self) -> dict:
        if self.kfold:
            raise SplitError(f"{self.protocol} has {len(self.folds)} folds: use split.folds[k]")
        return self.folds[0]

    @property
    def name(self) -> str:
        defaults = PROTOCOLS[self.protocol].defaults
        bits = [f"{k}={_fmt(v)}" for k, v in sorted(self.options.items()) if _fmt(v) != _fmt(defaults.get(k))]
        stem = "-".join([self.protocol] + bits + [f"seed{self.seed}"])
        return re.sub(r"[^A-Za-z0-9._,=+-]", "_", stem)

    def csv_bytes(self) -> bytes:
        frames = []
        paths = self.manifest["path"].to_numpy()
        for k, parts in enumerate(self.folds):
            rows = np.concatenate([np.asarray(parts[p], np.int64) for p in PARTS])
            names = np.concatenate([np.full(len(parts[p]), p, dtype=object) for p in PARTS])
            df = pd.DataFrame({"row": rows, "path": paths[rows], "split": names})
            if self.kfold:
                df["fold"] = k
            frames.append(df.sort_values("row", kind="stable"))
        df = pd.concat(frames, ignore_index=True)
        buf = io.StringIO()
        df.to_csv(buf, index=False, lineterminator="\n")
        return buf.getvalue().encode("utf-8")

    def summary(self, split_sha256: str | None = None, split_file: str | None = None) -> dict:
        from fape.utils.io import sha256_bytes

        if split_sha256 is None:
            split_sha256 = sha256_bytes(self.csv_bytes())
        proto = PROTOCOLS[self.protocol]
        out = {
            "protocol": self.protocol,
            "description": proto.help,
            "options": {k: _jsonable(v) for k, v in self.options.items()},
            "seed": self.seed,
            "dataset": self.dataset,
            "manifest_sha256": self.manifest_sha256,
            "num_images": int(len(self.manifest)),
            "split_file": split_file or f"{self.name}.csv",
            "split_sha256": split_sha256,
            "subject_independent": proto.subject_independent,
            "leak_unit": leak_unit(self.protocol, self.options),
            "num_folds": len(self.folds) if self.kfold else None,
        }
        out.update(self.meta)
        if self.kfold:
            out["folds"] = [{"fold": k, **self._counts(p)} for k, p in enumerate(self.folds)]
        else:
            out.update(self._counts(self.folds[0]))
        return out

    def _counts(self, parts: dict) -> dict:
        m = self.manifest
        names = np.asarray(self.label_names, dtype=object)
        labels, poses = m["label"].to_numpy(), m["pose"].to_numpy()
        counts = {p: int(len(parts[p])) for p in PARTS}
        per_class, per_pose = {}, {}
        for p in PARTS:
            r = np.asarray(parts[p], np.int64)
            lab, cnt = np.unique(labels[r], return_counts=True)
            per_class[p] = {str(names[a]) if 0 <= a < len(names) else str(a): int(c) for a, c in zip(lab, cnt)}
            ps, cnt = np.unique(poses[r], return_counts=True)
            per_pose[p] = {str(a): int(c) for a, c in zip(ps, cnt) if a != ""}
        return {"counts": counts, "counts_per_class": per_class, "counts_per_pose": per_pose}


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return ",".join(_fmt(x) for x in v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


# ------------------------------------------------------------------ public API
def make_split(index_or_manifest, protocol: str, seed: int = 0, **options) -> Split:
    """Assign the rows of a dataset (``FaceIndex``, manifest ``DataFrame`` or dataset folder) to
    train / val / test by ``protocol``. Pure and deterministic for a seed; leak-checked."""
    from fape.data.format import FaceIndex, _manifest_bytes, normalise_manifest, read_index
    from fape.utils.io import sha256_bytes

    if protocol not in PROTOCOLS:
        raise SplitError(f"unknown split protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    proto = PROTOCOLS[protocol]
    if isinstance(index_or_manifest, (str, Path)):
        index_or_manifest = read_index(index_or_manifest)
    if isinstance(index_or_manifest, FaceIndex):
        m = index_or_manifest.manifest
        info = index_or_manifest.info
        label_names, pose_names = list(info.label_names), list(info.pose_names)
        sha, dataset = info.manifest_sha256, info.name
    else:
        m = normalise_manifest(pd.DataFrame(index_or_manifest))
        pairs = m.drop_duplicates("label").sort_values("label")
        label_names = [""] * (int(m["label"].max()) + 1 if len(m) else 0)
        for lab, expr in zip(pairs["label"], pairs["expression"]):
            if lab >= 0:
                label_names[lab] = expr
        pose_names = list(dict.fromkeys(p for p in m["pose"] if p))
        sha, dataset = sha256_bytes(_manifest_bytes(m)), ""
    opts = resolve_options(proto, options)
    seed = int(seed)
    for col in proto.needs:
        _require(m, col, protocol)
    rng = np.random.default_rng(seed)
    meta: dict = {}
    ctx = dict(m=m, rng=rng, opts=opts, meta=meta, label_names=label_names, pose_names=pose_names)
    folds = BUILDERS[protocol](**ctx)
    if opts.get("leak_unit") == VIEW:
        meta["leaks"] = ("leak_unit=sequence+pose (the paper's image-level protocol): other views of a tested "
                         "sequence, the same moment in another pose, are in training")
    folds = [{p: np.sort(np.asarray(f.get(p, []), np.int64)) for p in PARTS} for f in folds]
    if "label_names" not in meta:
        meta["label_names"] = label_names
    for k, parts in enumerate(folds):
        try:
            check_leaks(m, parts, protocol, opts)
        except LeakError as e:  # a builder bug or a manifest whose ids collide: say where
            raise LeakError(f"{e}" + (f" (fold {k})" if len(folds) > 1 else "")) from None
    return Split(protocol, seed, opts, folds, m, sha, dataset, label_names, meta)


def _require(m: pd.DataFrame, col: str, protocol: str) -> None:
    if col == "split":
        if "split" not in m.columns and "usage" not in m.columns:
            raise SplitError(f"protocol {protocol} needs a 'split' column (Training/PublicTest/PrivateTest or "
                             f"train/val/test) in manifest.csv; this dataset has none")
        return
    if col not in m.columns or (m[col].astype(str) == "").any():
        n = int((m[col].astype(str) == "").sum()) if col in m.columns else len(m)
        raise SplitError(f"protocol {protocol} needs the '{col}' column filled in manifest.csv; "
                         f"{n} of {len(m)} rows have no {col}")


def check_leaks(manifest: pd.DataFrame, parts: dict, protocol: str, options: dict | None = None) -> None:
    """Raise :class:`LeakError` (a ``ValueError``) when two parts share a row, a leak unit
    (:func:`leak_unit`: a sequence, or a sequence's frames of one pose) or, for subject-independent
    protocols, a subject."""
    proto = PROTOCOLS.get(protocol)
    unit = leak_unit(protocol, options)
    names = [p for p in parts if len(parts[p])]
    rows = {p: np.asarray(parts[p], np.int64) for p in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = np.intersect1d(rows[a], rows[b])
            if len(both):
                raise LeakError(f"leak: manifest row {int(both[0])} is in both {a} and {b}")
    checks = []
    if proto is not None and proto.subject_independent and "subject" in manifest.columns:
        checks.append(("subject", manifest["subject"].astype(str).to_numpy(),
                       f"protocol {protocol} is subject-independent"))
    if "sequence" in manifest.columns:
        seq = manifest["sequence"].fillna("").astype(str).to_numpy()
        if unit == VIEW and "pose" in manifest.columns:
            pose = manifest["pose"].fillna("").astype(str).to_numpy()
            seq = np.where(seq == "", "", np.char.add(np.char.add(seq.astype(str), " (pose "),
                                                      np.char.add(pose.astype(str), ")")))
        checks.append(("sequence", seq, "frames of one sequence are near-duplicates"))
    for what, keys, why in checks:
        sets = {p: set(keys[rows[p]].tolist()) - {""} for p in names}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                both = sets[a] & sets[b]
                if both:
                    raise LeakError(f"leak: {what} {sorted(both)[0]!r} is in both {a} and {b} ({why}); "
                                    f"{len(both)} {what}(s) shared")
