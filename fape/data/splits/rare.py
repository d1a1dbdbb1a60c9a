"""The ER-UE and ER-UP builders: rare expressions / a rare pose, tested, trained for a fraction and
held back otherwise (the oracle trains them; package docstring)."""
from __future__ import annotations

import numpy as np

from fape.data.splits.groups import allocate, by_groups, carve_val, cut_units, seq_groups
from fape.data.splits.protocols import POSE_ALIASES, PROTOCOLS, VIEW, leak_unit
from fape.errors import SplitError


def _rare_split(m, rng, opts, rare_mask, strata, with_pose=False):
    """Rows of leak units touching a rare row: rare_train_fraction train / rest test, per stratum;
    other rows train. Val carved per stratum (common, each rare stratum) from the train side."""
    n = len(m)
    gid, sizes = seq_groups(m, np.arange(n), with_pose=with_pose)
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
        g2, sz2 = seq_groups(m, rows_s, with_pose=with_pose)
        part = allocate(sz2, (opts["rare_train_fraction"], 1 - opts["rare_train_fraction"]), rng)
        d = by_groups(rows_s, g2, part, ("train", "test"))
        tr, va = carve_val(m, d["train"], opts["val_fraction"], rng, with_pose)
        train_sets.append(tr), val_sets.append(va), test_sets.append(d["test"])
    tr, va = carve_val(m, common_rows, opts["val_fraction"], rng, with_pose)
    train_sets.append(tr), val_sets.append(va)
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)  # noqa: E731
    return {"train": cat(train_sets), "val": cat(val_sets), "test": cat(test_sets)}


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
        d = cut_units(m, rows, (t, 1 - t), rng, ("test", "pool"))
        test.append(rare_rows_of(d["test"]))  # ER-UP: the other views of a tested sequence are unused
        tr, va = carve_val(m, d["pool"], opts["val_fraction"], rng)
        val.append(va)
        rare = rare_rows_of(tr)
        keep = cut_units(m, rare, (f, 1 - f), rng, ("train", "held"))
        train += [np.setdiff1d(tr, rare), keep["train"]]
        held.append(keep["held"])
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)  # noqa: E731
    return {"train": _held_back(opts, meta, cat(train), cat(held)), "val": cat(val), "test": cat(test)}


def _no_oracle_with_views(protocol, opts):
    if opts.get("oracle"):
        raise SplitError(f"protocol {protocol}: oracle=true needs leak_unit=sequence (with sequence+pose "
                         f"units nothing is held back for it)")


def er_ue(m, rng, opts, meta, label_names, **_):
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
    tr, va = carve_val(m, common, opts["val_fraction"], rng)
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


def er_up(m, rng, opts, meta, pose_names, **_):
    default = opts["rare_pose"] == PROTOCOLS["er-up"].defaults["rare_pose"]
    pose = _resolve_pose(m, opts["rare_pose"], pose_names, default)
    meta["rare_pose"] = pose
    meta["val"] = "val_fraction of the training (sequence, pose) units of the common poses and of the rare pose"
    mask = m["pose"].to_numpy() == pose
    if leak_unit("er-up", opts) == VIEW:
        _no_oracle_with_views("er-up", opts)
        return [_rare_split(m, rng, opts, mask, mask.astype(np.int64), with_pose=True)]
    return [_rare_sequences(m, rng, opts, meta, lambda rows: rows[mask[rows]], [np.arange(len(m))])]
