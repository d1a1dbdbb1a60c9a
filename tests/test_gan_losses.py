import math

import pytest
import torch

from fape.gan.config import LossConfig
from fape.gan.losses import (
    ADVERSARIAL_KINDS,
    d_adversarial,
    discriminator_loss,
    expression_ce,
    feature_distance,
    feature_matching,
    g_adversarial,
    generator_loss,
    l1,
)

LOG2 = math.log(2)


def t(*v):
    return torch.tensor(v, dtype=torch.float32)


def test_nonsaturating_at_zero_logits():
    z = torch.zeros(4, 1, 6, 6)
    assert d_adversarial(z, z, "nonsaturating").item() == pytest.approx(2 * LOG2)
    assert g_adversarial(z, "nonsaturating").item() == pytest.approx(LOG2)


def test_nonsaturating_equals_log_loss():
    real, fake = t(-1.5, 0.3, 2.0), t(0.7, -2.2, 0.0)
    ref = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    assert d_adversarial(real, fake).item() == pytest.approx(ref.item(), rel=1e-6)
    assert g_adversarial(fake).item() == pytest.approx(-torch.log(torch.sigmoid(fake)).mean().item(), rel=1e-6)


def test_perfect_discriminator_has_zero_loss_and_stays_finite():
    real, fake = torch.full((8,), 50.0), torch.full((8,), -50.0)
    assert d_adversarial(real, fake, "nonsaturating").item() == pytest.approx(0, abs=1e-12)
    assert d_adversarial(real, fake, "hinge").item() == 0
    # and the fooled G's loss is large but finite (softplus does not overflow like log(sigmoid))
    g = g_adversarial(torch.full((8,), -200.0), "nonsaturating")
    assert torch.isfinite(g) and g.item() == pytest.approx(200.0)


def test_lsgan_values():
    one, zero = torch.ones(5), torch.zeros(5)
    assert d_adversarial(one, zero, "lsgan").item() == 0
    assert d_adversarial(zero, one, "lsgan").item() == pytest.approx(1.0)
    assert g_adversarial(one, "lsgan").item() == 0
    assert g_adversarial(zero, "lsgan").item() == pytest.approx(0.5)


def test_hinge_values():
    # relu(1 - real) + relu(1 + fake), each a mean
    assert d_adversarial(t(2.0, 0.5), t(-3.0, 0.0), "hinge").item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert d_adversarial(t(1.0), t(-1.0), "hinge").item() == 0
    assert d_adversarial(t(-1.0), t(1.0), "hinge").item() == pytest.approx(4.0)
    assert g_adversarial(t(2.0, -1.0), "hinge").item() == pytest.approx(-0.5)


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_gradient_signs(kind):
    # G's loss falls as fake logits rise; D's loss falls as real logits rise and fake logits fall. (LSGAN pulls
    # towards targets 1 / 0 and hinge stops at margins +-1, so the points sit on the wrong side of those.)
    fake = t(-0.5, 0.0, 0.5).requires_grad_()
    g_adversarial(fake, kind).backward()
    assert (fake.grad < 0).all(), fake.grad
    real, fake = t(-0.5, 0.0, 0.5).requires_grad_(), t(0.25, 0.5, 0.75).requires_grad_()
    d_adversarial(real, fake, kind).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="hinge"):
        d_adversarial(t(0.0), t(0.0), "wgan")
    with pytest.raises(ValueError, match="nonsaturating"):
        g_adversarial(t(0.0), "wgan")


def test_l1():
    a, b = t(1.0, -1.0, 0.5, 0.0), t(0.0, 1.0, 0.5, -0.5)
    assert l1(a, b).item() == pytest.approx((1 + 2 + 0 + 0.5) / 4)
    assert l1(a, a).item() == 0


def test_feature_distance():
    f = torch.randn(4, 16, 2, 2)
    assert feature_distance(f, f).item() == pytest.approx(0, abs=1e-6)
    assert feature_distance(f, 3 * f).item() == pytest.approx(0, abs=1e-6)  # scale-invariant
    assert feature_distance(f, -f).item() == pytest.approx(2, abs=1e-6)
    e = torch.eye(2)
    assert feature_distance(e[:1], e[1:]).item() == pytest.approx(1, abs=1e-6)  # orthogonal


