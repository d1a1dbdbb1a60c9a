"""pytorch-fid's FID InceptionV3, loaded from a local weights file (nothing is downloaded).

pytorch-fid builds its network with ``fid_inception_v3()``, which fetches
``pt_inception-2015-12-05-6726825d.pth`` with ``load_state_dict_from_url`` (into
``torch.hub.get_dir()/checkpoints/``). Here the same ``InceptionV3(..., use_fid_inception=True)`` is
constructed while that module-level loader is swapped, for the duration of the constructor only,
for one that reads the local file: the architecture, block split, resize and normalisation are
pytorch-fid's own, so features (and FID) equal pytorch-fid's for the same weights file.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
BLOCK_INDEX_BY_DIM = {64: 0, 192: 1, 768: 2, 2048: 3}
_LOCK = threading.Lock()


def weight_candidates(weights: str | Path | None = None) -> list[Path]:
    """Every path looked at: ``weights`` if given, else the torch hub cache."""
    if weights is not None:
        return [Path(weights).expanduser()]
    return [Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE]


def find_inception_weights(weights: str | Path | None = None) -> Path:
    """The FID Inception weights file, or FileNotFoundError naming the path(s) looked at."""
    from fape.utils.weights import first_file

    return first_file(weight_candidates(weights), f"FID Inception weights {FID_WEIGHTS_FILE}",
                      f"Download {FID_WEIGHTS_URL} on a machine with internet and copy it there, "
                      "or pass --inception-weights PATH")


@lru_cache(maxsize=8)
def weights_sha256(path: str) -> str:
    from fape.utils.io import sha256_file

    return sha256_file(path)


@contextmanager
def _local_state_dict(path: Path):
    """Within the block, pytorch-fid's ``load_state_dict_from_url`` reads ``path`` instead."""
    import pytorch_fid.inception as pfi

    def load(url, *args, **kwargs):
        return torch.load(path, map_location="cpu", weights_only=True)

    with _LOCK:
        saved = pfi.load_state_dict_from_url
        pfi.load_state_dict_from_url = load
        try:
            yield
        finally:
            pfi.load_state_dict_from_url = saved


def load_inception(weights: str | Path | None = None, dims: int = 2048, device: str | torch.device = "cpu"):
    """pytorch-fid ``InceptionV3([block], resize_input=True, normalize_input=True)`` in eval mode.

    Input of its forward: float ``[B, 3, H, W]`` in [0, 1]; output: list with ``[B, dims, 1, 1]``
    (spatially averaged by the caller when ``dims`` < 2048, as pytorch-fid does).
    """
    from pytorch_fid.inception import InceptionV3

    if dims not in BLOCK_INDEX_BY_DIM:
        raise ValueError(f"dims must be one of {sorted(BLOCK_INDEX_BY_DIM)}, got {dims}")
    path = find_inception_weights(weights)
    with _local_state_dict(path):
        model = InceptionV3([BLOCK_INDEX_BY_DIM[dims]], resize_input=True, normalize_input=True,
                            use_fid_inception=True)
    model.eval().requires_grad_(False)
    # NHWC: oneDNN's convolutions are ~2x faster on CPU; same maths (differences at float round-off)
    model = model.to(memory_format=torch.channels_last)
    model.weights_path = str(path)
    model.dims = dims
    model.extractor_name = f"inception-v3-fid pool{dims} (weights {path.name}, sha256 {weights_sha256(str(path))[:16]})"
    return model.to(device)


def random_fid_weights(path: str | Path, seed: int = 0) -> Path:
    """Save randomly initialised FID-Inception weights (same keys/shapes as the real file): for tests
    and benchmarks only. BatchNorm running statistics are randomised too so activations vary."""
    import pytorch_fid.inception as pfi

    torch.manual_seed(seed)
    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():  # He init: torchvision's default shrinks activations to ~constant features
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, generator=g, nonlinearity="relu")
    sd = net.state_dict()
    for k, v in sd.items():
        if k.endswith("running_mean"):
            v.copy_(torch.randn(v.shape, generator=g) * 0.1)
        elif k.endswith("running_var"):
            v.copy_(torch.rand(v.shape, generator=g) + 0.5)
    path = Path(path)
    torch.save(sd, path)
    return path


__all__ = ["FID_WEIGHTS_FILE", "find_inception_weights", "load_inception", "random_fid_weights", "weight_candidates"]
