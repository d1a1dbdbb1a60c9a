"""Evaluation of a trained classifier and comparison of settings over seeds.

Metrics are small pure functions of (labels, predictions); ``evaluate_run`` writes them with
the per-image predictions (so comparisons can pair images), a confusion matrix as CSV and PNG.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fape.utils.io import atomic_write_json, atomic_write_text


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


def eval_split_file(run: Path, cfg, index, split_file: str | Path | None = None) -> Path:
    """The split to evaluate on: ``split_file`` when given; else the run's own (``labels.json``);
    else, for a checkpoint folder without its run (a packaged model), the split its config names,
    made on ``index`` by the recorded protocol and seed exactly as training makes it."""
    if split_file is not None:
        return Path(split_file)
    if (run / "labels.json").is_file():
        return Path(json.loads((run / "labels.json").read_text())["split"])
    from fape.classifiers.train import resolve_split

    return resolve_split(cfg, index)[3]


def default_eval_dir(run: Path, split: str) -> Path:
    """RUN/eval/SPLIT for a training run; a packaged checkpoint (perhaps inside site-packages) is
    never written into: runs/eval/NAME/SPLIT under the current folder."""
    return run / "eval" / split if (run / "labels.json").is_file() else Path("runs") / "eval" / run.name / split


def evaluate_run(run: str | Path, split: str = "test", data: str | None = None, out: str | Path | None = None,
                 device: str = "cpu", checkpoint: str | Path | None = None,
                 split_file: str | Path | None = None) -> dict:
    """Evaluate a run's selected model on a part of its split; writes results.json,
    predictions.csv, confusion.csv and confusion.png into ``out`` (default: ``default_eval_dir``).
    ``run`` may be a training run or a packaged checkpoint folder (``state.json``, no run files).
    ``checkpoint``: other weights of the same model to evaluate on the run's split (e.g. the
    packaged copy of a shipped model). ``split_file``: a split csv of ``data`` to use instead of
    the run's (see ``eval_split_file``)."""
    import pandas as pd

    from fape.classifiers.io import load_run
    from fape.classifiers.train import predict
    from fape.data import splits
    from fape.data.dataset import FaceDataset
    from fape.data.format import read_index

    run = Path(run)
    loaded = load_run(checkpoint or run, device)
    cfg = loaded.cfg
    root = data or cfg.data.root
    index = read_index(root)
    split_file = eval_split_file(run, cfg, index, split_file)
    parts = splits.load_split(split_file, fold=cfg.data.fold if cfg.data.fold >= 0 else None)
    if split not in parts:
        raise ValueError(f"split part {split!r} not in {split_file} (has {sorted(parts)})")
    lut = {n: i for i, n in enumerate(loaded.label_names)}
    label_map = np.array([lut.get(n, -1) for n in index.info.label_names], np.int64)
    faces = FaceDataset(index, size=cfg.data.image_size, channels=cfg.data.channels, progress=False)
    rows = parts[split]
    rows = rows[label_map[faces.labels[rows]] >= 0]
    probs = predict(loaded.model, faces, rows, device)
    labels, preds = label_map[faces.labels[rows]], probs.argmax(1)
    m = index.manifest.iloc[rows]
    groups = {"pose": m["pose"].to_numpy()} if (m["pose"] != "").any() else {}
    res = classification_metrics(labels, preds, loaded.label_names, groups)
    res.update(run=str(run), split=split, split_file=str(split_file), data=str(root),
               checkpoint=str(loaded.checkpoint))
    out = Path(out) if out else default_eval_dir(run, split)
    res["out"] = str(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", res)
    pred_df = pd.DataFrame({"row": rows, "path": m["path"].to_numpy(), "label": labels, "pred": preds,
                            "prob": probs[np.arange(len(rows)), preds]})
    atomic_write_text(out / "predictions.csv", pred_df.to_csv(index=False))
    cm = np.asarray(res["confusion"])
    atomic_write_text(out / "confusion.csv", pd.DataFrame(cm, index=loaded.label_names,
                                                           columns=loaded.label_names).to_csv())
    confusion_png(cm, loaded.label_names, out / "confusion.png",
                  f"{run.name} {split}: acc {res['accuracy']:.3f}")
    return res


# ---------------------------------------------------------------- comparing settings
def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """CI of ``acc(A) - acc(B)`` by resampling test images with replacement, the same images for
    both settings. ``correct_*`` are ``[S, N]`` (seeds x images, 0/1): each resample takes the
    mean over seeds of the per-seed accuracy differences."""
    rng = np.random.default_rng(seed)
    diff = correct_a.astype(np.float64) - correct_b.astype(np.float64)  # [S, N]
    n = diff.shape[1]
    per_image = diff.mean(0)  # [N] mean over seeds, linear so resampling images commutes
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = per_image[idx].mean(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"diff": float(per_image.mean()), "ci_low": float(lo), "ci_high": float(hi), "level": level,
            "n_images": int(n), "n_seeds": int(diff.shape[0]), "n_boot": n_boot}


def _correct(run: Path, split: str) -> "pd.DataFrame":  # noqa: F821
    import pandas as pd

    p = Path(run) / "eval" / split / "predictions.csv"
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found: run `fape clf eval --run {run} --split {split}` first")
    df = pd.read_csv(p)
    return df.assign(correct=(df["label"] == df["pred"]).astype(int)).set_index("row")


def compare(groups: dict[str, list[str]], split: str = "test", n_boot: int = 2000) -> dict:
    """Mean +- std of accuracy per setting over its runs (seeds), and for every pair of settings a
    paired bootstrap CI of the accuracy difference on the test images both settings saw."""
    stats, correct = {}, {}
    for name, runs in groups.items():
        frames = [_correct(Path(r), split) for r in runs]
        accs = [f["correct"].mean() for f in frames]
        stats[name] = {"runs": runs, "mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                       "accs": [float(a) for a in accs]}
        correct[name] = frames
    pairs = {}
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = sorted(set.intersection(*(set(f.index) for f in correct[a] + correct[b])))
            s = min(len(correct[a]), len(correct[b]))  # pair seed k of A with seed k of B
            ca = np.stack([f.loc[common, "correct"].to_numpy() for f in correct[a][:s]])
            cb = np.stack([f.loc[common, "correct"].to_numpy() for f in correct[b][:s]])
            pairs[f"{a} - {b}"] = paired_bootstrap(ca, cb, n_boot=n_boot)
    return {"split": split, "settings": stats, "differences": pairs}


def compare_markdown(res: dict) -> str:
    lines = ["| setting | runs | accuracy (mean +- std) |", "|---|---|---|"]
    for name, s in res["settings"].items():
        lines.append(f"| {name} | {len(s['runs'])} | {100 * s['mean']:.1f} +- {100 * s['std']:.1f} |")
    if res["differences"]:
        lines += ["", "| difference | mean | 95% paired bootstrap CI | images | seeds |", "|---|---|---|---|---|"]
        for name, d in res["differences"].items():
            lines.append(f"| {name} | {100 * d['diff']:+.1f} | [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}] "
                         f"| {d['n_images']} | {d['n_seeds']} |")
    return "\n".join(lines) + "\n"


def cli_eval(args, overrides) -> int:
    res = evaluate_run(args.run, args.split, args.data, args.out, args.device, split_file=args.split_file)
    print(f"{args.run} [{args.split}] accuracy {res['accuracy']:.4f}  macro-F1 {res['macro_f1']:.4f}  "
          f"(n={res['n']}, chance {res['chance']:.3f}; split {res['split_file']}) -> {res['out']}")
    return 0


def cli_compare(args, overrides) -> int:
    groups: dict[str, list[str]] = {}
    for item in args.runs:  # NAME=RUN or RUN (grouped by the run's config name)
        name, _, run = item.rpartition("=")
        if not name:
            from fape.utils.checkpoint import load_state
            from fape.classifiers.io import best_checkpoint

            name = load_state(best_checkpoint(run))["config"]["name"]
        groups.setdefault(name, []).append(run)
    res = compare(groups, args.split, args.n_boot)
    md = compare_markdown(res)
    print(md)
    if args.out:
        atomic_write_text(Path(args.out).with_suffix(".md"), md)
        atomic_write_json(Path(args.out).with_suffix(".json"), res)
    return 0
