"""``fape metrics ...``: fid, kid, stats, gan, synth. Register with ``fape.metrics.cli.register(groups)``."""
from __future__ import annotations

import argparse
from pathlib import Path


def _add_extractor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inception-weights", default=None, metavar="PATH",
                   help="FID Inception weights (pt_inception-2015-12-05-6726825d.pth); default: torch hub cache")
    p.add_argument("--features", default=None, metavar="face|run:RUN",
                   help="features instead of Inception: 'face' = dlib's 128-d face embedding (FID (dlib face "
                        "embedding); images where no face is found are dropped and counted), 'run:RUN' = a "
                        "trained fape classifier's penultimate features (domain FID)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--dims", type=int, default=2048, choices=(64, 192, 768, 2048), help="Inception block")


def _extractor(args):
    from fape.errors import UserError

    if args.features == "face":
        from fape.metrics.face_fid import FaceEmbedder

        try:
            return FaceEmbedder()
        except (ImportError, FileNotFoundError) as e:
            raise UserError(f"--features face: {e}") from None
    if args.features:
        from fape.metrics.gan_report import load_classifier

        try:
            return load_classifier(args.features)
        except RuntimeError as e:
            raise UserError(str(e)) from None
    from fape.metrics.inception import load_inception

    try:
        return load_inception(args.inception_weights, dims=args.dims)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None


def _features(model, src: str, batch_size: int, counts: dict | None = None):
    """``[N, D]`` features of ``src``. Face embeddings: rows without a face are dropped, and
    ``counts[src] = (kept, dropped)`` records how many; fewer than 2 faces is a UserError."""
    from fape.errors import UserError
    from fape.metrics.face_fid import finite_rows, need_two
    from fape.metrics.fid import features_from, iter_batches

    try:
        it, n = iter_batches(src, batch_size)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    f = features_from(model, it, total=n, desc=Path(src).name)
    if getattr(model, "nan_means_no_face", False):
        f, dropped = finite_rows(f)
        try:
            need_two(len(f), f"{src} ({dropped} of {len(f) + dropped} images without a face)")
        except ValueError as e:
            raise UserError(str(e)) from None
        if counts is not None:
            counts[src] = (len(f), dropped)
    return f


def _stats(model_box: list, args, src: str, counts: dict):
    from fape.metrics.fid import load_stats, statistics

    if src.endswith(".npz"):
        return load_stats(src)
    if not model_box:
        model_box.append(_extractor(args))
    return statistics(_features(model_box[0], src, args.batch_size, counts))


def _face_counts(counts: dict, a: str, b: str) -> dict:
    """JSON keys for face-embedding results: images used and dropped (no face) per set."""
    from fape.metrics.face_fid import small_sample_note

    if not counts:
        return {}
    n = [counts.get(s, (None, None))[0] for s in (a, b)]
    note = small_sample_note(*n) if None not in n else None
    return {"n": n, "no_face": [counts.get(s, (None, None))[1] for s in (a, b)], **({"note": note} if note else {})}


def cli_fid(args, overrides) -> int:
    from fape.metrics.fid import extractor_name, frechet_distance
    from fape.utils.io import json_text

    box: list = []
    counts: dict = {}
    s1, s2 = _stats(box, args, args.a, counts), _stats(box, args, args.b, counts)
    d = frechet_distance(*s1, *s2)
    ext = extractor_name(box[0]) if box else "precomputed .npz statistics"
    print(json_text({"fid": d, "a": args.a, "b": args.b, "extractor": ext, **_face_counts(counts, args.a, args.b)},
                    indent=2))
    return 0


def cli_kid(args, overrides) -> int:
    from fape.metrics.fid import extractor_name, kid
    from fape.utils.io import json_text

    model = _extractor(args)
    counts: dict = {}
    f1, f2 = _features(model, args.a, args.batch_size, counts), _features(model, args.b, args.batch_size, counts)
    m, s = kid(f1, f2, args.subsets, args.subset_size)
    print(json_text({"kid": m, "kid_std": s, "a": args.a, "b": args.b, "n": [len(f1), len(f2)],
                      "subset_size": min(args.subset_size, len(f1), len(f2)), "extractor": extractor_name(model),
                      **_face_counts(counts, args.a, args.b)}, indent=2))
    return 0


def cli_stats(args, overrides) -> int:
    from fape.metrics.fid import extractor_name, save_stats, statistics

    model = _extractor(args)
    counts: dict = {}
    f = _features(model, args.src, args.batch_size, counts)
    mu, sigma = statistics(f)
    out = save_stats(args.out, mu, sigma)
    dropped = f", {counts[args.src][1]} without a face dropped" if counts else ""
    print(f"stats: {out} ({len(f)} images{dropped}, {f.shape[1]}-d, extractor: {extractor_name(model)})")
    return 0


def cli_gan(args, overrides) -> int:
    from fape.errors import UserError
    from fape.metrics.gan_report import gan_metrics, to_markdown, write_report

    if args.features == "face":
        raise UserError("fape metrics gan always reports the dlib face FID; --features takes a classifier run:RUN")
    try:
        rep = gan_metrics(args.run, args.data, args.max_pairs, args.inception_weights, args.allow_random_backbone,
                          args.features, pose_mode=args.pose_mode, pair_rows=args.pair_rows,
                          pairs_from=f"the rows of {args.pair_rows}" if args.pair_rows else "")
    except (FileNotFoundError, RuntimeError) as e:
        raise UserError(str(e)) from None
    out = write_report(rep, args.out or Path(args.run) / "metrics")
    print(to_markdown(rep))
    print(f"written: {out / 'metrics.json'}, {out / 'metrics.md'}")
    return 0


