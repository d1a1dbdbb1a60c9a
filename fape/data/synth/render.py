"""Rasterise a schematic face from its projected 3D head with OpenCV.

Everything is drawn at ``render_scale`` x the stored size with anti-aliased polygons and lines,
then reduced with INTER_AREA. Shading (Lambert on the head ellipsoid's normal field), light tint
and pixel noise are applied at the stored size. The returned landmarks are the projections of the
same 3D points the face was drawn from, so they match the picture.

Visibility under yaw is handled by drawing order: background, neck, back hair, ears, head
silhouette (convex hull of skull and jaw), hair cap, skin marks, the far eye, the near eye, the
mouth and finally the nose, which therefore hides the far inner eye corner at 45 degrees.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fape.data.synth.expressions import P
from fape.data.synth.head import SKULL_AXES, SKULL_CENTER, CROP_CENTER, Camera, Identity

SHIFT = 4  # cv2 fractional bits: coordinates are drawn with 1/16 pixel precision
AA = cv2.LINE_AA


def _fibonacci_sphere(n: int) -> np.ndarray:
    """[n, 3] nearly uniform unit vectors."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.cos(phi), np.sin(theta) * np.sin(phi)], 1).astype(np.float32)


SPHERE = _fibonacci_sphere(500)  # [500, 3]
_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 20, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 20, endpoint=False))], 1)  # [20, 2]


@dataclass(frozen=True)
class Scene:
    """Conditions of one (subject, expression, frame) recording, shared by its poses."""

    light: np.ndarray  # [3] unit vector toward the light, head coordinates
    ambient: float  # shade of surfaces facing away from the light, 0..1
    tint: np.ndarray  # [3] RGB multiplier of the light colour
    background: np.ndarray  # [S, S, 3] float32, 0..255, stored resolution


def sample_scene(rng: np.random.Generator, size: int, lighting_variation: float, background: str) -> Scene:
    az, el = rng.normal(0, 35 * lighting_variation), rng.normal(20, 15 * lighting_variation)
    a, e = np.radians([az, el])
    light = np.array([np.sin(a) * np.cos(e), -np.sin(e), np.cos(a) * np.cos(e)], np.float32)
    ambient = float(np.clip(0.55 + rng.normal(0, 0.08 * lighting_variation), 0.3, 0.85))
    tint = np.clip(1 + rng.normal(0, 0.06 * lighting_variation, 3), 0.8, 1.2).astype(np.float32)
    tint *= np.float32(np.clip(1 + rng.normal(0, 0.1 * lighting_variation), 0.75, 1.25))
    return Scene(light, ambient, tint, _background(rng, size, background))


def _background(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """[S, S, 3] float32: flat colour, a linear gradient, or a gradient with a noise texture."""
    c1 = rng.uniform(30, 225, 3)
    c2 = np.clip(c1 + rng.normal(0, 45, 3), 0, 255)
    bg = np.broadcast_to(c1, (size, size, 3)).astype(np.float32)
    if kind in ("gradient", "textured"):
        ang = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        t = np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5) + 0.5  # [S, S] 0..1 along the gradient
        bg = (c1 * (1 - t[..., None]) + c2 * t[..., None]).astype(np.float32)
    if kind == "textured":
        blobs = rng.normal(0, 18, (5, 5, 3)).astype(np.float32)
        bg = bg + cv2.resize(blobs, (size, size), interpolation=cv2.INTER_CUBIC)
        bg = bg + rng.normal(0, 5, (size, size, 1)).astype(np.float32)
    return np.clip(bg, 0, 255)


# ------------------------------------------------------------------ drawing helpers

