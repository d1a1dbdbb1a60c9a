"""The procedural synthetic multi-pose face set (stand-in for F2ED).

For every subject x expression x frame the same 3D 68-landmark face is rendered from all poses
(default: the paper's half_left, front, half_right, bird_view), so each image has ground-truth
targets in the other poses. Landmarks are the projections of the 3D points the face is drawn from.
Every (subject, expression, frame) draws from its own seeded numpy Generator, so output bytes do
not depend on rendering order.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from fape.config import ConfigError, load_config, save_config, to_dict
from fape.data.format import DatasetInfo, save_image, write_index
from fape.data.synth.expressions import FAMILY_NAMES, PARAM_HIGH, PARAM_LOW, Expression, expression_set
from fape.data.synth.head import Identity, deform, identity_shape, make_camera, sample_identity
from fape.data.synth.render import render_face, sample_scene
from fape.utils.io import atomic_dir

__all__ = ["SynthConfig", "synthesize", "cli_synth", "render_redraws"]

DEFAULT_POSES = ["half_left", "front", "half_right", "bird_view"]
DEFAULT_ANGLES = {"half_left": [45.0, 0.0], "front": [0.0, 0.0], "half_right": [-45.0, 0.0],
                  "bird_view": [0.0, 30.0]}


@dataclass
class SynthConfig:
    out: str = "data/synth_small"
    name: str = "synth"
    seed: int = 0
    identities: int = 12
    classes: Literal[54, 7] = 54  # 54 fine-grained F2ED-style emotions or the 7 basic ones
    expressions: int = 54  # render the first N expressions of the class list (capped at its length)
    frames: int = 2  # key frames per (subject, expression) sequence
    poses: list[str] = field(default_factory=lambda: list(DEFAULT_POSES))
    # pose name -> [yaw, pitch] degrees; yaw > 0 turns the face toward image left, pitch > 0 = camera above
    pose_angles: dict[str, list[float]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_ANGLES.items()})
    image_size: int = 64
    channels: int = 3  # 3 RGB or 1 gray
    render_scale: int = 3  # draw at this multiple of image_size, then INTER_AREA down (anti-aliasing)
    face_scale: float = 1.0  # zoom: 1.0 puts the face width at ~2/3 of the image
    # difficulty knobs
    expression_intensity_range: list[float] = field(default_factory=lambda: [0.75, 1.1])
    expression_noise: float = 0.05  # std of per-frame noise added to every expression control
    identity_variation: float = 1.0  # scales face shape differences between subjects
    lighting_variation: float = 1.0  # scales light direction / ambient / tint randomness
    background: Literal["flat", "gradient", "textured"] = "textured"
    noise_std: float = 3.0  # pixel noise std, grey levels
    head_jitter_deg: float = 3.0  # std of the subject's own head yaw/pitch/roll per frame


def _check(cfg: SynthConfig) -> None:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ConfigError(msg)

    need(cfg.identities >= 1, f"identities must be >= 1, got {cfg.identities}")
    need(1 <= cfg.expressions <= 54, f"expressions must be in 1..54, got {cfg.expressions}")
    need(cfg.frames >= 1, f"frames must be >= 1, got {cfg.frames}")
    need(cfg.image_size >= 16, f"image_size must be >= 16, got {cfg.image_size}")
    need(cfg.channels in (1, 3), f"channels must be 1 or 3, got {cfg.channels}")
    need(1 <= cfg.render_scale <= 8, f"render_scale must be in 1..8, got {cfg.render_scale}")
    need(len(cfg.poses) >= 1 and len(set(cfg.poses)) == len(cfg.poses), f"poses must be distinct: {cfg.poses}")
    for p in cfg.poses:
        need(p in cfg.pose_angles and len(cfg.pose_angles[p]) == 2,
             f"poses: {p!r} has no [yaw, pitch] in pose_angles ({sorted(cfg.pose_angles)})")
    lo_hi = cfg.expression_intensity_range
    need(len(lo_hi) == 2 and 0 <= lo_hi[0] <= lo_hi[1], f"expression_intensity_range must be [lo, hi], got {lo_hi}")


def _frame_controls(rng: np.random.Generator, ex: Expression, ident: Identity, cfg: SynthConfig) -> np.ndarray:
    """[16] expression controls of one key frame: intensity, subject expressiveness, noise."""
    lo, hi = cfg.expression_intensity_range
    e = ex.vector * rng.uniform(lo, hi) * ident.expressiveness
    e = e + rng.normal(0, cfg.expression_noise, e.shape)
    return np.clip(e, PARAM_LOW, PARAM_HIGH).astype(np.float32)


def _frame_face(cfg: SynthConfig, ident: Identity, shape: np.ndarray, subject: int, ex: Expression,
                frame: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], float]:
    """The face of one (subject, expression, frame), shared by every view: expression controls
    ``[16]``, 3D landmarks ``[68, 3]`` head coordinates, head jitter (yaw, pitch, roll) degrees, gaze."""
    rng = np.random.default_rng([cfg.seed, 1, subject, ex.key, frame])
    e = _frame_controls(rng, ex, ident, cfg)
    pts = deform(shape, e)
    jitter = tuple(rng.normal(0, cfg.head_jitter_deg, 3)) if cfg.head_jitter_deg > 0 else (0.0, 0.0, 0.0)
    gaze_x = float(rng.normal(0, 0.015))
    return e, pts, jitter, gaze_x


def _render_view(cfg: SynthConfig, ident: Identity, face: tuple, subject: int, ex: Expression, frame: int,
                 k: int, redraw: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """View ``k`` (pose ``cfg.poses[k]``) of a frame's face: (image ``[S, S, C]`` uint8, landmarks
    ``[68, 2]`` pixels). ``redraw`` > 0 draws the view's nuisance (background, lighting, pixel noise)
    anew and keeps everything else: the same face seen by the same camera under another scene."""
    e, pts, jitter, gaze_x = face
    key = [cfg.seed, 2, subject, ex.key, frame, k] + ([redraw] if redraw else [])
    view_rng = np.random.default_rng(key)
    scene = sample_scene(view_rng, cfg.image_size, cfg.lighting_variation, cfg.background)
    yaw, pitch = cfg.pose_angles[cfg.poses[k]]
    cam = make_camera(yaw, pitch, cfg.image_size, cfg.face_scale, jitter)
    return render_face(pts, ident, e, cam, scene, view_rng, cfg.render_scale, cfg.noise_std, cfg.channels, gaze_x)


def _render_group(cfg: SynthConfig, ident: Identity, shape: np.ndarray, subject: int, ex: Expression,
                  frame: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """All poses of one (subject, expression, frame): [(image [S, S, C] uint8, landmarks [68, 2])].

    The face (expression controls, head jitter, gaze) is one moment seen by every camera. Every
    nuisance (background, lighting, pixel noise) is drawn per image, so that no pixel outside the
    face ties two views of a frame together: a shared background would identify a held-out view's
    label from its training views (issue 13 measured 20.5% 1-NN agreement on background pixels
    alone, chance 1.9%; `fape.data.audit.background_probe`).
    """
    face = _frame_face(cfg, ident, shape, subject, ex, frame)
    return [_render_view(cfg, ident, face, subject, ex, frame, k) for k in range(len(cfg.poses))]


def render_redraws(cfg: SynthConfig, subject: str, expression: str, frame: int, pose: str,
                   draws: int) -> np.ndarray:
    """``[draws, S, S, C]`` uint8: one image of the set rendered again ``draws`` times, each time
    with its nuisance (background, lighting, pixel noise) drawn anew and its face, camera and
    landmarks unchanged. What no model can know of a target from its face and landmarks alone is
    what varies between these draws (``fape.metrics.paired.nuisance_floor``)."""
    exprs = {x.name: x for x in expression_set(cfg.classes)[: cfg.expressions]}
    if expression not in exprs:
        raise ValueError(f"expression {expression!r} is not in this synthetic set ({len(exprs)} expressions)")
    if pose not in cfg.poses:
        raise ValueError(f"pose {pose!r} is not among the set's poses {cfg.poses}")
    si = int(str(subject).lstrip("s"))
    ident = sample_identity(np.random.default_rng([cfg.seed, 0, si]), cfg.identity_variation)
    ex = exprs[expression]
    face = _frame_face(cfg, ident, identity_shape(ident), si, ex, frame)
    k = cfg.poses.index(pose)
    return np.stack([_render_view(cfg, ident, face, si, ex, frame, k, redraw=r)[0] for r in range(1, draws + 1)])


PARALLEL_FROM = 1000  # images; about 2 s of rendering on one core at 64 px


def _render_subject(cfg: SynthConfig, si: int, root: Path) -> tuple[list[dict], list[np.ndarray]]:
    """Render and save every image of subject ``si`` under ``root``: its manifest rows and
    landmarks ``[68, 2]`` pixels, in the set's order (expressions, frames, poses)."""
    exprs = expression_set(cfg.classes)[: cfg.expressions]
    ident = sample_identity(np.random.default_rng([cfg.seed, 0, si]), cfg.identity_variation)
    shape = identity_shape(ident)
    subject = f"s{si:03d}"
    rows, landmarks = [], []
    for label, ex in enumerate(exprs):
        for frame in range(cfg.frames):
            for pose, (img, lm) in zip(cfg.poses, _render_group(cfg, ident, shape, si, ex, frame)):
                rel = f"images/{subject}/{ex.name}/{frame:02d}_{pose}.png"
                save_image(root / rel, img)
                rows.append(dict(path=rel, subject=subject, expression=ex.name, label=label, pose=pose,
                                 sequence=f"{subject}_{ex.name}", frame=frame, source="synth",
                                 family=ex.family, yaw_deg=cfg.pose_angles[pose][0],
                                 pitch_deg=cfg.pose_angles[pose][1]))
                landmarks.append(lm)
    return rows, landmarks


