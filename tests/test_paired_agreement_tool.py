"""tools/paired_agreement.py: two generators' sets of the same planned faces, read by one judge,
with the per-face paired difference (the judge reads brightness, so every prediction is known)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _fixtures import REPO
from fape.data.format import DatasetInfo, save_image, write_index
from test_gan_gates_expression import GRAY, LABELS, brightness_judge

spec = importlib.util.spec_from_file_location("paired_agreement", REPO / "tools" / "paired_agreement.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

DRAWN = ["happy", "happy", "surprise", "surprise"]  # the plan: drawn on anger faces (source rows 10..13)


def synth_set(out: Path, levels: list[str], drawn=DRAWN) -> Path:
    """A `fape gan synthesize`-shaped set of flat faces, one per gray level name."""
    recs = []
    for i, (lv, e) in enumerate(zip(levels, drawn)):
        save_image(out / f"images/{i:03d}.png", np.full((32, 32, 3), GRAY[lv], np.uint8))
        recs.append(dict(path=f"images/{i:03d}.png", subject="s0", expression=e, label=LABELS.index(e), pose="front",
                         source_row=10 + i, source_expression="anger"))
    write_index(out, pd.DataFrame(recs), DatasetInfo(name=out.name, label_names=LABELS, pose_names=["front"],
                                                     image_size=[32, 32], channels=3, origin={"kind": "test-fixture"}))
    return out


def test_paired_shares_of_two_generators(tmp_path):
    judge = brightness_judge(tmp_path / "judge", LABELS)  # dark: anger, mid: happy, bright: surprise
    a = synth_set(tmp_path / "a", ["dark", "dark", "mid", "dark"])  # drawn: none; still the source (anger): 3 of 4
    b = synth_set(tmp_path / "b", ["mid", "mid", "bright", "bright"])  # drawn: all; source: none
    h = tool.paired_shares([(str(judge), str(a), str(b)), (str(judge), str(b), str(b))])
    np.testing.assert_array_equal(h["drawn_a"], [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(h["drawn_b"], [1, 1, 1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(h["source_a"], [1, 1, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(h["source_b"], np.zeros(8))


def test_sets_of_other_planned_faces_are_refused(tmp_path):
    judge = brightness_judge(tmp_path / "judge", LABELS)
    a = synth_set(tmp_path / "a", ["dark"] * 4)
    b = synth_set(tmp_path / "b", ["dark"] * 4, drawn=["happy", "surprise", "surprise", "surprise"])
    with pytest.raises(SystemExit, match="not the same planned faces"):
        tool.paired_shares([(str(judge), str(a), str(b))])
