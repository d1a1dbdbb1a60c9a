import json
import os
import re
import subprocess
import sys

import pytest
import torch

from fape.cli import main
from fape.experiment import seed_cells, train_cells
from fape.quickstart import quickstart_experiment


def test_quickstart_tiny_end_to_end_and_reuse(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--size", "tiny", "--out", str(out), "--workers", "2"]) == 0
    report = (out / "report.md").read_text()
    results = json.loads((out / "results.json").read_text())
    stages = json.loads((out / "stages.json").read_text())
    assert list(stages) == ["data", "masks", "experiment", "metrics", "report"]
    tasks = results["tasks"]
    assert tasks == ["er-ss", "er-ue", "er-up", "er-zid"]
    # Table 5 layout: both rows carry a computed number in every task column, no placeholders
    for row in ("| Fa-Net |", "| FaPE-GAN + Fa-Net |"):
        line = next(ln for ln in report.splitlines() if ln.startswith(row))
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        assert len(cells) == 4 and all(re.fullmatch(r"\d+\.\d", c) for c in cells), line
    oracle = next(ln for ln in report.splitlines() if ln.startswith("| Fa-Net, all real (oracle) |"))
    cells = [c.strip() for c in oracle.strip("|").split("|")[1:]]
    assert [re.fullmatch(r"\d+\.\d", c) is not None for c in cells] == [t in ("er-ue", "er-up") for t in tasks]
    for task in ("ER-UE", "ER-UP"):
        line = next(ln for ln in report.splitlines() if ln.startswith(f"- {task}: Headroom"))
        assert re.search(r"Headroom \(oracle - without\) [+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\] points", line), line
        assert "share of the headroom recovered" in line
    for task in tasks:
        for setting in ("without", "with", *(("oracle",) if task in ("er-ue", "er-up") else ())):
            r = results["classification"][f"{task}/{setting}"]
            assert 0 <= r["accuracy"] <= 1 and r["n"] > 0
            assert (out / results["runs"][f"{task}/{setting}"] / "eval" / "test" / "confusion.png").is_file()
        assert results["synthesized"][task] > 0
    m = results["metrics"]["metrics"]
    assert {"paired", "fid_domain"} <= set(m) and "fid_inception" in results["metrics"]["skipped"]
    e = m["expression"]  # agreement on generated faces, read against the classifier on the real targets
    assert e["n"] == results["metrics"]["pairs"] and 0 <= e["accuracy_on_targets"] <= 1
    assert 0 <= e["agreement_landmark_warp"] <= 1
    assert "accuracy on real targets" in report
    # the synthetic set's targets are redrawn under new lighting: the floor no generator can beat
    fl = m["paired"]["nuisance_floor"]
    assert 0 < fl["face_l1_bound"] <= fl["face_l1"] < fl["copy_face_l1"] and fl["n"] == min(results["metrics"]["pairs"], 64)
    assert "nuisance floor" in report
    # pairs of ER-SS's validation part: neither G nor the classifier trained on them (issue 15)
    assert "validation part" in results["metrics"]["pairs_from"] and "validation part" in report
    if "identity" in m:  # scored on at most 64 pairs (the face embedding is the slow part)
        assert m["identity"]["pairs"] == min(results["metrics"]["pairs"], 64)
    assert (out / "accuracy.png").stat().st_size > 1000 and (out / results["gan_grid"]).is_file()
    assert "TODO" not in report and "nan" not in report.lower() and "None" not in report
    capsys.readouterr()
    assert main(["quickstart", "--size", "tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "data: reused" in printed and "experiment: reused" in printed
    # another seed in the same folder would be handed the finished stages of seed 0: refused, all kept
    from fape.errors import OutputError
    from fape.quickstart import run as quickstart_run

    kept = (out / "report.md").read_bytes()
    with pytest.raises(OutputError, match=r"another quick start .*seed: 0 there, 1 now"):
        quickstart_run(out, "tiny", seed=1)
    assert (out / "report.md").read_bytes() == kept and json.loads((out / "quickstart.json").read_text())["seed"] == 0

    # the 2 cells-at-once run gave what one process training the cells in turn gives, with the
    # same threads per cell (the seed's splits, GAN and synthesized sets are the finished ones)
    exp = quickstart_experiment("tiny", 0, out)
    jobs = [(f"{task}/{s.name}", cfg, tmp_path / "serial" / f"{task}-{s.name}")
            for task, s, cfg, run, skip, _fold in seed_cells(exp, out / "data" / "synth", out / "experiment", 0,
                                                       {s.name: "" for s in exp.settings}) if not skip]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        serial = {label: res for label, res in train_cells(jobs, workers=1)}
    finally:
        torch.set_num_threads(threads)
    roles = {"Fa-Net": "without", "FaPE-GAN + Fa-Net": "with", "Fa-Net, all real (oracle)": "oracle"}
    serial = {f"{k.split('/')[0]}/{roles[k.split('/')[1]]}": {m: r[m] for m in ("accuracy", "macro_f1", "n", "chance")}
              for k, r in serial.items()}
    assert serial == results["classification"]


def test_python_dash_m_fape():
    r = subprocess.run([sys.executable, "-m", "fape", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "quickstart" in r.stdout
