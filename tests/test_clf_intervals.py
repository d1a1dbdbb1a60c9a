"""Intervals of with/without differences: the hierarchical bootstrap (seeds, then test images)
and the share of headroom recovered, on cases whose answer is known; `fape clf compare` uses it."""
import warnings

import numpy as np
import pandas as pd
import pytest

from fape.classifiers.compare import compare
from fape.classifiers.intervals import headroom_bootstrap, hierarchical_bootstrap, paired_bootstrap
from fape.cli import run as fape_run


def width(r: dict) -> float:
    return r["ci_high"] - r["ci_low"]


def test_identical_arms_give_zero_interval():
    rng = np.random.default_rng(0)
    same = rng.random((3, 400)) < 0.6
    r = hierarchical_bootstrap(same, same, n_boot=500)
    assert (r["diff"], r["ci_low"], r["ci_high"]) == (0.0, 0.0, 0.0)
    per_seed = [rng.random(n) < 0.5 for n in (50, 80, 120)]  # a seed that redraws the split: sizes differ
    r = hierarchical_bootstrap(per_seed, per_seed, n_boot=500)
    assert (r["diff"], r["ci_low"], r["ci_high"]) == (0.0, 0.0, 0.0)
    assert r["n_seeds"] == 3 and r["n_images"] == 250 and r["n_images_per_seed"] == [50, 80, 120]


@pytest.mark.parametrize("sign", [1, -1])
def test_constant_difference_is_exact(sign):
    ones, zeros = np.ones((4, 300), bool), np.zeros((4, 300), bool)
    a, b = (ones, zeros) if sign > 0 else (zeros, ones)
    r = hierarchical_bootstrap(a, b, n_boot=300)
    assert r["diff"] == r["ci_low"] == r["ci_high"] == float(sign)


def test_one_seed_matches_the_binomial_interval():
    """One seed, B always right, A right on a fraction p: the difference is p - 1 with standard
    error sqrt(p (1 - p) / N), so the 95% interval is about +-1.96 of it."""
    n, p = 2000, 0.7
    a = (np.arange(n) < p * n)[None]  # [1, N]
    b = np.ones((1, n), bool)
    r = hierarchical_bootstrap(a, b, n_boot=4000, seed=1)
    se = np.sqrt(p * (1 - p) / n)
    assert r["diff"] == pytest.approx(p - 1)
    assert width(r) == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert "one seed" in r["method"]


def test_interval_widens_when_seeds_disagree():
    """Same images, same mean difference: seeds that agree vs seeds whose differences spread."""
    rng = np.random.default_rng(3)
    n, seeds = 400, 4
    b = np.tile(rng.random(n) < 0.6, (seeds, 1))  # [S, N]
    u = rng.random(n)
    agree = np.tile(u < 0.7, (seeds, 1))
    disagree = np.stack([u < p for p in (0.55, 0.85, 0.6, 0.8)])  # mean accuracy 0.70, as `agree`
    r_agree = hierarchical_bootstrap(agree, b, n_boot=2000)
    r_dis = hierarchical_bootstrap(disagree, b, n_boot=2000)
    assert r_agree["diff"] == pytest.approx(r_dis["diff"], abs=0.02)
    assert width(r_dis) > 1.5 * width(r_agree)
    # the image-only bootstrap averages seeds per image first: it barely sees the disagreement
    assert width(r_dis) > 1.5 * width(paired_bootstrap(disagree, b, n_boot=2000))


def _simulate(rng, shared: bool, seeds: int = 5, n: int = 300):
    """One experiment: a seed effect on A's logit (sd 0.4), image difficulty on both (sd 1.5,
    the same image for every seed when ``shared``, else each seed draws its own test set)."""
    z = rng.normal(0, 1.5, (1 if shared else seeds, n))  # [1 or S, N] image difficulty
    e = rng.normal(0, 0.4, (seeds, 1))  # [S, 1] seed effect
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    a = rng.random((seeds, n)) < sig(1.4 + e + z)
    b = rng.random((seeds, n)) < sig(1.0 + z)
    return a, b


