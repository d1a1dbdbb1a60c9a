"""End to end: ``fape gamo serve`` on a free localhost port, headless Chromium (the OS package,
driven by Selenium) whose fake camera plays real JAFFE faces; consent, a game to game over,
the dataset folder against the defused bombs, one ``fape gamo retrain``, screenshots; and the
customized version: 7 templates registered, then a game decided by L2 distance to them.

Set ``GAMO_SCREENSHOTS=DIR`` to keep the screenshots (docs/img/ has the ones in docs/gamo.md).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from _fixtures import SHARED_DATA

JAFFE = SHARED_DATA / "jaffe"
# The shipped model passes its thresholds on these JAFFE faces of subject KA (happy, surprise,
# neutral, sad), so they are held long enough to defuse a bomb; angry, disgust and fear are
# flashed, so those bombs land and the game ends. Order: held faces first, in the label order.
HELD, FLASHED = ("HA", "SU", "NE", "SA"), ("AN", "DI", "FE")


def _requirements():
    if not JAFFE.is_dir():
        pytest.skip(f"real data absent: {JAFFE} (see ../shared/data/README.md)")
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[test]'")
    pytest.importorskip("uvicorn", reason="the gamo extra is not installed: pip install -e '.[gamo]'")
    from fape.gamo.browser import find_browser

    browser, driver = find_browser()
    if not browser or not driver:
        pytest.skip("chromium and chromedriver not found on PATH: run .ci/gamo-deps.sh "
                    "(apt-get install chromium chromium-driver)")


def screenshots(tmp_path) -> Path:
    shots = Path(os.environ.get("GAMO_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    return shots


@contextmanager
def consented_player(tmp_path, frames):
    """The fake camera playing ``frames`` (10 fps), ``fape gamo serve`` on a free localhost port
    (3 lives, 9 s falls) and a browser that agreed: ``(driver, base url, data folder, pseudonym)``."""
    from fape.gamo import browser as B
    from fape.gamo.fakecam import write_y4m

    clip = tmp_path / "camera.y4m"
    write_y4m(clip, frames, fps=10)
    data, port = tmp_path / "gamo", B.free_port()
    base = f"http://127.0.0.1:{port}"
    server = B.start_server(data, port, "--lives", "3", "--fall-seconds", "9", "--bomb-every", "2",
                            "--frame-interval-ms", "400", "--rate", "5", "--seed", "0", log=tmp_path / "server.log")
    driver = None
    try:
        driver = B.chrome(clip)
        yield driver, base, data, B.consent(driver, base)
    finally:
        if driver is not None:
            driver.quit()
        B.stop_server(server)


@pytest.mark.realdata
@pytest.mark.slow
def test_play_store_retrain_in_a_real_browser(tmp_path):
    _requirements()
    from fape.data.format import read_index
    from fape.gamo import browser as B
    from fape.gamo.db import Repository
    from fape.gamo.fakecam import clip_frames, jaffe_faces
    from fape.gamo.retrain import HELDOUT_FILE, VAL_FRACTION, split_rows

    shots = screenshots(tmp_path)
    faces = dict(jaffe_faces(JAFFE, "KA"))
    frames = clip_frames([faces[c] for c in HELD + FLASHED], [1.5] * 4 + [0.5] * 3, fps=10)
    with consented_player(tmp_path, frames) as (driver, base, data, pseudonym):
        state = B.play_until_over(driver, timeout=150)
        driver.save_screenshot(str(shots / "gamo_play.png"))
        # the page's score and lives changed, and agree with the server's session
        assert state["shown_at_start"]["score"] == "0" and state["shown_at_start"]["lives"].endswith("(3)")
        assert state["shown"]["lives"] == "0" and int(state["shown"]["score"]) == len(state["defused"])
        assert len(state["defused"]) >= 2, "the clip holds 4 expressions the model verifies: several bombs defuse"
        repo = Repository(data / "gamo.sqlite")
        session = repo.session(state["session"])
        assert (session["score"], session["lives"]) == (len(state["defused"]), 0)

        # one dataset row and crop per defused bomb, labelled with the bomb's expression
        bombs = {b["id"]: b for b in repo.bombs(state["session"])}
        defused = {b_id: b["expression"] for b_id, b in bombs.items() if b["status"] == "defused"}
        assert defused == {d["bomb"]: d["expression"] for d in state["defused"]}
        idx = read_index(data / "dataset")
        m = idx.manifest
        assert dict(zip(m["frame"], m["expression"])) == defused and len(m) == len(defused)
        assert set(m["subject"]) == {pseudonym} and set(m["sequence"]) == {state["session"]}
        assert (m["prob"] >= m["threshold"]).all() and idx.landmarks_ok.all()
        assert all((data / "dataset" / p).is_file() for p in m["path"])

        # one retraining round; the held-out rule is fixed before it (per image, for one player)
        for salt in map(str, range(100)):
            rule = {"unit": "image", "fraction": 0.5, "salt": salt}
            parts = split_rows(m, rule, VAL_FRACTION)
            if {"train", "test"} <= set(parts):
                break
        (data / "models" / HELDOUT_FILE).write_text(json.dumps(rule))
        t0 = time.time()
        out = subprocess.run([sys.executable, "-m", "fape", "gamo", "retrain", "--data", str(data), "--epochs", "1",
                              "--min-heldout", "1"],
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        reg = json.loads((data / "models" / "registry.json").read_text())
        card = reg["versions"][-1]
        assert [v["version"] for v in reg["versions"]] == ["v0000", "v0001"]
        assert card["parent"] == "v0000" and card["data"]["collected"] == len(m)
        assert reg["current"] == ("v0001" if card["promoted"] else "v0000")
        assert (data / "models" / "v0001" / "card.md").is_file() and "promoted" in out.stdout
        assert not (data / "models" / "v0001" / "data" / "images").exists()  # no second copy of the faces
        print(f"retrain {time.time() - t0:.0f} s: {out.stdout.strip()}")

        driver.get(base + "/admin")
        B.wait_for(driver, "document.querySelectorAll('#versions tbody tr').length === 2", 20, "the admin page")
        bars = {e.get_attribute("data-expression"): int(e.get_attribute("data-count"))
                for e in driver.find_elements("css selector", "#chart div[data-expression]")}
        assert {k: v for k, v in bars.items() if v} == m["expression"].value_counts().to_dict()
        driver.save_screenshot(str(shots / "gamo_admin.png"))


@pytest.mark.realdata
@pytest.mark.slow
def test_custom_mode_decides_by_template_distance(tmp_path):
    """Registration of KA's 7 faces, each captured while the fake camera shows it, then a game in
    the customized version until a bomb is defused: the frame's nearest template (L2 over the
    model's features) is the bomb's expression, and the stored row says so."""
    _requirements()
    from fape.data.format import read_index
    from fape.gamo import browser as B
    from fape.gamo.db import Repository
    from fape.gamo.fakecam import clip_frames, jaffe_faces

    shots = screenshots(tmp_path)
    hold = 1.0  # seconds per face; the clip shows the 7 faces in the registration tiles' (label) order
    frames = clip_frames([f for _, f in jaffe_faces(JAFFE, "KA")], hold, fps=10)
    with consented_player(tmp_path, frames) as (driver, base, data, pseudonym):
        msg = B.register_templates(driver, base, pause=hold, synced=True)
        assert msg.startswith("7 of 7"), msg
        driver.save_screenshot(str(shots / "gamo_register.png"))
        repo = Repository(data / "gamo.sqlite")
        assert next(p for p in repo.players() if p["pseudonym"] == pseudonym)["templates"] == 7

        state = B.play_until_over(driver, timeout=60, mode="custom", until="gamo.defused.length > 0 || gamo.over")
        assert state["defused"], "the customized game ended with no bomb defused: templates never matched"
        first = state["defused"][0]
        dist = first["distances"]
        assert dist is not None and len(dist) == 7, "a customized game's frames are answered with L2 distances"
        assert min(dist, key=dist.get) == first["expression"], f"not decided by the nearest template: {first}"
        assert first["threshold"] is None  # no probability threshold in the customized version

        session = repo.session(state["session"])
        assert session["mode"] == "custom"
        m = read_index(data / "dataset").manifest.set_index("frame")
        row = m.loc[first["bomb"]]
        assert (row["expression"], row["mode"], row["subject"]) == (first["expression"], "custom", pseudonym)
        assert row["distance"] == pytest.approx(dist[first["expression"]], abs=1e-3)
        assert row["threshold"] == 0.0  # the stored "threshold" of a custom row is the template margin
        assert (data / "dataset" / row["path"]).is_file()


@pytest.mark.realdata
def test_fake_camera_faces_per_take_and_from_ckplus48():
    """The demo's players: JAFFE takes are different photographs (the last take when a subject
    has fewer), CK+48 subjects give their expressions in the label order, without neutral."""
    from fape.gamo.fakecam import CKPLUS_FOLDERS, JAFFE_CODES, ckplus_faces, jaffe_faces

    if not JAFFE.is_dir() or not (SHARED_DATA / "ckplus48").is_dir():
        pytest.skip(f"real data absent: {JAFFE} or {SHARED_DATA / 'ckplus48'} (see ../shared/data/README.md)")
    takes = [dict(jaffe_faces(JAFFE, "KA", take)) for take in (0, 1, 2, 3, 9)]
    assert all(list(t) == list(JAFFE_CODES) for t in takes)
    assert not np.array_equal(takes[0]["HA"], takes[1]["HA"]) and not np.array_equal(takes[1]["HA"], takes[2]["HA"])
    assert np.array_equal(takes[4]["HA"], takes[3]["HA"])  # KA has 4 happy takes: take 9 is the last
    ck = ckplus_faces(SHARED_DATA / "ckplus48", "S011")
    names = [n for n, _ in ck]
    assert names == [n for n in CKPLUS_FOLDERS if n in names] and "neutral" not in names and len(names) == 6
    assert all(f.shape == (48, 48, 3) and f.dtype == np.uint8 for _, f in ck)
    assert ckplus_faces(SHARED_DATA / "ckplus48", "S000") == []  # no such subject
