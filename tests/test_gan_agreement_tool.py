"""tools/gan_agreement.py: paired agreement figures with bootstrap intervals, on cases whose answer
is known."""

import numpy as np

from _fixtures import load_tool


def _tool():
    return load_tool("gan_agreement")


def test_paired_interval_known_cases():
    t = _tool()
    n = 200
    ref = np.arange(n) % 2 == 0  # the classifier is right on half of the real targets
    half = np.arange(n) % 4 < 2  # agrees on half of the pairs, not the same half as ref
    res = t.paired_interval({"all": np.ones(n, bool), "none": np.zeros(n, bool), "half": half}, ref)
    assert res["all"]["agreement"] == (1.0, 1.0, 1.0)
    assert res["none"]["minus_first"] == (-1.0, -1.0, -1.0)  # every resample: paired, no spread
    v, lo, hi = res["all"]["ratio_to_targets"]
    assert v == 2.0 and lo < 2.0 < hi  # 1 / 0.5, and the targets' accuracy is resampled too
    v, lo, hi = res["half"]["agreement"]
    assert v == 0.5 and lo < 0.5 < hi and hi - lo < 0.2