@pytest.mark.parametrize("shared", [True, False], ids=["one-test-set", "split-redrawn-per-seed"])
def test_coverage_on_a_simulated_experiment(shared):
    """The true difference (over seeds and images) is known by a large Monte Carlo; the two-stage
    interval covers it about as often as it claims, the image-only interval does not."""
    rng = np.random.default_rng(7)
    z, e = rng.normal(0, 1.5, 500_000), rng.normal(0, 0.4, 500_000)
    truth = float(np.mean(1 / (1 + np.exp(-(1.4 + e + z))) - 1 / (1 + np.exp(-(1.0 + z)))))
    sims, seeds, n = 120, 5, 300
    disjoint = None if shared else [np.arange(n) + s * n for s in range(seeds)]
    hit_h = hit_p = 0
    for k in range(sims):
        a, b = _simulate(rng, shared, seeds, n)
        h = hierarchical_bootstrap(a, b, n_boot=300, seed=k, images=disjoint)
        p = paired_bootstrap(a, b, n_boot=300, seed=k)
        hit_h += h["ci_low"] <= truth <= h["ci_high"]
        hit_p += p["ci_low"] <= truth <= p["ci_high"]
    assert hit_h / sims >= 0.86  # nominal 0.95; percentile intervals on 5 seeds run a little short
    assert hit_p / sims < 0.8 < hit_h / sims


def test_shared_images_move_together_across_seeds():
    """Seeds that are copies of each other on one test set carry no more information than one
    seed: the interval must not shrink by sqrt(S), as it would if each seed's images were
    resampled on their own."""
    rng = np.random.default_rng(2)
    a1, b1 = rng.random((1, 600)) < 0.7, rng.random((1, 600)) < 0.6
    one = hierarchical_bootstrap(a1, b1, n_boot=3000)
    copies = hierarchical_bootstrap(np.tile(a1, (4, 1)), np.tile(b1, (4, 1)), n_boot=3000)
    separate = hierarchical_bootstrap(np.tile(a1, (4, 1)), np.tile(b1, (4, 1)), n_boot=3000,
                                      images=[np.arange(600) + 600 * s for s in range(4)])
    assert width(copies) == pytest.approx(width(one), rel=0.1)
    assert width(separate) < 0.7 * width(one)  # what treating the copies as new images would claim


