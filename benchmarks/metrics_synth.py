"""``fape metrics synth``: embed what the figures read, against the old way (embed every real row).

    python benchmarks/metrics_synth.py [--identities 12] [--expressions 12] [--generated 48] \
        [--max-pairs 20] [--kid-n 10] [--out DIR]

The case, built in ``--out`` (a temp folder by default): a real set of rendered faces (``fape data
synth``: identities x expressions x 2 frames, frontal, 64 px, every row with a subject id), and a
fake synthesized set of ``--generated`` faces from every 6th real row (2 faces per source, the
mirror image of another real face, drawn as one of 2 classes), with the provenance columns of
``fape gan synthesize``. Its shape copies the FER2013 run in miniature: many more real rows than
generated faces, a few synthesized classes. ``--max-pairs`` and ``--kid-n`` are scaled down with
it (the defaults, 2000 pairs and 1000 faces, would take every row of so small a set).

Old way (kept here as the reference): the report before this change -- every image decoded one by
one into one array, dlib's one-face descriptor per face, every generated face, its source (once per
generated face) and every real row embedded. New way: ``fape.metrics.synth_report.synth_metrics``
(each distinct source once, drawn reference pairs, capped KID draws, dlib's batch form), cold (no
cache) and then warm (the cache its last cold run wrote); ``--workers N`` runs dlib in N processes
(measure that on an otherwise idle machine). Old and new cold runs alternate ``--repeats`` times,
after one untimed warm-up call that loads the imports and dlib's models. Prints the faces each way embedded, the
times and their ratio in the same run, and the source-vs-generated identity figure of both (the
same faces: it must agree to the last digit).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def build_case(out: Path, identities: int, expressions: int, generated: int) -> tuple[Path, Path]:
    import pandas as pd

    from fape.data.format import DatasetInfo, load_image, read_index, save_image, write_index
    from fape.data.synth import SynthConfig, synthesize

    real = out / "real"
    if not (real / "dataset.json").is_file():
        cfg = SynthConfig(identities=identities, expressions=expressions, frames=2, poses=["front"], image_size=64,
                          render_scale=2)
        synthesize(cfg, real, progress=False)
    syn = out / f"synth_{generated}"
    if (syn / "dataset.json").is_file():
        return real, syn
    idx = read_index(real)
    m, names = idx.manifest, idx.info.label_names
    sources = np.repeat(np.arange(0, len(m), 6), 2)[:generated]
    recs = []
    for i, s in enumerate(sources):
        other = int(sources[(i + 2) % len(sources)])
        img = load_image(real / m["path"][other])[:, ::-1]
        save_image(syn / f"images/{i:05d}.png", np.ascontiguousarray(img))
        lab = i % 2
        recs.append(dict(path=f"images/{i:05d}.png", subject=m["subject"][s], expression=names[lab], label=lab,
                         pose="front", source_row=int(s), source_expression=m["expression"][s]))
    info = DatasetInfo(name=syn.name, label_names=list(names), pose_names=["front"], image_size=[64, 64], channels=3,
                       origin={"kind": "benchmark-fake-synthesis"})
    write_index(syn, pd.DataFrame(recs), info)
    return real, syn


# ---------------------------------------------------------------- the old way (reference)
def embed_per_face(images) -> np.ndarray:
    """``fape.metrics.identity.embed`` before this change: dlib's one-face descriptor per image."""
    from fape.metrics.identity import face_recognizer, face_shapes

    out = np.full((len(images), 128), np.nan)
    for i, rgb, shape in face_shapes(images):
        out[i] = np.asarray(face_recognizer().compute_face_descriptor(rgb, shape))
    return out


def old_synth_metrics(synth: Path, data: Path) -> tuple[dict, int]:
    """The identity and KID figures as the report computed them before (no classifier)."""
    from fape.data.dataset import FaceDataset
    from fape.data.format import read_index
    from fape.metrics.fid import per_group
    from fape.metrics.identity import preservation, reference_similarities
    from fape.metrics.synth_report import SIZE, _stack

    syn_idx, real_idx = read_index(synth), read_index(data)
    sm, rm = syn_idx.manifest, real_idx.manifest
    rows = np.arange(len(rm))
    syn = FaceDataset(syn_idx, size=SIZE, cache=False)
    real = FaceDataset(real_idx, size=SIZE, channels=syn.channels, cache=False)
    gen = _stack(syn, np.arange(len(sm)))
    src_rows = sm["source_row"].to_numpy(np.int64)
    emb_gen = embed_per_face(gen)
    emb_src = embed_per_face(_stack(real, src_rows))
    emb_real = embed_per_face(_stack(real, rows))
    out = {"identity": {"source_vs_generated": preservation(emb_src, emb_gen),
                        "real_reference": reference_similarities(emb_real, rm["subject"].to_numpy()[rows])}}
    ok_g, ok_r = np.isfinite(emb_gen).all(1), np.isfinite(emb_real).all(1)
    out["kid_per_class"] = per_group(emb_real[ok_r], rm["label"].to_numpy()[rows][ok_r], emb_gen[ok_g],
                                     sm["label"].to_numpy()[ok_g], names=list(real_idx.info.label_names), min_size=2)
    return out, len(gen) + len(src_rows) + len(rows)


