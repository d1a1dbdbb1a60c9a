"""Looking at a dataset: mask previews (``fape data masks``), contact sheets (``fape data show``) and,
for a synthesized set, source-to-output sheets (``fape data show SYNTH --sources``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fape.data.dataset import FaceDataset
from fape.data.format import save_image
from fape.data.masks import render_pose_masks

CELL = 96  # preview cell side, pixels


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def _cell(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(_rgb(img), (CELL, CELL), interpolation=cv2.INTER_NEAREST)


def draw_landmarks(img: np.ndarray, landmarks: np.ndarray, ok: bool) -> np.ndarray:
    """``[H, W, C]`` uint8 + ``[68, 2]`` pixels -> a ``CELL``-sized RGB cell with the points drawn."""
    import cv2

    out = _cell(img).copy()
    if not ok or not np.isfinite(landmarks).all():
        cv2.putText(out, "no face", (4, CELL - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 0, 0), 1, cv2.LINE_AA)
        return out
    scale = CELL / img.shape[1]
    for x, y in (landmarks + 0.5) * scale - 0.5:
        cv2.circle(out, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1, cv2.LINE_AA)
    return out


def mask_cell(mask: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` in [0, 1] -> RGB cell; multi-channel heatmaps shown as their maximum."""
    m = (mask.amax(0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()[:, :, None]
    return _cell(m)


def grid(cells: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    rows = [np.concatenate(sum(([c, np.zeros((CELL, pad, 3), np.uint8)] for c in r), [])[:-1], 1) for r in cells]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, pad), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return np.concatenate(rows, 0)


def _pick(ds: FaceDataset, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(ds.index), size=min(n, len(ds.index)), replace=False))


def contact_sheet(root, out: Path, n: int = 24, seed: int = 0, per_row: int = 4) -> Path:
    """PNG of ``n`` images, each as three cells: image | landmarks | line pose mask."""
    ds = FaceDataset(root, cache=False)
    rows = _pick(ds, n, seed)
    masks = render_pose_masks(torch.from_numpy(ds.landmarks[rows]), ds.size, "lines")  # [n, 1, H, W]
    cells = []
    for k, i in enumerate(rows):
        img = ds.load(i)
        cells += [_cell(img), draw_landmarks(img, ds.landmarks[i], ds.index.landmarks_ok[i]), mask_cell(masks[k])]
    per = 3 * per_row
    save_image(out, grid([cells[j:j + per] for j in range(0, len(cells), per)]))
    return out


def _label(cell: np.ndarray, text: str) -> np.ndarray:
    """``text`` written along the bottom of a cell (on a dark band, so it reads on any face)."""
    import cv2

    out = cell.copy()
    out[CELL - 14:] //= 3
    cv2.putText(out, text[:14], (3, CELL - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def own_face(manifest, subject, expression, rng: np.random.Generator | None = None,
             rows: np.ndarray | None = None) -> int | None:
    """A row of ``manifest`` (of ``rows`` when given) showing ``subject`` with ``expression``: drawn
    by ``rng``, or the first one without it; None if there is none, or no ``subject`` id (a FER2013
    face has no other photo)."""
    if subject == "" or subject is None:
        return None
    rows = np.arange(len(manifest)) if rows is None else np.asarray(rows, np.int64)
    m = manifest.iloc[rows]
    hits = rows[(m["subject"].to_numpy() == subject) & (m["expression"].to_numpy() == expression)]
    if not len(hits):
        return None
    return int(hits[0]) if rng is None else int(rng.choice(hits))


def source_sheet(root, out: Path, n: int = 12, seed: int = 0) -> Path:
    """PNG of ``n`` images of a synthesized set (``fape gan synthesize``), one row each:
    source (its expression) | source landmarks | target landmarks on the source (the mask G was
    given) | generated (the drawn expression) | the same subject's own real face in the drawn
    expression, when the source set has one (blank otherwise). Under expression transfer the last
    column is the answer a reader compares the drawing with (JAFFE: every subject shows every
    expression); it may or may not have been among G's training rows. Reads the source set named
    in ``dataset.json``."""
    from fape.data.format import read_index
    from fape.errors import DatasetError

    syn = FaceDataset(root, cache=False)
    origin, m = syn.index.info.origin or {}, syn.index.manifest
    if origin.get("kind") != "fape-gan-synthesis" or "source_row" not in m.columns:
        raise DatasetError(f"{root}: not a synthesized set (no fape-gan-synthesis origin / source_row column)")
    src = FaceDataset(read_index(origin["source_data"]), cache=False)
    sm = src.index.manifest
    rows = _pick(syn, n, seed)
    rng = np.random.default_rng(seed)
    header = [_label(np.zeros((CELL, CELL, 3), np.uint8), t)
              for t in ("source", "its landmarks", "target", "generated", "subject's own")]
    cells = [header]
    for i in rows:
        r = int(m["source_row"].iat[i])
        s_img = src.load(r)
        tgt = syn.landmarks[i] * (s_img.shape[1] / syn.size[1])  # [68, 2] pixels at the source's size
        before = m["source_expression"].iat[i] if "source_expression" in m.columns else sm["expression"].iat[r]
        after = str(m["expression"].iat[i])
        own = own_face(sm, m["subject"].iat[i], after, rng)
        cells.append([_label(_cell(s_img), str(before)), draw_landmarks(s_img, src.landmarks[r], True),
                      draw_landmarks(s_img, tgt, True), _label(_cell(syn.load(i)), after),
                      _label(_cell(src.load(own)), after) if own is not None else np.full((CELL, CELL, 3), 255, np.uint8)])
    save_image(out, grid(cells))
    return out


def mask_previews(root, out: Path, style: str = "lines", size: int | None = None, n: int = 16) -> list[Path]:
    """One PNG per image: the image beside its pose mask."""
    ds = FaceDataset(root, cache=False)
    rows = _pick(ds, n, 0)
    side = size or ds.size[0]
    masks = render_pose_masks(torch.from_numpy(ds.landmarks[rows]), side, style, image_size=ds.size)
    paths = []
    for k, i in enumerate(rows):
        p = out / f"{i:06d}_{style}.png"
        save_image(p, grid([[_cell(ds.load(i)), mask_cell(masks[k])]]))
        paths.append(p)
    return paths


def cli_show(args, overrides) -> int:
    name = "sources.png" if args.sources else "contact_sheet.png"
    out = Path(args.out) if args.out else Path(args.dir) / "previews" / name
    if args.sources:
        print(f"source sheet: {source_sheet(args.dir, out, args.n, args.seed)}")
    else:
        print(f"contact sheet: {contact_sheet(args.dir, out, args.n, args.seed)}")
    return 0


def cli_masks(args, overrides) -> int:
    out = Path(args.out) if args.out else Path(args.dir) / "previews" / "masks"
    paths = mask_previews(args.dir, out, args.style, args.image_size, args.n)
    print(f"{len(paths)} mask previews in {out}")
    return 0
