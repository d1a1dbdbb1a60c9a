"""A 3D 68-landmark head: mean shape + identity + expression deformation, camera poses, projection.

Head coordinates (units = half the face width at the ears, so outer eye corners are ~1.44 apart):
x points to the subject's left (image right in a frontal view), y points down, z points out of the
face toward a frontal camera. Landmark order is the iBUG/dlib 68-point scheme, so point 0 (jaw,
subject's right) has negative x.

Camera: orthographic ("weak perspective"), looking along -z of the rotated head. Positive yaw turns
the face toward image left, so ``half_left`` (yaw +45 deg) shows the face turned to image left and
its right cheek (subject's left) to the camera; ``half_right`` is yaw -45 deg, the mirror image.
Positive pitch puts the camera above the face looking down (``bird_view``, pitch +30 deg): the
forehead and top of the head come forward and brow-to-chin distance shrinks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fape.data.synth.expressions import P

# -------------------------------------------------------------------- mean shape

# symmetric halves are written for the subject's right (x < 0) and mirrored
_BROW_R = [(-0.85, -0.56, 0.30), (-0.70, -0.66, 0.42), (-0.52, -0.70, 0.52), (-0.34, -0.68, 0.60),
           (-0.18, -0.63, 0.64)]  # 17..21, outer -> inner
_EYE_R = [(-0.72, -0.35, 0.36), (-0.58, -0.43, 0.46), (-0.40, -0.43, 0.50), (-0.26, -0.34, 0.50),
          (-0.40, -0.29, 0.50), (-0.58, -0.29, 0.46)]  # 36..41: outer, upper x2, inner, lower x2
_NOSE_BRIDGE = [(0.0, -0.40, 0.62), (0.0, -0.22, 0.74), (0.0, -0.04, 0.87), (0.0, 0.14, 1.00)]  # 27..30
_NOSTRILS = [(-0.22, 0.25, 0.68), (-0.11, 0.28, 0.77), (0.0, 0.30, 0.81), (0.11, 0.28, 0.77),
             (0.22, 0.25, 0.68)]  # 31..35
_OUTER_LIPS = [(-0.38, 0.58, 0.58), (-0.25, 0.50, 0.72), (-0.10, 0.46, 0.80), (0.0, 0.48, 0.81),
               (0.10, 0.46, 0.80), (0.25, 0.50, 0.72), (0.38, 0.58, 0.58), (0.25, 0.68, 0.70),
               (0.10, 0.72, 0.77), (0.0, 0.73, 0.78), (-0.10, 0.72, 0.77), (-0.25, 0.68, 0.70)]  # 48..59
_INNER_LIPS = [(-0.32, 0.58, 0.60), (-0.10, 0.575, 0.74), (0.0, 0.58, 0.76), (0.10, 0.575, 0.74),
               (0.32, 0.58, 0.60), (0.10, 0.585, 0.74), (0.0, 0.59, 0.76), (-0.10, 0.585, 0.74)]  # 60..67

# the head ellipsoid: silhouette of the skull and the normal field used for shading
SKULL_CENTER = np.array([0.0, -0.25, -0.22], np.float32)
SKULL_AXES = np.array([1.05, 1.45, 1.12], np.float32)


def _mirror(points):
    return [(-x, y, z) for x, y, z in points]


def _jaw(width: float, squareness: float, length: float) -> np.ndarray:
    """[17, 3] jaw contour from the subject's right ear level, through the chin, to the left."""
    a = np.pi * np.arange(17) / 16  # 0 .. pi
    c = np.cos(a)
    x = -width * np.sign(c) * np.abs(c) ** squareness  # squareness < 1 pushes the jaw angle out
    y = -0.30 + 1.40 * length * np.sin(a)
    z = -0.35 + 0.95 * np.sin(a) ** 0.8
    return np.stack([x, y, z], 1).astype(np.float32)


