"""Face detection (OpenCV Haar, dlib HOG, MTCNN) and face cropping, including the eye-distance crop.

Boxes are ``[K, 4]`` float32 ``(x0, y0, x1, y1)`` pixels, sorted by area, largest first. Detectors
and the dlib shape predictor are loaded once per process and cached (they take ~0.1-1 s to load).
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from fape.errors import UserError

METHODS = ("haar", "dlib", "mtcnn")
CROP_ENLARGE = 1.2  # side of the square crop / longest side of the detected box
# Eye-distance crop (cascaded fine-tuning paper, in units of e2e = outer-eye-corner distance):
# sides 0.62 beyond each outer eye corner, top 0.9 above and bottom 1.35 below the eye line.
EYE_SIDE, EYE_TOP, EYE_BOTTOM = 0.62, 0.9, 1.35
PREDICT_SIDE = 160  # px: smaller face boxes are upsampled before the shape predictor
# Pre-cropped faces (FER2013, CK+48; --assume-cropped): the face box is the image inset by these
# fractions of its width/height (left, top, right, bottom). Measured on FER2013 and CK+48 48x48 crops:
# where dlib HOG finds the face (on 4x upsampled images) its box sits about this far inside the crop,
# and of the insets tried (0, uniform 0.05/0.08/0.10, these) these give landmarks closest to the
# HOG-box landmarks.
CROPPED_INSET = (0.08, 0.13, 0.10, 0.06)
# Haar boxes are larger than HOG boxes (they include the forehead); this maps a Haar box to the
# HOG-like box the shape predictor was trained on: (x, y offsets, scale) in units of the Haar side,
# fitted on JAFFE images where both detectors fire.
HAAR_TO_HOG = (0.07, 0.12, 0.87)
# Gray-level standard deviation below which an image is blank and has no face: FER2013's 13 blank
# images have 0-0.7, the next-flattest 4.1 and then >= 9 (all 35,887 checked).
BLANK_STD = 2.0


# ---------------------------------------------------------------- model files and cached detectors
def model_file(name: str) -> Path:
    """Path of a file shipped by face-recognition-models, found without importing the package
    (its ``__init__`` imports ``pkg_resources``, which current setuptools no longer provides)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{name} needs the face-recognition-models package: pip install face-recognition-models")
    path = Path(spec.submodule_search_locations[0]) / "models" / name
    if not path.is_file():
        raise UserError(f"model file missing: {path} (reinstall face-recognition-models)")
    return path


@lru_cache(maxsize=None)
def dlib_detector():
    import dlib

    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=None)
def shape_predictor():
    import dlib

    return dlib.shape_predictor(str(model_file("shape_predictor_68_face_landmarks.dat")))


@lru_cache(maxsize=None)
def haar_cascade() -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise UserError(f"cannot load the OpenCV Haar cascade {path}")
    return cascade


@lru_cache(maxsize=None)
def mtcnn_detector():
    if importlib.util.find_spec("facenet_pytorch") is None:
        raise UserError("mtcnn detection needs facenet-pytorch: pip install 'fape-faces[mtcnn]' "
                        "(or `pip install -e \".[mtcnn]\"` in a checkout); or use haar / dlib")
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device="cpu")


