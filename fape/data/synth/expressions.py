"""Expression vocabulary of the synthetic set: 54 F2ED-style emotions in 4 families, or 7 basic ones.

An expression is a vector over ``PARAMS`` (action-unit-like deformation controls, see
``fape.data.synth.head.deform``). Values are in [0, 1] except ``eye_wide`` in [-1, 1]
(negative = lids lowered). The 54 emotions follow the F2ED list (Lee's extension of Plutchik);
the paper clusters them into 4 groups with k-means, here the 4 families are fixed by hand:

0 positive, 1 negative high-arousal (hostile / fearful), 2 negative low-arousal (sad / withdrawn),
3 neutral, cognitive and surprise. Members of one family share their main controls and differ in
weaker ones, so within-family pairs are the fine-grained, confusable classes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# the deformation controls, in vector order
PARAMS = (
    "brow_inner_up", "brow_outer_up", "brow_lower", "eye_wide", "squint", "smile", "frown",
    "jaw_drop", "lip_stretch", "lip_press", "pucker", "nose_wrinkle", "cheek_raise",
    "upper_lip_raise", "asymmetry", "gaze_down",
)
P = {name: i for i, name in enumerate(PARAMS)}
_SHORT = {"bi": "brow_inner_up", "bo": "brow_outer_up", "bl": "brow_lower", "ew": "eye_wide", "sq": "squint",
          "sm": "smile", "fr": "frown", "jd": "jaw_drop", "ls": "lip_stretch", "lp": "lip_press", "pk": "pucker",
          "nw": "nose_wrinkle", "cr": "cheek_raise", "ul": "upper_lip_raise", "asym": "asymmetry",
          "gd": "gaze_down"}
PARAM_LOW = np.array([-1.0 if p == "eye_wide" else 0.0 for p in PARAMS], np.float32)  # [16]
PARAM_HIGH = np.full(len(PARAMS), 1.2, np.float32)  # [16] a little headroom over the prototypes

FAMILY_NAMES = ("positive", "negative_high_arousal", "negative_low_arousal", "neutral_cognitive")

# name: (family, {short control: value})
_FINE: dict[str, tuple[int, dict[str, float]]] = {
    # family 0: positive
    "acceptance": (0, dict(sm=.35, cr=.2, ew=-.1)),
    "admiration": (0, dict(sm=.45, bi=.3, bo=.3, ew=.25, cr=.3)),
    "amusement": (0, dict(sm=.8, cr=.7, sq=.5, jd=.3)),
    "delight": (0, dict(sm=.9, cr=.8, sq=.3, jd=.45, bo=.2)),
    "excitement": (0, dict(sm=.8, ew=.5, bo=.5, bi=.3, jd=.55, cr=.5)),
    "gratitude": (0, dict(sm=.5, bi=.45, cr=.4, ew=-.2, gd=.2)),
    "hope": (0, dict(sm=.3, bi=.5, bo=.2, ew=.2)),
    "joy": (0, dict(sm=1.0, cr=.9, sq=.45, jd=.25)),
    "love": (0, dict(sm=.55, cr=.5, ew=-.35, sq=.2, pk=.1)),
    "optimism": (0, dict(sm=.6, cr=.4, bo=.3, ew=.15)),
    "pride": (0, dict(sm=.4, asym=.3, ew=-.15, lp=.3, bo=.1)),
    "relief": (0, dict(sm=.35, bi=.3, ew=-.45, jd=.15)),
    "satisfaction": (0, dict(sm=.5, lp=.35, cr=.3, ew=-.2)),
    "serenity": (0, dict(sm=.25, ew=-.5, cr=.1)),
    "trust": (0, dict(sm=.3, bo=.15, cr=.2, ew=.05, lp=.1)),
    # family 1: negative, high arousal
    "aggressiveness": (1, dict(bl=.8, ew=.3, ls=.5, ul=.4, jd=.2, nw=.3)),
    "angry": (1, dict(bl=.9, ew=.2, lp=.7, sq=.2)),
    "annoyance": (1, dict(bl=.5, lp=.4, asym=.2, sq=.25)),
    "anxiety": (1, dict(bi=.7, bl=.3, ew=.3, ls=.4, lp=.3)),
    "contempt": (1, dict(asym=.8, sq=.2, lp=.2, ew=-.1)),
    "disgust": (1, dict(nw=.9, ul=.7, bl=.4, sq=.4, fr=.3)),
    "envy": (1, dict(bl=.35, asym=.4, sq=.45, fr=.3, gd=.2)),
    "fear": (1, dict(bi=.8, bo=.4, bl=.2, ew=.8, ls=.7, jd=.3)),
    "hate": (1, dict(bl=.8, nw=.5, ul=.5, sq=.5, lp=.3)),
    "horror": (1, dict(bi=.7, bo=.7, ew=1.0, jd=.8, ls=.5)),
    "jealousy": (1, dict(bl=.45, sq=.4, lp=.5, fr=.25, asym=.2)),
    "rage": (1, dict(bl=1.0, ew=.5, ul=.6, jd=.5, ls=.6, nw=.4)),
    "tension": (1, dict(bl=.3, lp=.6, ls=.3, sq=.2, ew=.1)),
    "terror": (1, dict(bi=1.0, bo=.6, ew=1.0, ls=1.0, jd=.55, bl=.3)),
    # family 2: negative, low arousal
    "boredom": (2, dict(ew=-.5, fr=.2, asym=.15, gd=.3, lp=.2)),
    "cowardice": (2, dict(bi=.6, ew=.2, ls=.3, gd=.5, fr=.2)),
    "despair": (2, dict(bi=1.0, fr=.7, ew=-.3, jd=.3, sq=.2)),
    "disappointment": (2, dict(fr=.6, bi=.3, lp=.3, gd=.3)),
    "embarrassed": (2, dict(sm=.35, gd=.7, cr=.4, lp=.2, ew=-.2, asym=.2)),
    "grief": (2, dict(bi=.9, fr=.8, sq=.5, jd=.2, nw=.2, ew=-.4)),
    "guilt": (2, dict(bi=.5, fr=.35, gd=.8, ew=-.3)),
    "loneliness": (2, dict(bi=.4, fr=.4, ew=-.3, gd=.4)),
    "pessimism": (2, dict(fr=.5, bl=.2, ew=-.2, lp=.2, asym=.1)),
    "remorse": (2, dict(bi=.7, fr=.5, gd=.6, ew=-.4, lp=.2)),
    "sadness": (2, dict(bi=.7, fr=.7, ew=-.25, gd=.25)),
    "shame": (2, dict(gd=1.0, bi=.3, fr=.3, ew=-.5)),
    "shyness": (2, dict(sm=.3, gd=.6, ew=-.2, lp=.3, cr=.2)),
    "submission": (2, dict(bi=.4, gd=.7, ew=-.1, lp=.15)),
    # family 3: neutral, cognitive, surprise
    "amazement": (3, dict(bo=.8, bi=.6, ew=.7, jd=.6, sm=.2)),
    "anticipation": (3, dict(bo=.3, ew=.35, lp=.3, sm=.1)),
    "bravery": (3, dict(bl=.25, lp=.5, ew=.2, sq=.1, sm=.1)),
    "calm": (3, dict(ew=-.3, sm=.05)),
    "confusion": (3, dict(asym=.6, bl=.35, bi=.3, pk=.2, sq=.2)),
    "curiosity": (3, dict(bo=.45, asym=.35, ew=.3, jd=.1)),
    "doubt": (3, dict(asym=.5, bl=.3, lp=.35, sq=.3, fr=.15)),
    "interest": (3, dict(bo=.35, bi=.2, ew=.25, jd=.1)),
    "neutral": (3, dict()),
    "pensiveness": (3, dict(gd=.5, bl=.2, pk=.35, sq=.15)),
    "surprise": (3, dict(bo=1.0, bi=.8, ew=.9, jd=.8)),
}

# the 7 basic expressions (FER2013 / CK+ order), each with a vector of its own
_BASIC: dict[str, tuple[int, dict[str, float]]] = {
    "anger": (1, dict(bl=.9, ew=.3, lp=.6, sq=.2, ul=.2)),
    "disgust": (1, dict(nw=.9, ul=.7, bl=.3, sq=.3, fr=.2)),
    "fear": (1, dict(bi=.9, bo=.5, ew=.9, ls=.8, jd=.4)),
    "happy": (0, dict(sm=1.0, cr=.8, sq=.4, jd=.3)),
    "sad": (2, dict(bi=.8, fr=.7, ew=-.3, gd=.3)),
    "surprise": (3, dict(bo=1.0, bi=.8, ew=1.0, jd=.8)),
    "neutral": (3, dict()),
}


@dataclass(frozen=True)
class Expression:
    name: str
    family: int
    vector: np.ndarray  # [16] control values at full intensity
    key: int  # stable id for seeding: independent of which subset of expressions is rendered


def _vector(controls: dict[str, float]) -> np.ndarray:
    v = np.zeros(len(PARAMS), np.float32)
    for short, value in controls.items():
        v[P[_SHORT[short]]] = value
    return v


def expression_set(classes: int, count: int | None = None) -> list[Expression]:
    """The expressions of the 54- or 7-class mode, in label order; ``count`` keeps the first N."""
    if classes == 54:
        table, key0 = _FINE, 0
    elif classes == 7:
        table, key0 = _BASIC, 1000
    else:
        raise ValueError(f"classes must be 54 or 7, got {classes}")
    out = [Expression(name, fam, _vector(ctrl), key0 + i) for i, (name, (fam, ctrl)) in enumerate(table.items())]
    return out if count is None else out[:count]


assert len(_FINE) == 54, len(_FINE)
