"""The split protocols: their table (``PROTOCOLS``, defaults and help), the constants of the paper
protocols, and the resolution of ``--option key=value`` strings into typed options."""
from __future__ import annotations

from dataclasses import dataclass

from fape.errors import SplitError

PARTS = ("train", "val", "test")

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


FER_MAP = {"training": "train", "train": "train", "publictest": "val", "val": "val",
           "privatetest": "test", "test": "test"}


def resolve_options(proto: Protocol, options: dict) -> dict:
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


def leak_unit(protocol: str, options: dict | None = None) -> str:
    """``"sequence+pose"`` or ``"sequence"``: what must not be shared between the parts of a split."""
    unit = (options or {}).get("leak_unit", PROTOCOLS[protocol].defaults.get("leak_unit", "sequence")
                               if protocol in PROTOCOLS else "sequence")
    if unit not in LEAK_UNITS:
        raise SplitError(f"protocol {protocol}: leak_unit must be one of {', '.join(LEAK_UNITS)}, got {unit!r}")
    return unit
