"""Faults around outputs: what --overwrite / --fresh may delete, permissions, unwritable --out."""
import os
import stat

import numpy as np
import pytest
from PIL import Image

from fape.cli import main
from fape.errors import OutputError
from fape.utils.io import atomic_dir, atomic_write_text, check_replaceable, claim_dir


def _image_folder(root):
    for c in ("happy", "sad"):
        (root / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((24, 24), 40 * i + 60, np.uint8)).save(root / c / f"{i}.png")
    return root


def _import(src, out, *extra):
    return main(["data", "import", "folder", str(src), "--out", str(out), "--skip-bad", "--overwrite", *extra])


def test_overwrite_refuses_a_users_folder_and_keeps_it(tmp_path, capsys):
    src = _image_folder(tmp_path / "src")
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "thesis.txt").write_text("x")
    assert _import(src, user) == 2
    err = capsys.readouterr().err
    assert "refusing to replace" in err and str(user) in err
    assert (user / "thesis.txt").read_text() == "x" and sorted(p.name for p in user.iterdir()) == ["thesis.txt"]
    assert not list(tmp_path.glob(".userdir.*"))  # no temporary folder left beside it


def test_overwrite_refuses_a_plain_file(tmp_path, capsys):
    src = _image_folder(tmp_path / "src")
    f = tmp_path / "plainfile"
    f.write_text("y")
    assert _import(src, f) == 2
    assert "is a file" in capsys.readouterr().err
    assert f.read_text() == "y" and not list(tmp_path.glob(".plainfile.*"))


def test_overwrite_replaces_an_empty_folder_and_a_dataset_of_ours(tmp_path):
    src = _image_folder(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    assert _import(src, out) == 0 and (out / "dataset.json").is_file()
    (out / "dataset.json").touch()  # replaced again: it is a fape dataset now
    assert _import(src, out) == 0 and (out / "manifest.csv").is_file()


def test_refusal_is_checked_before_the_work_and_again_before_the_rename(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "dataset.json").write_text("{}")
    # the folder becomes a user's while the block runs: the rename must still refuse
    with pytest.raises(OutputError, match="refusing to replace"):
        with atomic_dir(out, overwrite=True) as tmp:
            (out / "dataset.json").unlink()
            (out / "notes.txt").write_text("mine")
            (tmp / "dataset.json").write_text("{}")
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_check_replaceable_rules(tmp_path):
    check_replaceable(tmp_path / "absent", ("dataset.json",))
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty", ("dataset.json",))
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(OutputError, match="link"):
        check_replaceable(tmp_path / "link", ("dataset.json",))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("a: 1")
    check_replaceable(run, ("config.yaml",))
    with pytest.raises(OutputError, match="dataset.json"):
        check_replaceable(run, ("dataset.json",))  # a run is not a dataset


def test_quickstart_refuses_a_users_folder_even_with_fresh(tmp_path, capsys):
    user = tmp_path / "user"
    (user / "gan").mkdir(parents=True)
    (user / "gan" / "weights.txt").write_text("keep")
    assert main(["quickstart", "--size", "tiny", "--out", str(user), "--fresh"]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert (user / "gan" / "weights.txt").read_text() == "keep"


def test_experiment_refuses_a_users_folder(tmp_path, capsys):
    user = tmp_path / "user"
    user.mkdir()
    (user / "report.md").write_text("mine")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"name: e\ndata:\n  root: {tmp_path / 'absent'}\n")
    assert main(["experiment", str(cfg), "--out", str(user)]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert (user / "report.md").read_text() == "mine"


def test_train_run_dir_must_be_empty_or_a_run(tmp_path, capsys):
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    assert main(["clf", "train", "-c", "configs/clf/fanet_f2ed.yaml", "--run-dir", str(user)]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]


def test_outputs_respect_the_umask(tmp_path):
    src = _image_folder(tmp_path / "src")
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        assert _import(src, out) == 0
        atomic_write_text(tmp_path / "note.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "dataset.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "manifest.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "note.txt").stat().st_mode) == 0o644


def test_unwritable_out_is_named(tmp_path, capsys):
    src = _image_folder(tmp_path / "src")
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = blocker / "out"  # its parent is a file: no folder can be made there, even as root
    assert main(["data", "import", "folder", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write output folder {out}" in err and ".partial" not in err
    with pytest.raises(OutputError, match=f"cannot write {blocker / 'x.json'}"):
        atomic_write_text(blocker / "x.json", "{}")
    with pytest.raises(OutputError, match=f"cannot write output folder {out}"):
        claim_dir(out, ("config.yaml",))


@pytest.mark.parametrize("override, message", [
    ("--train.epochs=-3", "train.epochs: must be >= 1, got -3"),
    ("--train.batch_size=0", "train.batch_size: must be >= 1, got 0"),
    ("--train.epochs=inf", "train.epochs: expected an integer, got 'inf'"),
    ("--train.epochs=nan", "train.epochs: expected an integer, got 'nan'"),
    ("--optim.lr=nan", "optim.lr: must be a finite number, got nan"),
    ("--train.epoch=3", "unknown config key 'train.epoch'"),
])
def test_out_of_range_config_is_one_line_with_the_dotted_key_and_no_run_folder(tmp_path, capsys, override, message):
    runs = tmp_path / "runs"
    code = main(["clf", "train", "-c", "configs/clf/fanet_f2ed.yaml", f"--runs_dir={runs}", override])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not runs.exists()


def test_a_start_that_fails_on_its_data_leaves_no_run_folder(tmp_path, capsys):
    runs = tmp_path / "runs"
    for group, cfg in (("clf", "configs/clf/fanet_f2ed.yaml"), ("gan", "configs/gan/quick.yaml")):
        code = main([group, "train", "-c", cfg, f"--runs_dir={runs}", f"--data.root={tmp_path / 'absent'}"])
        assert code == 2 and "absent" in capsys.readouterr().err
    assert not runs.exists()


def test_typed_override_checks_like_the_command_line():
    from fape.classifiers.config import ClfConfig
    from fape.config import ConfigError, override

    cfg = override(ClfConfig(), {"data.mix": 0.25, "train.seed": 3})
    assert cfg.data.mix == 0.25 and cfg.train.seed == 3
    with pytest.raises(ConfigError, match="data.mix: must be >= -1.0, got -2.0"):
        override(cfg, {"data.mix": -2.0})


def test_predict_refuses_a_users_out_folder(tmp_path, capsys):
    img = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48, 3), 128, np.uint8)).save(img)
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    assert main(["predict", str(img), "--out", str(user)]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]


def test_a_run_another_process_trains_is_refused_and_left_alone(tmp_path, monkeypatch):
    """Two experiment processes on one output folder: the second stops at a cell the first holds,
    with the lock named, before it writes anything into it; once the holder is gone, the cell resumes."""
    import subprocess
    import sys

    import fape.classifiers.train as clf_train
    from fape.classifiers.config import ClfConfig
    from fape.classifiers.train_eval import train_and_eval

    run = tmp_path / "clf" / "cell"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom fape.utils.io import exclusive_run\n"
        f"with exclusive_run({str(run)!r}):\n    print('held', flush=True)\n    time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        trained = []
        monkeypatch.setattr(clf_train, "train", lambda *a, **k: trained.append(a))
        with pytest.raises(OutputError, match=r"being trained by another process .*\.cell\.lock"):
            train_and_eval(ClfConfig(), run)
        assert not trained and not run.exists()
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(FileNotFoundError):  # the lock is free again: training starts (here a stub), then eval
        train_and_eval(ClfConfig(), run)
    assert len(trained) == 1
