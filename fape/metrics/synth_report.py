"""``fape metrics synth``: what a synthesized set (``fape gan synthesize``) is worth, face by face.

For expression transfer on real faces there is no true target image, so the GAN report's paired
metrics do not apply. This report reads the set against the real rows it came from:

* **Identity** (dlib's 128-d face embedding, ``fape.metrics.identity``): cosine of each generated
  face with its source face, beside the cosines of real pairs of the same subject and of
  different subjects among the real rows. A generated face that keeps its owner sits in the
  same-subject band. Rows without a subject id (FER2013) are in neither band: they are not known
  to be the same or different people.
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

**What is embedded.** dlib costs ~60 ms per face on one core, so only the faces a figure reads
are embedded, each once: every generated face; each distinct source row; the rows of the real
reference pairs; the KID draws. A reference band over P possible unordered pairs (same subject:
``sum_s C(n_s, 2)``; different subjects: ``C(N, 2) - sum_s C(n_s, 2)`` over the N rows with an id)
takes every pair once when ``P <= max_pairs``; otherwise ``max_pairs`` ordered pairs ``(a, b)``,
``a != b``, drawn i.i.d. uniformly among the pairs of that kind -- the distribution the report
always sampled (``identity.reference_similarities``: uniform rows, kept by kind) -- with pairs
where dlib finds no face replaced by fresh draws. KID of class c compares at most ``kid_n`` real
rows of c with at most ``kid_n`` generated faces of c, each drawn without replacement; KID is an
unbiased estimate of MMD^2, so a draw changes its spread, not its expectation. Classes without
generated faces are counted, not embedded. Draws use ``seed`` (one stream per figure), and the
report prints every n it used. Embeddings may be kept in a cache folder (:class:`RowEmbeddings`),
and dlib may run in ``workers`` processes (it holds the GIL, so threads would not help).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIZE = 64  # images are compared at one size (the classifier resizes to its own)
CHUNK = 256  # images decoded (and embedded / classified) per step
MAX_PAIRS = 2000  # real pairs per identity reference band
KID_N = 1000  # real and generated faces per class for KID (fape.metrics.fid.kid's subset size)
CACHE_VERSION = 1


def _stack(ds, rows: np.ndarray) -> np.ndarray:
    """uint8 ``[N, C, H, W]`` of ``rows`` of a FaceDataset."""
    return np.stack([ds.load(int(r)).transpose(2, 0, 1) for r in rows]) if len(rows) else np.zeros((0, ds.channels, SIZE, SIZE), np.uint8)


def _chunks(rows: np.ndarray, size: int | None = None):
    size = size or CHUNK
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


class RowEmbeddings:
    """dlib embeddings ``[128]`` of a dataset's manifest rows, each computed once, in chunks of
    ``CHUNK`` images (``fape.metrics.identity.embed``, ``mode="cropped"``, upsample 2, as the
    report has always used).

    ``cache``: a folder for ``face_embed_<key>.npz`` (``rows [K]``, ``emb [K, 128]``), ``key`` a hash
    of the dataset's manifest sha256, its ``origin`` (an import's source and options; a synthesized
    set's generator weights sha256, so a set re-synthesized in place by another generator is another
    key) and every setting the vectors depend on (image size and channels, mode, upsample, model
    file). Read when present; rewritten atomically with the rows already in the file plus the new
    ones. A dataset without a manifest hash is never cached. Images edited in place under an
    unchanged manifest are not noticed: delete the folder then."""

    def __init__(self, ds, what: str, cache: str | Path | None = None, progress: bool = True, pool=None,
                 workers: int = 1):
        from fape.metrics.identity import EMBED_FILE
        from fape.utils.io import sha256_bytes

        self.ds, self.what, self.progress, self.pool, self.workers = ds, what, progress, pool, workers
        self.known: dict[int, np.ndarray] = {}
        self.used: set[int] = set()  # rows this run read
        self.new = 0
        sha = ds.index.info.manifest_sha256
        self.path = None
        if cache is not None and sha:
            key = {"manifest_sha256": sha, "origin": ds.index.info.origin, "size": list(ds.size), "channels": int(ds.channels), "mode": "cropped",
                   "upsample": 2, "model": EMBED_FILE, "version": CACHE_VERSION}
            digest = sha256_bytes(json.dumps(key, sort_keys=True, default=str).encode())[:20]
            self.path = Path(cache) / f"face_embed_{digest}.npz"
            self.known.update(self._read())

    def _read(self) -> dict[int, np.ndarray]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as z:
                rows, emb = z["rows"], z["emb"]  # [K], [K, 128]
        except (OSError, ValueError, KeyError) as e:
            import warnings

            warnings.warn(f"{self.path}: unreadable embedding cache, recomputing ({e})")
            return {}
        return {int(r): e for r, e in zip(rows, emb)}

    def __call__(self, rows, what: str = "") -> np.ndarray:
        """``[len(rows), 128]`` float64, NaN rows where dlib finds no face; ``what`` labels the bar."""
        from tqdm import tqdm

        rows = np.asarray(rows, np.int64).reshape(-1)
        todo = np.array(sorted(set(np.unique(rows).tolist()) - self.known.keys()), np.int64)
        desc = f"dlib: {self.what}" + (f" {what}" if what else "")
        size = CHUNK if self.pool is None else max(1, min(CHUNK, -(-len(todo) // (2 * self.workers))))
        parts = list(_chunks(todo, size))
        with tqdm(total=len(todo), desc=desc, unit="face", disable=not self.progress or not len(todo), leave=False) as bar:
            for part, emb in zip(parts, self._embedded(parts)):
                for r, e in zip(part, emb):  # [B, 128]
                    self.known[int(r)] = e
                bar.update(len(part))
        self.new += len(todo)
        self.used.update(rows.tolist())
        return np.array([self.known[int(r)] for r in rows]).reshape(len(rows), 128)

    def _embedded(self, parts: list[np.ndarray]):
        """``embed`` of each part's images, in order: here, or in the pool's worker processes with at
        most two chunks per worker decoded ahead."""
        from collections import deque

        from fape.metrics.identity import embed

        if self.pool is None:
            yield from (embed(_stack(self.ds, p)) for p in parts)
            return
        ahead: deque = deque()
        for p in parts:
            ahead.append(self.pool.submit(embed, _stack(self.ds, p)))
            if len(ahead) >= 2 * self.workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()

    def save(self) -> None:
        """Write the cache file (when there is one and new rows were embedded)."""
        if self.path is None or not self.new:
            return
        import io

        from fape.utils.io import atomic_write_bytes

        known = {**self._read(), **self.known}  # another run may have added rows meanwhile
        rows = np.array(sorted(known), np.int64)
        buf = io.BytesIO()
        np.savez(buf, rows=rows, emb=np.array([known[int(r)] for r in rows]).reshape(len(rows), 128))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, buf.getvalue())


# ---------------------------------------------------------------- reference pairs
def subject_groups(subjects) -> list[np.ndarray]:
    """Positions ``[n_s]`` of each subject id in ``subjects``; rows without an id are in none."""
    from fape.data.format import UNKNOWN

    subjects = np.asarray(subjects).astype(str)
    known = np.flatnonzero(subjects != UNKNOWN)
    ids, inv = np.unique(subjects[known], return_inverse=True)
    order = np.argsort(inv, kind="stable")
    return np.split(known[order], np.cumsum(np.bincount(inv, minlength=len(ids)))[:-1]) if len(ids) else []


def pair_count(groups: list[np.ndarray], same: bool) -> int:
    """Unordered pairs of distinct rows: of one subject (``same``), or of two subjects."""
    n = np.array([len(g) for g in groups], np.int64)
    within = int((n * (n - 1) // 2).sum())
    total = int(n.sum())
    return within if same else total * (total - 1) // 2 - within


def all_pairs(groups: list[np.ndarray], same: bool) -> np.ndarray:
    """``[P, 2]`` positions: every unordered pair of the kind once (for P small enough to list)."""
    parts = []
    if same:
        for g in groups:
            i, j = np.triu_indices(len(g), 1)
            parts.append(np.stack([g[i], g[j]], 1))
    else:
        for s in range(len(groups)):
            for t in range(s + 1, len(groups)):
                a, b = np.meshgrid(groups[s], groups[t], indexing="ij")
                parts.append(np.stack([a.ravel(), b.ravel()], 1))
    return np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)


def draw_pairs(groups: list[np.ndarray], same: bool, k: int, rng: np.random.Generator) -> np.ndarray:
    """``[k, 2]`` positions: ordered pairs ``a != b`` drawn i.i.d. uniformly among the pairs of one
    subject (``same``) or of two subjects. Same: subject s with probability ``n_s (n_s - 1) / sum``,
    then a uniform ordered pair of its rows; different: uniform ``(a, b)`` kept when the ids differ."""
    n = np.array([len(g) for g in groups], np.int64)
    flat = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    if same:
        w = (n * (n - 1)).astype(np.float64)
        s = rng.choice(len(groups), k, p=w / w.sum())
        i = np.floor(rng.random(k) * n[s]).astype(np.int64)
        j = np.floor(rng.random(k) * (n[s] - 1)).astype(np.int64)
        j += j >= i
        return np.stack([flat[start[s] + i], flat[start[s] + j]], 1)
    gid = np.repeat(np.arange(len(groups)), n)
    p_diff = pair_count(groups, False) * 2 / (len(flat) ** 2)
    out = np.zeros((0, 2), np.int64)
    while len(out) < k:
        m = int(np.ceil((k - len(out)) / p_diff * 1.2)) + 16
        a, b = rng.integers(len(flat), size=m), rng.integers(len(flat), size=m)
        keep = gid[a] != gid[b]
        out = np.concatenate([out, np.stack([flat[a[keep]], flat[b[keep]]], 1)])
    return out[:k]


def reference_band(emb, rows: np.ndarray, subjects, same: bool, max_pairs: int, rng: np.random.Generator,
                   rounds: int = 8) -> dict:
    """Cosine distribution (``identity.distribution``) of real pairs of one subject (``same``) or two,
    among ``rows`` (``subjects[k]`` is row ``rows[k]``'s id); ``emb(manifest rows) -> [n, 128]``.
    Every pair when there are at most ``max_pairs``, else ``max_pairs`` uniform draws; pairs without a
    face are dropped (listed) or replaced by new draws (sampled; at most ``rounds`` times)."""
    from fape.metrics.identity import cosine, distribution

    groups = subject_groups(subjects)
    possible = pair_count(groups, same)
    sampled = possible > max_pairs
    found: list[np.ndarray] = []
    for _ in range(rounds if sampled else 1):
        need = max_pairs - sum(len(f) for f in found)
        if need <= 0 or not possible:
            break
        p = rows[draw_pairs(groups, same, need, rng) if sampled else all_pairs(groups, same)]  # [P, 2] manifest rows
        e = emb(p.ravel()).reshape(len(p), 2, -1)  # [P, 2, 128]: one call, so one progress bar
        c = cosine(e[:, 0], e[:, 1])  # [P]
        found.append(c[np.isfinite(c)])
    values = np.concatenate(found)[:max_pairs] if found else np.zeros(0)
    return {**distribution(values), "pairs_possible": int(possible), "sampled": bool(sampled)}


def draw_rows(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` when there are at most ``n``, else ``n`` of them drawn without replacement (sorted)."""
    return rows if len(rows) <= n else np.sort(rng.choice(rows, n, replace=False))


def kid_draws(real_rows: np.ndarray, real_labels: np.ndarray, gen_labels: np.ndarray, kid_n: int,
              rng: np.random.Generator) -> dict[int, tuple[int, np.ndarray, int, np.ndarray]]:
    """Per class label g (of the real rows or the generated faces): ``(n real rows, drawn real
    manifest rows, n generated, drawn generated rows)``, at most ``kid_n`` drawn of each; no real
    row is drawn for a class without generated faces."""
    out = {}
    for g in sorted(set(real_labels.tolist()) | set(gen_labels.tolist())):
        rr, gr = real_rows[real_labels == g], np.flatnonzero(gen_labels == g)
        out[g] = (len(rr), draw_rows(rr, kid_n, rng) if len(gr) else rr[:0], len(gr), draw_rows(gr, kid_n, rng))
    return out


def kid_per_class(draws: dict, real_emb, gen_emb: np.ndarray, names: list[str]) -> dict:
    """``{class name: {"n_real_rows", "n_real_drawn", "n1", "n_generated_rows", "n_generated_drawn", "n2",
    "kid", "kid_std"}}`` from :func:`kid_draws`: KID (``fape.metrics.fid.kid``, unbiased MMD^2 with the
    cubic kernel) of the faces dlib found among the draws (n1 real, n2 generated; both >= 2, else the
    counts only); ``real_emb(manifest rows) -> [n, 128]``, ``gen_emb`` ``[N, 128]`` of every generated face."""
    from fape.metrics.fid import kid

    out = {}
    for g, (n_real, rd, n_gen, gd) in draws.items():
        a, b = real_emb(rd), gen_emb[gd]  # [n_real_drawn, 128], [n_generated_drawn, 128]
        a, b = a[np.isfinite(a).all(1)], b[np.isfinite(b).all(1)]
        rec = {"n_real_rows": int(n_real), "n_real_drawn": int(len(rd)), "n1": int(len(a)),
               "n_generated_rows": int(n_gen), "n_generated_drawn": int(len(gd)), "n2": int(len(b))}
        if len(a) >= 2 and len(b) >= 2:
            rec["kid"], rec["kid_std"] = kid(a, b)
        out[names[g] if 0 <= g < len(names) else str(g)] = rec
    return out


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


def _predictions(clf, ds, rows: np.ndarray, what: str, progress: bool) -> np.ndarray:
    """Classifier label ids ``[len(rows)]`` of ``rows`` of ``ds``, decoded ``CHUNK`` at a time; the
    forward pass is batched by ``classifier_pass``."""
    from tqdm import tqdm

    from fape.metrics.gan_report import classifier_pass

    out = [np.zeros(0, np.int64)]
    with tqdm(total=len(rows), desc=f"classifier: {what}", unit="img", disable=not progress, leave=False) as bar:
        for part in _chunks(rows):
            out.append(classifier_pass(clf, _stack(ds, part))[1])
            bar.update(len(part))
    return np.concatenate(out).astype(np.int64)


def synth_metrics(synth: str | Path, data: str | Path, rows: np.ndarray | None = None, features: str | None = None,
                  reference_rows: np.ndarray | None = None, max_pairs: int = MAX_PAIRS, kid_n: int = KID_N,
                  seed: int = 0, cache: str | Path | None = None, progress: bool = True, workers: int = 1) -> dict:
    """The report's figures (module docstring). ``rows``: the real rows to compare with (default:
    every row of ``data``); ``reference_rows``: the classifier's held-out real rows (default ``rows``);
    ``max_pairs``: pairs per real reference band; ``kid_n``: real and generated faces per class for KID;
    ``seed``: the draws; ``cache``: a folder for embeddings (:class:`RowEmbeddings`), or None;
    ``workers``: processes that run dlib (it holds the GIL; each takes about one core)."""
    import contextlib

    from fape.errors import UserError
    from fape.utils.procs import worker_pool

    if max_pairs < 1:
        raise UserError(f"max_pairs (--max-pairs) must be >= 1, got {max_pairs}")
    if kid_n < 2:
        raise UserError(f"kid_n (--kid-n) must be >= 2 (KID needs two faces a side), got {kid_n}")
    if workers < 1:
        raise UserError(f"workers (--workers) must be >= 1, got {workers}")
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(worker_pool(workers)) if workers > 1 else None
        return _synth_metrics(synth, data, rows, features, reference_rows, max_pairs, kid_n, seed, cache, progress,
                              pool, workers)


def _synth_metrics(synth, data, rows, features, reference_rows, max_pairs: int, kid_n: int, seed: int, cache,
                   progress: bool, pool, workers: int) -> dict:
    from fape.data.dataset import FaceDataset
    from fape.data.format import read_index
    from fape.metrics.identity import preservation

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
    src_rows = sm["source_row"].to_numpy(np.int64)
    if len(src_rows) and (src_rows.min() < 0 or src_rows.max() >= len(rm)):
        raise ValueError(f"{synth}: source_row {int(src_rows.max())} is not a row of {data} ({len(rm)} rows)")
    gen_e = RowEmbeddings(syn, "generated", cache, progress, pool, workers)
    real_e = RowEmbeddings(real, "real", cache, progress, pool, workers)
    emb_gen = gen_e(np.arange(len(sm)))  # [N, 128], NaN where no face
    emb_src = real_e(src_rows, "sources")  # [N, 128]: each distinct source row embedded once
    subjects = rm["subject"].to_numpy()[rows]
    band = {}
    for k, (name, same) in enumerate((("same_subject", True), ("different_subject", False))):
        band[name] = reference_band(lambda r, w=name: real_e(r, w.replace("_", "-") + " pairs"), rows, subjects,
                                    same, max_pairs, np.random.default_rng([seed, 1, k]))
    draws = kid_draws(rows, rm["label"].to_numpy()[rows], sm["label"].to_numpy(), kid_n, np.random.default_rng([seed, 2]))
    real_e(np.concatenate([d[1] for d in draws.values()] or [np.zeros(0, np.int64)]), "KID draws")
    out = {"synth": str(synth), "data": str(data), "n_generated": int(len(sm)), "n_real_rows": int(len(rows)),
           "identity": {"source_vs_generated": preservation(emb_src, emb_gen),
                        "real_reference": {**band, "rows_with_subject_id": int(sum(len(g) for g in subject_groups(subjects)))}},
           "sampling": {"seed": int(seed), "max_pairs": int(max_pairs), "kid_n": int(kid_n)}}
    found_real = np.isfinite(real_e(sorted(real_e.used))).all(1)
    uniq_src = np.unique(src_rows)
    out["faces_found"] = {"generated": int(np.isfinite(emb_gen).all(1).sum()), "sources": int(len(uniq_src)),
                          "sources_found": int(np.isfinite(real_e(uniq_src)).all(1).sum()),
                          "real_embedded": int(len(found_real)), "real": int(found_real.sum())}
    out["kid_per_class"] = kid_per_class(draws, real_e, emb_gen, names)
    gen_e.save()
    real_e.save()
    if features:
        from fape.metrics.gan_report import load_classifier

        clf = load_classifier(features)
        lut = {n: i for i, n in enumerate(names)}
        to_data = label_lut(list(clf.label_names), names, str(features))  # classifier id -> data label id
        ref = rows if reference_rows is None else np.asarray(reference_rows, np.int64)
        drawn = np.unique(sm["label"].to_numpy())  # the reference is real faces of the drawn classes only
        ref = ref[np.isin(rm["label"].to_numpy()[ref], drawn)]
        src_lab = np.array([lut[e] for e in sm["source_expression"]], np.int64)
        pred = to_data[_predictions(clf, syn, np.arange(len(sm)), "generated", progress)]
        ref_pred = to_data[_predictions(clf, real, ref, "reference rows", progress)]
        out["expression"] = {**expression_figures(pred, sm["label"].to_numpy(), src_lab, ref_pred, rm["label"].to_numpy()[ref]),
                             "classifier": clf.extractor_name,
                             "reference": ("the given reference rows" if reference_rows is not None else "the real rows")
                             + " of the drawn classes (" + ", ".join(names[i] for i in drawn) + ")"}
    return out


def _band_pairs(d: dict) -> str:
    if d.get("sampled"):
        return f"{d.get('n', 0)} drawn of {d['pairs_possible']:,}"
    return f"all {d.get('pairs_possible', 0)}" + (f" ({d.get('n', 0)} with faces)" if d.get("n", 0) != d.get("pairs_possible", 0) else "")


def report_md(m: dict) -> str:
    """The figures as Markdown, each with its n."""
    ident, ff, smp = m["identity"], m["faces_found"], m["sampling"]
    sv, ref = ident["source_vs_generated"]["similarity"], ident["real_reference"]
    lines = [f"# Synthesized set `{m['synth']}` against `{m['data']}`", "",
             f"{m['n_generated']} generated faces (dlib found {ff['generated']}) from {ff['sources']} distinct source "
             f"rows (dlib found {ff['sources_found']}); {m['n_real_rows']} real rows, of which {ff['real_embedded']} "
             f"embedded for the figures below (sources, reference pairs, KID draws; dlib found {ff['real']}). "
             f"Draws: seed {smp['seed']}, at most {smp['max_pairs']} pairs per reference band, at most "
             f"{smp['kid_n']} real and {smp['kid_n']} generated faces per class for KID.", "",
             "| identity cosine (dlib) | n | pairs | mean | median |", "|---|---|---|---|---|"]
    lines.append(f"| source vs generated | {sv.get('n', 0)} | each face with its source | {sv.get('mean', float('nan')):.3f} "
                 f"| {sv.get('q50', float('nan')):.3f} |")
    for name, d in (("real, same subject", ref["same_subject"]), ("real, different subjects", ref["different_subject"])):
        lines.append(f"| {name} | {d.get('n', 0)} | {_band_pairs(d)} | {d.get('mean', float('nan')):.3f} "
                     f"| {d.get('q50', float('nan')):.3f} |")
    lines += ["", f"Reference pairs among the {ref['rows_with_subject_id']} real rows with a subject id."]
    if "expression" in m:
        e = m["expression"]
        lines += ["", f"**Expression** ({e['classifier']}): {e['agreement_target']:.3f} of the {e['n']} generated "
                  f"faces are predicted as their drawn expression and {e['still_source']:.3f} as their source's; "
                  f"accuracy on {e['n_reference']} real faces ({e['reference']}): {e['accuracy_on_reference']:.3f}."]
    lines += ["", "| class | real rows drawn | n real | generated drawn | n generated | KID (dlib embedding) |",
              "|---|---|---|---|---|---|"]
    for name, r in m["kid_per_class"].items():
        if r["n2"]:
            kid = f"{r['kid']:.4f}" if "kid" in r else "n/a (n < 2)"
            lines.append(f"| {name} | {r['n_real_drawn']} of {r['n_real_rows']} | {r['n1']} | {r['n_generated_drawn']} "
                         f"of {r['n_generated_rows']} | {r['n2']} | {kid} |")
    return "\n".join(lines) + "\n"


def write_report(m: dict, out: str | Path) -> Path:
    from fape.utils.io import atomic_write_json, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", json.loads(json.dumps(m, default=float)))
    atomic_write_text(out / "metrics.md", report_md(m))
    return out