def synthesize(cfg: SynthConfig, out: str | Path | None = None, overwrite: bool = False,
               progress: bool = True, workers: int | None = None) -> Path:
    """Render the dataset described by ``cfg`` into ``out`` (default ``cfg.out``), atomically.
    ``workers``: subjects rendered at once in spawned processes (default: one per CPU core, at most
    the number of subjects, for sets of at least ``PARALLEL_FROM`` images); every subject draws
    from its own seeded generators, so the bytes do not depend on it."""
    import os

    from tqdm import tqdm

    _check(cfg)
    out = Path(out if out is not None else cfg.out)
    resolved = dataclasses.replace(cfg, out=str(out))
    exprs = expression_set(cfg.classes)[: cfg.expressions]
    label_names = [x.name for x in exprs]
    per_subject = len(exprs) * cfg.frames * len(cfg.poses)
    total = cfg.identities * per_subject
    if workers is None:  # a spawned worker costs about a second to start: worth it from ~2 s of rendering
        workers = min(cfg.identities, os.cpu_count() or 1) if total >= PARALLEL_FROM else 1
    workers = max(1, min(workers, cfg.identities))
    rows, landmarks = [], []
    t0 = time.perf_counter()
    with atomic_dir(out, overwrite) as tmp, tqdm(total=total, desc="synth", unit="img",
                                                 disable=not progress) as bar:
        if workers > 1:
            from fape.utils.procs import worker_pool

            with worker_pool(workers) as pool:
                futures = [pool.submit(_render_subject, cfg, si, tmp) for si in range(cfg.identities)]
                for f in futures:  # in subject order: the manifest's order does not depend on workers
                    r, lm = f.result()
                    rows += r
                    landmarks += lm
                    bar.update(per_subject)
        else:
            for si in range(cfg.identities):
                r, lm = _render_subject(cfg, si, tmp)
                rows += r
                landmarks += lm
                bar.update(per_subject)
        info = DatasetInfo(
            name=cfg.name, label_names=label_names, pose_names=list(cfg.poses),
            image_size=[cfg.image_size, cfg.image_size], channels=cfg.channels,
            origin={"kind": "synth", "config": to_dict(resolved)}, landmarks_source="synthetic-projection",
            extra={"families": {x.name: x.family for x in exprs}, "family_names": list(FAMILY_NAMES),
                   "classes": cfg.classes, "pose_angles": {p: cfg.pose_angles[p] for p in cfg.poses}},
        )
        lms = np.stack(landmarks).astype(np.float32)
        write_index(tmp, pd.DataFrame(rows), info, lms, np.ones(len(rows), bool))
        save_config(resolved, tmp / "synth_config.yaml")
    if progress:
        dt = time.perf_counter() - t0
        print(f"synth: {total} images in {dt:.1f} s ({total / max(dt, 1e-9):.0f} img/s, {workers} workers) -> {out}")
    return out


def cli_synth(args, overrides: list[str]) -> int:
    """``fape data synth -c CFG [--out DIR] [--overwrite] [--key=value ...]``."""
    from fape.errors import UserError

    cfg = load_config(SynthConfig, args.config, overrides)
    out = Path(args.out) if args.out else Path(cfg.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"output folder already exists: {out} (pass --overwrite to replace it)")
    synthesize(cfg, out, overwrite=args.overwrite)
    return 0
