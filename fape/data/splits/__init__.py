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

from fape.data.splits.files import load_split, save_split, split_meta
from fape.data.splits.protocols import (CKPLUS_EXCLUDE, F2ED_SS, F2ED_SUBJECTS, FER_MAP, LEAK_UNITS, PARTS,
                                        POSE_ALIASES, PROTOCOLS, VIEW, Protocol, leak_unit)
from fape.data.splits.rows import holdout_rows, read_rows, subject_holdout
from fape.data.splits.split import Split, check_leaks, make_split
from fape.errors import DatasetError, LeakError, SplitError

__all__ = ["CKPLUS_EXCLUDE", "DatasetError", "F2ED_SS", "F2ED_SUBJECTS", "FER_MAP", "LEAK_UNITS", "LeakError", "PARTS",
           "POSE_ALIASES", "PROTOCOLS", "Protocol", "Split", "SplitError", "VIEW", "check_leaks", "holdout_rows",
           "leak_unit", "load_split", "make_split", "read_rows", "save_split", "split_meta", "subject_holdout"]
