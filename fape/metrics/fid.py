"""Features, statistics, Frechet distance (FID) and kernel inception distance (KID).

Small pure functions, composable in memory (no generated image is written to disk):

* ``iter_batches(source)``: a folder of images, a fape dataset folder, ``.npz`` (not here: see
  ``stats_of``), a tensor / array, or an iterable of batches -> uint8 or float ``[B, C, H, W]``.
* ``features_from(model, batches)``: ``[N, D]`` float64 features, from pytorch-fid's InceptionV3
  (see ``fape.metrics.inception``) or from any classifier with ``forward_features``.
* ``statistics(feats) -> (mu, sigma)``, ``save_stats`` / ``load_stats`` (pytorch-fid ``.npz``).
* ``frechet_distance(mu1, sigma1, mu2, sigma2)``, ``kid(feats1, feats2)``, ``per_group``.

Input conventions for images: uint8 in [0, 255], or float in [-1, 1] (the GAN's range); 1-channel
images are repeated to 3 channels. For Inception they become float in [0, 1] exactly as pytorch-fid's
``ToTensor`` makes them (``uint8 / 255`` in float32), and pytorch-fid's ``InceptionV3.forward`` then
resizes bilinearly to 299x299 and maps to [-1, 1].
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from fape.data.dataset import to_uint8
from fape.data.preprocess import to_model_input

IMAGE_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")  # pytorch-fid's


# ---------------------------------------------------------------- image sources
def image_files(folder: str | Path) -> list[Path]:
    """Images directly inside ``folder`` (pytorch-fid's rule: lower-case extensions, not recursive), sorted."""
    folder = Path(folder)
    return sorted(f for ext in IMAGE_EXTENSIONS for f in folder.glob(f"*.{ext}"))


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:  # as pytorch-fid: PIL, convert("RGB") (gray repeats to 3 channels)
        return np.asarray(im.convert("RGB"))


def _folder_batches(files: list[Path], batch_size: int) -> Iterator[torch.Tensor]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:  # PIL decoding releases the GIL
        for i in range(0, len(files), batch_size):
            imgs = list(pool.map(_read_rgb, files[i:i + batch_size]))
            yield torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)


def is_dataset(path: str | Path) -> bool:
    from fape.data.format import read_info

    try:
        read_info(path)
        return True
    except Exception:
        return False


def _dataset_batches(root, batch_size: int, rows=None, size=None) -> Iterator[torch.Tensor]:
    from fape.data.dataset import FaceDataset

    ds = root if hasattr(root, "images") else FaceDataset(root, rows=rows, size=size, progress=False)
    imgs = ds.images()
    for i in range(0, len(ds), batch_size):
        idx = ds.rows[i:i + batch_size]
        if imgs is not None:
            arr = np.ascontiguousarray(imgs[np.sort(idx)])  # order within a batch does not change statistics
            yield torch.from_numpy(arr).permute(0, 3, 1, 2)
        else:
            yield torch.stack([ds[k]["image"] for k in range(i, min(i + batch_size, len(ds)))])


