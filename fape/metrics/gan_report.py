"""``fape metrics gan``: every metric that applies to a GAN run, on its held-out pose pairs.

Pairs come from ``fape.gan.train.build_data(cfg)`` (cfg from the run's checkpoint, ``data.root``
overridable), images from ``load_generator`` (EMA weights when present). Metrics whose weights are
missing are skipped with the reason in the output; every number says which extractor produced it.
Outputs ``metrics.json`` and ``metrics.md`` (default ``RUN/metrics/``).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


# ---------------------------------------------------------------- classifiers (fape clf runs)
def load_classifier(spec: str):
    """``run:RUN`` -> the selected model of a ``fape clf train`` run, with its ``label_names``."""
    from fape.classifiers.io import load_run

    run = spec[4:] if spec.startswith("run:") else spec
    try:
        loaded = load_run(run)
    except FileNotFoundError as e:
        raise RuntimeError(f"--features {spec}: {e}") from None
    model = loaded.model
    model.label_names = loaded.label_names
    if not hasattr(model, "forward_features"):
        raise RuntimeError(f"{spec}: the loaded classifier has no forward_features(x)")
    if not getattr(model, "extractor_name", None):
        random_init = getattr(model, "random_init", False)
        model.extractor_name = f"classifier run {run} ({type(model).__name__})" + (" (random init!)" if random_init else "")
    return model


MIN_GROUP = 50  # images per set below which a per-group FID / KID is not reported


@torch.inference_mode()
def classifier_pass(model, images, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass of a classifier over uint8 ``images`` ``[N, C, H, W]``: its features
    ``[N, D]`` float64 (``forward_features``, spatially averaged if ``[B, D, h, w]``) and its
    predictions ``[N]`` (argmax of ``forward_head``). Inputs in [-1, 1] at the model's
    ``default_cfg`` size and channels, as the classifier was trained. The domain FID and the
    expression agreement read the same pass, so a report runs the classifier once per image."""
    from fape.data.preprocess import to_model_input

    cfg = getattr(model, "default_cfg", None) or {}
    model.eval()
    feats, preds = [], []
    for i in range(0, len(images), batch_size):
        x = to_model_input(torch.as_tensor(images[i:i + batch_size]), cfg.get("image_size"),
                           int(cfg.get("in_chans", images.shape[1])))
        if hasattr(model, "forward_head"):
            f = model.forward_features(x)
            logits = model.forward_head(f)
        else:  # a bare nn.Module classifier: logits only, no features
            f, logits = None, model(x)
        if f is not None:
            f = f.mean((2, 3)) if f.ndim == 4 else f
            feats.append(f.reshape(len(x), -1).double().cpu().numpy())
        preds.append(logits.argmax(1).cpu().numpy())
    return (np.concatenate(feats) if feats else np.zeros((len(images), 0))), np.concatenate(preds)


def expression_agreement(model, images, labels, batch_size: int = 64) -> dict:
    """Fraction of images whose classifier prediction equals ``labels`` (see :func:`classifier_pass`)."""
    _, p = classifier_pass(model, images, batch_size)
    labels = np.asarray(labels)
    return {"agreement": float((p == labels).mean()), "n": int(len(p)), "predictions": p}


