import json

import numpy as np
from PIL import Image

from _fixtures import make_multipose
from fape.cli import main
from fape.data.preview import CELL


def test_show_writes_contact_sheet(tmp_path, capsys):
    root = make_multipose(tmp_path / "d", missing_landmarks=(1,))
    out = tmp_path / "sheet.png"
    assert main(["data", "show", str(root), "--out", str(out), "-n", "8"]) == 0
    im = np.asarray(Image.open(out))
    assert im.shape[1] >= 12 * CELL and im.shape[0] >= 2 * CELL  # 2 rows of 4 x (image|landmarks|mask)
    assert im[..., 1].max() == 255  # green landmark dots were drawn


def test_masks_previews(tmp_path):
    root = make_multipose(tmp_path / "d")
    assert main(["data", "masks", str(root), "--style", "heatmaps", "-n", "3", "--out", str(tmp_path / "m")]) == 0
    assert len(list((tmp_path / "m").glob("*_heatmaps.png"))) == 3


def test_info_cache_reindex(tmp_path, capsys):
    root = make_multipose(tmp_path / "d")
    assert main(["data", "info", str(root)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 36 and info["subjects"] == 2 and info["per_class"]["expr1"] == 12
    assert main(["data", "cache", str(root)]) == 0
    assert main(["data", "reindex", str(root)]) == 0


def test_errors_exit_2_with_message(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    np.save(make_multipose(tmp_path / "d") / "landmarks.npy", np.zeros((3, 68, 2), np.float32))
    assert main(["data", "show", str(tmp_path / "d")]) == 2
    assert "landmarks.npy" in capsys.readouterr().err


def test_help_on_every_level(capsys):
    import pytest

    for argv in (["--help"], ["data", "--help"], ["data", "show", "--help"], ["data", "landmarks", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    assert "landmarks" in capsys.readouterr().out
