"""Identity preservation: cosine similarity of dlib face embeddings of source and generated images.

Embeddings: dlib's ResNet ``face_recognition_model_v1`` (``dlib_face_recognition_resnet_model_v1.dat``,
shipped by face-recognition-models, found like the shape predictor in ``fape.data.faces``) computed by
``compute_face_descriptor(rgb, shape)``, where ``shape`` is the 68-point shape predictor's result in a
face box (HOG / Haar detection, or the whole-image inset box for small aligned crops, as in
``fape.metrics.pose``). Small images are first upsampled (bicubic) so the face box is >= 160 px: the
network aligns a 150x150 chip from the shape. 128-d descriptors; cosine similarity in [-1, 1].

Reference: similarities of real images of the same subject and of different subjects (means and
quantiles), so that a generated-vs-source similarity can be read against both.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

EMBED_FILE = "dlib_face_recognition_resnet_model_v1.dat"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MIN_SIDE = 160


@lru_cache(maxsize=None)
def face_recognizer():
    import dlib

    from fape.data.faces import model_file

    return dlib.face_recognition_model_v1(str(model_file(EMBED_FILE)))


def face_shapes(images, mode: str = "cropped", upsample: int = 2) -> list[tuple[int, np.ndarray, object]]:
    """The dlib inputs of each face in uint8 ``[B, H, W, C]`` (or ``[B, C, H, W]``) images:
    ``(i, rgb [s*H, s*W, 3] uint8, 68-point full_object_detection)`` for every image ``i`` where a
    face box is found (``mode="cropped"``: the whole-image inset box, so only near-blank images
    have none), upsampled by the integer ``s`` that makes the box >= ``MIN_SIDE`` px."""
    import cv2
    import dlib

    from fape.data import faces
    from fape.data.landmarks import as_hwc, face_box

    sp = faces.shape_predictor()
    out = []
    for i, im in enumerate(as_hwc(images)):
        rgb = faces.to_rgb(im)
        box, code = face_box(faces.to_gray(rgb), mode == "cropped", upsample)
        if box is None:
            continue
        s = max(1, int(np.ceil(MIN_SIDE / max(box[2] - box[0], 1.0))))
        if s > 1:
            rgb = cv2.resize(rgb, (rgb.shape[1] * s, rgb.shape[0] * s), interpolation=cv2.INTER_CUBIC)
        b = (np.asarray(box, np.float64) + 0.5) * s - 0.5
        rect = dlib.rectangle(*(int(round(v)) for v in (b[0], b[1], b[2] - 1, b[3] - 1)))
        rgb = np.ascontiguousarray(rgb)
        out.append((i, rgb, sp(rgb, rect)))
    return out


def embed(images, mode: str = "cropped", upsample: int = 2) -> np.ndarray:
    """uint8 ``[B, H, W, C]`` (or ``[B, C, H, W]``) -> ``[B, 128]`` float64, NaN rows where no face.

    One call of dlib's batch form ``compute_face_descriptor([rgb], [[shape]])`` for the faces of
    ``images``: it aligns the same 150x150 chip per face as the one-face form and gives the same
    vectors (``tests/test_metrics_synth.py``); the ResNet then runs on the chips as one batch."""
    import dlib

    out = np.full((len(images), 128), np.nan)
    found = face_shapes(images, mode, upsample)
    if found:
        vecs = face_recognizer().compute_face_descriptor([f[1] for f in found],
                                                         [dlib.full_object_detections([f[2]]) for f in found])
        out[[f[0] for f in found]] = np.array([np.asarray(v[0]) for v in vecs])  # [F, 128]
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity ``[B]`` (NaN where a row is NaN)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)


def distribution(values: np.ndarray) -> dict:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "mean": float(v.mean()), **{f"q{int(q * 100):02d}": float(np.quantile(v, q))
                                                          for q in QUANTILES}}


def reference_similarities(emb: np.ndarray, subjects, max_pairs: int = 2000, seed: int = 0) -> dict:
    """Same-subject and different-subject cosine similarity distributions of real-image embeddings."""
    subjects = np.asarray(subjects)
    ok = np.isfinite(emb).all(1)
    idx = np.flatnonzero(ok)
    rng = np.random.default_rng(seed)
    same, diff = [], []
    if len(idx) >= 2:
        a = rng.choice(idx, max_pairs * 4)
        b = rng.choice(idx, max_pairs * 4)
        keep = a != b
        a, b = a[keep], b[keep]
        sim = cosine(emb[a], emb[b])
        eq = subjects[a] == subjects[b]
        same, diff = sim[eq][:max_pairs], sim[~eq][:max_pairs]
    return {"same_subject": distribution(np.asarray(same)), "different_subject": distribution(np.asarray(diff))}


def preservation(source_emb: np.ndarray, generated_emb: np.ndarray) -> dict:
    """Source vs generated embeddings ``[B, 128]`` -> ``{"similarity": distribution of the row-wise
    cosines, "failure_rate": share of pairs where either image has no face}``."""
    sim = cosine(source_emb, generated_emb)
    return {"similarity": distribution(sim), "failure_rate": float(np.mean(~np.isfinite(sim))) if len(sim) else 0.0}


__all__ = ["cosine", "distribution", "embed", "face_shapes", "preservation", "reference_similarities"]
