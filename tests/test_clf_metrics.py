import numpy as np
import pytest
import torch

from fape.classifiers.augment import augment
from fape.classifiers.intervals import paired_bootstrap
from fape.classifiers.losses import center_loss, center_update, class_weights
from fape.classifiers.metrics import classification_metrics, confusion, per_class_prf


def test_confusion_and_prf_analytic():
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 1, 1, 1, 2, 0])
    cm = confusion(labels, preds, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    prf = per_class_prf(cm)
    assert np.allclose(prf["precision"], [0.5, 2 / 3, 1.0])
    assert np.allclose(prf["recall"], [0.5, 1.0, 0.5])
    assert np.allclose(prf["f1"], [0.5, 0.8, 2 / 3])
    m = classification_metrics(labels, preds, ["a", "b", "c"], {"pose": np.array(list("xxyyxy"))})
    assert m["accuracy"] == pytest.approx(4 / 6) and m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["per_pose"] == {"x": pytest.approx(2 / 3), "y": pytest.approx(2 / 3)}


def test_macro_f1_ignores_absent_classes():
    m = classification_metrics(np.array([0, 0]), np.array([0, 0]), ["a", "b"])
    assert m["macro_f1"] == 1.0 and m["per_class"]["b"]["support"] == 0


def test_paired_bootstrap_cases():
    a = np.ones((3, 200), int)
    b = np.zeros((3, 200), int)
    r = paired_bootstrap(a, b)
    assert r["diff"] == 1.0 and r["ci_low"] == 1.0 and r["ci_high"] == 1.0
    rng = np.random.default_rng(0)
    same = rng.integers(0, 2, (2, 500))
    r = paired_bootstrap(same, same)
    assert r["diff"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0
    noisy_a = rng.random((1, 2000)) < 0.7
    noisy_b = rng.random((1, 2000)) < 0.6
    r = paired_bootstrap(noisy_a, noisy_b)
    assert r["ci_low"] < r["diff"] < r["ci_high"] and r["ci_low"] > 0  # a 10-point gap on 2000 images is clear


def test_center_loss_and_delta_rule():
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 1])
    centers = torch.zeros(3, 2)
    # 1/(2B) sum ||x - c||^2 = (1 + 9 + 4) / 6
    assert center_loss(feats, labels, centers).item() == pytest.approx(14 / 6)
    new = center_update(feats, labels, centers, alpha=0.5)
    # class 0: dc = (2*0 - (1+3)) / (1+2) = -4/3 -> c = 0 + 0.5 * 4/3; class 1: dc = -2/2 -> c = 0.5; class 2 unchanged
    assert torch.allclose(new, torch.tensor([[2 / 3, 0.0], [0.0, 0.5], [0.0, 0.0]]))
    feats.requires_grad_(True)
    center_loss(feats, labels, centers).backward()
    assert torch.allclose(feats.grad, feats.detach() / 3)


def test_class_weights():
    w = class_weights([0, 0, 0, 1], 3)
    assert torch.allclose(w, torch.tensor([4 / 9, 4 / 3, 0.0]))


@pytest.mark.parametrize("kind", ["none", "flip", "mobilenet", "cife"])
def test_augment_shapes_range_and_seeded(kind):
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    torch.manual_seed(0)
    a = augment(x, kind)
    torch.manual_seed(0)
    b = augment(x, kind)
    assert a.shape == x.shape and torch.equal(a, b) and a.min() >= -1 - 1e-5 and a.max() <= 1 + 1e-5
    if kind != "none":
        assert not torch.equal(a, x)
    with pytest.raises(ValueError):
        augment(x, "rotate")