# ---------------------------------------------------------------- generation
@torch.inference_mode()
def generate_heldout(run: str | Path, data: str | Path | None = None, max_pairs: int | None = None,
                     batch_size: int = 64, progress: bool = True, pair_rows: np.ndarray | str | Path | None = None) -> dict:
    """Generated and real images of the held-out pairs: uint8 ``[N, C, H, W]`` arrays and metadata.
    ``pair_rows``: draw the pairs among these manifest rows instead of the run's held-out subjects,
    e.g. a classifier's validation part, so that the expression agreement is read on images that
    neither G nor the classifier trained on; a row the GAN trained on is an error."""
    from tqdm import tqdm

    from fape.gan.io import load_generator
    from fape.gan.data import build_data, gan_rows, generate, heldout_pairs, prepare_batch, spread
    from fape.gan.warp import warp_to_landmarks
    from fape.utils.loop import collate

    lg = load_generator(run)
    cfg = lg.cfg
    if data is not None:
        cfg.data.root = str(data)
    faces, _, heldout = build_data(cfg)
    if pair_rows is not None:
        if isinstance(pair_rows, (str, Path)):  # a rows file
            from fape.data.splits import read_rows

            pair_rows = read_rows(pair_rows, len(faces.index.manifest))
        seen = np.intersect1d(pair_rows, gan_rows(cfg, faces.index.manifest)[0])
        if len(seen):
            raise RuntimeError(f"{len(seen)} of the {len(pair_rows)} pair rows were GAN training rows of {run} "
                               f"(e.g. row {int(seen[0])}): its held-out metrics must come from unseen images")
        heldout = heldout_pairs(cfg, faces, np.asarray(pair_rows, np.int64))
    if heldout is None:
        raise RuntimeError("no held-out pose pairs: the run has no held-out subjects or a single pose"
                           if pair_rows is None else "the pair rows make no pose pair (one view of each frame?)")
    heldout.set_epoch(0)
    n = len(heldout) if max_pairs is None else min(len(heldout), max_pairs)
    pick = spread(len(heldout), n)  # pairs spread over every held-out subject, not the first ones
    from fape.data.dataset import to_uint8

    keys = ("source", "target", "fake", "warp", "source_landmarks", "target_landmarks", "label", "src", "tgt")
    acc = {k: [] for k in keys}
    for i in tqdm(range(0, n, batch_size), desc="generating", disable=not progress, leave=False):
        b = prepare_batch(cfg, collate(heldout, pick[i:i + batch_size], "cpu"))
        b["fake"] = to_uint8(generate(lg.G, b).float())
        # the no-learning baseline of warp_unet: the source moved onto the target landmarks
        b["warp"] = to_uint8(warp_to_landmarks(b["source_f"], b["source_landmarks"], b["target_landmarks"]))
        for k in keys:
            acc[k].append(b[k].cpu().numpy())
    out = {k: np.concatenate(v) for k, v in acc.items()}
    out["target_pose"] = faces.pose_ids[out["tgt"]]
    out["subject_src"] = faces.index.manifest["subject"].to_numpy()[out["src"]]
    out.update(pose_names=list(faces.info.pose_names), label_names=list(faces.info.label_names), cfg=cfg,
               generator=f"{lg.weights} (sha256 {lg.sha256[:16]})", faces=faces)
    return out


# ---------------------------------------------------------------- the nuisance floor of a synthetic set
# the floor's median needs enough redraws to settle (on the small quick start: 0.555x copy at K = 4,
# 0.524x at 8, 0.487x at 16, 0.484x at 32; docs/results.md), so it takes 16 redraws of at most 64
# pairs spread over the report's pairs (~2.5 s on one core) rather than few redraws of every pair
FLOOR_DRAWS, FLOOR_PAIRS = 16, 64


def nuisance_redraws(faces, rows: np.ndarray, draws: int = FLOOR_DRAWS, progress: bool = True) -> np.ndarray | None:
    """``[N, K, C, H, W]`` uint8: manifest ``rows`` of a synthetic set (``fape data synth``) rendered
    again ``draws`` times with their nuisance drawn anew, at the size and channels ``faces`` loads
    them at; None for data that is not a synthetic set (a real face's nuisance cannot be redrawn)."""
    from tqdm import tqdm

    from fape.config import from_dict
    from fape.data.dataset import convert_channels, resize_image
    from fape.data.synth import SynthConfig, render_redraws

    origin = faces.info.origin or {}
    if origin.get("kind") != "synth" or "config" not in origin:
        return None
    cfg = from_dict(SynthConfig, origin["config"])
    m = faces.index.manifest
    out = []
    for r in tqdm(np.asarray(rows, np.int64), desc="nuisance redraws", disable=not progress, leave=False):
        imgs = render_redraws(cfg, m.at[r, "subject"], m.at[r, "expression"], int(m.at[r, "frame"]), m.at[r, "pose"], draws)
        out.append(np.stack([convert_channels(resize_image(x, faces.size), faces.channels).transpose(2, 0, 1)
                             for x in imgs]))  # [K, C, H, W]
    return np.stack(out)


