"""Face detection and cropping: detectors on JAFFE, plain and eye-distance crops."""
from __future__ import annotations


import numpy as np
import pytest

from _fixtures import SHARED_DATA
from fape.cli import UserError
from fape.data import faces
from fape.data.format import load_image

DATA = SHARED_DATA  # FAPE_SHARED_DATA, else beside the repository
JAFFE = DATA / "jaffe" / "KA.AN1.39.tiff"
needs_jaffe = pytest.mark.skipif(not JAFFE.is_file(), reason=f"JAFFE not found at {JAFFE.parent}")


def synthetic_landmarks(angle_deg: float) -> np.ndarray:
    """[68, 2] pixels: a face whose eyes are 60 px apart (outer corners), rotated by ``angle_deg``."""
    rng = np.random.default_rng(0)
    lm = rng.uniform(-40, 40, (68, 2))
    lm[36:42] = [[-30, 0], [-25, -3], [-20, -3], [-15, 0], [-20, 3], [-25, 3]]  # image-left eye
    lm[42:48] = [[15, 0], [20, -3], [25, -3], [30, 0], [25, 3], [20, 3]]  # image-right eye
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (lm @ rot.T + (120, 100)).astype(np.float32)


@pytest.mark.parametrize("angle", [0.0, 12.0, -20.0])
def test_eye_crop_geometry(angle):
    lm = synthetic_landmarks(angle)
    matrix, (w, h) = faces.eye_crop_transform(lm)
    pts = lm.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]  # landmarks in crop pixels
    left, right = faces.eye_centres(pts)
    e2e = 60.0
    assert left[1] == pytest.approx(right[1], abs=1e-3)  # eyes level
    assert left[1] == pytest.approx(0.9 * e2e, abs=1e-3)  # 0.9 e2e above the eyes
    assert h - left[1] == pytest.approx(1.35 * e2e, abs=1)  # 1.35 e2e below
    assert pts[36, 0] == pytest.approx(0.62 * e2e, abs=1e-3)  # 0.62 e2e beside each outer corner
    assert w - pts[45, 0] == pytest.approx(0.62 * e2e, abs=1)
    assert w / h == pytest.approx(2.24 / 2.25, abs=0.02)  # about square


def test_warp_crop_keeps_channel_layout():
    img = np.arange(100 * 80, dtype=np.uint8).reshape(100, 80, 1)
    matrix, size = faces.square_crop_transform(np.array([10, 20, 50, 60]))
    out = faces.warp_crop(img, matrix, size)
    assert out.shape == (48, 48, 1)
    assert out[24, 24, 0] == img[40, 30, 0]  # box centre -> crop centre


def test_no_face_gives_none_and_empty_boxes():
    blank = np.full((120, 120, 3), 128, np.uint8)
    assert faces.crop_face(blank, "haar") is None
    assert faces.detect_faces(blank, "dlib").shape == (0, 4)


def test_mtcnn_missing_names_install_command(monkeypatch):
    monkeypatch.setattr(faces.importlib.util, "find_spec", lambda name: None)
    faces.mtcnn_detector.cache_clear()
    with pytest.raises(UserError, match=r"fape-faces\[mtcnn\]"):
        faces.detect_faces(np.zeros((64, 64), np.uint8), "mtcnn")
    with pytest.raises(UserError, match="unknown face detector"):
        faces.detect_faces(np.zeros((64, 64), np.uint8), "sfd")


@pytest.mark.realdata
@needs_jaffe
@pytest.mark.parametrize("method", ["haar", "dlib"])
def test_crop_face_on_jaffe(method):
    img = load_image(JAFFE, 1)  # [256, 256, 1]
    boxes = faces.detect_faces(img, method)
    assert len(boxes) >= 1 and boxes.dtype == np.float32
    crop = faces.crop_face(img, method)
    assert crop is not None and crop.ndim == 3 and crop.shape[2] == 1
    assert crop.shape[0] == crop.shape[1]
    assert 90 <= crop.shape[0] < 256  # face-sized, smaller than the image


@pytest.mark.realdata
@needs_jaffe
def test_eye_crop_on_jaffe_is_level_and_square():
    img = load_image(JAFFE, 1)[:, :, 0]
    crop = faces.crop_face(img, "dlib", eye_crop=True)
    assert crop is not None and crop.ndim == 2
    h, w = crop.shape
    assert abs(h - w) <= 3 and 120 <= w < 256  # 2.24 x 2.25 e2e, e2e ~ 85 px on JAFFE
    lm = faces.landmarks_in_box(crop, faces.detect_faces(crop, "dlib")[0])
    left, right = faces.eye_centres(lm)
    assert abs(left[1] - right[1]) < 3  # eyes level after the rotation


@pytest.mark.realdata
@needs_jaffe
def test_detect_faces_sorted_by_area():
    img = load_image(JAFFE, 1)[:, :, 0]
    small = img[::2, ::2]  # the same face at half size
    canvas = np.full((256, 512), 128, np.uint8)
    canvas[:, 256:] = img
    canvas[64:192, 32:160] = small
    boxes = faces.detect_faces(canvas, "dlib", upsample=1)
    assert len(boxes) == 2
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert area[0] > area[1] and boxes[0, 0] >= 256  # the full-size face first
