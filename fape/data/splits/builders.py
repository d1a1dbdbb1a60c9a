"""The protocol builders: ``BUILDERS[protocol](m=, rng=, opts=, meta=, label_names=, pose_names=)``
-> a list of folds ``{part: rows}`` (one for non-k-fold protocols); ``meta`` collects protocol facts."""
from __future__ import annotations

import numpy as np

from fape.data.splits.groups import carve_val, fraction_split
from fape.data.splits.protocols import CKPLUS_EXCLUDE, F2ED_SS, F2ED_SUBJECTS, FER_MAP, PARTS, leak_unit
from fape.data.splits.rare import er_ue, er_up
from fape.data.splits.rows import holdout_rows
from fape.errors import SplitError


# ------------------------------------------------------------------ protocol builders
def _er_ss(m, rng, opts, meta, **_):
    meta["proportions"] = {"train": F2ED_SS[0], "val": F2ED_SS[1], "test": F2ED_SS[2], "of": sum(F2ED_SS)}
    return [fraction_split(m, np.arange(len(m)), np.asarray(F2ED_SS, float) / sum(F2ED_SS), rng,
                            key=leak_unit("er-ss", opts))]


def _gan_rows(m, rng, opts, **_):
    train, held = holdout_rows(m, opts["rows"], opts["heldout_subjects"], opts["holdout_seed"])
    train, val = carve_val(m, train, opts["val_fraction"], rng)
    return [{"train": train, "val": val, "test": held}]


def _random(m, rng, opts, **_):
    return [fraction_split(m, np.arange(len(m)), opts["fractions"], rng)]


def _subject(m, rng, opts, **_):
    return [fraction_split(m, np.arange(len(m)), opts["fractions"], rng, key="subject")]


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
    tr, va = carve_val(m, np.flatnonzero(pool & (mapped == "")), opts["val_fraction"], rng)
    meta.update(label_names=[label_names[i] for i in keep_labels], labels=keep_labels, test_dataset=opts["test"],
                train_datasets=[d for d in present if d != opts["test"]],
                left_out={"test_rows_of_training_sources": int((pool & (mapped == "test")).sum()),
                          "excluded_classes": int((~keep).sum())},
                val="the training sources' own val rows (split column), else val_fraction of their sequences")
    return [{"train": np.sort(np.concatenate([tr, np.flatnonzero(pool & (mapped == "train"))])),
             "val": np.sort(np.concatenate([va, np.flatnonzero(pool & (mapped == "val"))])),
             "test": np.flatnonzero(held & keep)}]


BUILDERS = {
    "er-ss": _er_ss, "er-ue": er_ue, "er-up": er_up, "er-zid": _er_zid, "fer2013-official": _fer2013,
    "jaffe-deep-emotion": _jaffe_de, "jaffe-loso": _jaffe_loso, "ckplus-10fold": _ckplus,
    "random": _random, "subject": _subject, "leave-one-dataset-out": _lodo, "gan-rows": _gan_rows,
}