def test_headroom_share_known_case():
    """without never right, oracle always right (headroom exactly 1), with right on 40%."""
    n, seeds = 500, 3
    without, oracle = np.zeros((seeds, n), bool), np.ones((seeds, n), bool)
    with_ = np.tile(np.arange(n) < 0.4 * n, (seeds, 1))
    r = headroom_bootstrap(with_, without, oracle, n_boot=2000)
    assert r["headroom"] == {"diff": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    assert r["share"]["share"] == pytest.approx(0.4) and r["share_defined"] and not r["headroom_includes_zero"]
    se = np.sqrt(0.4 * 0.6 / n)  # seeds are identical here, so only the images vary: binomial
    assert r["share"]["ci_low"] < 0.4 < r["share"]["ci_high"]
    assert r["share"]["ci_high"] - r["share"]["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert r["gain"]["diff"] == pytest.approx(0.4)


def test_headroom_share_undefined_without_headroom_and_nan_safe():
    rng = np.random.default_rng(1)
    without = rng.random((3, 200)) < 0.6
    with_ = rng.random((3, 200)) < 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings
        r = headroom_bootstrap(with_, without, without.copy(), n_boot=500)
    assert r["headroom_includes_zero"] and not r["share_defined"]
    assert np.isnan(r["share"]["share"]) and np.isnan(r["share"]["ci_low"]) and np.isnan(r["share"]["ci_high"])
    # a headroom whose interval straddles 0: the oracle only 1 point better, on 200 images
    oracle = without.copy()
    oracle[:, :2] = True
    r = headroom_bootstrap(with_, without, oracle, n_boot=500)
    assert r["headroom_includes_zero"] == (r["headroom"]["ci_low"] <= 0) and np.isnan(r["share"]["ci_low"])


def test_arms_must_pair_within_a_seed():
    with pytest.raises(ValueError, match="seed 1"):
        hierarchical_bootstrap([np.ones(5), np.ones(6)], [np.ones(5), np.ones(7)])
    with pytest.raises(ValueError, match="same number of seeds"):
        hierarchical_bootstrap(np.ones((2, 5)), np.ones((3, 5)))


def _fake_run(root, name, rows, correct):
    """A run folder with only what compare reads: eval/test/predictions.csv."""
    d = root / name / "eval" / "test"
    d.mkdir(parents=True)
    pd.DataFrame({"row": rows, "label": 0, "pred": np.where(correct, 0, 1)}).to_csv(d / "predictions.csv", index=False)
    return str(root / name)


def test_compare_pairs_seeds_on_their_own_test_sets(tmp_path, capsys):
    """Seed 0 tests rows 0..199, seed 1 rows 1000..1149 (the split is redrawn): each seed pairs
    with/without on its own images, and the interval resamples seeds and images."""
    rng = np.random.default_rng(0)
    sets = [np.arange(200), np.arange(1000, 1150)]
    runs = {}
    for name, p in (("with", 0.8), ("without", 0.6), ("oracle", 0.9)):
        runs[name] = [_fake_run(tmp_path, f"{name}-s{s}", rows, rng.random(len(rows)) < p)
                      for s, rows in enumerate(sets)]
    res = compare(runs, n_boot=300, headroom=("with", "without", "oracle"))
    d = res["differences"]["with - without"]
    assert d["n_seeds"] == 2 and d["n_images_per_seed"] == [200, 150]
    assert "seeds resampled" in d["method"] and d["ci_low"] < d["diff"] < d["ci_high"]
    assert res["headroom"]["share_defined"]
    argv = ["clf", "compare", *(f"{n}={r}" for n, rs in runs.items() for r in rs), "--n-boot", "200",
            "--headroom", "with", "without", "oracle"]
    assert fape_run(argv) == 0
    out = capsys.readouterr().out
    assert "seeds resampled with replacement, then test images" in out and "Headroom (oracle - without)" in out
    assert fape_run(["clf", "compare", f"a={runs['with'][0]}", f"b={runs['without'][1]}"]) == 2  # no shared image
    assert "share no test image" in capsys.readouterr().err


def test_weighted_macro_f1_known_cases():
    from fape.classifiers.metrics import weighted_macro_f1

    lab, pred = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    # class 0: P 1, R 1/2, F1 2/3; class 1: P 2/3, R 1, F1 4/5
    assert weighted_macro_f1(lab, pred, 2) == pytest.approx((2 / 3 + 4 / 5) / 2)
    # weight 2 on the first image is that image twice: class 0 R 2/3 -> F1 4/5, class 1 still 4/5
    assert weighted_macro_f1(lab, pred, 2, np.array([2.0, 1, 1, 1])) == pytest.approx(0.8)
    assert weighted_macro_f1(lab, pred, 3) == pytest.approx((2 / 3 + 4 / 5) / 2)  # an absent class is left out


def _run_with_results(root, name, labels, preds):
    import json

    from fape.classifiers.metrics import classification_metrics

    d = root / name / "eval" / "test"
    d.mkdir(parents=True)
    pd.DataFrame({"row": np.arange(len(labels)), "label": labels, "pred": preds}).to_csv(d / "predictions.csv", index=False)
    (d / "results.json").write_text(json.dumps(classification_metrics(labels, preds, ["a", "b"])))
    return str(root / name)


def test_compare_per_class_reports_recall_and_macro_f1_differences(tmp_path, capsys):
    from fape.classifiers.compare import _correct
    from fape.classifiers.intervals import macro_f1_bootstrap

    lab = np.repeat([0, 1], 300)
    perfect = _run_with_results(tmp_path, "perfect", lab, lab)
    zeros = _run_with_results(tmp_path, "zeros", lab, np.zeros_like(lab))  # always class a
    fa, fb = [_correct(perfect, "test")], [_correct(zeros, "test")]
    same = macro_f1_bootstrap(fa, fa, 2, n_boot=200)
    assert (same["diff"], same["ci_low"], same["ci_high"]) == (0.0, 0.0, 0.0)
    # perfect: 1; always a: class a F1 2/3 (P 1/2, R 1), class b 0 -> 1/3
    r = macro_f1_bootstrap(fa, fb, 2, n_boot=300)
    assert (r["a"], r["b"]) == pytest.approx((1.0, 1 / 3)) and r["diff"] == pytest.approx(2 / 3)
    assert r["ci_low"] < 2 / 3 < r["ci_high"] and r["ci_high"] - r["ci_low"] < 0.1
    assert fape_run(["clf", "compare", f"zeros={zeros}", f"perfect={perfect}", "--per-class", "--n-boot", "200"]) == 0
    out = capsys.readouterr().out
    assert "| b | 0.0 | 100.0 | +100.0 [+100.0, +100.0] |" in out  # recall of b: 0 -> 100
    assert "| a | 100.0 | 100.0 | +0.0 [+0.0, +0.0] |" in out
    assert "| perfect - zeros | 33.3 | 100.0 | +66.7 [" in out


def _count_reads(monkeypatch) -> dict:
    """Count every open of a file for reading (pandas and pathlib both go through ``open``)."""
    import builtins
    import io
    from collections import Counter
    from pathlib import Path

    seen, real = Counter(), io.open

    def counting(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes)) or hasattr(file, "__fspath__"):
            if not any(c in mode for c in "wax+"):
                seen[str(Path(file).resolve())] += 1
        return real(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting)
    monkeypatch.setattr(builtins, "open", counting)
    return seen


def _macro_f1(lab: np.ndarray, pred: np.ndarray, k: int) -> float:
    f1 = []
    for c in range(k):
        tp, n_pred, n_true = ((lab == c) & (pred == c)).sum(), (pred == c).sum(), (lab == c).sum()
        if n_true:
            p, r = (tp / n_pred if n_pred else 0.0), tp / n_true
            f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return float(np.mean(f1))


def test_compare_per_class_reads_each_run_file_once(tmp_path, monkeypatch):
    import json

    from fape.classifiers.metrics import classification_metrics

    names = ["a", "b", "c"]
    lab = np.repeat([0, 1, 2], 10)  # [30] per seed, every seed scores the same images
    rng = np.random.default_rng(3)
    preds = {(s, k): np.where(rng.random(30) < p, lab, rng.integers(0, 3, 30))
             for s, p in (("x", 0.5), ("y", 0.9)) for k in range(2)}
    runs = {}
    for (s, k), pred in preds.items():
        d = tmp_path / s / f"s{k}" / "eval" / "test"
        d.mkdir(parents=True)
        pd.DataFrame({"row": np.arange(30), "label": lab, "pred": pred}).to_csv(d / "predictions.csv", index=False)
        (d / "results.json").write_text(json.dumps(classification_metrics(lab, pred, names)))
        runs.setdefault(s, []).append(str(tmp_path / s / f"s{k}"))
    seen = _count_reads(monkeypatch)
    argv = ["clf", "compare", *(f"{s}={r}" for s in runs for r in runs[s]), "--per-class", "--n-boot", "50",
            "--out", str(tmp_path / "cmp")]
    assert fape_run(argv) == 0
    files = [tmp_path / s / f"s{k}" / "eval" / "test" / f for s in runs for k in range(2)
             for f in ("predictions.csv", "results.json")]
    assert {str(f): seen[str(f.resolve())] for f in files} == {str(f): 1 for f in files}
    monkeypatch.undo()
    rep = json.loads((tmp_path / "cmp.json").read_text())
    recall = {s: {n: np.mean([(preds[s, k][lab == c] == c).mean() for k in range(2)]) for c, n in enumerate(names)}
              for s in runs}
    assert rep["per_class"]["classes"] == names and list(rep["per_class"]["recall"]) == list(runs)
    for s in runs:
        assert rep["per_class"]["recall"][s] == pytest.approx(recall[s])
    for s in runs:
        assert rep["settings"][s]["accs"] == pytest.approx([(preds[s, k] == lab).mean() for k in range(2)])
    diffs = rep["per_class"]["recall_differences"]["y - x"]
    want = {n: recall["y"][n] - recall["x"][n] for n in names}
    assert {n: d["diff"] for n, d in diffs.items()} == pytest.approx(want)
    f1 = rep["per_class"]["macro_f1_differences"]["y - x"]
    want = {s: np.mean([_macro_f1(lab, preds[s, k], 3) for k in range(2)]) for s in runs}
    assert (f1["a"], f1["b"], f1["diff"]) == pytest.approx((want["y"], want["x"], want["y"] - want["x"]))
    assert f1["ci_low"] <= f1["diff"] <= f1["ci_high"]