# ---------------------------------------------------------------- dlib face embeddings
def face_embedding_metrics(g: dict, pick: np.ndarray) -> dict:
    """Identity preservation and FID / KID on dlib's face embedding, for the pairs ``pick``.

    One embedding per image, shared by both: the pairs' real sources and targets (each dataset row
    once, as the GAN saw them), and the generated images. Identity: cosine of source vs generated,
    against real same- / different-subject pairs of the same rows. FID (``fape.metrics.face_fid``):
    real targets vs generated, one row per pair (as the Inception and domain FIDs); images without a
    face are dropped and counted. ``real_sources_fid``: real sources vs the same real targets, the
    value a perfect generator would reach at this n (FID's small-sample bias included). Returns ``{"identity": ..., "fid_face": ...}``, or
    ``"fid_face_error"`` (the reason) in place of ``"fid_face"`` when a set has < 2 faces.
    """
    from fape.metrics.face_fid import extractor_label, face_fid
    from fape.metrics.identity import embed, preservation, reference_similarities

    k = len(pick)
    rows = np.concatenate([g["src"][pick], g["tgt"][pick]])  # [2k] dataset rows of sources, then targets
    imgs = np.concatenate([g["source"][pick], g["target"][pick]])
    uniq, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    emb_rows = embed(imgs[first])  # [len(uniq), 128], each real image once
    e_src, e_tgt = emb_rows[inverse[:k]], emb_rows[inverse[k:]]
    e_fake = embed(g["fake"][pick])
    ip = preservation(e_src, e_fake)
    subjects = g["faces"].index.manifest["subject"].to_numpy()
    out = {"identity": {"source_vs_generated": ip["similarity"], "failure_rate": ip["failure_rate"],
                        "pairs": int(k), "real_reference": reference_similarities(emb_rows, subjects[uniq]),
                        "extractor": "dlib face_recognition_model_v1 (128-d), cosine"}}
    try:
        out["fid_face"] = {**face_fid(e_tgt, e_fake), "pairs": int(k),
                           "extractor": extractor_label("cropped"),
                           "reference": "held-out real targets"}
    except ValueError as e:
        out["fid_face_error"] = str(e)
    else:  # the floor at this n: two real sets (sources vs targets of the same pairs), no generator
        try:
            out["fid_face"]["real_sources_fid"] = face_fid(e_tgt, e_src, kid_subsets=1)["fid"]
        except ValueError:
            out["fid_face"]["real_sources_fid"] = None
    return out


# ---------------------------------------------------------------- the report
def _clean(o):
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items() if k not in ("per_image", "predictions", "source_embeddings")}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.floating, float)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    return o


