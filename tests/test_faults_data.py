"""Issue 12 ("nothing lost, nothing silent"), data side: killed imports, decompression bombs,
manifest paths that leave the dataset folder, missing manifest / csv columns."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fape.data.format import DatasetError, save_image
from fape.utils import partials
from fape.utils.io import sha256_file

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- defect 3: killed imports
def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                kids.append(int(d.name))
    return kids


def _running(pid: int) -> bool:
    return partials.start_ticks(pid) is not None  # None: gone or a zombie


def _wait(cond, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


# the import, with each image slowed down (sleeping, not computing) so it is surely mid-way when killed;
# under fork the pool workers inherit the patched function
_SLOW_IMPORT = """
import sys, time
import fape.data.adapters.base as base
_real = base._convert
def _slow(*args):
    time.sleep(0.02)
    return _real(*args)
base._convert = _slow
from fape.data.adapters import import_dataset
import_dataset("folder", sys.argv[1], sys.argv[2], {"workers": 2})
"""


@pytest.fixture(scope="module")
def killed_import(tmp_path_factory):
    """A pooled import of 1,200 images killed with SIGKILL mid-way: (src, out, worker pids)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the pool workers")
    root = tmp_path_factory.mktemp("killed")
    src, out = root / "src", root / "out" / "ds"
    rng = np.random.default_rng(0)
    for i in range(1200):  # >= SERIAL_BELOW: the size of import that uses the pool
        save_image(src / f"c{i % 2}" / f"{i:04d}.png", rng.integers(0, 256, (8, 8), np.uint8))
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_IMPORT, str(src), str(out)],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        started = _wait(lambda: len(_children(proc.pid)) >= 2 and any(out.parent.glob(".ds.partial-*")), 15)
        assert started, "the import did not start its pool"
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        yield src, out, workers
    finally:
        proc.kill()
        proc.wait()
        for w in workers:  # only the test's own processes, if the fix failed
            if _running(w):
                os.kill(w, signal.SIGKILL)


def test_killed_import_leaves_no_live_worker(killed_import):
    _, _, workers = killed_import
    assert _wait(lambda: not any(_running(w) for w in workers), 5), \
        f"pool workers {[w for w in workers if _running(w)]} outlived their killed parent"


def test_rerun_removes_the_partial_of_a_killed_import(killed_import):
    from fape.data.adapters import import_dataset

    src, out, _ = killed_import
    stale = list(out.parent.glob(".ds.partial-*"))
    assert len(stale) == 1 and partials.partial_owner(stale[0], "ds") is not None
    import_dataset("folder", src, out, {"limit": 10, "workers": 1})
    assert not stale[0].exists() and (out / "manifest.csv").is_file()


def test_clean_stale_partials_removes_only_dead_owners(tmp_path):
    import socket

    out = tmp_path / "ds"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host, me = socket.gethostname(), os.getpid()
    mine = partials.start_ticks(me)
    folders = {
        "dead": f".ds.partial-{host}-{dead.pid}-{mine}-ab_12",  # its pid is free (or reused: other start)
        "reused": f".ds.partial-{host}-{me}-{mine + 1}-cd34",  # the pid now runs another process
        "live": f".ds.partial-{host}-{me}-{mine}-ef56",  # a concurrent run: keep
        "other_host": f".ds.partial-{host}x-{dead.pid}-{mine}-gh78",  # cannot tell: keep
        "unnamed": ".ds.partial-k2j4h5a9",  # no owner in the name: keep
        "other_output": f".ds2.partial-{host}-{dead.pid}-{mine}-ij90",  # not ds's: keep
        "user": "ds-partial-notes",
    }
    for name in folders.values():
        (tmp_path / name).mkdir()
    (tmp_path / f".ds.partial-{host}-{dead.pid}-{mine}-file").write_text("a file, not a folder")
    removed = partials.clean_stale_partials(out)
    assert sorted(p.name for p in removed) == sorted([folders["dead"], folders["reused"]])
    left = {p.name for p in tmp_path.iterdir()}
    assert left == set(folders.values()) - {folders["dead"], folders["reused"]} | {
        f".ds.partial-{host}-{dead.pid}-{mine}-file"}