def main() -> None:
    from fape.metrics.synth_report import synth_metrics

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identities", type=int, default=12)
    ap.add_argument("--expressions", type=int, default=12)
    ap.add_argument("--generated", type=int, default=48)
    ap.add_argument("--max-pairs", type=int, default=20)
    ap.add_argument("--kid-n", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2, help="old and new cold runs, alternated; medians")
    ap.add_argument("--workers", type=int, default=1, help="synth_metrics(workers=N) for the new way")
    ap.add_argument("--out", default=None, help="folder for the case (reused when present); default a temp folder")
    args = ap.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_metrics_synth_"))
    real, syn = build_case(out, args.identities, args.expressions, args.generated)
    kw = dict(max_pairs=args.max_pairs, kid_n=args.kid_n, progress=False, workers=args.workers)
    synth_metrics(syn, real, **{**kw, "max_pairs": 1, "kid_n": 2, "workers": 1})  # imports and dlib models loaded

    times: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        old, n_old = old_synth_metrics(syn, real)
        times["old"].append(time.perf_counter() - t)
        cache = Path(tempfile.mkdtemp(prefix="cache_", dir=out))
        t = time.perf_counter()
        new = synth_metrics(syn, real, cache=cache, **kw)
        times["new"].append(time.perf_counter() - t)
    t = time.perf_counter()
    warm = synth_metrics(syn, real, cache=cache, **kw)
    t_warm = time.perf_counter() - t
    assert warm == new, "the cached run gave other figures"
    t_old, t_new = statistics.median(times["old"]), statistics.median(times["new"])

    ff = new["faces_found"]
    n_new = new["n_generated"] + ff["real_embedded"]
    print(f"case: {new['n_real_rows']} real rows, {new['n_generated']} generated faces from {ff['sources']} sources; "
          f"--max-pairs {args.max_pairs} --kid-n {args.kid_n} --workers {args.workers}; median of {args.repeats} "
          f"alternated runs")
    print("| way | faces embedded | seconds (runs) | ms per face embedded |")
    print("|---|---|---|---|")
    for name, n, ts in (("old (every real row, per face)", n_old, times["old"]), ("new, cold", n_new, times["new"]),
                        ("new, warm cache", 0, [t_warm])):
        runs = ", ".join(f"{x:.1f}" for x in ts)
        per = f"{1000 * statistics.median(ts) / n:.0f}" if n else "-"
        print(f"| {name} | {n} | {statistics.median(ts):.1f} ({runs}) | {per} |")
    print(f"ratio old/new: {t_old / t_new:.2f} cold, {t_old / t_warm:.0f} warm")
    a = old["identity"]["source_vs_generated"]["similarity"]
    b = new["identity"]["source_vs_generated"]["similarity"]
    print(f"source vs generated cosine: old mean {a['mean']:.6f} median {a['q50']:.6f} (n {a['n']}); "
          f"new mean {b['mean']:.6f} median {b['q50']:.6f} (n {b['n']})")
    assert a == b, "the two ways disagree on the same faces"
    for key in ("same_subject", "different_subject"):
        a, b = old["identity"]["real_reference"][key], new["identity"]["real_reference"][key]
        print(f"real {key.replace('_', ' ')}: old mean {a.get('mean', float('nan')):.3f} (n {a['n']}), "
              f"new mean {b.get('mean', float('nan')):.3f} (n {b['n']}, drawn: {b['sampled']})")
    for name, r in new["kid_per_class"].items():
        if r["n2"]:
            o = old["kid_per_class"][name]
            print(f"KID {name}: old {o['kid']:.4f} (n {o['n1']} real / {o['n2']} generated), new {r['kid']:.4f} "
                  f"(n {r['n1']} / {r['n2']}, drawn of {r['n_real_rows']} / {r['n_generated_rows']})")


if __name__ == "__main__":
    main()
