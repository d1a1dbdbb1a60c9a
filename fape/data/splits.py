"""Splits of a dataset's rows: the paper protocols as files, with leak checks.

A split is a file ``DIR/splits/<protocol>[-<options>]-seed<S>.csv`` with a JSON beside it
(``.json`` instead of ``.csv``)::

    row,path,split            row = manifest row index, split = train | val | test
    row,path,split,fold       k-fold protocols (jaffe-loso, ckplus-10fold)

Rows left out of every part (e.g. CK+ classes outside the chosen label set) are omitted. A
k-fold file is in *long* form: every fold lists all its rows, so a row appears once per fold
(``fold`` = 0..K-1) and the file states train, val and test of each fold explicitly; nothing is
derived when loading. Rows are sorted by (fold, row), so the bytes (and the split's sha256) are a
pure function of the dataset, protocol, options and seed.

``<options>`` names only the options that differ from the protocol's defaults, as ``key=value``
joined by ``-`` (e.g. ``ckplus-10fold-classes=6-seed0.csv``). The JSON holds the protocol, the
resolved options, the seed, the dataset's ``manifest_sha256``, ``split_sha256`` (sha256 of the
csv bytes), counts per part, per class and per pose (per fold for k-fold protocols) and
protocol facts (``rare_labels``, ``rare_pose``, ``label_names``, ``test_subjects`` ...).

Python::

    split = make_split(read_index(DIR), "er-ue", seed=0, rare_fraction=0.2)
    path = save_split(DIR, split)
    parts = load_split(path)               # {"train": rows, "val": rows, "test": rows}
    parts = load_split(path, fold=3)       # k-fold protocols need a fold

Protocols (``PROTOCOLS``): er-ss, er-ue, er-up, er-zid (F2ED tasks, paper section 4.1),
fer2013-official, jaffe-deep-emotion, jaffe-loso, ckplus-10fold, random, subject. Every split is
checked by :func:`check_leaks` before it is returned: the same leak unit (near-duplicate
frames) never lands in two parts, and subject-independent protocols never share a subject
between parts.

The leak unit of every F2ED task is the sequence (a subject's expression): every view and every
frame of a sequence lands on one side, so no tested face has a training image of the same moment
in another pose (``leak_unit="sequence"``, the default). The paper splits F2ED's images at random;
``--option leak_unit=sequence+pose`` keeps only a camera's frames together, as this package did
before. **That protocol leaks across views** (the other views of a tested face train) and its
split files and reports say so (``meta["leaks"]``).

ER-UE and ER-UP with sequence units, and their oracle: the rare units (sequences of a rare
expression; for ER-UP every sequence) are cut into ``rare_test_fraction`` tested and the rest, the
*pool*. From the pool, ``rare_train_fraction`` of the units train with their rare rows; the rare
rows of the other pool units are *held back*: no part has them, unless ``oracle=true``, which
trains on them too (the "all real" upper bound: the rare cells at full count, the same val and
test). ER-UP tests only the rare pose of its tested sequences; their other views are used nowhere.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fape.errors import DatasetError, LeakError, SplitError  # noqa: F401  (re-exported)

PARTS = ("train", "val", "test")




# ------------------------------------------------------------------ legacy helper (GAN trainer)
def subject_holdout(manifest: pd.DataFrame, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a random ``fraction`` of subjects held out, and the rest: ``(train_rows, heldout_rows)``.

    Subject-disjoint, so an evaluation on the held-out rows measures generalisation to unseen
    faces. Without subject labels, a random ``fraction`` of rows is held out instead.
    """
    n = len(manifest)
    rng = np.random.default_rng(seed)
    if fraction <= 0:
        return np.arange(n), np.arange(0)
    subjects = manifest["subject"].to_numpy()
    names = np.unique(subjects[subjects != ""])
    if len(names) >= 2:
        k = min(len(names) - 1, max(1, int(round(fraction * len(names)))))
        held = rng.choice(names, size=k, replace=False)
        mask = np.isin(subjects, held)
    else:
        mask = np.zeros(n, bool)
        mask[rng.choice(n, size=max(1, int(round(fraction * n))), replace=False)] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def holdout_rows(manifest: pd.DataFrame, rows: str, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the file ``rows`` ("" = every row), split by :func:`subject_holdout`:
    ``(train_rows, heldout_rows)`` as manifest indices. What a GAN trains on and is measured on
    (``fape.gan.data.gan_rows``), and the ``gan-rows`` protocol's parts."""
    allowed = read_rows(rows, len(manifest)) if rows else np.arange(len(manifest))
    train_pos, held_pos = subject_holdout(manifest.iloc[allowed].reset_index(drop=True), fraction, seed)
    return allowed[train_pos], allowed[held_pos]


# ------------------------------------------------------------------ protocol table
VIEW = "sequence+pose"  # leak unit: one camera's frames of a sequence
LEAK_UNITS = ("sequence", VIEW)
F2ED_SS = (175000, 19719, 25000)  # of 219719 (paper section 4.1)
F2ED_SUBJECTS = (98, 21)  # train / test persons of 119
POSE_ALIASES = {"half_left": "HL", "front": "F", "half_right": "HR", "bird_view": "BV",
                "full_left": "FL", "full_right": "FR"}
POSE_ALIASES.update({v: k for k, v in list(POSE_ALIASES.items())})
CKPLUS_EXCLUDE = {6: ("neutral", "contempt"), 7: ("neutral",), 8: ()}


@dataclass(frozen=True)
class Protocol:
    name: str
    defaults: dict
    subject_independent: bool = False
    kfold: bool = False
    needs: tuple = ()  # manifest columns that must be filled
    help: str = ""


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in [
    Protocol("er-ss", {"leak_unit": "sequence"},
             help="random 175000/19719/25000 (of 219719) proportions of sequences (all their views)"),
    Protocol("er-ue", {"rare_fraction": 0.2, "rare_test_fraction": 0.5, "rare_train_fraction": 0.1,
                       "val_fraction": 0.1, "leak_unit": "sequence", "oracle": False},
             help="20% of expressions rare: half their sequences test; 10% of the rest train, the others "
                  "are held back (oracle=true trains them); other expressions train (+val)"),
    Protocol("er-up", {"rare_pose": "half_left", "rare_test_fraction": 0.3, "rare_train_fraction": 0.1,
                       "val_fraction": 0.1, "leak_unit": "sequence", "oracle": False}, needs=("pose",),
             help="one pose rare (HL): 30% of sequences test their HL view; the rest train their other "
                  "views, and their HL view for 10% (oracle=true: all)"),
    Protocol("er-zid", {"val_fraction": 0.1}, subject_independent=True, needs=("subject",),
             help="subject-disjoint 98/21 (of 119) train/test subjects; val = train subjects"),
    Protocol("fer2013-official", {}, needs=("split",),
             help="split column: Training->train, PublicTest->val, PrivateTest->test"),
    Protocol("jaffe-deep-emotion", {"val_fraction": 23 / 143}, needs=("subject",),
             help="one test image per subject and expression (70), val 23, train 120"),
    Protocol("jaffe-loso", {"val": "next"}, subject_independent=True, kfold=True, needs=("subject",),
             help="leave one subject out: fold k tests subject k (sorted)"),
    Protocol("ckplus-10fold", {"classes": 7, "folds": 10, "val": "next"}, subject_independent=True,
             kfold=True, needs=("subject",),
             help="subject-independent folds balanced by image count; classes=6|7|8"),
    Protocol("leave-one-dataset-out", {"test": "", "val_fraction": 0.1, "exclude": "contempt"}, needs=("dataset",),
             help="test = every image of one source dataset (option test=NAME, the 'dataset' column of a "
                  "`fape data merge`); train/val from the others only: a split column's val rows "
                  "(FER2013 PublicTest) are val and its test rows are left out, other rows give "
                  "val_fraction of their sequences to val; classes = the training sources' minus "
                  "exclude (comma list)"),
    Protocol("gan-rows", {"rows": "", "heldout_subjects": 0.2, "holdout_seed": 0, "val_fraction": 0.1},
             help="a GAN's rows, for the classifier of its expression / identity terms: test = the subjects a "
                  "GAN with data.rows=ROWS, data.heldout_subjects and data.split_seed=holdout_seed holds out; "
                  "train/val = its training rows (val_fraction of their sequences to val); rows outside ROWS "
                  "are in no part"),
    Protocol("random", {"fractions": (0.8, 0.1, 0.1)}, help="random fractions, sequence-aware"),
    Protocol("subject", {"fractions": (0.8, 0.1, 0.1)}, subject_independent=True, needs=("subject",),
             help="subject-disjoint fractions"),
]}


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
    opts = _resolve_options(proto, options)
    seed = int(seed)
    for col in proto.needs:
        _require(m, col, protocol)
    rng = np.random.default_rng(seed)
    meta: dict = {}
    ctx = dict(m=m, rng=rng, opts=opts, meta=meta, label_names=label_names, pose_names=pose_names)
    folds = _BUILDERS[protocol](**ctx)
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