class _Canvas:
    """An RGB uint8 canvas at render scale plus a face mask; takes stored-pixel coordinates."""

    def __init__(self, background: np.ndarray, k: int, cam: Camera):
        big = background.shape[0] * k
        self.img = np.ascontiguousarray(cv2.resize(background, (big, big), interpolation=cv2.INTER_LINEAR)
                                        .round().astype(np.uint8))
        self.mask = np.zeros((big, big), np.uint8)  # 255 where the head (skin + hair) is: gets shading
        self.k, self.cam = k, cam
        self.unit = cam.scale * k  # canvas pixels per head unit

    def fix(self, xy: np.ndarray) -> np.ndarray:
        """[N, 2] stored pixels -> [N, 2] int32 canvas coordinates with SHIFT fractional bits."""
        return np.round(((xy + 0.5) * self.k - 0.5) * (1 << SHIFT)).astype(np.int32)

    def px(self, head_units: float) -> int:
        """A line thickness in canvas pixels for a length in head units."""
        return max(1, int(round(head_units * self.unit)))

    def fill(self, xy: np.ndarray, color, mask: bool = False) -> None:
        pts = [self.fix(xy)]
        cv2.fillPoly(self.img, pts, color, AA, SHIFT)
        if mask:
            cv2.fillPoly(self.mask, pts, 255, AA, SHIFT)

    def line(self, xy: np.ndarray, color, width: float, closed: bool = False) -> None:
        cv2.polylines(self.img, [self.fix(xy)], closed, color, self.px(width), AA, SHIFT)

    def hull(self, xyz: np.ndarray, color, mask: bool = False) -> None:
        xy = self.cam.project(xyz).astype(np.float32)
        self.fill(cv2.convexHull(xy)[:, 0], color, mask)

    def disc(self, center: np.ndarray, radius: tuple[float, float], color) -> None:
        """A circle of ``radius`` (x, y) head units lying in the head's x-y plane at 3D ``center``."""
        axes = self.cam.rot[:2, :2] * self.cam.scale  # [2, 2] head x/y directions -> pixels
        c = self.cam.project(center[None])[0]
        ring = c + (_CIRCLE * np.asarray(radius)) @ axes.T
        self.fill(ring, color)


def _shade(c, f: float) -> tuple[float, float, float]:
    return tuple(float(min(255.0, v * f)) for v in c)


def _mix(a, b, t: float) -> tuple[float, float, float]:
    return tuple(float(x * (1 - t) + y * t) for x, y in zip(a, b))


# ------------------------------------------------------------------ parts

def _body(cv: _Canvas, ident: Identity) -> None:
    neck = np.array([[-0.45, 0.5, -0.4], [0.45, 0.5, -0.4], [0.5, 2.2, -0.5], [-0.5, 2.2, -0.5]], np.float32)
    cv.fill(cv.cam.project(neck), _shade(ident.skin, 0.78))
    shirt = np.array([[-2.4, 3.4, -0.5], [-1.9, 2.0, -0.5], [-0.55, 1.7, -0.3], [0.55, 1.7, -0.3],
                      [1.9, 2.0, -0.5], [2.4, 3.4, -0.5]], np.float32)
    cv.fill(cv.cam.project(shirt), ident.clothes)


def _skull_points(ident: Identity, grow: float = 1.0) -> np.ndarray:
    """[500, 3] points on the head ellipsoid (x scaled by face width), optionally enlarged."""
    axes = SKULL_AXES * np.array([ident.face_width, 1.0, 1.0], np.float32) * grow
    return SKULL_CENTER + SPHERE * axes


def _hair_back(cv: _Canvas, ident: Identity) -> None:
    """Long hair hanging behind the head down to the shoulders."""
    sk = _skull_points(ident, 1.1)
    sk = sk[(sk[:, 2] < 0.0) & (sk[:, 1] < 0.6)]
    fall = np.array([[-1.2, 1.5, -0.5], [1.2, 1.5, -0.5], [-1.0, 1.7, -0.6], [1.0, 1.7, -0.6]], np.float32)
    cv.hull(np.concatenate([sk, fall * [ident.face_width, 1, 1]]), _shade(ident.hair, 0.8))


def _ears(cv: _Canvas, ident: Identity) -> None:
    for side in (-1.0, 1.0):
        c = np.array([side * 1.0 * ident.face_width, -0.2, -0.28], np.float32)
        dirs = np.array([[0, 0, 0.14], [0, 0.26, 0]], np.float32)  # ear plane: depth and height
        axes = (dirs @ cv.cam.rot.T)[:, :2] * cv.cam.scale  # [2, 2] pixel vectors
        ring = cv.cam.project(c[None])[0] + _CIRCLE @ axes
        cv.fill(ring, _shade(ident.skin, 0.9), mask=True)


