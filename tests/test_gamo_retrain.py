"""``fape gamo retrain``: the fixed held-out rule, the promotion gate, and one tiny round on a
collection made through the game's API (fake engine, shipped model fine-tuned for 1 epoch)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from fape.cli import UserError
from fape.gamo.retrain import HELDOUT_FILE, fixed_heldout, promotion, split_rows, unit_hash
from _fixtures import REPO

MODEL = REPO / "checkpoints" / "fanet_fer2013_48"


def test_heldout_sides_are_fixed_per_unit(tmp_path):
    rule = fixed_heldout(tmp_path, "player", 0.5)
    assert json.loads((tmp_path / HELDOUT_FILE).read_text()) == rule
    assert fixed_heldout(tmp_path, None, None) == rule  # later rounds read it
    with pytest.raises(UserError, match="cannot change"):
        fixed_heldout(tmp_path, "image", None)
    # 100 players: the salt is random, so with 10 all of them fell on one side once in ~500 runs (0.5^10 x 2)
    m = pd.DataFrame({"subject": [f"p{i % 100}" for i in range(200)], "sequence": "s",
                      "path": [f"images/{i}.png" for i in range(200)]})
    parts = split_rows(m, rule, val_fraction=0.2)
    # every image of a player is on one side of the held-out line, and adding players moves no one
    held = {s: set(parts[m["subject"] == s] == "test") for s in m["subject"].unique()}
    assert all(len(v) == 1 for v in held.values()) and 0 < sum(v == {True} for v in held.values()) < 100
    more = pd.concat([m, pd.DataFrame({"subject": ["new"] * 5, "sequence": "s",
                                       "path": [f"images/n{i}.png" for i in range(5)]})], ignore_index=True)
    assert ((split_rows(more, rule, 0.2)[:200] == "test") == (parts == "test")).all()
    assert {"train", "val"} <= set(parts[parts != "test"])
    assert unit_hash("a", "x") == unit_hash("a", "x") != unit_hash("b", "x")


def test_promotion_only_when_not_worse():
    assert promotion(0.50, 0.50, "v0000", 10)[0] and promotion(0.6, 0.5, "v0000", 10)[0]
    ok, why = promotion(0.4, 0.5, "v0003", 10)
    assert not ok and "v0003" in why and "40.0% < " in why
    ok, why = promotion(1.0, 0.0, "v0001", 3, min_n=10)
    assert not ok and "too few" in why


@pytest.mark.slow
def test_one_round_records_a_version(tmp_path):
    pytest.importorskip("fastapi", reason="the gamo extra is not installed")
    from fastapi.testclient import TestClient

    from fape.gamo.app import create_app
    from fape.gamo.game import Game
    from fape.gamo.retrain import retrain
    from _gamo import NAMES, FakeEngine, collect, server_config

    g = Game(server_config(tmp_path / "gamo", max_bombs=1), MODEL, engine_factory=FakeEngine, seed=0)
    collect(TestClient(create_app(g)), players=4, bombs=4)
    assert g.repo.stats()["samples"] == 16
    fixed_heldout(g.root / "models", "image", 0.3)
    card = retrain(g.root, epochs=1, batch_size=8, progress=False, min_heldout=1)
    reg = g.registry.read()
    assert [v["version"] for v in reg["versions"]] == ["v0000", "v0001"] and card["parent"] == "v0000"
    assert reg["current"] == ("v0001" if card["promoted"] else "v0000")
    d = card["data"]
    assert d["train"]["images"] + d["val"]["images"] + d["heldout"]["images"] == 16 == d["collected"]
    assert card["heldout"]["n"] == d["heldout"]["images"] > 0
    assert (card["heldout"]["candidate"] >= card["heldout"]["parent"]) == card["promoted"]
    assert set(d["train"]["per_class"]) <= set(NAMES)
    assert (g.root / "models" / "v0001" / "card.md").read_text().startswith("# GaMo model v0001")
    assert reg["versions"][0]["reference"]["accuracy"] > 0.5  # the shipped model's FER2013 test accuracy
    if card["promoted"]:  # the game serves the promoted version from the next request on
        assert g.engine().version == "v0001"
