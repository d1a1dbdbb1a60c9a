"""``fape metrics synth``: what a synthesized set (``fape gan synthesize``) is worth, face by face.

For expression transfer on real faces there is no true target image, so the GAN report's paired
metrics do not apply. This report reads the set against the real rows it came from:

* **Identity** (dlib's 128-d face embedding, ``fape.metrics.identity``): cosine of each generated
  face with its source face, beside the cosines of real pairs of the same subject and of
  different subjects among the real rows. A generated face that keeps its owner sits in the
  same-subject band.
* **Expression** (a classifier trained on real rows, ``--features run:RUN``): the share of
  generated faces predicted as their drawn (target) expression, and the share still predicted as
  the *source's* expression (the face did not change). Its reference is the classifier's
  accuracy on real faces of the same classes among ``reference_rows``: pass rows the classifier
  never trained on (e.g. its validation part), or the reference is a training accuracy.
* **KID per class** on the face embedding: generated faces of class c against the real faces of
  class c among the real rows, with both n. FID is left out: with tens of faces per class in 128
  dimensions its covariance is singular and its bias dominates.

Every figure says its n. Faces where dlib finds none are counted and left out of the identity
and KID figures.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIZE = 64  # images are compared at one size (the classifier resizes to its own)


def _stack(ds, rows: np.ndarray) -> np.ndarray:
    """uint8 ``[N, C, H, W]`` of ``rows`` of a FaceDataset."""
    return np.stack([ds.load(int(r)).transpose(2, 0, 1) for r in rows]) if len(rows) else np.zeros((0, ds.channels, SIZE, SIZE), np.uint8)


def label_lut(clf_names: list[str], data_names: list[str], what: str) -> np.ndarray:
    """``[len(clf_names)]`` data label id of each classifier class, matched by name (a FER2013 model
    reads a merged FER2013 + CK+48 + JAFFE set, whose labels include contempt)."""
    from fape.data.format import labels_by_name

    idx = labels_by_name(clf_names, data_names)
    alien = [n for n, i in zip(clf_names, idx) if i < 0]
    if alien:
        raise ValueError(f"{what}: its labels {alien} are not among the data's {data_names}")
    return idx


def expression_figures(pred: np.ndarray, target: np.ndarray, source: np.ndarray, ref_pred: np.ndarray,
                       ref_label: np.ndarray) -> dict:
    """Shares of generated faces predicted as their target / their source expression (``[N]`` label
    ids each), and the classifier's accuracy on the reference real faces (``[M]``)."""
    return {"agreement_target": float((pred == target).mean()) if len(pred) else float("nan"),
            "still_source": float((pred == source).mean()) if len(pred) else float("nan"),
            "accuracy_on_reference": float((ref_pred == ref_label).mean()) if len(ref_pred) else float("nan"),
            "n": int(len(pred)), "n_reference": int(len(ref_pred))}