def _head(cv: _Canvas, ident: Identity, pts: np.ndarray) -> None:
    sk = _skull_points(ident)
    cv.hull(np.concatenate([sk[sk[:, 1] < -0.05], pts[:17]]), ident.skin, mask=True)


def _hair_cap(cv: _Canvas, ident: Identity) -> None:
    sk = _skull_points(ident, 1.03)
    line = ident.hairline + (0.2 if ident.hair_style == 2 else 0.0)  # fringe: lower at the forehead
    color = _mix(ident.hair, ident.skin, 0.45) if ident.hair_style == 3 else ident.hair
    cv.hull(sk[sk[:, 1] < line - 0.15 * np.clip(sk[:, 2], 0, None)], color, mask=True)
    for side in (-1.0, 1.0):  # temples as separate convex pieces, so the hairline stays concave
        temple = sk[(side * sk[:, 0] > 0.62 * ident.face_width) & (sk[:, 1] < line + 0.3) & (sk[:, 2] < 0.45)]
        cv.hull(temple, color, mask=True)
    if ident.hair_style == 1:  # long: locks down the sides of the face
        sk = _skull_points(ident, 1.06)
        for side in (-1.0, 1.0):
            lock = sk[(side * sk[:, 0] > 0.78 * ident.face_width) & (sk[:, 1] < 0.55) & (sk[:, 2] < 0.2)]
            cv.hull(lock, color, mask=True)


def _skin_marks(cv: _Canvas, ident: Identity, pts: np.ndarray, e: np.ndarray) -> None:
    """Wrinkles and folds whose darkness follows the expression controls."""
    skin = ident.skin
    furrow = e[P["brow_lower"]] + 0.5 * e[P["nose_wrinkle"]]
    if furrow > 0.15:
        top = min(pts[21, 1], pts[22, 1])
        for x in (-0.05, 0.05):
            seg = np.array([[x, top + 0.02, 0.66], [x * 1.3, top - 0.16, 0.64]], np.float32)
            cv.line(cv.cam.project(seg), _shade(skin, 1 - 0.35 * min(furrow, 1)), 0.02)
    raise_ = max(e[P["brow_inner_up"]], e[P["brow_outer_up"]])
    if raise_ > 0.3:
        top = pts[17:27, 1].min()
        xs = np.linspace(-0.45, 0.45, 7)
        for dy in (0.12, 0.22):
            arc = np.stack([xs, top - dy - 0.04 * np.cos(xs * 2), 0.62 - 0.35 * xs ** 2], 1).astype(np.float32)
            cv.line(cv.cam.project(arc), _shade(skin, 1 - 0.25 * min(raise_, 1)), 0.018)
    fold = 0.12 + 0.5 * e[P["smile"]] + 0.4 * e[P["cheek_raise"]] + 0.3 * e[P["nose_wrinkle"]]
    for wing, corner in ((31, 48), (35, 54)):
        s = np.sign(pts[corner, 0])
        a, b = pts[wing] + [s * 0.05, -0.04, -0.04], pts[corner] + [s * 0.07, 0.06, -0.05]
        mid = (a + b) / 2 + [s * 0.07, 0, 0]
        cv.line(cv.cam.project(np.stack([a, mid, b]).astype(np.float32)), _shade(skin, 1 - 0.3 * min(fold, 1)), 0.02)
    if e[P["cheek_raise"]] > 0.1:
        blush = _mix(skin, (225, 110, 115), 0.18 * min(e[P["cheek_raise"]], 1))
        for s in (-1, 1):
            cv.disc(np.array([s * 0.5 * ident.face_width, 0.08, 0.45], np.float32), (0.17, 0.11), blush)
    nw = e[P["nose_wrinkle"]]
    if nw > 0.15:
        for s in (-1, 1):
            for dy in (0.0, 0.07):
                seg = np.array([[s * 0.07, -0.26 + dy, 0.72], [s * 0.17, -0.2 + dy, 0.66]], np.float32)
                cv.line(cv.cam.project(seg), _shade(skin, 1 - 0.35 * min(nw, 1)), 0.018)