def mean_shape() -> np.ndarray:
    """[68, 3] landmark positions of the average neutral face, head coordinates."""
    brow_l = _mirror(_BROW_R)[::-1]  # 22..26, inner -> outer
    eye_l = [_mirror(_EYE_R)[i] for i in (3, 2, 1, 0, 5, 4)]  # 42..47: inner, upper x2, outer, lower x2
    pts = np.concatenate([_jaw(1.0, 0.9, 1.0), np.array(_BROW_R + brow_l + _NOSE_BRIDGE + _NOSTRILS + _EYE_R
                                                         + eye_l + _OUTER_LIPS + _INNER_LIPS, np.float32)])
    return pts.astype(np.float32)


MEAN_SHAPE = mean_shape()  # [68, 3]

# landmark index groups used by the deformations
BROW_R, BROW_L = np.arange(17, 22), np.arange(22, 27)
BROW_INNER_W = np.array([0.0, 0.25, 0.5, 0.8, 1.0], np.float32)  # weight by position, right brow order
EYE_R, EYE_L = np.arange(36, 42), np.arange(42, 48)
UPPER_LID, LOWER_LID = np.array([37, 38, 43, 44]), np.array([40, 41, 46, 47])
NOSE = np.arange(27, 36)
LIPS = np.arange(48, 68)
UPPER_LIP = np.array([49, 50, 51, 52, 53, 61, 62, 63])
LOWER_LIP_OUT, LOWER_LIP_IN = np.array([55, 56, 57, 58, 59]), np.array([65, 66, 67])
CORNERS = np.array([48, 54, 60, 64])


# -------------------------------------------------------------------- identity

@dataclass(frozen=True)
class Identity:
    """Shape and colour of one synthetic subject; all sizes are factors around 1."""

    face_width: float
    face_length: float
    jaw_square: float  # exponent of the jaw curve: < 1 square jaw, > 1 pointed chin
    eye_size: float
    eye_spacing: float
    nose_length: float
    nose_width: float
    mouth_width: float
    lip_thickness: float
    brow_height: float
    brow_thickness: float  # head units
    expressiveness: float  # scales every expression of this subject
    skin: tuple[float, float, float]  # RGB 0..255
    lips: tuple[float, float, float]
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    clothes: tuple[float, float, float]
    hair_style: int  # 0 short, 1 long, 2 fringe, 3 buzz cut
    hairline: float  # y of the hairline at the forehead middle, head units


def sample_identity(rng: np.random.Generator, variation: float = 1.0) -> Identity:
    """Draw a subject; ``variation`` scales every shape deviation from the mean face."""
    def f(sd: float) -> float:
        return float(1.0 + variation * np.clip(rng.normal(0, sd), -2.5 * sd, 2.5 * sd))

    tone = rng.uniform(0, 1)  # light .. dark skin
    skin = np.array([236, 196, 170]) * (1 - tone) + np.array([120, 80, 55]) * tone
    skin = skin * rng.uniform(0.95, 1.05, 3)
    lips = skin * np.array([0.82, 0.58, 0.58]) + np.array([25, 0, 5])
    hair_palette = np.array([[25, 20, 18], [70, 45, 30], [120, 80, 45], [190, 150, 95], [140, 60, 30],
                             [110, 105, 100]], np.float64)
    hair = hair_palette[rng.integers(len(hair_palette))] * rng.uniform(0.85, 1.15)
    iris_palette = np.array([[70, 45, 25], [40, 30, 20], [70, 110, 150], [90, 110, 70]], np.float64)
    iris = iris_palette[rng.integers(len(iris_palette))]
    return Identity(
        face_width=f(0.06), face_length=f(0.06), jaw_square=float(np.clip(0.9 + variation * rng.normal(0, 0.15),
                                                                          0.55, 1.3)),
        eye_size=f(0.10), eye_spacing=f(0.06), nose_length=f(0.10), nose_width=f(0.12), mouth_width=f(0.08),
        lip_thickness=f(0.15), brow_height=f(0.08), brow_thickness=float(rng.uniform(0.05, 0.10)),
        expressiveness=float(rng.uniform(0.8, 1.15)),
        skin=_rgb(skin), lips=_rgb(lips), hair=_rgb(hair), iris=_rgb(iris), clothes=_rgb(rng.uniform(20, 230, 3)),
        hair_style=int(rng.integers(4)), hairline=float(rng.uniform(-1.12, -0.92)),
    )


