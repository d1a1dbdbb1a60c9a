"""FaPE-GAN losses: small pure functions of logits and images, combined per ``LossConfig``.

Notation: ``D(x) = sigmoid(l)`` where ``l`` are the discriminator's raw logits (one per patch for PatchGAN);
every expectation is a mean over batch and patches. Images are in [-1, 1].

The paper (F2ED, eq. 1-3) trains with the log loss
    ``L_GAN = E[log D(I)] + E[log(1 - D(G(I_i, I_P)))]``, ``L_D = -L_GAN``, ``L_G = L_GAN + lambda * L1``
with lambda = 10. As is standard (Goodfellow et al. 2014, pix2pix) G minimises the non-saturating
``-log D(G(.))`` instead of ``log(1 - D(G(.)))``, which has the same fixed point but does not vanish when D
confidently rejects early fakes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fape.gan.config import LossConfig

__all__ = ["ADVERSARIAL_KINDS", "d_adversarial", "g_adversarial", "l1", "feature_distance",
           "expression_ce", "feature_matching", "generator_loss", "discriminator_loss"]

ADVERSARIAL_KINDS = ("nonsaturating", "lsgan", "hinge")


def _unknown(kind: str) -> ValueError:
    return ValueError(f"unknown adversarial loss {kind!r}; expected one of {list(ADVERSARIAL_KINDS)}")


def d_adversarial(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """Discriminator loss (scalar) from logits on real and on generated images.

    - ``nonsaturating`` (log loss, paper eq. 1-2):
      ``E[softplus(-l_real)] + E[softplus(l_fake)] = -E[log D(real)] - E[log(1 - D(fake))]``
      (2 log 2 at l = 0, i.e. D = 1/2; -> 0 for a perfect D).
    - ``lsgan`` (Mao et al. 2017, pix2pix's ``lsgan``): ``0.5 E[(l_real - 1)^2] + 0.5 E[l_fake^2]``.
    - ``hinge`` (Lim & Ye 2017, SAGAN): ``E[relu(1 - l_real)] + E[relu(1 + l_fake)]``.
    """
    if kind == "nonsaturating":
        # softplus(-l) = -log sigmoid(l), computed without overflow for large |l|
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "lsgan":
        return 0.5 * (real_logits - 1).square().mean() + 0.5 * fake_logits.square().mean()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    raise _unknown(kind)


def g_adversarial(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """Generator adversarial loss (scalar) from D's logits on generated images.

    - ``nonsaturating``: ``E[softplus(-l_fake)] = -E[log D(G(.))]`` (log 2 at l = 0).
    - ``lsgan``: ``0.5 E[(l_fake - 1)^2]`` (same 0.5 as ``d_adversarial``).
    - ``hinge``: ``-E[l_fake]``.
    Every kind decreases as the fake logits increase, i.e. pushes fakes towards "real".
    """
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    if kind == "lsgan":
        return 0.5 * (fake_logits - 1).square().mean()
    if kind == "hinge":
        return -fake_logits.mean()
    raise _unknown(kind)


def l1(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error ``E|fake - target|`` over all elements (paper's L_L1; in [-1, 1] pixel units)."""
    return (fake - target).abs().mean()


def feature_distance(f_a: torch.Tensor, f_b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``E_b[1 - cos(f_a[b], f_b[b])]`` over the flattened features of each sample, in [0, 2].

    For identity preservation: features of the generated and of the source face from a frozen classifier's
    penultimate layer; 0 for parallel features, 1 for orthogonal, 2 for opposite. Scale-invariant, so it
    does not care about the feature norm the classifier happens to produce.
    """
    a, b = f_a.flatten(1), f_b.flatten(1)  # [B, F]
    return (1 - F.cosine_similarity(a, b, dim=1, eps=eps)).mean()


def expression_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``E[-log softmax(logits)[label]]``: a frozen expression classifier should read the expression
    G was asked to draw (the target's label) on the generated face. ``logits [B, K]``, ``labels [B]`` int64."""
    return F.cross_entropy(logits, labels)


def feature_matching(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """pix2pixHD's feature matching: ``mean_l E|D_l(fake) - D_l(real)|`` over D's intermediate maps.

    G is asked to make D's features of its image match those of the real target, a denser signal
    than one logit per patch. The real features are targets (detached); the mean over layers keeps
    the scale independent of D's depth."""
    if len(fake_feats) != len(real_feats) or not fake_feats:
        raise ValueError(f"feature_matching needs the same non-zero number of maps, got {len(fake_feats)} "
                         f"and {len(real_feats)}")
    return torch.stack([(f.float() - r.detach().float()).abs().mean() for f, r in zip(fake_feats, real_feats)]).mean()


def generator_loss(fake_logits: torch.Tensor, fake: torch.Tensor, target: torch.Tensor, cfg: LossConfig,
                   extra: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_G = g_adversarial + l1_weight * L1(fake, target) [+ identity_weight * identity]
    [+ expression_weight * expression] [+ feature_matching_weight * feature_matching]`` (paper eq. 3
    plus the optional classifier and discriminator-feature terms).

    ``extra`` holds the classifier terms already computed by the caller (who owns the frozen classifier), e.g.
    ``{"identity": feature_distance(...), "expression": expression_ce(...), "feature_matching": ...}``;
    a term is added when its
    weight is non-zero, and it is an error to give it a weight without passing it. Returns the total (for
    backward) and the parts as floats for logging: ``g_adv``, ``g_l1`` (unweighted), ``g_identity``,
    ``g_expression``, ``g_feature_matching`` (when given), ``g_total``.
    """
    extra = extra or {}
    adv = g_adversarial(fake_logits, cfg.adversarial)
    rec = l1(fake, target)
    total = adv + cfg.l1_weight * rec
    parts = {"g_adv": adv.detach(), "g_l1": rec.detach()}
    for key, weight in (("identity", cfg.identity_weight), ("expression", cfg.expression_weight),
                        ("feature_matching", cfg.feature_matching_weight)):
        term = extra.get(key)
        if weight and term is None:
            raise ValueError(f"LossConfig.{key}_weight = {weight} but no precomputed {key!r} term in extra "
                             f"(got {sorted(extra)})")
        if term is not None:
            if weight:
                total = total + weight * term
            parts[f"g_{key}"] = term.detach()
    parts["g_total"] = total.detach()
    return total, {k: float(v) for k, v in parts.items()}


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_D = d_adversarial(real, fake)`` (paper: ``L_D = -L_GAN``). ``fake_logits`` must come from detached
    fakes so this does not reach G. Parts for logging: ``d_total``, and the mean logits ``d_real_logit``,
    ``d_fake_logit`` and ``d_acc`` (fraction of patches D classifies right at threshold 0) to watch D's
    dominance."""
    total = d_adversarial(real_logits, fake_logits, cfg.adversarial)
    with torch.no_grad():
        acc = 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean())
        parts = {"d_total": total.detach(), "d_real_logit": real_logits.mean(), "d_fake_logit": fake_logits.mean(),
                 "d_acc": acc}
    return total, {k: float(v) for k, v in parts.items()}