# ---------------------------------------------------------------- detection
def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` RGB -> contiguous uint8 ``[H, W]``."""
    img = np.asarray(image, np.uint8)
    if img.ndim == 3:
        img = img[:, :, 0] if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(img)


def to_rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2))
    return np.ascontiguousarray(img[:, :, :3])


def detect_faces(image: np.ndarray, method: str = "haar", min_size: int | None = None,
                 upsample: int = 1) -> np.ndarray:
    """Faces in a uint8 image -> ``[K, 4]`` float32 boxes, largest first.

    ``min_size``: smallest face side in pixels (default: 1/8 of the shorter image side, at least 20).
    ``upsample``: dlib HOG pyramid upsampling (each step halves the smallest findable face, ~80 px).
    """
    if method not in METHODS:
        raise UserError(f"unknown face detector {method!r}; choose one of {', '.join(METHODS)}")
    h, w = np.asarray(image).shape[:2]
    min_size = max(20, min(h, w) // 8) if min_size is None else min_size
    if method == "haar":
        boxes = _detect_haar(to_gray(image), min_size)
    elif method == "dlib":
        boxes = _detect_dlib(to_gray(image), upsample)
    else:
        boxes = _detect_mtcnn(to_rgb(image))
    return _sorted_by_area(boxes, min_size)


def _detect_haar(gray: np.ndarray, min_size: int) -> np.ndarray:
    found = haar_cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    xywh = np.asarray(found, np.float32).reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def _detect_dlib(gray: np.ndarray, upsample: int) -> np.ndarray:
    # dlib rectangles are inclusive: right/bottom are the last pixel inside, hence +1
    rects = dlib_detector()(gray, upsample)
    return np.asarray([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float32).reshape(-1, 4)


def _detect_mtcnn(rgb: np.ndarray) -> np.ndarray:
    boxes, _ = mtcnn_detector().detect(rgb)
    return np.zeros((0, 4), np.float32) if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4)


def _sorted_by_area(boxes: np.ndarray, min_size: int) -> np.ndarray:
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    boxes = boxes[side >= min_size]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[np.argsort(-area, kind="stable")].astype(np.float32)


def landmarks_in_box(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """dlib 68-point shape predictor inside ``box`` (x0, y0, x1, y1) -> ``[68, 2]`` float32 pixels.

    dlib returns whole pixels, so a small face (a 48x48 FER2013 crop: ~20 px between the eyes) is
    first upsampled until the box is ``PREDICT_SIDE`` px: this cuts the rounding error (~2.5% of the
    eye distance at 48 px) to a fraction of a pixel of the original image.
    """
    import dlib

    gray = to_gray(image)
    box = np.asarray(box, np.float64)
    scale = max(1, int(np.ceil(PREDICT_SIDE / max(box[2] - box[0], 1.0))))
    x0, y0, x1, y1 = _context(box, gray.shape)  # the region around the box that gets upsampled
    region = gray[y0:y1, x0:x1]
    if scale > 1:
        region = cv2.resize(region, (region.shape[1] * scale, region.shape[0] * scale), interpolation=cv2.INTER_CUBIC)
    # box in region pixels; with cv2.resize, region pixel u sits at (u + 0.5) / scale - 0.5
    b = (box - (x0, y0, x0, y0) + 0.5) * scale - 0.5
    rect = dlib.rectangle(*(int(round(v)) for v in (b[0], b[1], b[2] - 1, b[3] - 1)))
    shape = shape_predictor()(np.ascontiguousarray(region), rect)
    pts = np.asarray([(p.x, p.y) for p in shape.parts()], np.float64)  # [68, 2] region pixels
    return ((pts + 0.5) / scale - 0.5 + (x0, y0)).astype(np.float32)


def inset_box(h: int, w: int) -> np.ndarray:
    """The face box ``[4]`` pixels of a pre-cropped ``h`` x ``w`` face: the image inset by ``CROPPED_INSET``."""
    left, top, right, bottom = CROPPED_INSET
    return np.array([left * w, top * h, (1 - right) * w, (1 - bottom) * h], np.float32)


def haar_to_hog(box: np.ndarray) -> np.ndarray:
    """A square Haar box ``[4]`` -> the HOG-like box the shape predictor was trained on."""
    x0, y0, x1, _ = (float(v) for v in box)
    side = x1 - x0  # Haar boxes are square
    ox, oy, scale = HAAR_TO_HOG
    nx, ny = x0 + ox * side, y0 + oy * side
    return np.array([nx, ny, nx + scale * side, ny + scale * side], np.float32)


def predictor_box(box: np.ndarray, method: str) -> np.ndarray:
    """The box to give the shape predictor for a ``method`` detection (Haar boxes are mapped)."""
    return haar_to_hog(box) if method == "haar" else np.asarray(box, np.float32)


def _context(box: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` grown by half its size on each side, clipped to the image: integer (x0, y0, x1, y1)."""
    h, w = shape
    mx, my = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    return (max(0, int(box[0] - mx)), max(0, int(box[1] - my)),
            min(w, int(np.ceil(box[2] + mx))), min(h, int(np.ceil(box[3] + my))))


# ---------------------------------------------------------------- cropping
def crop_face(image_u8: np.ndarray, method: str, eye_crop: bool = False,
              assume_cropped: bool = False) -> np.ndarray | None:
    """Crop the largest face; ``None`` when no face is found.

    Plain crop: a square ``CROP_ENLARGE`` times the detected box, centred on it (replicating edge
    pixels where it leaves the image). ``eye_crop``: dlib landmarks inside the detected box (a Haar
    box mapped to the predictor's convention), then the eye-distance box, rotated so the eyes are
    level. ``assume_cropped`` (with ``eye_crop`` only): the image is already a face crop, so the
    landmarks are found in its fixed inset (``inset_box``) and nothing is detected; ``None`` for a
    blank image. Output keeps the input's channel layout.
    """
    if assume_cropped:
        if not eye_crop:
            raise ValueError("assume_cropped only makes sense with eye_crop (a pre-cropped face has nothing to crop)")
        gray = to_gray(image_u8)
        if gray.std() < BLANK_STD:
            return None
        matrix, size = eye_crop_transform(landmarks_in_box(gray, inset_box(*gray.shape)))
        return warp_crop(image_u8, matrix, size)
    boxes = detect_faces(image_u8, method)
    if len(boxes) == 0:
        return None
    if eye_crop:
        matrix, size = eye_crop_transform(landmarks_in_box(image_u8, predictor_box(boxes[0], method)))
    else:
        matrix, size = square_crop_transform(boxes[0])
    return warp_crop(image_u8, matrix, size)


def square_crop_transform(box: np.ndarray, enlarge: float = CROP_ENLARGE) -> tuple[np.ndarray, tuple[int, int]]:
    """Affine ``[2, 3]`` mapping image pixels to the crop, and the crop size ``(width, height)``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = int(round(max(x1 - x0, y1 - y0) * enlarge))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    matrix = np.array([[1, 0, side / 2 - cx], [0, 1, side / 2 - cy]], np.float64)
    return matrix, (side, side)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left (36-41) and image-right (42-47) eyes, ``[2]`` pixels each."""
    return landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)


def eye_crop_transform(landmarks: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Eye-distance crop of ``[68, 2]`` landmarks: affine ``[2, 3]`` (rotation making the eyes level,
    then translation to the box corner) and the crop size ``(width, height)`` in pixels.

    e2e is the outer-eye-corner distance (points 36 and 45): with it the paper's box is
    (1 + 2 * 0.62) x (0.9 + 1.35) = 2.24 x 2.25 e2e, the "approximately square" box it describes.
    """
    lm = np.asarray(landmarks, np.float64)
    left, right = eye_centres(lm)
    angle = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
    mid = (left + right) / 2
    rot = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), float(angle), 1.0)  # [2, 3], eyes level
    pts = lm @ rot[:, :2].T + rot[:, 2]
    e2e = float(np.linalg.norm(lm[45] - lm[36]))
    x0 = pts[36, 0] - EYE_SIDE * e2e
    x1 = pts[45, 0] + EYE_SIDE * e2e
    y0 = mid[1] - EYE_TOP * e2e  # the rotation is about ``mid``, so the eye line stays at mid[1]
    y1 = mid[1] + EYE_BOTTOM * e2e
    rot[:, 2] -= (x0, y0)
    return rot, (int(round(x1 - x0)), int(round(y1 - y0)))


def warp_crop(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Apply a ``[2, 3]`` affine and cut ``size`` = (width, height); keeps ``[H, W, C]`` if given."""
    img = np.asarray(image, np.uint8)
    src = img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img
    out = cv2.warpAffine(src, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out[:, :, None] if img.ndim == 3 and img.shape[2] == 1 else out
