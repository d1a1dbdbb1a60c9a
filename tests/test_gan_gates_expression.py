"""The expression (judge) gate: a classifier run trained on real rows keeps only the synthesized faces
it reads as their drawn expression, matching its labels to the data's by name.

The judge here is a classifier run whose weights the test sets by hand, so what it predicts is known:
a cnn3 whose convolutions pass the gray level through, so it reads brightness. Dark faces are its
first class, mid-gray its second, bright its third (``BANDS``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _fixtures import make_multipose
from fape.gan.gates import AllGates, ExpressionGate, PoseGate, judge_settings, parse_gate

LABELS = ["anger", "happy", "surprise"]  # the data's label order
GRAY = {"dark": 20, "mid": 128, "bright": 235}  # uint8 levels in the judge's bands 0, 1, 2


def brightness_judge(run: Path, names: list[str], sharpness: float = 3.0, size: int = 16) -> Path:
    """A finished classifier run (``best`` checkpoint, as ``fape clf train`` writes it) whose model
    reads a face's mean gray level ``v`` in [-1, 1]: feature ``h = v + 1``, logits
    ``sharpness * ([-4, 0, 4] h + [2, 0, -6])``, so class 0 below h = 0.5, class 1 up to 1.5,
    class 2 above. ``names[k]``: the expression the judge calls its class k."""
    from torch import nn

    from fape.classifiers import create_classifier
    from fape.classifiers.config import ClfConfig
    from fape.classifiers.train import save_best
    from fape.config import load_config
    from fape.data.preprocess import preprocess_spec

    kwargs = {"widths": [1, 1, 1], "hidden": 1, "padding": 1}
    cfg = load_config(ClfConfig, None, ["--model.name=cnn3", f"--data.image_size={size}", "--data.channels=1",
                                        "--model.kwargs={widths: [1, 1, 1], hidden: 1, padding: 1}"])
    m = create_classifier("cnn3", num_classes=len(names), in_chans=1, image_size=size, pretrained=False, **kwargs)
    with torch.no_grad():
        for i, conv in enumerate(c for c in m.features if isinstance(c, nn.Conv2d)):
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1] = 1.0  # the centre tap: the gray level passes through
            conv.bias.fill_(1.0 if i == 0 else 0.0)  # v + 1 >= 0 survives every ReLU
        lin = m.fc[1]
        lin.weight.fill_(1.0 / lin.in_features)
        lin.bias.zero_()
        m.head.weight.copy_(sharpness * torch.tensor([[-4.0], [0.0], [4.0]]))
        m.head.bias.copy_(sharpness * torch.tensor([2.0, 0.0, -6.0]))
    save_best(run, m.eval(), {"step": 1, "epoch": 0}, list(names), cfg, preprocess_spec(size, 1, None))
    return run


def faces(levels: list[int], size: int = 32, channels: int = 3) -> torch.Tensor:
    """``[B, C, size, size]`` in [-1, 1]: one flat face per uint8 gray level (the generator's range)."""
    x = torch.tensor(levels, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, channels, size, size)
    return x / 127.5 - 1.0


def jobs(drawn: list[str]) -> list[dict]:
    """Manifest records as synthesis passes them: the drawn expression's name and its data id."""
    return [{"expression": e, "label": LABELS.index(e)} for e in drawn]


def _call(gate, levels, drawn):
    x = faces(levels)
    return gate(x, x, torch.zeros(len(levels), 68, 2), jobs(drawn))


@pytest.fixture(scope="module")
def judge(tmp_path_factory) -> Path:
    return brightness_judge(tmp_path_factory.mktemp("judge") / "run", LABELS)


# ---------------------------------------------------------------- the gate
def test_keeps_the_faces_the_judge_reads_as_drawn_and_records_what_it_saw(judge):
    gate = ExpressionGate(judge)
    d, m, b = GRAY["dark"], GRAY["mid"], GRAY["bright"]
    keep = _call(gate, [d, d, m, m, b, b], ["anger", "happy", "happy", "surprise", "surprise", "anger"])
    assert keep.dtype == bool and keep.tolist() == [True, False, True, False, True, False]
    p = np.asarray(gate.seen)  # the drawn class's probability, face by face
    assert p.shape == (6,) and (p[keep] > 0.9).all() and (p[~keep] < 0.1).all()
    # a second batch adds to what was seen
    _call(gate, [d], ["anger"])
    assert len(gate.seen) == 7


def test_the_judge_sees_the_face_at_its_own_size_and_channels(judge):
    """A 1-channel 16 px judge given RGB 64 px faces reads their ITU-R 601 luma, as the dataset
    cache converts them: yellow (luma 226) is bright, cyan (luma 179) mid-gray. Their channel mean
    (170, mid) or red channel (255, 0) would read other bands."""
    gate = ExpressionGate(judge)
    rgb = torch.tensor([[1.0, 1.0, -1.0], [-1.0, 1.0, 1.0]])  # yellow, cyan in [-1, 1]
    x = rgb.view(2, 3, 1, 1).expand(2, 3, 64, 64)
    keep = gate(x, x, torch.zeros(2, 68, 2), jobs(["surprise", "happy"]))
    assert keep.tolist() == [True, True]
    assert not gate(x, x, torch.zeros(2, 68, 2), jobs(["happy", "anger"])).any()


def test_labels_are_matched_by_name_not_by_position(tmp_path):
    # the judge calls its dark band "surprise", mid "anger", bright "happy": none at the data's index
    run = brightness_judge(tmp_path / "permuted", ["surprise", "anger", "happy"])
    gate = ExpressionGate(run)
    d, m = GRAY["dark"], GRAY["mid"]
    # "anger" is data label 0 and the judge's class 0 is dark: a positional match would keep face 1
    keep = _call(gate, [d, d, m, m], ["surprise", "anger", "anger", "happy"])
    assert keep.tolist() == [True, False, True, False]
    # a drawn expression the judge does not know is an error naming it
    small = ExpressionGate(brightness_judge(tmp_path / "two", ["anger", "happy", "fear"]))
    with pytest.raises(ValueError, match="'surprise'"):
        _call(small, [d], ["surprise"])
    with pytest.raises(ValueError, match="surprise"):
        small.check_labels(["anger", "surprise"])
    small.check_labels(["anger", "happy"])  # known names pass


def test_min_prob_keeps_by_the_drawn_class_probability(judge):
    # gray 70: h = 0.55, just past the dark/mid boundary: p(happy) = 0.65, p(anger) = 0.35
    faces_, drawn = [70, 70, GRAY["dark"]], ["happy", "anger", "anger"]
    argmax = _call(ExpressionGate(judge), faces_, drawn)
    low, half = ExpressionGate(judge, min_prob=0.3), ExpressionGate(judge, min_prob=0.5)
    assert argmax.tolist() == [True, False, True]
    assert _call(low, faces_, drawn).tolist() == [True, True, True]  # the runner-up is kept too
    assert _call(half, faces_, drawn).tolist() == [True, False, True]
    p = np.asarray(low.seen)
    assert 0.3 < p[1] < 0.5 < p[0] and p[0] + p[1] == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="min_prob"):
        ExpressionGate(judge, min_prob=0.0)