def _brow(cv: _Canvas, ident: Identity, brow: np.ndarray) -> None:
    """Filled brow: the 5 landmarks are its lower edge; thicker near the inner end."""
    taper = np.array([0.55, 0.85, 1.0, 1.0, 0.9], np.float32)
    if brow[0, 0] > brow[-1, 0]:  # left brow runs inner -> outer
        taper = taper[::-1]
    upper = brow - np.outer(taper * ident.brow_thickness, [0, 1, 0])
    poly = cv.cam.project(np.concatenate([brow, upper[::-1]]))
    cv.fill(poly, _mix(_shade(ident.hair, 0.7), ident.skin, 0.1))


def _eye(cv: _Canvas, ident: Identity, eye: np.ndarray, e: np.ndarray, gaze_x: float) -> None:
    """Sclera, iris and pupil clipped to the lid opening, lid line, crease. ``eye`` is [6, 3]."""
    xy = cv.cam.project(eye)
    cv.fill(xy, (232, 228, 222))
    center = eye.mean(0) + np.array([gaze_x, 0.04 * e[P["gaze_down"]], 0.02], np.float32)
    r = 0.085 * float(np.ptp(eye[:, 0])) / 0.46  # iris radius follows eye size, head units
    _clipped(cv, xy, lambda c: (c.disc(center, (r, r), ident.iris), c.disc(center, (0.45 * r, 0.45 * r),
                                                                           (20, 15, 15))))
    lid = _shade(ident.hair, 0.35)
    cv.line(xy[[0, 1, 2, 3]], lid, 0.03)
    cv.line(xy[[3, 4, 5, 0]], _shade(ident.skin, 0.7), 0.012)
    crease = eye[[0, 1, 2, 3]] + np.array([0, -0.07, 0.01], np.float32)
    cv.line(cv.cam.project(crease), _shade(ident.skin, 0.8), 0.012)


def _clipped(cv: _Canvas, poly: np.ndarray, draw) -> None:
    """Run ``draw(canvas)`` on a small copy of the region and keep it only inside ``poly`` [N, 2]."""
    fixed = cv.fix(poly)
    x0, y0 = np.maximum(fixed.min(0) >> SHIFT, 0)
    x1, y1 = np.minimum((fixed.max(0) >> SHIFT) + 2, cv.img.shape[1])
    if x1 <= x0 or y1 <= y0:
        return
    roi = cv.img[y0:y1, x0:x1]
    sub = _Canvas.__new__(_Canvas)
    sub.img, sub.k, sub.cam, sub.unit = roi.copy(), cv.k, cv.cam, cv.unit
    sub.mask = np.zeros(roi.shape[:2], np.uint8)
    offset = np.array([x0, y0]) << SHIFT
    sub.fix = lambda xy: cv.fix(xy) - offset
    draw(sub)
    m = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(m, [fixed - offset], 255, AA, SHIFT)
    w = m[..., None].astype(np.float32) / 255
    roi[:] = (sub.img * w + roi * (1 - w)).round().astype(np.uint8)


def _mouth(cv: _Canvas, ident: Identity, pts: np.ndarray) -> None:
    outer, inner = pts[48:60], pts[60:68]
    cv.fill(cv.cam.project(outer), ident.lips)
    upper = np.concatenate([pts[48:55], pts[[64, 63, 62, 61, 60]]])
    cv.fill(cv.cam.project(upper), _shade(ident.lips, 0.88))
    opening = float(pts[[65, 66, 67], 1].mean() - pts[[61, 62, 63], 1].mean())  # head units
    if opening > 0.03:
        cv.fill(cv.cam.project(inner), (70, 25, 30))
        teeth_h = min(0.07, 0.6 * opening)
        top = pts[60:65]
        teeth = np.concatenate([top, (top + [0, teeth_h, -0.01])[::-1]])
        cv.fill(cv.cam.project(teeth), (236, 232, 220))
    else:
        cv.line(cv.cam.project(pts[[60, 61, 62, 63, 64]]), _shade(ident.lips, 0.55), 0.018)