def gan_metrics(run, data=None, max_pairs=None, inception_weights=None, allow_random_backbone=False,
                features=None, pose_mode="detect", progress=True, identity_pairs: int | None = None,
                pair_rows: np.ndarray | str | Path | None = None, pairs_from: str = "") -> dict:
    """``pair_rows``: the rows the pairs come from (:func:`generate_heldout`), described by
    ``pairs_from`` in the report. ``identity_pairs``: score identity and the dlib face-embedding
    FID on N pairs spread evenly over the held-out pairs (the dlib face embedding costs ~0.15 s per
    image on a CPU core, the bulk of this report's time); None = every pair. The held-out pairs
    come grouped by subject, so the first N could all be one face."""
    from fape.gan.data import spread
    from fape.metrics import fid as F
    from fape.metrics.paired import face_region_metrics, nuisance_floor, paired_metrics, summarize

    g = generate_heldout(run, data, max_pairs, progress=progress, pair_rows=pair_rows)
    fake, real, src = g["fake"], g["target"], g["source"]
    rep: dict = {"run": str(run), "generator": g["generator"], "pairs": int(len(fake)),
                 "pairs_from": pairs_from or ("the run's held-out subjects" if pair_rows is None else
                                              "given rows the GAN never trained on"),
                 "data": str(g["cfg"].data.root), "metrics": {}, "skipped": {}}
    M, S = rep["metrics"], rep["skipped"]
    def paired(x):  # full image, and inside the target's landmark hull (its background is unknowable)
        return summarize({**paired_metrics(x, real), **face_region_metrics(x, real, g["target_landmarks"])})

    M["paired"] = {"generated_vs_target": paired(fake), "copy_source_baseline": paired(src),
                   "landmark_warp_baseline": paired(g["warp"]), "extractor": "pixels ([0,1] units)"}
    fp = spread(len(real), min(len(real), FLOOR_PAIRS))  # [k] pair indices
    redraws = nuisance_redraws(g["faces"], g["tgt"][fp], progress=progress)
    if redraws is not None:  # what no generator can know of a target: its lighting, background, noise
        fl = nuisance_floor(real[fp], redraws, g["target_landmarks"][fp])
        copy = face_region_metrics(src[fp], real[fp], g["target_landmarks"][fp])["face_l1"]
        M["paired"]["nuisance_floor"] = {"face_l1": float(fl["floor"].mean()), "face_l1_bound": float(fl["floor_bound"].mean()),
                                         "copy_face_l1": float(copy.mean()), "draws": int(redraws.shape[1]), "n": int(len(fp))}

    try:
        from fape.metrics.lpips_metric import load_lpips, lpips_distances

        lp = load_lpips("alex", allow_random_backbone)
        d = lpips_distances(lp, fake, real)
        M["lpips"] = {"mean": float(d.mean()), "n": int(len(d)), "calibrated": lp.calibrated, "extractor": lp.description}
    except (FileNotFoundError, ImportError) as e:
        S["lpips"] = str(e)

    def fid_block(fr, ff, extractor):  # real targets' and generated features -> a report record
        return {**F.fid_kid(fr, ff), "extractor": extractor, "reference": "held-out real targets",
                # per pose only, and only where a group has MIN_GROUP images: per-expression groups
                # held 2-7 images, where FID and KID are noise (issue 13)
                "by_pose": F.per_group(fr, g["target_pose"], ff, g["target_pose"], g["pose_names"],
                                       min_size=MIN_GROUP)}

    try:
        from fape.metrics.inception import load_inception

        inc = load_inception(inception_weights)
        feats = {k: F.features_from(inc, torch.from_numpy(g[k]), progress=progress, desc=f"inception {k}")
                 for k in ("target", "fake")}
        M["fid_inception"] = fid_block(feats["target"], feats["fake"], F.extractor_name(inc))
    except (FileNotFoundError, ImportError) as e:
        S["fid_inception"] = str(e)

    if features:
        try:
            clf = load_classifier(features)
        except RuntimeError as e:
            S["fid_domain"] = S["expression"] = str(e)
        else:
            # one pass per image set: features for the domain FID, predictions for the agreement
            out = {k: classifier_pass(clf, g[k]) for k in ("fake", "target", "source", "warp")}
            M["fid_domain"] = fid_block(out["target"][0], out["fake"][0], F.extractor_name(clf))
            if list(clf.label_names) != list(g["label_names"]):
                S["expression"] = (f"the classifier's {len(clf.label_names)} labels are not the data's "
                                   f"{len(g['label_names'])}: agreement would compare different classes")
            else:
                # the pair's label (source and target show one expression); issue 15's target reads
                # agreement on generated faces against the same classifier's accuracy on the real targets
                agree = {k: float((p == g["label"]).mean()) for k, (_, p) in out.items()}
                M["expression"] = {"agreement_generated": agree["fake"], "accuracy_on_sources": agree["source"],
                                   "accuracy_on_targets": agree["target"], "agreement_landmark_warp": agree["warp"],
                                   "n": int(len(fake)), "extractor": F.extractor_name(clf)}
    else:
        S["fid_domain"] = S["expression"] = "no --features run:RUN classifier given"

    try:
        from fape.metrics.pose import pose_accuracy

        pa = pose_accuracy(np.ascontiguousarray(fake), g["target_landmarks"], mode=pose_mode)
        pr = pose_accuracy(np.ascontiguousarray(real), g["target_landmarks"], mode=pose_mode)
        M["pose"] = {"generated": pa, "real_target_reference": pr,
                     "extractor": f"dlib 68-point shape predictor ({pose_mode})"}
    except Exception as e:  # noqa: BLE001  (missing dlib model file -> UserError)
        S["pose"] = str(e)

    try:
        k = len(fake) if identity_pairs is None else min(int(identity_pairs), len(fake))
        pick = np.unique(np.linspace(0, len(fake) - 1, k).round().astype(int))  # [k] pair indices
        fe = face_embedding_metrics(g, pick)
    except Exception as e:  # noqa: BLE001  (no dlib, or its model files missing)
        S["identity"] = S["fid_face"] = str(e)
    else:
        if "fid_face_error" in fe:  # fewer than 2 faces in a set: say so, keep the identity numbers
            S["fid_face"] = fe.pop("fid_face_error")
        M.update(fe)
    return _clean(rep)


