"""A figure of a GAN run's held-out pose pairs: source | target mask | warped | generated | target.

Rows are held-out pairs (subjects the GAN never trained on) spread evenly over the held-out set,
as ``fape metrics gan`` picks them. "warped" is the bare landmark warp (``fape.gan.warp``: the
source moved onto the target landmarks, no learning), the baseline the ``warp_unet`` generator
starts from; "generated" is G's output (EMA weights when the run has them). Cells are upscaled
(nearest) by ``--scale`` (default: to at least 128 px) and a header row names the columns.

    python tools/gan_grid.py RUN --out docs/img/gan_grid_64.png [--rows 6] [--data DIR] [--scale N]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

COLUMNS = ("source", "target mask", "warped", "generated", "target")
PAD = 2  # pixels of white between cells
HEADER = 18  # header row height, pixels


def _rgb_hwc(x: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` uint8 -> ``[H, W, 3]``."""
    x = np.transpose(x, (1, 2, 0))
    return np.repeat(x, 3, 2) if x.shape[2] == 1 else x


def grid_cells(g: dict) -> list[list[np.ndarray]]:
    """``generate_heldout``'s arrays -> rows of ``[H, W, 3]`` uint8 cells, one row per pair."""
    import torch

    from fape.gan.io import pose_masks

    mask = pose_masks(torch.from_numpy(g["target_landmarks"]).float(), g["cfg"].data)  # [N, M, H, W] in [0, 1]
    mask = (mask.amax(1, keepdim=True) * 255).round().to(torch.uint8).numpy()  # [N, 1, H, W]
    return [[_rgb_hwc(a[i]) for a in (g["source"], mask, g["warp"], g["fake"], g["target"])]
            for i in range(len(g["fake"]))]


def assemble(rows: list[list[np.ndarray]], scale: int, columns=COLUMNS) -> np.ndarray:
    """Cells upscaled by ``scale`` (nearest), ``PAD`` white pixels apart, under a header of names."""
    import cv2

    h, w = rows[0][0].shape[0] * scale, rows[0][0].shape[1] * scale
    out = np.full((HEADER + len(rows) * (h + PAD), len(columns) * (w + PAD) - PAD, 3), 255, np.uint8)
    for j, name in enumerate(columns):
        cv2.putText(out, name, (j * (w + PAD) + 3, HEADER - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            y, x = HEADER + i * (h + PAD), j * (w + PAD)
            out[y:y + h, x:x + w] = cv2.resize(cell, (w, h), interpolation=cv2.INTER_NEAREST)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="GAN run folder (fape gan train's output) or checkpoint")
    ap.add_argument("--out", required=True, help="output PNG")
    ap.add_argument("--rows", type=int, default=6, help="held-out pairs, spread over the held-out subjects")
    ap.add_argument("--data", default=None, help="dataset folder (default: the run's data.root)")
    ap.add_argument("--scale", type=int, default=None, help="cell upscaling (default: to at least 128 px)")
    args = ap.parse_args(argv)

    from fape.data.format import save_image
    from fape.metrics.gan_report import generate_heldout

    g = generate_heldout(args.run, args.data, max_pairs=args.rows, progress=False)
    rows = grid_cells(g)
    scale = args.scale or max(1, -(-128 // rows[0][0].shape[0]))
    save_image(Path(args.out), assemble(rows, scale))
    print(f"{args.out}: {len(rows)} held-out pairs x {len(COLUMNS)} columns ({' | '.join(COLUMNS)}), "
          f"{rows[0][0].shape[0]} px cells x{scale}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