def _rgb(c) -> tuple[float, float, float]:
    c = np.clip(c, 0, 255)
    return float(c[0]), float(c[1]), float(c[2])


def identity_shape(ident: Identity) -> np.ndarray:
    """[68, 3] neutral landmarks of one subject (mean shape warped by the identity factors)."""
    p = MEAN_SHAPE.copy()
    p[:17] = _jaw(1.0, ident.jaw_square, ident.face_length)
    for eye in (EYE_R, EYE_L):  # eye size about each eye's centre, spacing by moving the centre
        c = p[eye].mean(0)
        p[eye] = c + (p[eye] - c) * ident.eye_size
        p[eye, 0] += c[0] * (ident.eye_spacing - 1.0)
    p[[28, 29, 30], 1] += (ident.nose_length - 1.0) * 0.35 * np.array([0.33, 0.66, 1.0])
    p[31:36, 1] += (ident.nose_length - 1.0) * 0.35
    p[31:36, 0] *= ident.nose_width
    p[LIPS, 0] *= ident.mouth_width
    p[[49, 50, 51, 52, 53], 1] -= (ident.lip_thickness - 1.0) * 0.05
    p[LOWER_LIP_OUT, 1] += (ident.lip_thickness - 1.0) * 0.06
    p[17:27, 1] -= (ident.brow_height - 1.0) * 0.4
    below = p[:, 1] > -0.35  # stretch the face below the eye line
    p[below, 1] = -0.35 + (p[below, 1] + 0.35) * ident.face_length
    p[:, 0] *= ident.face_width
    return p


# -------------------------------------------------------------------- expression