def cli_synth(args, overrides) -> int:
    from fape.data.format import read_index
    from fape.data.splits import read_rows
    from fape.errors import UserError
    from fape.metrics.synth_report import report_md, synth_metrics, write_report

    try:
        n = len(read_index(args.data).manifest)
        rows = read_rows(args.rows, n) if args.rows else None
        ref = read_rows(args.reference_rows, n, "--reference-rows") if args.reference_rows else None
        out = Path(args.out or Path(args.synth) / "metrics")
        cache = None if args.no_cache else Path(args.cache) if args.cache else out / "cache"
        m = synth_metrics(args.synth, args.data, rows, args.features, ref, max_pairs=args.max_pairs,
                          kid_n=args.kid_n, seed=args.seed, cache=cache, workers=args.workers)
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        raise UserError(str(e)) from None
    out = write_report(m, out)
    print(report_md(m))
    print(f"written: {out / 'metrics.json'}, {out / 'metrics.md'}")
    return 0


def register(groups) -> None:
    from fape.utils.cli import add_group

    sub = add_group(groups, "metrics", help="quality metrics: FID/KID, paired, LPIPS, pose, identity",
                    description=__doc__)

    q = sub.add_parser("fid", help="FID between two image folders / fape datasets / .npz statistics")
    q.add_argument("a")
    q.add_argument("b")
    _add_extractor_args(q)
    q.set_defaults(handler=cli_fid)

    q = sub.add_parser("kid", help="KID (unbiased MMD^2, cubic kernel) between two image folders / datasets")
    q.add_argument("a")
    q.add_argument("b")
    _add_extractor_args(q)
    q.add_argument("--subsets", type=int, default=100)
    q.add_argument("--subset-size", type=int, default=1000)
    q.set_defaults(handler=cli_kid)

    q = sub.add_parser("stats", help="save FID statistics (mu, sigma) of a folder / dataset to .npz (pytorch-fid format)")
    q.add_argument("src")
    q.add_argument("--out", required=True, help="output .npz")
    _add_extractor_args(q)
    q.set_defaults(handler=cli_stats)

    q = sub.add_parser("gan", help="every applicable metric of a GAN run on its held-out pose pairs")
    q.add_argument("--run", required=True, help="GAN run folder (or checkpoint)")
    q.add_argument("--data", default=None, help="dataset folder (overrides the run's data.root)")
    q.add_argument("--split", default="heldout", choices=("heldout",), help="pairs to evaluate")
    q.add_argument("--pair-rows", default=None, metavar="ROWS",
                   help="draw the pairs among these manifest rows (a rows file, one index per line), e.g. the "
                        "--features classifier's validation part, instead of the run's held-out subjects; "
                        "the GAN must not have trained on any of them")
    q.add_argument("--max-pairs", type=int, default=None)
    q.add_argument("--inception-weights", default=None, metavar="PATH")
    q.add_argument("--allow-random-backbone", action="store_true",
                   help="LPIPS with a random backbone when its ImageNet weights are missing (calibrated: false)")
    q.add_argument("--features", default=None, metavar="run:RUN",
                   help="fape classifier run: domain FID and expression preservation (the dlib face-embedding "
                        "FID is always reported, on the identity pairs)")
    q.add_argument("--pose-mode", default="detect", choices=("detect", "cropped"),
                   help="landmark detection on generated images (see fape.metrics.pose)")
    q.add_argument("--out", default=None, help="output folder (default RUN/metrics/)")
    q.set_defaults(handler=cli_gan)

    q = sub.add_parser("synth", help="a synthesized set against its real rows: identity, expression, KID per class")
    q.add_argument("synth", help="a `fape gan synthesize` output folder")
    q.add_argument("--data", required=True, help="the dataset its sources came from")
    q.add_argument("--rows", default=None, metavar="ROWS",
                   help="the real rows to compare with (a rows file), e.g. the GAN's training rows; default all")
    q.add_argument("--features", default=None, metavar="run:RUN",
                   help="a classifier trained on real rows: expression agreement of the generated faces")
    q.add_argument("--reference-rows", default=None, metavar="ROWS",
                   help="real rows that classifier never trained on (its validation part): its accuracy there "
                        "is the reference; default --rows (then a training accuracy if it trained on them)")
    q.add_argument("--max-pairs", type=int, default=2000, metavar="N",
                   help="real pairs per identity reference band (same / different subject): every pair when there "
                        "are at most N, else N drawn (default 2000)")
    q.add_argument("--kid-n", type=int, default=1000, metavar="N",
                   help="KID per class: at most N real rows and N generated faces of each class, drawn (default 1000)")
    q.add_argument("--seed", type=int, default=0, help="seed of those draws")
    q.add_argument("--cache", default=None, metavar="DIR",
                   help="folder for the dlib embeddings of the rows embedded, keyed by each set's manifest hash and "
                        "the embedding settings, reused by later runs (default OUT/cache/)")
    q.add_argument("--no-cache", action="store_true", help="neither read nor write embedding caches")
    q.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes that run dlib's face embedding (~1 core each; default 1)")
    q.add_argument("--out", default=None, help="output folder (default SYNTH/metrics/)")
    q.set_defaults(handler=cli_synth)
