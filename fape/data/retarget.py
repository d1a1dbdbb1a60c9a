"""Landmark retargeting: draw expression b on a face shown in expression a, from a donor's a -> b.

A landmark-driven generator needs the target landmarks of a face that was never photographed in
expression b. They are made from three 68-point sets (``fape.data.landmarks68`` indices):

* ``source`` S: the face to redraw, in expression a, ``[68, 2]`` pixels of its image;
* ``donor_from`` D_a and ``donor_to`` D_b: a donor (another subject, or the same one) in
  expressions a and b, pixels of the donor's images.

Method ``retarget-similarity``::

    (s, R, t)  = argmin  sum_{i in RIGID} | s R D_a[i] + t - S[i] |^2          (1) donor -> source
    D_b'       = T_ba(D_b),  T_ba = argmin sum_{i in RIGID} | T(D_b[i]) - D_a[i] |^2   (2) stabilise
    out        = S + s R (D_b' - D_a)                                           (3)

(1) is a least-squares similarity (scale s, rotation R, translation t; no reflection) fitted on
the *rigid* points only, which an expression does not move: the outer and inner eye corners
(36, 39, 42, 45), the nose bridge (27-30) and the upper face outline (0-3 and 13-16, beside the
eyes and ears). The lower outline (4-12) is left out because the jaw drops when the mouth opens
(surprise, happiness). (2), on by default, removes the donor's own head motion and crop change
between its two images (another similarity on the same points), so only the non-rigid change
moves the source. (3) adds the donor's change, rotated and scaled into the source's frame, to
the source's points; t drops out of a difference.

With K donor pairs (``[K, 68, 2]`` donors) (1)-(3) run per pair and the source moves by the mean
of the K changes. Each change carries the detection noise of two photos; on real landmarks the
mean of 3 predicts a subject's own other expression better than one
(``tools/retarget_check.py``, docs/results.md: error 0.052 -> 0.042 of the eye distance on
CK+48, 0.057 -> 0.046 on JAFFE).

Known answers (tested): with the donor's a-image equal to the source (a subject's own a -> b),
(1) is the identity and the output is D_b' (= D_b without (2), or when the two images' rigid
points already agree); a donor that is a scaled, rotated, translated copy gives the same output.

The similarity in 2-D is a complex linear fit: with centred points as complex numbers
``x = D_a - mean``, ``y = S - mean``, ``s e^{i theta} = sum(conj(x) y) / sum(|x|^2)``.
"""
from __future__ import annotations

import numpy as np

from fape.errors import DatasetError

METHOD = "retarget-similarity"
EYE_CORNERS = (36, 39, 42, 45)  # outer right, inner right, inner left, outer left
NOSE_BRIDGE = (27, 28, 29, 30)
UPPER_OUTLINE = (0, 1, 2, 3, 13, 14, 15, 16)  # the jaw line beside the eyes and ears, not the chin
RIGID: tuple[int, ...] = EYE_CORNERS + NOSE_BRIDGE + UPPER_OUTLINE


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[complex, complex]:
    """Least-squares similarity ``z -> a z + b`` (complex ``a = s e^{i theta}``, ``b`` the
    translation) mapping points ``src`` onto ``dst``, both ``[K, 2]`` pixels."""
    x = src[:, 0] + 1j * src[:, 1]  # [K] complex
    y = dst[:, 0] + 1j * dst[:, 1]
    mx, my = x.mean(), y.mean()
    den = float(np.sum(np.abs(x - mx) ** 2))
    if den <= 1e-12:
        raise DatasetError("landmark retargeting: the rigid points of a landmark set coincide (degenerate set)")
    a = np.sum(np.conj(x - mx) * (y - my)) / den
    return complex(a), complex(my - a * mx)


def apply_similarity(a: complex, b: complex, pts: np.ndarray) -> np.ndarray:
    """``z -> a z + b`` on ``[..., 2]`` pixels."""
    z = a * (pts[..., 0] + 1j * pts[..., 1]) + b
    return np.stack([z.real, z.imag], -1)


def retarget(source: np.ndarray, donor_from: np.ndarray, donor_to: np.ndarray, stabilise: bool = True) -> np.ndarray:
    """The source's landmarks moved by the donor's change from ``donor_from`` to ``donor_to``
    (module docstring): ``[68, 2]`` source and ``[68, 2]`` (one pair) or ``[K, 68, 2]`` (K pairs,
    mean change) donors, pixels -> ``[68, 2]`` float32 pixels in the source's image."""
    S = np.asarray(source, np.float64)  # [68, 2] pixels
    Da, Db = (np.asarray(x, np.float64) for x in (donor_from, donor_to))
    Da, Db = (x[None] if x.ndim == 2 else x for x in (Da, Db))  # [K, 68, 2] pixels each
    if S.shape != (68, 2) or Da.shape != Db.shape or Da.shape[1:] != (68, 2) or not len(Da):
        raise ValueError(f"retarget: needs a [68, 2] source and two [68, 2] or [K, 68, 2] donor arrays, got "
                         f"{S.shape}, {Da.shape}, {Db.shape}")
    for name, x in (("source", S), ("donor_from", Da), ("donor_to", Db)):
        if not np.isfinite(x).all():
            raise DatasetError(f"landmark retargeting: the {name} landmarks contain NaN/inf (no detection?)")
    return (S + np.mean([_change(S, a, b, stabilise) for a, b in zip(Da, Db)], 0)).astype(np.float32)


def _change(S: np.ndarray, Da: np.ndarray, Db: np.ndarray, stabilise: bool) -> np.ndarray:
    """One donor pair's change a -> b in the source's frame, ``[68, 2]`` pixels (steps (1)-(3))."""
    rigid = list(RIGID)
    if stabilise:
        Db = apply_similarity(*fit_similarity(Db[rigid], Da[rigid]), Db)  # [68, 2] donor b in donor a's frame
    a, _ = fit_similarity(Da[rigid], S[rigid])  # donor -> source: only the linear part moves a difference
    return apply_similarity(a, 0j, Db - Da)  # [68, 2] pixels of the source's image