def to_markdown(rep: dict) -> str:
    pairs_from = rep.get("pairs_from", "the run's held-out subjects")  # reports written before pair rows existed
    lines = [f"# GAN metrics: {rep['run']}", "", f"- generator: {rep['generator']}", f"- data: {rep['data']}",
             f"- held-out pairs: {rep['pairs']}, from {pairs_from}", "",
             "| metric | value | extractor / notes |", "|---|---|---|"]
    M = rep["metrics"]

    def row(name, value, note=""):
        v = "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))
        lines.append(f"| {name} | {v} | {note} |")

    if "paired" in M:
        p, c = M["paired"]["generated_vs_target"], M["paired"]["copy_source_baseline"]
        w = M["paired"].get("landmark_warp_baseline", {})
        for k in ("l1", "psnr", "ssim", "face_l1", "face_ssim"):
            if k not in p:  # reports written before the face-region metrics
                continue
            note = f"copy-source baseline {c[k]:.4f}" if c.get(k) is not None else ""
            if w.get(k) is not None:
                note += f"; landmark warp {w[k]:.4f}"
            if k == "face_l1" and c.get(k):
                note += f"; {p[k] / c[k]:.2f}x copy"
            fl = M["paired"].get("nuisance_floor")
            if k == "face_l1" and fl and fl["copy_face_l1"] > 0:  # the best any generator can do on this synthetic set, on a subset of the pairs
                cf = fl["copy_face_l1"]
                note += (f"; nuisance floor {fl['face_l1'] / cf:.2f}x copy ({fl['n']} pairs x {fl['draws']} redraws; "
                         f"no generator below {fl['face_l1_bound'] / cf:.2f}x)")
            row(k.upper().replace("FACE_", "face-region "), p[k], note)
    if "lpips" in M:
        row("LPIPS", M["lpips"]["mean"], M["lpips"]["extractor"] + ("" if M["lpips"]["calibrated"] else ", calibrated: false"))
    for key, name in (("fid_inception", "FID (Inception)"), ("fid_domain", "FID (domain classifier)"),
                      ("fid_face", "FID (dlib face embedding)")):
        if key in M:
            n = f"n {M[key]['n_real']} real / {M[key]['n_fake']} generated"
            if "no_face_real" in M[key]:  # embeddings of images where dlib found no face are dropped
                n += f" (no face, dropped: {M[key]['no_face_real']} real / {M[key]['no_face_fake']} generated)"
            if M[key].get("note"):
                n += f"; {M[key]['note']}"
            floor = M[key].get("real_sources_fid")  # real vs real at the same n
            floor = "" if floor is None else f"real sources vs targets {max(floor, 0.0):.4f}; "  # no -0.0000
            row(name, M[key]["fid"], f"{floor}{M[key]['extractor']}; {n}")
            std = M[key]["kid_std"]
            row(name.replace("FID", "KID"), M[key]["kid"],
                (f"± {std:.4f} (std over subsets)" if std is not None else "one subset, every image: no std") + f"; {n}")
            for grp in ("by_pose",):
                for gname, r in M[key].get(grp, {}).items():
                    if "kid" in r:
                        fid = "n/a (too few images)" if r["fid"] is None else f"{r['fid']:.2f}"
                        row(f"  KID {grp[3:]}={gname}", r["kid"], f"FID {fid}, n {r['n1']}/{r['n2']}")
    if "pose" in M:
        pg, pr = M["pose"]["generated"], M["pose"]["real_target_reference"]
        row("pose NME", pg["nme"], f"{M['pose']['extractor']}; real targets {pr['nme']}")
        row("landmark detection failure rate", pg["failure_rate"], f"real targets {pr['failure_rate']}")
    if "identity" in M:
        i = M["identity"]
        ref = i["real_reference"]
        mean = lambda d: f"{d['mean']:.4f}" if d.get("n") else "n/a (no such pair)"  # noqa: E731
        row("identity cosine (source vs generated)", i["source_vs_generated"].get("mean"),
            f"{i.get('pairs', rep['pairs'])} pairs; real same-subject {mean(ref['same_subject'])}, "
            f"different {mean(ref['different_subject'])}")
    if "expression" in M:
        e = M["expression"]
        ratio = f"{e['agreement_generated'] / e['accuracy_on_targets']:.2f}x" if e["accuracy_on_targets"] else "n/a"
        row("expression agreement", e["agreement_generated"],
            f"{e['extractor']}; n {e['n']}; accuracy on real targets {e['accuracy_on_targets']:.4f} "
            f"(agreement = {ratio} of it), on sources {e['accuracy_on_sources']:.4f}; "
            f"landmark warp {e['agreement_landmark_warp']:.4f}")
    if rep["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- **{k}**: {v}" for k, v in rep["skipped"].items()]
    return "\n".join(lines) + "\n"


def write_report(rep: dict, out: str | Path) -> Path:
    from fape.utils.io import atomic_write_json, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", rep)
    atomic_write_text(out / "metrics.md", to_markdown(rep))
    return out


__all__ = ["classifier_pass", "expression_agreement", "gan_metrics", "generate_heldout", "load_classifier", "to_markdown", "write_report"]