def save_split(root: str | Path, split: Split, out: str | Path | None = None) -> Path:
    """Write ``root/splits/<split.name>.csv`` (or ``out``) and the JSON beside it; returns the csv path.

    Refuses when ``root`` holds a dataset whose manifest is not the one the split was made from.
    """
    from fape.data.format import read_info
    from fape.utils.io import atomic_write_bytes, atomic_write_json, sha256_bytes

    root = Path(root)
    if (root / "dataset.json").is_file() and split.manifest_sha256:
        have = read_info(root).manifest_sha256
        if have and have != split.manifest_sha256:
            raise SplitError(f"{root}: the split was made from another manifest "
                             f"(manifest_sha256 {split.manifest_sha256[:12]}..., dataset has {have[:12]}...)")
    path = Path(out) if out is not None else root / "splits" / f"{split.name}.csv"
    if path.suffix != ".csv":
        path = path.with_name(path.name + ".csv")
    data = split.csv_bytes()
    atomic_write_bytes(path, data)
    atomic_write_json(path.with_suffix(".json"), split.summary(sha256_bytes(data), path.name))
    return path


def split_meta(path: str | Path) -> dict:
    """The JSON written beside a split csv (protocol, options, label_names, counts, hashes)."""
    import json

    p = Path(path).with_suffix(".json")
    if not p.is_file():
        raise SplitError(f"split description not found: {p}")
    return json.loads(p.read_text())


