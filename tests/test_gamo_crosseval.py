"""``fape gamo evaluate``: the paper's self and cross evaluation (section 6.2) on a tiny game
collection (fake engine, shipped model fine-tuned 1 epoch) and a tiny base dataset."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fape.data.format import DatasetInfo, save_image, write_index
from fape.data.landmarks68 import template_face
from fape.errors import UserError
from fape.gamo.crosseval import accuracy_interval, cross_evaluate
from _fixtures import REPO

MODEL = REPO / "checkpoints" / "fanet_fer2013_48"


def base_dataset(root, names, per_class=2, size=48):
    """Random 48 px gray faces with a FER2013-like split column (the shipped model's protocol)."""
    rng = np.random.default_rng(0)
    rows = []
    for part in ("train", "val", "test"):
        for k, name in enumerate(names):
            for i in range(per_class):
                path = f"images/{part}/{name}{i}.png"
                save_image(root / path, rng.integers(0, 256, (size, size, 1), dtype=np.uint8))
                rows.append(dict(path=path, subject="unknown", expression=name, label=k, pose="unknown",
                                 sequence=f"{part}{name}{i}", frame=0, source="fixture", split=part))
    info = DatasetInfo(name="base", label_names=list(names), pose_names=["unknown"], image_size=[size, size],
                       channels=1, origin={"kind": "test-fixture"}, landmarks_source="test-fixture")
    lm = np.repeat(template_face(size)[None], len(rows), 0).astype(np.float32)
    write_index(root, pd.DataFrame(rows), info, lm, np.ones(len(rows), bool))
    return root


def test_accuracy_interval_is_exact_at_the_extremes():
    r = accuracy_interval(np.ones(20))  # a bootstrap would say [100%, 100%]
    assert r["accuracy"] == 1.0 and r["ci_high"] == 1.0 and r["ci_low"] == pytest.approx(0.025 ** (1 / 20))
    r = accuracy_interval(np.r_[np.ones(30), np.zeros(10)])
    assert r["accuracy"] == 0.75 and r["n"] == 40
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.5880, 0.8731), abs=1e-4)  # Clopper-Pearson 30/40


@pytest.mark.slow
def test_self_and_cross_cells_reproduce_the_gate(tmp_path):
    pytest.importorskip("fastapi", reason="the gamo extra is not installed")
    from fastapi.testclient import TestClient

    from fape.gamo.app import create_app
    from fape.gamo.game import Game
    from fape.gamo.retrain import HELDOUT_FILE, fixed_heldout, retrain
    from _gamo import NAMES, FakeEngine, collect, server_config

    g = Game(server_config(tmp_path / "gamo", max_bombs=1), MODEL, engine_factory=FakeEngine, seed=0)
    collect(TestClient(create_app(g)), players=4, bombs=4)
    fixed_heldout(g.root / "models", "image", 0.3)
    card = retrain(g.root, epochs=1, batch_size=8, progress=False, min_heldout=1)
    base = base_dataset(tmp_path / "base", NAMES)
    with pytest.raises(UserError, match="not a retrained version"):
        cross_evaluate(g.root, base, version="v0000", out=tmp_path / "x")

    res = cross_evaluate(g.root, base, out=tmp_path / "cross", n_boot=200)
    c = res["cells"]
    assert res["version"] == "v0001" and res["base_model"] == str(MODEL.resolve())
    for t in ("base", "game"):  # which weights scored each cell, on which split
        assert c[f"base_on_{t}"]["checkpoint"].startswith(str(MODEL.resolve()))
        assert c[f"game_on_{t}"]["checkpoint"].startswith(str((g.root / "models" / "v0001" / "run").resolve()))
        assert c[f"base_on_{t}"]["split_file"] == c[f"game_on_{t}"]["split_file"]
    # the game test is the gate's held-out part: the same images, so the gate's two numbers again
    held = card["heldout"]
    assert c["base_on_game"]["n"] == c["game_on_game"]["n"] == held["n"] > 0
    assert c["game_on_game"]["accuracy"] == pytest.approx(held["candidate"])
    assert c["base_on_game"]["accuracy"] == pytest.approx(held["parent"])
    # the base test is the base split's test part (FER2013: PrivateTest), for both models
    assert c["base_on_base"]["n"] == c["game_on_base"]["n"] == 2 * len(NAMES)
    for cell in c.values():
        assert cell["ci_low"] <= cell["accuracy"] <= cell["ci_high"]
    for t in ("base", "game"):
        d = res["game_minus_base"][t]
        assert d["diff"] == pytest.approx(c[f"game_on_{t}"]["accuracy"] - c[f"base_on_{t}"]["accuracy"])
    table = (tmp_path / "cross" / "table.md").read_text()
    assert "(self)" in table and "(cross)" in table and f"n={held['n']}" in table
    assert not (tmp_path / "cross" / "game-data" / "images").exists()  # no second copy of the faces

    # a held-out rule that moved (here: everything held out) would score images v0001 trained on
    rule = json.loads((g.root / "models" / HELDOUT_FILE).read_text())
    (g.root / "models" / HELDOUT_FILE).write_text(json.dumps({**rule, "fraction": 1.0}))
    with pytest.raises(UserError, match="were in v0001's training data"):
        cross_evaluate(g.root, base, out=tmp_path / "cross2", n_boot=50)