def synth_metrics(synth: str | Path, data: str | Path, rows: np.ndarray | None = None, features: str | None = None,
                  reference_rows: np.ndarray | None = None) -> dict:
    """The report's figures (module docstring). ``rows``: the real rows to compare with (default:
    every row of ``data``); ``reference_rows``: the classifier's held-out real rows (default ``rows``)."""
    from fape.data.dataset import FaceDataset
    from fape.data.format import read_index
    from fape.metrics.fid import per_group
    from fape.metrics.identity import embed, preservation, reference_similarities

    syn_idx, real_idx = read_index(synth), read_index(data)
    if "source_row" not in syn_idx.manifest.columns:
        raise ValueError(f"{synth}: no source_row column: not a `fape gan synthesize` output")
    if list(syn_idx.info.label_names) != list(real_idx.info.label_names):
        raise ValueError(f"{synth} and {data} have different label names: {syn_idx.info.label_names} "
                         f"against {real_idx.info.label_names}")
    sm, rm = syn_idx.manifest, real_idx.manifest
    rows = np.arange(len(rm)) if rows is None else np.asarray(rows, np.int64)
    names = list(real_idx.info.label_names)
    syn = FaceDataset(syn_idx, size=SIZE, cache=False)
    real = FaceDataset(real_idx, size=SIZE, channels=syn.channels, cache=False)
    gen = _stack(syn, np.arange(len(sm)))  # [N, C, 64, 64]
    src_rows = sm["source_row"].to_numpy(np.int64)
    emb_gen = embed(gen)  # [N, 128], NaN where no face
    emb_src = embed(_stack(real, src_rows))
    emb_real = embed(_stack(real, rows))  # [M, 128]
    out = {"synth": str(synth), "data": str(data), "n_generated": int(len(sm)), "n_real_rows": int(len(rows)),
           "identity": {"source_vs_generated": preservation(emb_src, emb_gen),
                        "real_reference": reference_similarities(emb_real, rm["subject"].to_numpy()[rows])}}
    ok_g, ok_r = np.isfinite(emb_gen).all(1), np.isfinite(emb_real).all(1)
    out["faces_found"] = {"generated": int(ok_g.sum()), "real": int(ok_r.sum())}
    out["kid_per_class"] = per_group(emb_real[ok_r], rm["label"].to_numpy()[rows][ok_r], emb_gen[ok_g],
                                     sm["label"].to_numpy()[ok_g], names=names, min_size=2)
    for rec in out["kid_per_class"].values():
        rec.pop("fid", None)  # see the module docstring
    if features:
        from fape.metrics.gan_report import classifier_pass, load_classifier

        clf = load_classifier(features)
        lut = {n: i for i, n in enumerate(names)}
        to_data = label_lut(list(clf.label_names), names, str(features))  # classifier id -> data label id
        ref = rows if reference_rows is None else np.asarray(reference_rows, np.int64)
        src_lab = np.array([lut[e] for e in sm["source_expression"]], np.int64)
        ref_pred = to_data[classifier_pass(clf, _stack(real, ref))[1]]
        out["expression"] = {**expression_figures(to_data[classifier_pass(clf, gen)[1]], sm["label"].to_numpy(),
                                                  src_lab, ref_pred, rm["label"].to_numpy()[ref]),
                             "classifier": clf.extractor_name,
                             "reference": "the given reference rows" if reference_rows is not None else "the real rows"}
    return out


def report_md(m: dict) -> str:
    """The figures as Markdown, each with its n."""
    ident = m["identity"]
    sv, ref = ident["source_vs_generated"]["similarity"], ident["real_reference"]
    lines = [f"# Synthesized set `{m['synth']}` against `{m['data']}`", "",
             f"{m['n_generated']} generated faces (dlib found {m['faces_found']['generated']}); "
             f"{m['n_real_rows']} real rows (dlib found {m['faces_found']['real']}).", "",
             "| identity cosine (dlib) | n | mean | median |", "|---|---|---|---|"]
    for name, d in (("source vs generated", sv), ("real, same subject", ref["same_subject"]),
                    ("real, different subjects", ref["different_subject"])):
        lines.append(f"| {name} | {d.get('n', 0)} | {d.get('mean', float('nan')):.3f} | {d.get('q50', float('nan')):.3f} |")
    if "expression" in m:
        e = m["expression"]
        lines += ["", f"**Expression** ({e['classifier']}): {e['agreement_target']:.3f} of the {e['n']} generated "
                  f"faces are predicted as their drawn expression and {e['still_source']:.3f} as their source's; "
                  f"accuracy on {e['n_reference']} real faces ({e['reference']}): {e['accuracy_on_reference']:.3f}."]
    lines += ["", "| class | n real | n generated | KID (dlib embedding) |", "|---|---|---|---|"]
    for name, r in m["kid_per_class"].items():
        if r["n2"]:
            kid = f"{r['kid']:.4f}" if "kid" in r else "n/a (n < 2)"
            lines.append(f"| {name} | {r['n1']} | {r['n2']} | {kid} |")
    return "\n".join(lines) + "\n"


def write_report(m: dict, out: str | Path) -> Path:
    from fape.utils.io import atomic_write_json, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", json.loads(json.dumps(m, default=float)))
    atomic_write_text(out / "metrics.md", report_md(m))
    return out