def deform(shape: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Apply expression controls ``e`` [16] (see expressions.PARAMS) to landmarks [68, 3]."""
    p = shape.copy()
    w_in = np.concatenate([BROW_INNER_W, BROW_INNER_W[::-1]])  # [10] inner-brow weight, 17..26
    brows = np.arange(17, 27)
    p[brows, 1] -= 0.13 * e[P["brow_inner_up"]] * w_in
    p[brows, 1] -= 0.12 * e[P["brow_outer_up"]] * (1.0 - 0.7 * w_in)
    p[brows, 1] += 0.10 * e[P["brow_lower"]] * (0.4 + 0.6 * w_in)
    p[brows, 0] -= np.sign(p[brows, 0]) * 0.06 * e[P["brow_lower"]] * w_in  # furrow: inner ends together
    p[brows, 1] += 0.03 * e[P["nose_wrinkle"]] * w_in

    wide, squint = e[P["eye_wide"]], e[P["squint"]]
    p[UPPER_LID, 1] -= 0.05 * wide if wide > 0 else 0.09 * wide  # closing lowers the upper lid more
    p[LOWER_LID, 1] += 0.02 * wide
    p[LOWER_LID, 1] -= 0.05 * squint + 0.03 * e[P["cheek_raise"]]
    p[UPPER_LID, 1] += 0.02 * squint
    p[LOWER_LID, 1] = np.maximum(p[LOWER_LID, 1], p[UPPER_LID[[1, 0, 3, 2]], 1] + 0.005)  # lids never cross

    p[31:36, 1] -= 0.04 * e[P["nose_wrinkle"]]
    p[31:36, 0] += np.sign(p[31:36, 0]) * 0.03 * e[P["nose_wrinkle"]]
    p[UPPER_LIP, 1] -= 0.03 * e[P["nose_wrinkle"]] + 0.08 * e[P["upper_lip_raise"]]
    _mouth(p, e)
    _asymmetry(p, e[P["asymmetry"]])
    return p


def _mouth(p: np.ndarray, e: np.ndarray) -> None:
    """Lip and jaw controls, in place on landmarks [68, 3]."""
    side = np.sign(p[CORNERS, 0])
    p[CORNERS, 1] += -0.10 * e[P["smile"]] + 0.09 * e[P["frown"]] + 0.02 * e[P["lip_stretch"]]
    p[CORNERS, 0] += side * (0.06 * e[P["smile"]] + 0.10 * e[P["lip_stretch"]])
    p[[49, 53, 55, 59], 1] -= 0.04 * e[P["smile"]]
    p[[49, 50, 51, 52, 53], 1] += 0.03 * e[P["lip_press"]] + 0.02 * e[P["lip_stretch"]]
    p[LOWER_LIP_OUT, 1] -= 0.04 * e[P["lip_press"]]
    # pucker: narrow and push the lips forward, fuller lips
    c = p[LIPS].mean(0)
    p[LIPS, 0] = c[0] + (p[LIPS, 0] - c[0]) * (1.0 - 0.35 * e[P["pucker"]])
    p[LIPS, 2] += 0.12 * e[P["pucker"]]
    jaw = e[P["jaw_drop"]]
    p[LOWER_LIP_OUT, 1] += 0.32 * jaw
    p[LOWER_LIP_IN, 1] += 0.30 * jaw
    p[CORNERS, 1] += 0.12 * jaw
    p[LIPS, 0] = c[0] + (p[LIPS, 0] - c[0]) * (1.0 - 0.08 * jaw)
    chin_w = np.sin(np.pi * np.arange(17) / 16) ** 2  # [17] 1 at the chin, 0 at the ears
    p[:17, 1] += 0.30 * jaw * chin_w


def _asymmetry(p: np.ndarray, a: float) -> None:
    """One-sided smirk and raised brow on the subject's right (image left in a frontal view)."""
    p[[48, 60], 1] -= 0.10 * a
    p[[48, 60], 0] -= 0.04 * a
    p[[49, 59], 1] -= 0.04 * a
    p[BROW_R, 1] -= 0.10 * a * np.linspace(0.5, 1.0, 5)


# -------------------------------------------------------------------- camera

def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """[3, 3] head -> camera rotation; sign conventions in the module docstring."""
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rx @ ry @ rz


# the point kept at the image centre: between the eyes and the mouth, on the face surface
CROP_CENTER = np.array([0.0, 0.15, 0.45], np.float32)


@dataclass(frozen=True)
class Camera:
    """Orthographic camera: pixel = centre + scale * (R @ (point - CROP_CENTER))[:2]."""

    rot: np.ndarray  # [3, 3] head -> camera
    scale: float  # pixels per head unit
    size: int  # image side, pixels

    def to_camera(self, pts: np.ndarray) -> np.ndarray:
        """[N, 3] head coordinates -> [N, 3] camera coordinates (x right, y down, z toward camera)."""
        return (pts - CROP_CENTER) @ self.rot.T

    def project(self, pts: np.ndarray) -> np.ndarray:
        """[N, 3] head coordinates -> [N, 2] (x, y) pixels, pixel centres at integers."""
        return (self.size - 1) / 2.0 + self.scale * self.to_camera(pts)[:, :2]


def make_camera(yaw_deg: float, pitch_deg: float, size: int, face_scale: float = 1.0,
                jitter_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Camera:
    """Camera for a pose; ``jitter_deg`` (yaw, pitch, roll) is the subject's own small head motion."""
    head = rotation(*jitter_deg)
    return Camera(rot=rotation(yaw_deg, pitch_deg) @ head, scale=face_scale * size / 3.0, size=size)
