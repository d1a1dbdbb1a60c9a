"""Classifier losses as pure functions: center loss (Wen et al. 2016) and its centre update, and the
knowledge-distillation term (Hinton et al. 2015)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def center_loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """``L_C = 1 / (2B) * sum_i ||x_i - c_{y_i}||^2`` for features ``[B, D]``, labels ``[B]``,
    centres ``[K, D]`` (the MobileNet paper's eq. 1, averaged over the mini-batch so that lambda
    does not depend on the batch size). Gradients reach the features, not the centres."""
    diff = features - centers.detach()[labels]
    return 0.5 * diff.pow(2).sum(1).mean()


@torch.no_grad()
def center_update(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, alpha: float) -> torch.Tensor:
    """Wen et al.'s delta rule, ``c_j <- c_j - alpha * dc_j`` with
    ``dc_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)``; returns the new centres ``[K, D]``.

    Classes absent from the batch have ``n_j = 0`` and stay put.
    """
    K = centers.shape[0]
    x = features.detach().to(centers.dtype)
    counts = torch.bincount(labels, minlength=K).to(centers.dtype)  # [K]
    sums = torch.zeros_like(centers).index_add_(0, labels, x)  # [K, D] sum of x_i per class
    delta = (counts[:, None] * centers - sums) / (1 + counts[:, None])
    return centers - alpha * delta


def class_weights(labels, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights ``w_k = N / (K n_k)`` (1 for a balanced set); absent classes get 0."""
    counts = torch.bincount(torch.as_tensor(labels), minlength=num_classes).float()
    w = counts.sum() / (num_classes * counts.clamp_min(1))
    return torch.where(counts > 0, w, torch.zeros_like(w))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target term for logits ``[B, K]``, averaged over the batch:

        L_KD = T^2 / B * sum_i KL(p_i || q_i),   p_i = softmax(t_i / T),   q_i = softmax(s_i / T),
        KL(p || q) = sum_k p_k (log p_k - log q_k).

    ``dL_KD / ds_ik = T (q_ik - p_ik) / B``; for logits small against T (zero-mean per row),
    ``q - p ~ (s - t) / (K T)``, so the gradient tends to ``(s_ik - t_ik) / (K B)`` whatever T is:
    the T^2 keeps the soft term's size comparable across temperatures and against the
    cross-entropy it is mixed with. Zero when the two sets of logits are equal (or differ by a
    constant per row). No gradient reaches the teacher's logits."""
    T = float(temperature)
    log_q = F.log_softmax(student_logits.float() / T, dim=1)
    log_p = F.log_softmax(teacher_logits.detach().float() / T, dim=1)
    return T * T * F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