def _nose(cv: _Canvas, ident: Identity, pts: np.ndarray, light: np.ndarray) -> None:
    skin = ident.skin
    away = -cv.cam.rot[2, 0] - 0.3 * light[0]  # > 0: the head's +x side faces away from camera/light
    side = 1.0 if away >= 0 else -1.0
    far_wing, near_wing = (35, 31) if side > 0 else (31, 35)
    cv.disc(pts[far_wing] + [0, -0.02, 0], (0.07, 0.06), _shade(skin, 0.9))
    bridge = pts[27:31] + np.array([side * 0.06, 0, -0.03], np.float32)
    cv.line(cv.cam.project(bridge), _shade(skin, 0.8), 0.05)
    cv.line(cv.cam.project(pts[31:36] + [0, -0.01, 0]), _shade(skin, 0.72), 0.022)
    for i in (32, 34):
        cv.disc(pts[i] + [0, -0.015, 0], (0.04, 0.022), _shade(skin, 0.35))
    cv.disc(pts[near_wing] + [0, -0.02, 0], (0.065, 0.055), _shade(skin, 0.96))
    cv.disc(pts[30] + [0, -0.01, 0], (0.055, 0.045), _shade(skin, 1.08))


# ------------------------------------------------------------------ shading and compositing

def _shade_map(cam: Camera, ident: Identity, scene: Scene) -> np.ndarray:
    """[S, S] float32 Lambert shade of the head ellipsoid seen through each stored pixel."""
    s = cam.size
    u = (np.arange(s, dtype=np.float32) - (s - 1) / 2) / cam.scale  # camera-plane head units
    X, Y = np.meshgrid(u, u)
    rt = cam.rot.T.astype(np.float32)
    q = X[..., None] * rt[:, 0] + Y[..., None] * rt[:, 1] + (CROP_CENTER - SKULL_CENTER)  # [S, S, 3]
    d = rt[:, 2]  # [3] viewing ray direction (toward the camera) in head coordinates
    inv = 1.0 / (SKULL_AXES * np.array([ident.face_width, 1, 1], np.float32)) ** 2
    a = float((d * d * inv).sum())
    b = 2 * (q * d * inv).sum(-1)
    c = (q * q * inv).sum(-1) - 1
    t = (-b + np.sqrt(np.maximum(b * b - 4 * a * c, 0))) / (2 * a)  # nearest hit; silhouette rim outside
    n = (q + t[..., None] * d) * inv
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-6
    lam = np.clip(n @ scene.light, 0, 1)
    return (scene.ambient + (1 - scene.ambient) * lam).astype(np.float32)


def render_face(pts: np.ndarray, ident: Identity, e: np.ndarray, cam: Camera, scene: Scene,
                rng: np.random.Generator, render_scale: int = 3, noise_std: float = 3.0,
                channels: int = 3, gaze_x: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Draw landmarks ``pts`` [68, 3] (head coordinates) seen by ``cam``.

    Returns the image uint8 ``[S, S, channels]`` and the landmarks ``[68, 2]`` float32 (x, y) in
    stored pixels.
    """
    cv = _Canvas(scene.background, render_scale, cam)
    _body(cv, ident)
    if ident.hair_style == 1:
        _hair_back(cv, ident)
    _ears(cv, ident)
    _head(cv, ident, pts)
    _skin_marks(cv, ident, pts, e)  # before the hair, which hides forehead lines under a low hairline
    _hair_cap(cv, ident)
    depth = cam.to_camera(pts)[:, 2]
    sides = [(np.arange(17, 22), np.arange(36, 42)), (np.arange(22, 27), np.arange(42, 48))]
    sides.sort(key=lambda s: depth[s[1]].mean())  # far eye first
    for brow, eye in sides:
        _eye(cv, ident, pts[eye], e, gaze_x)
        _brow(cv, ident, pts[brow])
    _mouth(cv, ident, pts)
    _nose(cv, ident, pts, scene.light)
    return _finish(cv, cam, ident, scene, rng, noise_std, channels), cam.project(pts).astype(np.float32)


def _finish(cv: _Canvas, cam: Camera, ident: Identity, scene: Scene, rng: np.random.Generator,
            noise_std: float, channels: int) -> np.ndarray:
    s = cam.size
    img = cv2.resize(cv.img, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32)
    m = cv2.resize(cv.mask, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
    img *= 1 - m + m * _shade_map(cam, ident, scene)[..., None]
    img *= scene.tint
    if noise_std > 0:
        img += rng.normal(0, noise_std, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).round().astype(np.uint8)
    if channels == 1:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[..., None]
    return out
