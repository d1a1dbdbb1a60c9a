"""Cost of drawing every nuisance per image in the synthetic renderer (issue 13).

Times ``fape.data.synth._render_group`` (a scene, i.e. background and lighting, per view) against
the same group drawn with one scene shared by its views (the renderer before issue 13, rebuilt
here from the same pieces). Rounds interleave the two; medians and their ratio are printed.

    python benchmarks/synth_render.py [--size 64] [--groups 20] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from fape.data.synth import SynthConfig, _frame_controls, _render_group
from fape.data.synth.expressions import expression_set
from fape.data.synth.head import deform, identity_shape, make_camera, sample_identity
from fape.data.synth.render import render_face, sample_scene


def shared_scene_group(cfg, ident, shape, subject, ex, frame):
    """One scene for every view of a frame: the old renderer's draw order."""
    rng = np.random.default_rng([cfg.seed, 1, subject, ex.key, frame])
    e = _frame_controls(rng, ex, ident, cfg)
    pts = deform(shape, e)
    jitter = tuple(rng.normal(0, cfg.head_jitter_deg, 3))
    gaze_x = float(rng.normal(0, 0.015))
    scene = sample_scene(rng, cfg.image_size, cfg.lighting_variation, cfg.background)
    return [render_face(pts, ident, e, make_camera(*cfg.pose_angles[p], cfg.image_size, cfg.face_scale, jitter),
                        scene, rng, cfg.render_scale, cfg.noise_std, cfg.channels, gaze_x) for p in cfg.poses]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    cfg = SynthConfig(image_size=a.size)
    ident = sample_identity(np.random.default_rng([0, 0, 0]), cfg.identity_variation)
    shape = identity_shape(ident)
    exprs = expression_set(cfg.classes)[: a.groups]
    times = {"per-image scenes": [], "shared scene": []}
    for _ in range(a.rounds):
        for name, fn in (("per-image scenes", _render_group), ("shared scene", shared_scene_group)):
            t = time.perf_counter()
            for ex in exprs:
                fn(cfg, ident, shape, 0, ex, 0)
            times[name].append((time.perf_counter() - t) / (len(exprs) * len(cfg.poses)) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:>18}: {v:.2f} ms per image (median of {a.rounds} rounds)")
    print(f"ratio per-image / shared: {med['per-image scenes'] / med['shared scene']:.3f}x")


if __name__ == "__main__":
    main()