def test_combined_gates_keep_a_face_only_when_all_keep_it(judge):
    def every_other(generated, source, target_landmarks, jobs):
        return np.arange(len(jobs)) % 2 == 0

    d = GRAY["dark"]
    both = AllGates([ExpressionGate(judge), every_other])
    keep = _call(both, [d, d, d, d], ["anger", "anger", "happy", "happy"])
    assert keep.tolist() == [True, False, False, False]
    assert len(both.gates[0].seen) == 4  # every gate judged every face


# ---------------------------------------------------------------- specs and the fingerprint
def test_spec_parser(judge, tmp_path):
    from fape.errors import ConfigError

    g = parse_gate(f"expression:{judge}")
    assert isinstance(g, ExpressionGate) and g.min_prob is None and g.label_names == LABELS
    assert parse_gate(f"expression:{judge}:0.5").min_prob == 0.5
    combo = parse_gate(f"pose:0.15+expression:{judge}")
    assert isinstance(combo, AllGates) and [type(x) for x in combo.gates] == [PoseGate, ExpressionGate]
    assert combo.gates[0].max_nme == 0.15
    assert judge_settings("pose:0.15+expression:@Fa-Net:0.4+expression:@Fa-Net") == ["Fa-Net"]
    assert judge_settings(f"expression:{judge}") == []
    resolved = parse_gate("expression:@Fa-Net", judges={"Fa-Net": judge})
    assert repr(resolved) == repr(g)
    for spec, named in ((f"expression:{judge}:x", "'x'"), (f"expression:{judge}:1.5", "(0, 1]"),
                        ("expression:", "unknown quality gate 'expression:'"), ("expression:@", "setting")):
        with pytest.raises(ValueError, match=re_escape(named)):
            parse_gate(spec)
    with pytest.raises(ConfigError, match="@Fa-Net.*only `fape experiment`"):
        parse_gate("expression:@Fa-Net")
    with pytest.raises(ConfigError, match=r"known: \['Other'\]"):
        parse_gate("expression:@Fa-Net", judges={"Other": judge})
    # a run without a checkpoint: the spec and the file it looked for are named
    empty = tmp_path / "not_trained"
    empty.mkdir()
    with pytest.raises(ConfigError, match=re_escape(f"gate 'pose:0.2+expression:{empty}'")) as e:
        parse_gate(f"pose:0.2+expression:{empty}")
    assert str(empty / "best" / "checkpoints" / "latest") in str(e.value)


