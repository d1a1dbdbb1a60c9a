"""Is it the landmarks or the generator? Expression transfer redrawn on the subject's own landmarks.

A synthesized set of expression transfer (``fape gan synthesize``, ``landmark_method``
``retarget-similarity``) draws expression b on a face of expression a, on landmarks retargeted
from donors. On a set where the subject also shows b (JAFFE: every subject shows every
expression), the subject's own b landmarks, moved onto the source by a similarity on the rigid
points (``fape.data.retarget``), are the landmarks a perfect retargeting would give. This probe
redraws every face of the set with the same generator on those *own* landmarks and asks a
classifier trained on real rows which expression each image shows:

* ``G, retargeted``: the set as synthesized;
* ``G, own landmarks``: the same G and sources on the oracle landmarks;
* ``warp, retargeted`` / ``warp, own landmarks``: the bare landmark warp (``fape.gan.warp``), no G.

If G on the own landmarks draws b where G on the retargeted ones does not, retargeting is the
weak link; if neither does, the generator (or the landmarks' power to carry the expression) is.
It also prints the retargeting error: mean distance of the 52 non-rigid points to the own
landmarks, over the outer-eye distance. Faces whose subject never shows b are skipped and counted.
The own b rows must be rows the classifier may see (they are not classified, only their landmarks
are used). Reads no test row when the set was made from a fold's training rows.

    python tools/transfer_oracle.py SYNTH --data DIR --features run:CLF
"""
from __future__ import annotations

import argparse

import numpy as np


def own_landmarks(manifest, landmarks: np.ndarray, rows: np.ndarray, subject, expression, source_lm: np.ndarray):
    """The first of ``rows`` where ``subject`` shows ``expression``, its ``[68, 2]`` landmarks moved
    onto ``source_lm`` by a similarity on the rigid points; None if there is none."""
    from fape.data.preview import own_face
    from fape.data.retarget import RIGID, apply_similarity, fit_similarity

    row = own_face(manifest, subject, expression, rows=rows)
    if row is None:
        return None
    own = landmarks[row]
    a, b = fit_similarity(own[list(RIGID)], source_lm[list(RIGID)])
    return apply_similarity(a, b, own)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("synth", help="a synthesized set of expression transfer")
    ap.add_argument("--data", required=True, help="the dataset its sources came from")
    ap.add_argument("--features", required=True, help="run:CLF, a classifier trained on real rows")
    args = ap.parse_args(argv)

    import torch

    from fape.data.dataset import FaceDataset, to_float, to_uint8
    from fape.data.format import read_index
    from fape.data.retarget import RIGID
    from fape.gan import io as gan_io
    from fape.gan.data import generate
    from fape.gan.warp import warp_to_landmarks
    from fape.metrics.gan_report import classifier_pass, load_classifier

    syn = read_index(args.synth)
    sm = syn.manifest
    lg = gan_io.load_generator(sm["generator"].iat[0])
    cfg = lg.cfg
    faces = FaceDataset(read_index(args.data), size=cfg.data.image_size, channels=cfg.data.channels, cache=False)
    m = faces.index.manifest
    src_rows = sm["source_row"].to_numpy(np.int64)
    allowed = np.unique(np.concatenate([src_rows] + [np.array(p.replace(">", ";").split(";"), np.int64)
                                                     for p in sm["donor_pairs"] if p]))  # rows the plan drew on
    subjects_rows = np.flatnonzero(m["subject"].isin(set(m["subject"].to_numpy()[allowed])).to_numpy())
    own, keep = [], []
    for i, r in enumerate(src_rows):
        o = own_landmarks(m, faces.landmarks, subjects_rows, sm["subject"].iat[i], sm["expression"].iat[i],
                          faces.landmarks[r])
        if o is not None:
            own.append(o)
            keep.append(i)
    keep = np.array(keep, np.int64)
    if not len(keep):
        raise SystemExit(f"{args.synth}: no subject shows its drawn expression in {args.data}")
    own = np.stack(own).astype(np.float32)  # [K, 68, 2] pixels at G's size
    ret = syn.landmarks[keep].astype(np.float32) * (cfg.data.image_size / syn.info.image_size[0])
    src = faces.landmarks[src_rows[keep]]
    x = to_float(torch.from_numpy(np.stack([faces.load(int(r)) for r in src_rows[keep]])).permute(0, 3, 1, 2).contiguous())
    out = {}
    with torch.inference_mode():
        for name, lm in (("retargeted", ret), ("own landmarks", own)):
            t = torch.from_numpy(lm)
            mask = gan_io.pose_masks(t, cfg.data)
            out[f"G, {name}"] = to_uint8(generate(lg.G.eval(), {"source_f": x, "mask": mask, "source_landmarks":
                                                               torch.from_numpy(src), "target_landmarks": t}))
            out[f"warp, {name}"] = to_uint8(warp_to_landmarks(x, torch.from_numpy(src), t, cfg.generator.warp_sigma,
                                                              cfg.generator.warp_reg, cfg.generator.warp_grid))
    clf = load_classifier(args.features)
    lut = {n: k for k, n in enumerate(clf.label_names)}
    target = np.array([lut[e] for e in sm["expression"].to_numpy()[keep]])
    source = np.array([lut[e] for e in sm["source_expression"].to_numpy()[keep]])
    moving = np.setdiff1d(np.arange(68), RIGID)
    eye = np.linalg.norm(own[:, 36] - own[:, 45], axis=1)
    err = (np.linalg.norm(ret[:, moving] - own[:, moving], axis=2).mean(1) / eye).mean()
    unchanged = (np.linalg.norm(src[:, moving] - own[:, moving], axis=2).mean(1) / eye).mean()
    print(f"{len(keep)} of {len(sm)} faces have the subject's own landmarks of the drawn expression; "
          f"retargeting error {err:.4f} (the source's own landmarks unchanged: {unchanged:.4f}), outer-eye units\n")
    print("| images | predicted as the drawn expression | as the source's |\n|---|---|---|")
    for name, imgs in out.items():
        p = classifier_pass(clf, imgs.numpy())[1]
        print(f"| {name} | {(p == target).mean():.3f} | {(p == source).mean():.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