def load_split(path: str | Path, fold: int | None = None) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` -> sorted int64 manifest rows of a split file (csv or its json).

    Checks the csv against the ``split_sha256`` of the JSON beside it when there is one. k-fold
    files need ``fold``; other files refuse one.
    """
    from fape.utils.io import sha256_bytes

    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".csv")
    if not path.is_file():
        raise SplitError(f"split file not found: {path}")
    data = path.read_bytes()
    meta_path = path.with_suffix(".json")
    if meta_path.is_file():
        want = json.loads(meta_path.read_text()).get("split_sha256")
        if want and sha256_bytes(data) != want:
            raise SplitError(f"{path} does not match the split_sha256 in {meta_path}: it was edited")
    try:
        df = pd.read_csv(io.BytesIO(data), dtype={"path": str, "split": str}, keep_default_na=False)
    except Exception as e:
        raise SplitError(f"{path} cannot be read as CSV: {e}") from None
    for col in ("row", "split"):
        if col not in df.columns:
            raise SplitError(f"{path}: missing column {col!r}")
    bad = ~df["split"].isin(PARTS)
    if bad.any():
        raise SplitError(f"{path}: split value {df['split'][bad].iat[0]!r} is not one of {', '.join(PARTS)}")
    if "fold" in df.columns:
        folds = sorted(int(f) for f in df["fold"].unique())
        if fold is None:
            raise SplitError(f"{path} is a k-fold split ({len(folds)} folds): pass fold= one of 0..{folds[-1]}")
        if int(fold) not in folds:
            raise SplitError(f"{path}: no fold {fold} (folds 0..{folds[-1]})")
        df = df[df["fold"] == int(fold)]
    elif fold is not None:
        raise SplitError(f"{path} has no folds (fold={fold} given)")
    return {p: np.sort(df.loc[df["split"] == p, "row"].to_numpy(np.int64)) for p in PARTS}


def leak_unit(protocol: str, options: dict | None = None) -> str:
    """``"sequence+pose"`` or ``"sequence"``: what must not be shared between the parts of a split."""
    unit = (options or {}).get("leak_unit", PROTOCOLS[protocol].defaults.get("leak_unit", "sequence")
                               if protocol in PROTOCOLS else "sequence")
    if unit not in LEAK_UNITS:
        raise SplitError(f"protocol {protocol}: leak_unit must be one of {', '.join(LEAK_UNITS)}, got {unit!r}")
    return unit


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


# ------------------------------------------------------------------ helpers
def _resolve_options(proto: Protocol, options: dict) -> dict:
    unknown = sorted(set(options) - set(proto.defaults))
    if unknown:
        known = ", ".join(proto.defaults) or "none"
        raise SplitError(f"protocol {proto.name}: unknown option(s) {unknown} (accepted: {known})")
    out = dict(proto.defaults)
    for k, v in options.items():
        d = proto.defaults[k]
        try:
            if isinstance(d, tuple):
                vals = v.split(",") if isinstance(v, str) else list(v)
                v = tuple(float(x) for x in vals)
                if len(v) not in (2, 3) or min(v) < 0 or abs(sum(v) - 1) > 1e-6:
                    raise ValueError("need 2 or 3 non-negative fractions summing to 1")
                if len(v) == 2:
                    v = (v[0], 0.0, v[1])
            elif isinstance(d, bool):
                if str(v).lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError("must be true or false")
                v = str(v).lower() in ("1", "true", "yes")
            elif isinstance(d, float):
                v = float(v)
                if not 0 <= v <= 1:
                    raise ValueError("must be within 0..1")
            elif isinstance(d, int):
                v = int(v)
            else:
                v = str(v)
        except (TypeError, ValueError) as e:
            raise SplitError(f"protocol {proto.name}: bad option {k}={v!r}: {e}") from None
        out[k] = v
    if "val" in out and out["val"] not in ("next", "none"):
        raise SplitError(f"protocol {proto.name}: option val must be 'next' or 'none', not {out['val']!r}")
    if "classes" in out and out["classes"] not in CKPLUS_EXCLUDE:
        raise SplitError(f"protocol {proto.name}: option classes must be 6, 7 or 8, not {out['classes']!r}")
    return out


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


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group id per row (rows with an empty key are their own group) and group sizes."""
    keys = np.asarray(keys).astype(str)
    empty = keys == ""
    keys = np.where(empty, np.char.add("\x00row", np.arange(len(keys)).astype(str)), keys)
    _, gid, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    return gid, sizes


def _seq_groups(m: pd.DataFrame, rows: np.ndarray | None = None, with_pose: bool = False):
    rows = np.arange(len(m)) if rows is None else np.asarray(rows, np.int64)
    seq = m["sequence"].to_numpy().astype(str)[rows]
    if with_pose:
        seq = np.where(seq == "", "", np.char.add(np.char.add(seq, "\x01"), m["pose"].to_numpy().astype(str)[rows]))
    return _groups(seq)


def _allocate(sizes: np.ndarray, fractions, rng) -> np.ndarray:
    """Part index per group: groups in random order, cut where the cumulative row count crosses the
    fractions (so row counts follow the fractions). Every part with a positive fraction gets at least
    one group when there are enough groups."""
    sizes = np.asarray(sizes, np.int64)
    fr = np.asarray(fractions, float)
    n = len(sizes)
    part = np.zeros(n, np.int64)
    if n == 0:
        return part
    order = rng.permutation(n)
    cum = np.cumsum(sizes[order])
    mid = cum - sizes[order] / 2.0
    bounds = np.cumsum(fr / fr.sum())[:-1] * cum[-1]
    part[order] = np.searchsorted(bounds, mid, side="right")
    need = [p for p in range(len(fr)) if fr[p] > 0]
    if n >= len(need):
        pos = {g: i for i, g in enumerate(order)}
        for p in need:
            if (part == p).any():
                continue
            counts = np.bincount(part, minlength=len(fr))
            donor = int(np.argmax(counts))
            cand = np.flatnonzero(part == donor)
            # the donor group nearest to p's slot in the shuffled order
            cand = sorted(cand, key=lambda g: pos[g] if p > donor else -pos[g])
            part[cand[-1]] = p
    return part


def _by_groups(rows: np.ndarray, gid: np.ndarray, group_part: np.ndarray, names) -> dict:
    rp = group_part[gid]
    return {name: rows[rp == i] for i, name in enumerate(names)}


def _fraction_split(m, rows, fractions, rng, key="sequence") -> dict:
    rows = np.asarray(rows, np.int64)
    if key == "subject":
        gid, sizes = _groups(m["subject"].to_numpy().astype(str)[rows])
    else:
        gid, sizes = _seq_groups(m, rows, with_pose=key == VIEW)
    part = _allocate(sizes, fractions, rng)
    return _by_groups(rows, gid, part, PARTS)


def _carve_val(m, train_rows, val_fraction, rng, with_pose=False) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows into (train, val) by whole leak units."""
    train_rows = np.asarray(train_rows, np.int64)
    if val_fraction <= 0 or len(train_rows) < 2:
        return train_rows, train_rows[:0]
    gid, sizes = _seq_groups(m, train_rows, with_pose=with_pose)
    if len(sizes) < 2:
        return train_rows, train_rows[:0]
    part = _allocate(sizes, (1 - val_fraction, val_fraction), rng)
    d = _by_groups(train_rows, gid, part, ("train", "val"))
    return d["train"], d["val"]


# ------------------------------------------------------------------ protocol builders
def _er_ss(m, rng, opts, meta, **_):
    meta["proportions"] = {"train": F2ED_SS[0], "val": F2ED_SS[1], "test": F2ED_SS[2], "of": sum(F2ED_SS)}
    return [_fraction_split(m, np.arange(len(m)), np.asarray(F2ED_SS, float) / sum(F2ED_SS), rng,
                            key=leak_unit("er-ss", opts))]


def _gan_rows(m, rng, opts, **_):
    train, held = holdout_rows(m, opts["rows"], opts["heldout_subjects"], opts["holdout_seed"])
    train, val = _carve_val(m, train, opts["val_fraction"], rng)
    return [{"train": train, "val": val, "test": held}]


def _random(m, rng, opts, **_):
    return [_fraction_split(m, np.arange(len(m)), opts["fractions"], rng)]


def _subject(m, rng, opts, **_):
    return [_fraction_split(m, np.arange(len(m)), opts["fractions"], rng, key="subject")]


def _rare_split(m, rng, opts, rare_mask, strata, with_pose=False):
    """Rows of leak units touching a rare row: rare_train_fraction train / rest test, per stratum;
    other rows train. Val carved per stratum (common, each rare stratum) from the train side."""
    n = len(m)
    gid, sizes = _seq_groups(m, np.arange(n), with_pose=with_pose)
    rare_group = np.zeros(len(sizes), bool)
    rare_group[gid[rare_mask]] = True
    train_sets, test_sets, val_sets = [], [], []
    common_rows = np.flatnonzero(~rare_group[gid])
    rare_rows = np.flatnonzero(rare_group[gid])
    # stratum of a rare group (rare class / rare pose): the stratum of its first rare row
    group_stratum = {}
    for r in np.flatnonzero(rare_mask):
        group_stratum.setdefault(int(gid[r]), strata[r])
    row_stratum = np.asarray([group_stratum[int(gid[r])] for r in rare_rows])
    for s in sorted(set(group_stratum.values())):
        rows_s = rare_rows[row_stratum == s]
        g2, sz2 = _seq_groups(m, rows_s, with_pose=with_pose)
        part = _allocate(sz2, (opts["rare_train_fraction"], 1 - opts["rare_train_fraction"]), rng)
        d = _by_groups(rows_s, g2, part, ("train", "test"))
        tr, va = _carve_val(m, d["train"], opts["val_fraction"], rng, with_pose)
        train_sets.append(tr), val_sets.append(va), test_sets.append(d["test"])
    tr, va = _carve_val(m, common_rows, opts["val_fraction"], rng, with_pose)
    train_sets.append(tr), val_sets.append(va)
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)  # noqa: E731
    return {"train": cat(train_sets), "val": cat(val_sets), "test": cat(test_sets)}


def _cut_units(m, rows, fractions, rng, names) -> dict:
    """``rows`` cut by whole sequences into parts ``names`` with row fractions ``fractions``."""
    gid, sizes = _seq_groups(m, rows)
    return _by_groups(np.asarray(rows, np.int64), gid, _allocate(sizes, fractions, rng), names)


def _held_back(opts, meta, train, held) -> np.ndarray:
    """The training rows of a rare split: ``train``, plus the held-back rare rows for the oracle."""
    meta["held_back"] = int(len(held))
    meta["oracle"] = bool(opts["oracle"])
    return np.concatenate([train, held]) if opts["oracle"] else train


def _rare_sequences(m, rng, opts, meta, rare_rows_of, strata) -> dict:
    """ER-UE / ER-UP with sequence units (module docstring): per stratum of rare units, a tested
    share and a pool; the pool's units train their rare rows for ``rare_train_fraction`` of them
    and hold them back otherwise. ``rare_rows_of(rows)`` picks the rare rows of some rows."""
    t, f = opts["rare_test_fraction"], opts["rare_train_fraction"]
    train, val, test, held = [], [], [], []
    for rows in strata:  # the rows of one stratum's sequences (all views)
        d = _cut_units(m, rows, (t, 1 - t), rng, ("test", "pool"))
        test.append(rare_rows_of(d["test"]))  # ER-UP: the other views of a tested sequence are unused
        tr, va = _carve_val(m, d["pool"], opts["val_fraction"], rng)
        val.append(va)
        rare = rare_rows_of(tr)
        keep = _cut_units(m, rare, (f, 1 - f), rng, ("train", "held"))
        train += [np.setdiff1d(tr, rare), keep["train"]]
        held.append(keep["held"])
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)  # noqa: E731
    return {"train": _held_back(opts, meta, cat(train), cat(held)), "val": cat(val), "test": cat(test)}


def _no_oracle_with_views(protocol, opts):
    if opts.get("oracle"):
        raise SplitError(f"protocol {protocol}: oracle=true needs leak_unit=sequence (with sequence+pose "
                         f"units nothing is held back for it)")


def _er_ue(m, rng, opts, meta, label_names, **_):
    labels = m["label"].to_numpy()
    present = np.unique(labels)
    k = int(round(opts["rare_fraction"] * len(present)))
    k = min(max(k, 1), len(present) - 1) if len(present) > 1 else 0
    rare = np.sort(rng.choice(present, size=k, replace=False)) if k else np.zeros(0, np.int64)
    meta["rare_labels"] = [int(x) for x in rare]
    meta["rare_label_names"] = [label_names[x] if x < len(label_names) else str(x) for x in rare]
    meta["val"] = "val_fraction of the training leak units of each class group (common, each rare class)"
    if leak_unit("er-ue", opts) == VIEW:
        _no_oracle_with_views("er-ue", opts)
        return [_rare_split(m, rng, opts, np.isin(labels, rare), labels, with_pose=True)]
    common = np.flatnonzero(~np.isin(labels, rare))
    tr, va = _carve_val(m, common, opts["val_fraction"], rng)
    parts = _rare_sequences(m, rng, opts, meta, lambda rows: rows, [np.flatnonzero(labels == c) for c in rare])
    return [{"train": np.concatenate([tr, parts["train"]]), "val": np.concatenate([va, parts["val"]]),
             "test": parts["test"]}]


def _resolve_pose(m, wanted: str, pose_names, default: bool) -> str:
    present = list(dict.fromkeys([p for p in pose_names if p] + [p for p in m["pose"] if p]))
    present = [p for p in present if (m["pose"] == p).any()]
    for cand in (wanted, POSE_ALIASES.get(wanted, None)):
        if cand and cand in present:
            return cand
    if default:
        return present[0]
    raise SplitError(f"protocol er-up: rare_pose {wanted!r} is not a pose of this dataset "
                     f"(poses: {', '.join(present)}; half_left/HL, front/F, half_right/HR, bird_view/BV are aliases)")


def _er_up(m, rng, opts, meta, pose_names, **_):
    default = opts["rare_pose"] == PROTOCOLS["er-up"].defaults["rare_pose"]
    pose = _resolve_pose(m, opts["rare_pose"], pose_names, default)
    meta["rare_pose"] = pose
    meta["val"] = "val_fraction of the training (sequence, pose) units of the common poses and of the rare pose"
    mask = m["pose"].to_numpy() == pose
    if leak_unit("er-up", opts) == VIEW:
        _no_oracle_with_views("er-up", opts)
        return [_rare_split(m, rng, opts, mask, mask.astype(np.int64), with_pose=True)]
    return [_rare_sequences(m, rng, opts, meta, lambda rows: rows[mask[rows]], [np.arange(len(m))])]


def _er_zid(m, rng, opts, meta, **_):
    subjects = np.unique(m["subject"].to_numpy().astype(str))
    if len(subjects) < 2:
        raise SplitError(f"protocol er-zid needs at least 2 subjects in the 'subject' column; found {len(subjects)}")
    n_test = min(len(subjects) - 1, max(1, int(round(len(subjects) * F2ED_SUBJECTS[1] / sum(F2ED_SUBJECTS)))))
    perm = rng.permutation(subjects)
    test_s, train_s = perm[:n_test], perm[n_test:]
    n_val = int(round(opts["val_fraction"] * len(train_s)))
    if opts["val_fraction"] > 0 and len(train_s) >= 3:
        n_val = max(1, n_val)
    n_val = min(n_val, len(train_s) - 1)
    val_s, train_s = train_s[:n_val], train_s[n_val:]
    subj = m["subject"].to_numpy().astype(str)
    meta.update(test_subjects=sorted(test_s.tolist()), val_subjects=sorted(val_s.tolist()),
                proportions={"train_subjects": F2ED_SUBJECTS[0], "test_subjects": F2ED_SUBJECTS[1]},
                val="val_fraction of the training subjects (subject-disjoint)")
    return [{"train": np.flatnonzero(np.isin(subj, train_s)), "val": np.flatnonzero(np.isin(subj, val_s)),
             "test": np.flatnonzero(np.isin(subj, test_s))}]


FER_MAP = {"training": "train", "train": "train", "publictest": "val", "val": "val",
           "privatetest": "test", "test": "test"}


def _fer2013(m, meta, **_):
    col = "split" if "split" in m.columns else "usage"
    vals = m[col].fillna("").astype(str).str.strip().str.lower().str.replace(" ", "")
    mapped = vals.map(FER_MAP)
    if mapped.isna().any():
        i = int(np.flatnonzero(mapped.isna().to_numpy())[0])
        raise SplitError(f"protocol fer2013-official: row {i} ({m['path'].iat[i]}) has {col} "
                         f"{m[col].iat[i]!r}; expected Training/PublicTest/PrivateTest or train/val/test")
    meta["from_column"] = col
    mp = mapped.to_numpy()
    return [{p: np.flatnonzero(mp == p) for p in PARTS}]


def _jaffe_de(m, rng, opts, meta, **_):
    subj = m["subject"].to_numpy().astype(str)
    labels = m["label"].to_numpy()
    test = []
    for s in np.unique(subj):
        for lab in np.unique(labels):
            cand = np.flatnonzero((subj == s) & (labels == lab))
            if len(cand):
                test.append(int(rng.choice(cand)))
    test = np.sort(np.asarray(test, np.int64))
    rest = np.setdiff1d(np.arange(len(m)), test)
    n_val = int(round(opts["val_fraction"] * len(rest)))
    val = rng.choice(rest, size=n_val, replace=False) if n_val else rest[:0]
    meta["val"] = "val_fraction (23/143) of the non-test images, random"
    return [{"train": np.setdiff1d(rest, val), "val": val, "test": test}]


def _kfold_parts(fold_of: np.ndarray, rows: np.ndarray, k_folds: int, val: str) -> list:
    out = []
    for k in range(k_folds):
        test = rows[fold_of == k]
        if val == "next":
            v = rows[fold_of == (k + 1) % k_folds]
            train = rows[(fold_of != k) & (fold_of != (k + 1) % k_folds)]
        else:
            v, train = rows[:0], rows[fold_of != k]
        out.append({"train": train, "val": v, "test": test})
    return out


def _jaffe_loso(m, opts, meta, **_):
    subj = m["subject"].to_numpy().astype(str)
    subjects = np.unique(subj)
    if len(subjects) < 2 + (opts["val"] == "next"):
        raise SplitError(f"protocol jaffe-loso needs at least 3 subjects; found {len(subjects)}")
    fold_of = np.searchsorted(subjects, subj)
    meta["fold_subjects"] = [[s] for s in subjects.tolist()]
    meta["val"] = "the next fold's subject ((k+1) mod K)" if opts["val"] == "next" else "none"
    return _kfold_parts(fold_of, np.arange(len(m)), len(subjects), opts["val"])


def _ckplus(m, rng, opts, meta, label_names, **_):
    exclude = CKPLUS_EXCLUDE[opts["classes"]]
    keep_labels = [i for i, n in enumerate(label_names) if n.lower() not in exclude]
    subset = [label_names[i] for i in keep_labels]
    known = {"neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"}
    meta["label_names"] = subset
    meta["labels"] = keep_labels
    meta["missing_labels"] = sorted(known - {n.lower() for n in label_names} - set(exclude))
    rows = np.flatnonzero(np.isin(m["label"].to_numpy(), keep_labels))
    k_folds = opts["folds"]
    subj = m["subject"].to_numpy().astype(str)[rows]
    subjects, counts = np.unique(subj, return_counts=True)
    if len(subjects) < k_folds:
        raise SplitError(f"protocol ckplus-10fold needs at least {k_folds} subjects; found {len(subjects)}")
    # balance image counts: largest subjects first (ties in seeded order), each to the lightest fold
    order = np.lexsort((rng.permutation(len(subjects)), -counts))
    load = np.zeros(k_folds, np.int64)
    fold_of_subject = np.zeros(len(subjects), np.int64)
    for i in order:
        f = int(np.argmin(load))  # first lightest fold
        fold_of_subject[i] = f
        load[f] += counts[i]
    # shuffle fold numbers so fold 0 is not always the one with the largest subject
    relabel = rng.permutation(k_folds)
    fold_of_subject = relabel[fold_of_subject]
    meta["fold_subjects"] = [sorted(subjects[fold_of_subject == k].tolist()) for k in range(k_folds)]
    meta["val"] = "the next fold's subjects ((k+1) mod K)" if opts["val"] == "next" else "none"
    fold_of = fold_of_subject[np.searchsorted(subjects, subj)]
    return _kfold_parts(fold_of, rows, k_folds, opts["val"])


def _lodo(m, rng, opts, meta, label_names, **_):
    ds = m["dataset"].astype(str).to_numpy()
    present = sorted(set(ds))
    if opts["test"] not in present:
        raise SplitError(f"protocol leave-one-dataset-out: option test={opts['test']!r} is not a dataset of this "
                         f"merge (the 'dataset' column has: {', '.join(present)})")
    if len(present) < 2:
        raise SplitError("protocol leave-one-dataset-out needs at least two source datasets")
    labels = m["label"].to_numpy()
    held = ds == opts["test"]
    exclude = {x.strip() for x in opts["exclude"].split(",") if x.strip()}
    keep_labels = sorted(int(x) for x in set(labels[~held]) if label_names[x] not in exclude)
    keep = np.isin(labels, keep_labels)
    mapped = np.full(len(m), "", dtype=object)
    if "split" in m.columns:
        vals = m["split"].fillna("").astype(str).str.strip().str.lower().str.replace(" ", "")
        mapped = vals.map(FER_MAP).fillna("").to_numpy(dtype=object)
    pool = ~held & keep
    tr, va = _carve_val(m, np.flatnonzero(pool & (mapped == "")), opts["val_fraction"], rng)
    meta.update(label_names=[label_names[i] for i in keep_labels], labels=keep_labels, test_dataset=opts["test"],
                train_datasets=[d for d in present if d != opts["test"]],
                left_out={"test_rows_of_training_sources": int((pool & (mapped == "test")).sum()),
                          "excluded_classes": int((~keep).sum())},
                val="the training sources' own val rows (split column), else val_fraction of their sequences")
    return [{"train": np.sort(np.concatenate([tr, np.flatnonzero(pool & (mapped == "train"))])),
             "val": np.sort(np.concatenate([va, np.flatnonzero(pool & (mapped == "val"))])),
             "test": np.flatnonzero(held & keep)}]


_BUILDERS = {
    "er-ss": _er_ss, "er-ue": _er_ue, "er-up": _er_up, "er-zid": _er_zid, "fer2013-official": _fer2013,
    "jaffe-deep-emotion": _jaffe_de, "jaffe-loso": _jaffe_loso, "ckplus-10fold": _ckplus,
    "random": _random, "subject": _subject, "leave-one-dataset-out": _lodo, "gan-rows": _gan_rows,
}


# ------------------------------------------------------------------ CLI
def cli_split(args, overrides) -> int:
    from fape.data.format import read_index

    options = {}
    for tok in getattr(args, "option", None) or []:
        if "=" not in tok:
            raise SplitError(f"--option expects key=value, got {tok!r}")
        k, v = tok.split("=", 1)
        options[k.strip().replace("-", "_")] = v.strip()
    idx = read_index(args.dir)
    split = make_split(idx, args.protocol, args.seed, **options)
    path = save_split(args.dir, split, out=args.out)
    summary = json.loads(path.with_suffix(".json").read_text())
    if split.kfold:
        sizes = ", ".join(f"{f['counts']['test']}" for f in summary["folds"])
        print(f"{path}: {len(split.folds)} folds, test sizes {sizes}")
    else:
        c = summary["counts"]
        print(f"{path}: train {c['train']}, val {c['val']}, test {c['test']}")
    print(f"split_sha256 {summary['split_sha256']}")
    return 0


def read_rows(path: str | Path, n: int, flag: str = "--rows") -> np.ndarray:
    """Manifest row indices from a ``.npy`` (ints, or a bool mask of length N) or a text file;
    ``flag`` names the option in errors."""
    from fape.errors import UserError

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{flag} file not found: {p}")
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            toks = p.read_text().replace(",", " ").split()
            arr = np.array([int(x) for x in toks], np.int64)
    except (ValueError, OSError) as e:
        raise UserError(f"{flag} file {p} is not a list of integer row indices: {e}") from None
    arr = np.asarray(arr)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise UserError(f"{flag} file {p}: a bool mask must have {n} entries (one per manifest row), "
                              f"got shape {arr.shape}")
        return np.flatnonzero(arr)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{flag} file {p}: expected a 1-D array of integer row indices, got {arr.dtype} {arr.shape}")
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise UserError(f"{flag} file {p}: row {int(arr[bad][0])} is outside the manifest (0..{n - 1})")
    if len(arr) == 0:
        raise UserError(f"{flag} file {p} is empty")
    return arr.astype(np.int64)
