"""Search hygiene: every read of a run's test part is on record (RUN/test_reads.jsonl), the CLI
warns from the second read on, and the recipe-search tools score on validation, never on test."""
import ast
import json

import pytest

from _fixtures import REPO, load_tool, make_multipose
from fape.classifiers import train as clf_train
from fape.classifiers.config import ClfConfig
from fape.classifiers.evaluate import TEST_READS, evaluate_run, list_test_reads, record_test_read
from fape.classifiers.train_eval import train_and_eval
from fape.cli import main
from fape.config import load_config
from fape.utils.io import sha256_file

TINY = ["--model.name=cnn3", "--data.split=random", "--data.image_size=32", "--data.channels=3",
        "--train.batch_size=8", "--train.epochs=1", "--optim.lr=0.01"]


def _tool(name: str):
    return load_tool(name)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_multipose(tmp_path_factory.mktemp("hyg") / "real", subjects=4, expressions=3, frames=2)


def _cfg(data):
    return load_config(ClfConfig, REPO / "configs/clf/fanet_f2ed.yaml", [f"--data.root={data}", *TINY])


def test_record_test_read_appends_one_line_per_read(tmp_path):
    split = tmp_path / "split.csv"
    split.write_text("row,path,split\n0,a.png,test\n")
    run = tmp_path / "run"
    run.mkdir()
    assert list_test_reads(run) == []
    assert record_test_read(run, split, n=1) == 1
    assert record_test_read(run, split, n=1) == 2
    lines = (run / TEST_READS).read_text().splitlines()
    assert len(lines) == 2
    rec = json.loads(lines[0])
    assert rec["split_file"] == str(split) and rec["split_sha256"] == sha256_file(split)
    assert rec["time"].endswith("+00:00") and isinstance(rec["command"], str) and rec["n"] == 1


def test_eval_records_test_reads_and_cli_warns_from_the_second(data, tmp_path, capsys):
    run = clf_train.train(_cfg(data), tmp_path / "run", progress=False)
    evaluate_run(run, "val")
    assert not (run / TEST_READS).exists()  # validation is not a test read
    assert main(["clf", "eval", "--run", str(run), "--split", "test"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["clf", "eval", "--run", str(run), "--split", "test"]) == 0
    err = capsys.readouterr().err
    assert f"test part of {run} read 2 times; a number chosen after looking at test is spent" in err
    reads = list_test_reads(run)
    assert len(reads) == 2 and all(r["split_sha256"] == sha256_file(r["split_file"]) for r in reads)
    assert all("clf eval" in r["command"] or "pytest" in r["command"] for r in reads)


def test_train_and_eval_reads_test_once_and_val_never(data, tmp_path, capsys):
    run = tmp_path / "cell"
    train_and_eval(_cfg(data), run)
    train_and_eval(_cfg(data), run)  # a finished cell is reused, not re-read
    assert len(list_test_reads(run)) == 1
    assert "warning" not in capsys.readouterr().err  # the library records; only the CLI warns
    val_run = tmp_path / "search-cell"
    res = train_and_eval(_cfg(data), val_run, split="val")
    assert res["split"] == "val" and not (val_run / TEST_READS).exists()
    assert not (val_run / "eval" / "test").exists()


def test_variant_tool_scores_on_validation_and_never_reads_test(data, tmp_path, capsys):
    out = tmp_path / "variant"
    res = _tool("quickstart_clf_variant").main([str(data), str(out), "--size", "tiny", "--split", "random",
                                                "--data.channels=3"])
    assert res["split"] == "val" and (out / "eval" / "val" / "results.json").is_file()
    assert not (out / TEST_READS).exists() and not (out / "eval" / "test").exists()
    printed = capsys.readouterr().out
    assert "validation accuracy" in printed and "test" not in printed.replace("random", "")


def test_learnability_check_never_loads_a_test_image(data, monkeypatch, capsys):
    from fape.data import splits

    tool = _tool("check_synth_learnable")
    test_rows = splits.make_split(data, "random", 0).parts["test"]
    assert len(test_rows)
    loaded = []
    real_load = tool.load_image
    monkeypatch.setattr(tool, "load_image", lambda p: loaded.append(str(p)) or real_load(p))
    acc = tool.main([str(data), "--split", "random", "--epochs", "1", "--threads", "1"])
    assert 0 <= acc <= 1 and "validation accuracy" in capsys.readouterr().out
    from fape.data.format import read_index

    idx = read_index(data)
    test_paths = {str(idx.image_path(int(r))) for r in test_rows}
    assert loaded and not test_paths & set(loaded)


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


@pytest.mark.parametrize("tool", sorted(p.stem for p in (REPO / "tools").glob("*.py") if p.stem != "package_model"))
def test_search_tools_do_not_evaluate_on_test(tool):
    """A search or trial tool scores on validation: every train_and_eval call asks for split="val"
    and no evaluate_run call names the test part. (package_model evaluates the shipped model
    once, for its card: the final number, not a search.)"""
    tree = ast.parse((REPO / "tools" / f"{tool}.py").read_text())
    for call in _calls(tree, "train_and_eval"):
        split = {k.arg: k.value for k in call.keywords}.get("split")
        assert isinstance(split, ast.Constant) and split.value == "val", f"{tool}: train_and_eval without split='val'"
    for call in _calls(tree, "evaluate_run"):
        args = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "split")]
        assert args and all(isinstance(a, ast.Constant) and a.value != "test" for a in args), \
            f"{tool}: evaluate_run on the test part"
