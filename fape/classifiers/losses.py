"""Classifier losses as pure functions: center loss (Wen et al. 2016) and its centre update."""
from __future__ import annotations

import torch


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