def test_expression_ce():
    logits = torch.zeros(3, 4)
    assert expression_ce(logits, torch.tensor([0, 1, 3])).item() == pytest.approx(math.log(4))
    confident = torch.tensor([[20.0, 0.0], [0.0, 20.0]])
    assert expression_ce(confident, torch.tensor([0, 1])).item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_generator_loss_combines_exactly(kind):
    torch.manual_seed(0)
    logits, fake, target = torch.randn(2, 1, 6, 6), torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    cfg = LossConfig(adversarial=kind, l1_weight=10.0)
    total, parts = generator_loss(logits, fake, target, cfg)
    assert torch.equal(total, g_adversarial(logits, kind) + 10.0 * l1(fake, target))
    assert parts["g_adv"] == pytest.approx(g_adversarial(logits, kind).item())
    assert parts["g_l1"] == pytest.approx(l1(fake, target).item())
    assert parts["g_total"] == pytest.approx(total.item())
    assert all(isinstance(v, float) for v in parts.values())


def test_generator_loss_extra_terms():
    logits, fake, target = torch.zeros(2, 1, 6, 6), torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8)
    ident, expr = torch.tensor(0.3), torch.tensor(1.2)
    cfg = LossConfig(l1_weight=10.0, identity_weight=2.0, expression_weight=0.5)
    total, parts = generator_loss(logits, fake, target, cfg, extra={"identity": ident, "expression": expr})
    assert total.item() == pytest.approx(LOG2 + 10 * 1.0 + 2 * 0.3 + 0.5 * 1.2)
    assert parts["g_identity"] == pytest.approx(0.3) and parts["g_expression"] == pytest.approx(1.2)
    # weight 0: logged, not added
    total0, parts0 = generator_loss(logits, fake, target, LossConfig(), extra={"identity": ident})
    assert total0.item() == pytest.approx(LOG2 + 10.0) and "g_identity" in parts0
    # a weighted term that is not given is a configuration error, not silently skipped
    with pytest.raises(ValueError, match="identity"):
        generator_loss(logits, fake, target, cfg, extra={"expression": expr})


def test_generator_loss_backpropagates_to_fake():
    fake = torch.zeros(1, 3, 4, 4, requires_grad=True)
    logits = (fake.mean() * torch.ones(1, 1, 2, 2))  # a stand-in D that likes brighter images
    total, _ = generator_loss(logits, fake, torch.ones(1, 3, 4, 4), LossConfig())
    total.backward()
    assert (fake.grad < 0).all()  # both terms pull the fake up towards the target / "real"


def test_discriminator_loss():
    real, fake = torch.full((2, 1, 3, 3), 2.0), torch.full((2, 1, 3, 3), -1.0)
    total, parts = discriminator_loss(real, fake, LossConfig(adversarial="hinge"))
    assert total.item() == 0
    assert parts["d_real_logit"] == 2.0 and parts["d_fake_logit"] == -1.0 and parts["d_acc"] == 1.0
    total, parts = discriminator_loss(torch.zeros(4), torch.zeros(4), LossConfig())
    assert parts["d_total"] == pytest.approx(2 * LOG2) and parts["d_acc"] == 0.0  # ties count as wrong


def test_feature_matching_is_the_mean_over_layers_of_l1_and_stops_at_real():
    fake = [torch.zeros(2, 4, 8, 8, requires_grad=True), torch.zeros(2, 8, 4, 4, requires_grad=True)]
    real = [torch.ones(2, 4, 8, 8, requires_grad=True), torch.full((2, 8, 4, 4), 3.0, requires_grad=True)]
    fm = feature_matching(fake, real)
    assert fm.item() == pytest.approx((1.0 + 3.0) / 2)  # per-layer means, then their mean
    fm.backward()
    assert all(f.grad is not None for f in fake) and all(r.grad is None for r in real)
    with pytest.raises(ValueError, match="same"):
        feature_matching(fake, real[:1])
    logits, img = torch.zeros(2, 1, 6, 6), torch.zeros(2, 3, 8, 8)
    total, parts = generator_loss(logits, img, img, LossConfig(feature_matching_weight=10.0),
                                  extra={"feature_matching": fm.detach()})
    assert total.item() == pytest.approx(LOG2 + 10 * 2.0) and parts["g_feature_matching"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="feature_matching"):
        generator_loss(logits, img, img, LossConfig(feature_matching_weight=1.0))