def iter_batches(source, batch_size: int = 100) -> tuple[Iterator[torch.Tensor], int | None]:
    """``source`` -> (iterator of ``[B, C, H, W]`` batches, number of images or None if unknown).

    ``source``: a folder of images, a fape dataset folder (its manifest, via ``FaceDataset``), a
    ``FaceDataset``, a tensor / array ``[N, C, H, W]`` (uint8 or float in [-1, 1]), or an iterable of
    such batches (e.g. a generator yielding generated images).
    """
    if isinstance(source, (str, Path)):
        p = Path(source)
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: not a folder of images nor a fape dataset")
        if is_dataset(p):
            from fape.data.format import read_info

            return _dataset_batches(p, batch_size), read_info(p).num_images
        files = image_files(p)
        if not files:
            raise FileNotFoundError(f"{p}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
        return _folder_batches(files, batch_size), len(files)
    if hasattr(source, "images") and hasattr(source, "rows"):
        return _dataset_batches(source, batch_size), len(source)
    if isinstance(source, np.ndarray):
        source = torch.from_numpy(source)
    if torch.is_tensor(source):
        return (source[i:i + batch_size] for i in range(0, len(source), batch_size)), len(source)
    return iter(source), None


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 ``x / 255`` (pytorch-fid's ToTensor); float in [-1, 1] -> ``(x + 1) / 2``.
    1-channel images are repeated to 3 channels."""
    if x.dtype == torch.uint8:
        x = x.to(torch.float32).div_(255.0)
    else:
        x = (x.to(torch.float32) + 1.0) / 2.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x


def is_fid_inception(model) -> bool:
    return type(model).__name__ == "InceptionV3" and hasattr(model, "blocks")


def extractor_name(model) -> str:
    """Which feature extractor a number came from (goes into every report)."""
    name = getattr(model, "extractor_name", None)
    return name or f"{type(model).__name__} forward_features"


@torch.inference_mode()
def features_from(model, batches, total: int | None = None, device: str | torch.device = "cpu",
                  progress: bool = True, desc: str = "features") -> np.ndarray:
    """Features ``[N, D]`` float64 of every image in ``batches`` (anything ``iter_batches`` takes).

    * pytorch-fid's ``InceptionV3``: input as pytorch-fid feeds it (``[0, 1]``, 3 channels), its
      forward resizes to 299 and normalises; outputs that are not 1x1 are spatially averaged.
    * a model with ``takes_uint8 = True`` (``fape.metrics.face_fid.FaceEmbedder``): ``model(x)`` with
      ``x`` uint8 ``[B, C, H, W]``; its rows may be NaN (no face found), the caller drops them.
    * any other module: ``model.forward_features(x)`` with ``x`` in [-1, 1], resized to
      ``model.default_cfg["image_size"]`` and converted to ``default_cfg["in_chans"]`` channels;
      ``[B, D, h, w]`` outputs are spatially averaged.
    """
    from tqdm import tqdm

    if not isinstance(batches, Iterator) or total is None:
        it, n = iter_batches(batches)
        total = total if total is not None else n
    else:
        it = batches
    if hasattr(model, "eval"):
        model.eval()
    inception = is_fid_inception(model)
    cfg = getattr(model, "default_cfg", None) or {}
    out: list[np.ndarray] = []
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False)
    for x in it:
        x = torch.as_tensor(x)
        if x.ndim == 3:
            x = x.unsqueeze(0)
        x = x.to(device)
        if inception:
            f = model(to_unit(x).contiguous(memory_format=torch.channels_last))[0]
        elif getattr(model, "takes_uint8", False):
            f = model(x if x.dtype == torch.uint8 else to_uint8(x))
        else:
            f = model.forward_features(to_model_input(x, cfg.get("image_size"), int(cfg.get("in_chans", x.shape[1]))))
        if f.ndim == 4 and f.shape[2:] != (1, 1):
            f = f.mean((2, 3))
        out.append(f.reshape(f.shape[0], -1).double().cpu().numpy())
        bar.update(len(x))
    bar.close()
    if not out:
        raise ValueError("no images to compute features of")
    return np.concatenate(out)


# ---------------------------------------------------------------- statistics
def statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[N, D]`` features -> ``mu [D]``, ``sigma [D, D]`` (float64; sigma = ``np.cov(rowvar=False)``,
    the unbiased ``1 / (N - 1)`` estimate, as pytorch-fid)."""
    f = np.asarray(feats, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need [N >= 2, D] features, got shape {f.shape}")
    mu = f.mean(0)
    c = f - mu
    sigma = (c.T @ c) / (len(f) - 1)
    return mu, sigma


def save_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray, **extra) -> Path:
    """``.npz`` with ``mu`` and ``sigma`` (pytorch-fid ``--save-stats`` format; extra keys allowed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, mu=mu, sigma=sigma, **extra)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as f:
        if "mu" not in f or "sigma" not in f:
            raise ValueError(f"{path}: not FID statistics (needs keys 'mu' and 'sigma', has {list(f.keys())})")
        return np.asarray(f["mu"], np.float64), np.asarray(f["sigma"], np.float64)


# ---------------------------------------------------------------- distances
def _sym_psd_sqrt_factor(sigma: np.ndarray) -> np.ndarray:
    """``A [D, k]`` with ``A A^T = sigma^{1/2}``-compatible factor: ``sigma^{1/2} = A V^T`` where
    ``A = V diag(sqrt(lam))`` over the k eigenvalues above the rank threshold."""
    from scipy.linalg import eigh

    lam, V = eigh(sigma, driver="evd", check_finite=False)
    tol = max(lam.max(initial=0.0), 0.0) * len(lam) * np.finfo(np.float64).eps
    keep = lam > tol
    return V[:, keep] * np.sqrt(lam[keep])


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    r"""Frechet distance between Gaussians N(mu1, S1) and N(mu2, S2) (the FID on Inception statistics):

        d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^{1/2} S2 S1^{1/2})^{1/2})

    ``tr((S1 S2)^{1/2})`` of pytorch-fid equals the last term: S1 S2 = S1^{1/2} (S1^{1/2} S2 S1^{1/2})
    S1^{-1/2} is similar to the symmetric PSD matrix M = S1^{1/2} S2 S1^{1/2}, so both have the same
    (real, >= 0) eigenvalues mu_i and ``tr(M^{1/2}) = sum_i sqrt(mu_i)``. No ``sqrtm`` (a Schur
    decomposition of a non-symmetric matrix, slow and prone to complex round-off) is needed:

    1. Factor S1 = A A^T. First choice: Cholesky (A = L, D x D), a third of a matrix product's cost.
       When S1 is singular (e.g. N < D samples) Cholesky fails, and A comes from a symmetric
       eigen-decomposition S1 = V diag(lam) V^T (LAPACK ``syevd``) with eigenvalues below
       ``D * eps * max(lam)`` (round-off) dropped: A = V_k diag(sqrt(lam_k)) [D, k].
    2. S1 S2 = A (A^T S2 A) A^{-1} (on the range of A), so its non-zero eigenvalues are those of the
       symmetric PSD matrix B = A^T S2 A; eigenvalues of B (``syevd``, values only) below 0 are
       round-off, clipped to 0.
    3. tr term = sum sqrt(eig(B)).

    Cost at D = 2048: a Cholesky, two matrix products and one eigenvalue-only problem, about 2 s
    against 17 s for ``scipy.linalg.sqrtm(S1 @ S2)`` here (``benchmarks/fid.py``). Always real, never
    NaN for PSD inputs, also when S1 and/or S2 are singular. Inputs are float64; returns a float.
    """
    from scipy.linalg import eigh

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"mean vectors have different shapes: {mu1.shape} vs {mu2.shape}")
    if s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"covariances must both be [{len(mu1)}, {len(mu1)}], got {s1.shape} and {s2.shape}")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2  # exact symmetry for the symmetric solvers
    A = _cholesky_or_none(s1)  # [D, D], S1 = A A^T
    if A is None:  # singular S1: eigen-factor without its null space, [D, k]
        A = _sym_psd_sqrt_factor(s1)
    if A.shape[1] == 0:
        tr_covmean = 0.0
    else:
        B = A.T @ s2 @ A
        mu = eigh((B + B.T) / 2, eigvals_only=True, driver="evd", check_finite=False)
        tr_covmean = float(np.sqrt(np.clip(mu, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def _cholesky_or_none(s: np.ndarray) -> np.ndarray | None:
    """Cholesky factor of ``s``, or None when ``s`` is singular to working precision (a pivot
    below ``D * eps * max diag``): tiny pivots would blow up ``A^T S2 A``."""
    try:
        L = np.linalg.cholesky(s)
    except np.linalg.LinAlgError:
        return None
    piv = np.diag(L) ** 2
    if not np.isfinite(L).all() or piv.min() <= len(piv) * np.finfo(np.float64).eps * max(np.diag(s).max(), 1e-300):
        return None
    return L


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3 (KID's kernel), ``[n, d] x [m, d] -> [n, m]``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    r"""Unbiased MMD^2 with the cubic polynomial kernel:

        MMD^2 = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
                - 2/(m n) sum_{i, j} k(x_i, y_j)
    """
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kid(feats1: np.ndarray, feats2: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float | None]:
    """Kernel Inception Distance: mean and std of ``mmd2_unbiased`` over ``subsets`` random subsets
    of ``subset_size`` rows of each set (drawn without replacement; ``subset_size`` is capped at the
    smaller set size, which must be >= 2). Unbiased, so usable on small (per-pose / per-class) sets.
    When the cap takes both whole sets, every subset is the same pair of sets (MMD does not depend on
    the order): one value, and the std is None rather than a meaningless 0."""
    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"need [N, D] features with the same D, got {f1.shape} and {f2.shape}")
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(f1)} and {len(f2)}")
    if m == len(f1) == len(f2):
        return float(mmd2_unbiased(f1, f2)), None
    rng = np.random.default_rng(seed)
    vals = np.array([mmd2_unbiased(f1[rng.choice(len(f1), m, replace=False)],
                                   f2[rng.choice(len(f2), m, replace=False)]) for _ in range(subsets)])
    return float(vals.mean()), float(vals.std())


def fid_from_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    return frechet_distance(*statistics(feats1), *statistics(feats2))


def fid_kid(real: np.ndarray, fake: np.ndarray, kid_subsets: int = 100, kid_subset_size: int = 1000) -> dict:
    """FID and KID of two feature sets ``[N, D]``, with their sizes: ``{"fid", "kid", "kid_std",
    "n_real", "n_fake"}``. The one record every FID in a report is built from."""
    k, ks = kid(real, fake, kid_subsets, kid_subset_size)
    return {"fid": fid_from_features(real, fake), "kid": k, "kid_std": ks, "n_real": int(len(real)),
            "n_fake": int(len(fake))}


def per_group(feats1: np.ndarray, groups1, feats2: np.ndarray, groups2, names=None, min_size: int = 2,
              kid_subsets: int = 100, kid_subset_size: int = 1000) -> dict:
    """FID and KID per group (e.g. target pose or expression): ``{group: {"n1", "n2", "fid", "kid",
    "kid_std"}}``; groups with fewer than ``min_size`` images in a set get only their counts.
    FID of small groups is strongly biased (upwards) by the sample size: compare KID across groups."""
    g1, g2 = np.asarray(groups1), np.asarray(groups2)
    out = {}
    for g in sorted(set(g1.tolist()) | set(g2.tolist())):
        a, b = feats1[g1 == g], feats2[g2 == g]
        name = names[g] if names is not None and isinstance(g, (int, np.integer)) and 0 <= g < len(names) else str(g)
        rec = {"n1": int(len(a)), "n2": int(len(b))}
        if len(a) >= min_size and len(b) >= min_size:
            rec["fid"] = fid_from_features(a, b)
            rec["kid"], rec["kid_std"] = kid(a, b, kid_subsets, kid_subset_size)
        out[name] = rec
    return out


__all__ = ["features_from", "fid_from_features", "fid_kid", "frechet_distance", "image_files", "iter_batches", "kid",
           "load_stats", "mmd2_unbiased", "per_group", "polynomial_kernel", "save_stats", "statistics", "to_unit"]