def re_escape(s: str) -> str:
    import re

    return re.escape(s)


def test_fingerprint_names_the_judge_and_the_rule(judge, tmp_path):
    other = brightness_judge(tmp_path / "other", LABELS, sharpness=2.0)  # other weights, same labels
    copy = brightness_judge(tmp_path / "copy", LABELS)  # the same weights in another folder
    a = repr(ExpressionGate(judge))
    assert repr(ExpressionGate(copy)) == a  # the weights, not the folder, are the judge
    assert repr(ExpressionGate(other)) != a
    assert repr(ExpressionGate(judge, min_prob=0.5)) != a
    assert ExpressionGate(judge).sha256 in a
    permuted = brightness_judge(tmp_path / "perm", ["surprise", "anger", "happy"])
    assert repr(ExpressionGate(permuted)) != a  # same weights, other class names


# ---------------------------------------------------------------- through synthesis and the CLI
def _flat(rng, subject, label, lm):
    """A ``make_multipose`` draw: a flat face whose gray level is the judge's band of its expression."""
    return np.full((32, 32, 1), list(GRAY.values())[label], np.uint8)


@pytest.fixture
def identity_generator(monkeypatch, tmp_path):
    """G that gives back its source face (``load_generator``'s contract): the judge then reads the
    source's expression, as it does on most real transfer faces."""
    from fape.gan import io as gan_io
    from fape.gan.config import GANConfig

    class Identity(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, mask, source_landmarks=None, target_landmarks=None):
            return x

    cfg = GANConfig()
    cfg.data.image_size, cfg.data.channels = 32, 1
    loaded = gan_io.LoadedGenerator(G=Identity().eval(), cfg=cfg, checkpoint=tmp_path, weights=tmp_path / "G.st",
                                    sha256="0" * 64)
    monkeypatch.setattr(gan_io, "load_generator", lambda *a, **k: loaded)