def test_partial_prefix_names_this_process(tmp_path):
    tmp = Path(tempfile.mkdtemp(prefix=partials.partial_prefix("my-data.v2"), dir=tmp_path))
    host, pid, start = partials.partial_owner(tmp, "my-data.v2")
    assert (pid, start) == (os.getpid(), partials.start_ticks(os.getpid()))
    assert not partials.owner_dead(host, pid, start)
    assert partials.clean_stale_partials(tmp_path / "my-data.v2") == [] and tmp.is_dir()


# ---------------------------------------------------------------- defect 5: decompression bombs
def _blank_png(path: Path, side: int) -> Path:
    """A side x side 1-bit black PNG written row by row: a few kB on disk, side**2 pixels decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, row = zlib.compressobj(9), b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture()
def bomb_src(tmp_path):
    src = tmp_path / "src"
    for c in ("a", "b"):
        save_image(src / c / "ok.png", np.full((8, 8), 100, np.uint8))
    _blank_png(src / "b" / "bomb.png", 15000)  # 225 M pixels: past PIL's 2 x 89.5 M bomb error
    return src


def test_decompression_bomb_is_a_bad_image(bomb_src, tmp_path):
    from fape.data.adapters import import_dataset

    with pytest.raises(DatasetError, match=r"b/bomb\.png: image file is too large.*225000000 pixels.*--max-pixels"):
        import_dataset("folder", bomb_src, tmp_path / "strict", {"workers": 1})
    out = import_dataset("folder", bomb_src, tmp_path / "skip", {"skip_bad": True, "workers": 1})
    report = json.loads((out / "import_report.json").read_text())
    assert [s["source"] for s in report["skipped"]] == ["b/bomb.png"]
    assert "too large" in report["skipped"][0]["reason"] and report["num_images"] == 2


def test_decompression_bomb_cli_names_the_file(bomb_src, tmp_path, capsys):
    from fape.cli import main

    assert main(["data", "import", "folder", str(bomb_src), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bomb.png" in err and "--max-pixels" in err and "Traceback" not in err


def test_max_pixels_is_the_limit(tmp_path, monkeypatch):
    from PIL import Image

    from fape.cli import UserError
    from fape.data.adapters import import_dataset
    from fape.data.format import load_image

    src = tmp_path / "src"
    save_image(src / "a" / "small.png", np.zeros((4, 4), np.uint8))
    save_image(src / "a" / "big.png", np.zeros((8, 8), np.uint8))
    out = import_dataset("folder", src, tmp_path / "o", {"skip_bad": True, "max_pixels": 16})
    report = json.loads((out / "import_report.json").read_text())
    assert [s["source"] for s in report["skipped"]] == ["a/big.png"] and report["options"]["max_pixels"] == 16
    # a limit above PIL's own (here shrunk to 10 pixels) is the one that counts
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    assert load_image(src / "a" / "big.png", max_pixels=64).shape == (8, 8, 1)
    with pytest.raises(DatasetError, match=r"big.png is 8 x 8 = 64 pixels, more than the limit of 63"):
        load_image(src / "a" / "big.png", max_pixels=63)
    with pytest.raises(UserError, match="--max-pixels"):
        import_dataset("folder", src, tmp_path / "o2", {"max_pixels": 0})


# ---------------------------------------------------------------- defect 6: paths out of the dataset
def _edit_manifest(root: Path, row: int, column: str, value) -> None:
    m = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    m.loc[row, column] = value
    m.to_csv(root / "manifest.csv", index=False)


@pytest.mark.parametrize("bad", ["/etc/x.png", "../outside.png", "images/../../outside.png",
                                 "images\\..\\..\\outside.png", "C:/x.png", ""])
def test_manifest_paths_must_stay_in_the_dataset(tmp_path, bad):
    from _fixtures import make_multipose

    root = make_multipose(tmp_path / "ds", subjects=1, expressions=2, frames=1, poses=("front",), size=8)
    save_image(tmp_path / "outside.png", np.zeros((8, 8, 3), np.uint8))  # what ../ would read
    _edit_manifest(root, 1, "path", bad)
    why = "is empty" if not bad else "is absolute" if bad[0] in "/C" else "has a '..' component"
    with pytest.raises(DatasetError, match=rf"manifest.csv: row 1 path .* {why}"):
        _run_data(["reindex", str(root)])
    info = json.loads((root / "dataset.json").read_text())  # as if reindex had accepted the edit
    info["manifest_sha256"] = sha256_file(root / "manifest.csv")
    (root / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=rf"manifest.csv: row 1 path .* {why}"):
        _run_data(["cache", str(root)])
    assert not (root / "cache").exists()


def _run_data(command: list[str]) -> None:
    """Run ``fape data COMMAND`` letting its DatasetError through (main() would print it)."""
    from fape.cli import build_parser

    args, rest = build_parser().parse_known_args(["data", *command])
    args.handler(args, rest)


# ---------------------------------------------------------------- defect 8b: missing columns named
@pytest.mark.parametrize("column", ["path", "label", "expression"])
def test_missing_manifest_column_is_named(tmp_path, column):
    from _fixtures import make_multipose

    from fape.data.format import read_index, reindex

    root = make_multipose(tmp_path / "ds", subjects=1, expressions=2, frames=1, poses=("front",), size=8)
    m = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    m.drop(columns=column).to_csv(root / "manifest.csv", index=False)
    for read in (reindex, lambda r: read_index(r, check_hash=False)):
        with pytest.raises(DatasetError, match=rf"manifest.csv: missing column\(s\) \['{column}'\]"):
            read(root)


@pytest.mark.parametrize("column", ["path", "label"])
def test_missing_column_of_a_manifest_frame_is_named(column):
    from fape.data.format import normalise_manifest
    from fape.data.splits import make_split

    m = pd.DataFrame({"path": ["a.png", "b.png"], "label": [0, 1], "expression": ["x", "y"]}).drop(columns=column)
    with pytest.raises(DatasetError, match=rf"missing column\(s\) \['{column}'\]"):
        normalise_manifest(m)
    with pytest.raises(DatasetError, match=rf"missing column\(s\) \['{column}'\]"):
        make_split(m, "random", seed=0)


@pytest.mark.parametrize("column", ["path", "label"])
def test_missing_column_of_an_import_csv_is_named(tmp_path, column):
    from fape.data.adapters import import_dataset

    save_image(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    pd.DataFrame({"path": ["a.png"], "label": ["x"]}).drop(columns=column).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(DatasetError, match=rf"l.csv: missing column\(s\) \['{column}'\]"):
        import_dataset("csv", tmp_path / "l.csv", tmp_path / "o")


@pytest.mark.parametrize("column", ["row", "label", "pred"])
def test_missing_column_of_predictions_csv_is_named(tmp_path, column):
    from fape.classifiers.compare import compare
    from fape.classifiers.kfold import summary

    for k, run in enumerate(("r1", "r2")):  # two folds: each tests its own rows
        p = tmp_path / run / "eval" / "test" / "predictions.csv"
        p.parent.mkdir(parents=True)
        table = pd.DataFrame({"row": [2 * k, 2 * k + 1], "label": [0, 1], "pred": [0, 0]})
        table.drop(columns=column).to_csv(p, index=False)
        (p.parent / "results.json").write_text(json.dumps({"per_class": {"a": 1.0, "b": 0.0}}))
    runs = [tmp_path / "r1", tmp_path / "r2"]
    with pytest.raises(DatasetError, match=rf"predictions.csv: missing column\(s\) \['{column}'\]"):
        summary(runs)
    with pytest.raises(DatasetError, match=rf"predictions.csv: missing column\(s\) \['{column}'\]"):
        compare({"a": [str(runs[0])], "b": [str(runs[1])]})
