import numpy as np
import pytest
import torch

from _fixtures import make_multipose
from fape.data.dataset import FaceDataset, build_cache, to_float, to_uint8
from fape.data.format import DatasetError, load_image


def test_cached_equals_decoded(tmp_path):
    root = make_multipose(tmp_path / "d")
    cached, direct = FaceDataset(root, progress=False), FaceDataset(root, cache=False)
    assert len(list((root / "cache").glob("images_*.npy"))) == 1
    for k in (0, 7, 35):
        a, b = cached[k], direct[k]
        assert a["image"].shape == (3, 32, 32) and a["image"].dtype == torch.uint8
        assert torch.equal(a["image"], b["image"])
        ref = load_image(root / direct.index.manifest["path"].iat[k])
        assert np.array_equal(a["image"].permute(1, 2, 0).numpy(), ref)


def test_resize_gray_and_landmark_scaling(tmp_path):
    root = make_multipose(tmp_path / "d")
    ds = FaceDataset(root, size=64, channels=1, progress=False)
    item = ds[0]
    assert item["image"].shape == (1, 64, 64)
    lm32 = ds.index.landmarks[0]
    assert np.allclose(item["landmarks"].numpy(), (lm32 + 0.5) * 2 - 0.5)


def test_rows_subset_and_dataloader(tmp_path):
    root = make_multipose(tmp_path / "d")
    ds = FaceDataset(root, rows=[1, 5, 9], progress=False)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1)))
    assert batch["index"].tolist() == [1, 5, 9] and batch["image"].shape == (3, 3, 32, 32)


def test_stale_cache_not_reused_after_edit(tmp_path):
    root = make_multipose(tmp_path / "d")
    ds = FaceDataset(root, progress=False)
    first = ds._cache_file
    from fape.data.format import read_index, write_index
    idx = read_index(root)
    write_index(root, idx.manifest.iloc[::-1].reset_index(drop=True), idx.info, idx.landmarks[::-1], idx.landmarks_ok[::-1])
    ds2 = FaceDataset(root, progress=False)
    assert ds2._cache_file != first
    assert torch.equal(ds2[0]["image"], ds[len(ds) - 1]["image"])


def test_corrupt_image_named(tmp_path):
    root = make_multipose(tmp_path / "d")
    bad = root / FaceDataset(root, cache=False).index.manifest["path"].iat[4]
    bad.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=str(bad.name)):
        build_cache(FaceDataset(root, cache=False).index, (32, 32), 3, progress=False)
    # the build got as far as its temp file (.images.*.npy.tmp, in the cache folder it made) and
    # left nothing behind: no cache under the final name, no partial temp file
    assert (root / "cache").is_dir() and sorted((root / "cache").iterdir()) == []


def test_float_roundtrip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    f = to_float(x)
    assert f.min() == -1 and f.max() == 1
    assert torch.equal(to_uint8(f), x)