def test_cli_synthesize_with_the_expression_gate(identity_generator, judge, tmp_path, capsys):
    from fape.cli import main
    from fape.data.format import read_index

    # three poses: balance-pose redraws faces in their own expression, so the judge keeps every one
    multi = make_multipose(tmp_path / "multi", subjects=2, expressions=3, frames=1, channels=1, draw=_flat,
                           label_names=LABELS, skip={(0, 0)})
    base = ["gan", "synthesize", "--run", "G", "--data", str(multi), "--device", "cpu", "--batch-size", "4"]
    assert main(base + ["--plan", "balance-expression", "--out", str(tmp_path / "kept"), "--gate",
                        f"expression:{judge}"]) == 0
    report = json.loads((tmp_path / "kept" / "plan_report.json").read_text())
    assert report["written"] == report["total"]["added"] > 0 and report["rejected_by_gate"] == 0
    assert report["gate"] == repr(ExpressionGate(judge))
    # a judge that calls mid-gray "surprise" rejects the happy faces (drawn happy, mid-gray) and only those
    two_rare = make_multipose(tmp_path / "two_rare", subjects=2, expressions=3, frames=1, channels=1, draw=_flat,
                              label_names=LABELS, skip={(0, 0), (0, 1)})
    odd = brightness_judge(tmp_path / "odd", ["anger", "surprise", "happy"])
    assert main(["gan", "synthesize", "--run", "G", "--data", str(two_rare), "--device", "cpu", "--plan",
                 "balance-expression:max", "--out", str(tmp_path / "odd_out"), "--gate", f"expression:{odd}"]) == 0
    report = json.loads((tmp_path / "odd_out" / "plan_report.json").read_text())
    kept = read_index(tmp_path / "odd_out").manifest
    assert set(kept["expression"]) == {"anger"} and report["written"] == len(kept) == 3
    assert report["rejected_by_gate_per_expression"] == {"happy": 3} == {"happy": report["rejected_by_gate"]}
    assert "by drawn expression: happy 3" in (tmp_path / "odd_out" / "plan_report.md").read_text()
    # a judge that does not know a drawn expression stops before any image is made
    small = brightness_judge(tmp_path / "small", ["happy", "surprise", "fear"])
    assert main(base + ["--plan", "balance-expression", "--out", str(tmp_path / "o2"),
                        "--gate", f"expression:{small}"]) == 2
    err = capsys.readouterr().err
    assert "--gate" in err and "'anger'" in err
    assert not (tmp_path / "o2").exists() and not (tmp_path / ".o2.partial").exists()
    # one pose with subject ids: expression transfer draws another expression than the source's, the
    # identity G keeps the source's face, and the judge rejects every one
    real = make_multipose(tmp_path / "real", subjects=3, expressions=3, frames=1, poses=("F",), channels=1,
                          draw=_flat, label_names=LABELS, mouth_shift=1.5, skip={(0, 0), (1, 0)})
    real_base = ["gan", "synthesize", "--run", "G", "--data", str(real), "--device", "cpu", "--plan",
                 "balance-expression"]
    assert main(real_base + ["--out", str(tmp_path / "none"), "--gate", f"expression:{judge}"]) == 2
    assert "rejected all" in capsys.readouterr().err and not (tmp_path / "none").exists()
    # at min_prob 1e-6 the same faces pass, each now a face of the source's expression (what the gate catches)
    assert main(real_base + ["--out", str(tmp_path / "all"), "--gate", f"expression:{judge}:1e-6"]) == 0
    m = read_index(tmp_path / "all").manifest
    assert len(m) > 0 and (m["expression"] != m["source_expression"]).all()


def test_resuming_with_another_judge_is_refused(identity_generator, judge, tmp_path):
    from fape.errors import UserError
    from fape.gan import synthesize as syn

    multi = make_multipose(tmp_path / "multi", subjects=2, expressions=3, frames=1, channels=1, draw=_flat,
                           label_names=LABELS, skip={(0, 0)})
    out = tmp_path / "o"
    kw = dict(seed=0, batch_size=2, device="cpu", progress=False)
    with pytest.raises(syn._Interrupt):
        syn.synthesize("G", multi, "balance-expression", out, gate=ExpressionGate(judge), _fail_after_batches=1, **kw)
    other = brightness_judge(tmp_path / "other", LABELS, sharpness=2.0)
    with pytest.raises(UserError, match="differs in: gate"):
        syn.synthesize("G", multi, "balance-expression", out, gate=ExpressionGate(other), **kw)
    res = syn.synthesize("G", multi, "balance-expression", out, gate=ExpressionGate(judge), **kw)
    assert res.resumed_from == 2 and res.written == res.jobs
