r"""FID and KID on dlib's 128-d face embedding: "FID (dlib face embedding)".

Why: Inception's weights cannot be downloaded everywhere, and the domain FID's classifier was
trained on the very data being judged. dlib's ResNet (``face_recognition_model_v1``, shipped by
face-recognition-models, see ``fape.metrics.identity``) was trained on millions of real faces, so a
Frechet distance in its embedding space measures how much the generated faces' distribution of
face descriptors differs from the real one, with a network that knows what faces look like.

Embedding: ``fape.metrics.identity.embed`` (``mode="cropped"``, as the identity metric: the shape
predictor runs in the whole-image inset box of an aligned crop; images are upsampled so the face box
is >= 160 px). Where no face is found (in "cropped" mode: a near-blank image; in "detect" mode:
neither HOG nor Haar found a face) the row is NaN. Those rows are dropped before the statistics, and
every result says how many were dropped from each set (``no_face_real`` / ``no_face_fake``).

Maths, with real embeddings ``x_i`` (n_r rows) and generated ``y_j`` (n_f rows), all in R^128:

    mu_r = mean(x),  S_r = 1/(n_r - 1) sum (x_i - mu_r)(x_i - mu_r)^T     (likewise mu_f, S_f)
    FID  = |mu_r - mu_f|^2 + tr(S_r) + tr(S_f) - 2 tr((S_r^{1/2} S_f S_r^{1/2})^{1/2})

(``fape.metrics.fid.frechet_distance``). Two checks follow from it: the same set gives 0, and a set
moved by a constant vector ``d`` (equal covariances) gives ``|d|^2``, since the trace terms cancel
(``(S^{1/2} S S^{1/2})^{1/2} = S``). Units: squared embedding distance (dlib's descriptors have
norm ~0.5-0.6; two photos of the same person are usually < 0.6 apart in Euclidean distance).

With n <= 128 images the sample covariance has rank <= n - 1 < 128, so it is singular. The distance
stays defined and finite (the factorisation drops the null space), but FID's upward bias of order
1/n is then large: results carry a ``note`` and should be compared at equal n, or through KID
(unbiased MMD^2, cubic kernel ``(x.y / 128 + 1)^3``, ``fape.metrics.fid.kid``).
"""
from __future__ import annotations

import numpy as np
import torch

DIMS = 128


def extractor_label(mode: str) -> str:
    """The extractor's name in reports."""
    return f"dlib face_recognition_model_v1 ({DIMS}-d face embedding, {mode})"


class FaceEmbedder:
    """A feature extractor for ``fape.metrics.fid.features_from``: ``[B, C, H, W]`` uint8 images ->
    ``[B, 128]`` float64 dlib descriptors, NaN rows where no face was found."""

    takes_uint8 = True  # features_from hands it uint8 images (float [-1, 1] inputs are converted)
    nan_means_no_face = True  # a NaN row is an image without a face: callers drop and count it

    def __init__(self, mode: str = "cropped", upsample: int = 2):
        from fape.metrics.identity import face_recognizer

        face_recognizer()  # fail now, naming the missing model file, not on the first batch
        self.mode, self.upsample = mode, upsample
        self.extractor_name = extractor_label(mode)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        from fape.metrics.identity import embed

        return torch.from_numpy(embed(images.cpu().numpy(), self.mode, self.upsample))


def finite_rows(feats: np.ndarray) -> tuple[np.ndarray, int]:
    """``[N, D]`` -> (the rows without NaN / inf ``[M, D]``, number of rows dropped ``N - M``)."""
    f = np.asarray(feats, np.float64)
    ok = np.isfinite(f).all(1)
    return f[ok], int((~ok).sum())


def need_two(n: int, name: str) -> None:
    """A clear ValueError when fewer than 2 images of a set have a face (no covariance exists)."""
    if n < 2:
        raise ValueError(f"FID on the dlib face embedding needs at least 2 images with a face in each set; "
                         f"{name} has {n}")


def small_sample_note(n_real: int, n_fake: int, dims: int = DIMS) -> str | None:
    """Why a FID on n <= dims images is singular and biased, or None when both sets are larger."""
    n = min(n_real, n_fake)
    if n > dims:
        return None
    return (f"singular covariance: {n} images <= {dims} dimensions (rank <= {n - 1}); the FID is finite "
            f"but biased upwards by small n: compare at equal n or read the KID")


def face_fid(real: np.ndarray, fake: np.ndarray, kid_subsets: int = 100, kid_subset_size: int = 1000) -> dict:
    """FID and KID between real and generated dlib embeddings ``[N, 128]`` (NaN rows = no face).

    Returns ``{"fid", "kid", "kid_std", "n_real", "n_fake", "no_face_real", "no_face_fake",
    "note"}``: ``n_*`` count the embeddings used, ``no_face_*`` those dropped. ValueError (a clear
    message) when a set has fewer than 2 faces.
    """
    from fape.metrics.fid import fid_kid

    r, drop_r = finite_rows(real)
    f, drop_f = finite_rows(fake)
    need_two(len(r), f"the real set ({drop_r} of {len(r) + drop_r} without a face)")
    need_two(len(f), f"the generated set ({drop_f} of {len(f) + drop_f} without a face)")
    return {**fid_kid(r, f, kid_subsets, kid_subset_size), "no_face_real": drop_r, "no_face_fake": drop_f,
            "note": small_sample_note(len(r), len(f), r.shape[1])}


__all__ = ["FaceEmbedder", "extractor_label", "face_fid", "finite_rows", "need_two", "small_sample_note"]
