import json
import subprocess
import sys

from fape.cli import main


def test_quickstart_tiny_end_to_end_and_reuse(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--size", "tiny", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["images"] == 2 * 54 * 1 * 4
    assert results["data"]["landmarks_ok"] == results["data"]["images"]
    assert set(results["data"]["poses"]) == {"half_left", "front", "half_right", "bird_view"}
    assert (out / "contact_sheet.png").stat().st_size > 1000
    for stage in ("data", "masks"):  # the report cannot time its own writing
        assert f"| {stage} |" in report and results["stages"][stage]["seconds"] > 0
    capsys.readouterr()
    assert main(["quickstart", "--size", "tiny", "--out", str(out)]) == 0
    assert "data: reused" in capsys.readouterr().out


def test_python_dash_m_fape():
    r = subprocess.run([sys.executable, "-m", "fape", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "quickstart" in r.stdout
