"""Classification metrics: small pure functions of (labels, predictions), and the confusion matrix
as a PNG. ``fape.classifiers.evaluate`` writes them for a run; ``fape.classifiers.intervals``
resamples them."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def confusion(labels: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """``C[i, j]`` = images of true class i predicted as j, ``[K, K]`` int."""
    return np.bincount(labels * k + preds, minlength=k * k).reshape(k, k)


def per_class_prf(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision ``C_jj / sum_i C_ij``, recall ``C_ii / sum_j C_ij``, F1 = their harmonic mean
    (0 where undefined), and support, each ``[K]``."""
    tp = np.diag(cm).astype(np.float64)
    pred_n, true_n = cm.sum(0), cm.sum(1)
    precision = np.divide(tp, pred_n, out=np.zeros_like(tp), where=pred_n > 0)
    recall = np.divide(tp, true_n, out=np.zeros_like(tp), where=true_n > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": true_n}


def classification_metrics(labels: np.ndarray, preds: np.ndarray, names: list[str],
                           groups: dict[str, np.ndarray] | None = None) -> dict:
    """Accuracy, macro-F1 over classes present in ``labels``, per-class precision/recall/F1
    (recall = per-class accuracy), and accuracy per value of each grouping (e.g. pose)."""
    k = len(names)
    cm = confusion(labels, preds, k)
    prf = per_class_prf(cm)
    present = prf["support"] > 0
    out = {
        "n": int(len(labels)),
        "accuracy": float((labels == preds).mean()) if len(labels) else float("nan"),
        "macro_f1": float(prf["f1"][present].mean()) if present.any() else float("nan"),
        "chance": 1.0 / k,
        "per_class": {n: {"precision": float(prf["precision"][i]), "recall": float(prf["recall"][i]),
                          "f1": float(prf["f1"][i]), "support": int(prf["support"][i])}
                      for i, n in enumerate(names)},
        "confusion": cm.tolist(),
    }
    for gname, g in (groups or {}).items():
        out[f"per_{gname}"] = {str(v): float((labels[g == v] == preds[g == v]).mean()) for v in np.unique(g)}
    return out


def weighted_macro_f1(labels: np.ndarray, preds: np.ndarray, k: int, weights: np.ndarray | None = None) -> float:
    """Macro-F1 over the classes present (``classification_metrics``'s definition) with a weight
    per image (a bootstrap's multiplicities; None = 1 each). ``labels``, ``preds``: ``[N]`` ids < k."""
    cm = np.bincount(labels * k + preds, weights=weights, minlength=k * k).reshape(k, k)
    prf = per_class_prf(cm)
    present = prf["support"] > 0
    return float(prf["f1"][present].mean()) if present.any() else float("nan")


def confusion_png(cm: np.ndarray, names: list[str], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(names)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(4.0, 0.22 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), names, rotation=90, fontsize=max(4, 9 - k // 10))
    ax.set_yticks(range(k), names, fontsize=max(4, 9 - k // 10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 12:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
