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


# ---------------------------------------------------------------- eye crop of pre-cropped faces
ASTRONAUT_HAAR = np.array([177, 66, 272, 161], np.float32)  # OpenCV Haar box of skimage's astronaut


@pytest.fixture(scope="module")
def astronaut_gray():
    skdata = pytest.importorskip("skimage.data", reason="scikit-image (a face-alignment dependency) is absent")
    return faces.to_gray(skdata.astronaut())  # [512, 512], one frontal face


def fer_style(gray: np.ndarray, box: np.ndarray, side: int = 48) -> np.ndarray:
    """A FER2013-like crop: the square 1.2 x the Haar box, resized to ``side`` (area)."""
    import cv2

    matrix, size = faces.square_crop_transform(box)
    return cv2.resize(faces.warp_crop(gray, matrix, size), (side, side), interpolation=cv2.INTER_AREA)


def test_eye_crop_of_a_precropped_face_matches_the_crop_made_from_the_full_image(astronaut_gray):
    """Training crops (eye crop of a 48 px FER-style crop, landmarks in the fixed inset) and
    ``fape predict``'s crops (eye crop from the full frame's Haar box) must frame a face alike."""
    import cv2

    small = fer_style(astronaut_gray, ASTRONAUT_HAAR)  # [48, 48]
    train_crop = faces.crop_face(small, "dlib", eye_crop=True, assume_cropped=True)
    full_crop = faces.crop_face(astronaut_gray, "haar", eye_crop=True)
    assert train_crop is not None and full_crop is not None
    a = cv2.resize(train_crop, (48, 48), interpolation=cv2.INTER_AREA).astype(np.float64)
    b = cv2.resize(full_crop, (48, 48), interpolation=cv2.INTER_AREA).astype(np.float64)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
    # and the eye crop is not the plain crop: the framing changed (tighter, eyes placed by e2e)
    assert np.corrcoef(a.ravel(), small.astype(np.float64).ravel())[0, 1] < 0.9


def test_eye_crop_of_a_precropped_face_levels_a_tilted_face(astronaut_gray):
    import cv2

    h, w = astronaut_gray.shape
    tilt = cv2.getRotationMatrix2D((224.5, 113.5), 12.0, 1.0)  # about the face centre, degrees
    tilted = cv2.warpAffine(astronaut_gray, tilt, (w, h), borderMode=cv2.BORDER_REPLICATE)
    small = fer_style(tilted, ASTRONAUT_HAAR, side=96)
    before = faces.landmarks_in_box(small, faces.inset_box(96, 96))
    crop = faces.crop_face(small, "dlib", eye_crop=True, assume_cropped=True)
    after = faces.landmarks_in_box(crop, faces.inset_box(*crop.shape))
    tilt_of = lambda lm: np.degrees(np.arctan2(*(faces.eye_centres(lm)[1] - faces.eye_centres(lm)[0])[::-1]))
    assert abs(tilt_of(before)) > 8  # the input is tilted ...
    assert abs(tilt_of(after)) < 3  # ... and the crop is level


def test_assume_cropped_needs_the_eye_crop_and_a_blank_image_has_no_face():
    with pytest.raises(ValueError, match="eye_crop"):
        faces.crop_face(np.zeros((48, 48), np.uint8), "dlib", assume_cropped=True)
    assert faces.crop_face(np.full((48, 48), 90, np.uint8), "dlib", eye_crop=True, assume_cropped=True) is None


def test_predictor_box_maps_haar_boxes_only():
    box = np.array([100, 100, 200, 200], np.float32)
    np.testing.assert_allclose(faces.predictor_box(box, "haar"), [107, 112, 194, 199])  # HAAR_TO_HOG
    np.testing.assert_array_equal(faces.predictor_box(box, "dlib"), box)
    np.testing.assert_array_equal(faces.predictor_box(box, "mtcnn"), box)
    np.testing.assert_allclose(faces.inset_box(48, 100), [8, 6.24, 90, 45.12], rtol=1e-6)  # CROPPED_INSET


def test_precropped_faces_follow_the_models_crop(astronaut_gray):
    from fape.data.dataset import resize_image
    from fape.data.preprocess import Preprocess, precropped_faces

    small = fer_style(astronaut_gray, ASTRONAUT_HAAR)[:, :, None]  # [48, 48, 1]
    blank = np.full((48, 48, 1), 7, np.uint8)
    batch = np.stack([small, blank])
    square, done = precropped_faces(batch, Preprocess(40, 1, "square"))
    assert done.all()
    np.testing.assert_array_equal(square[0], resize_image(small, (40, 40)))  # a plain resize
    eye, done = precropped_faces(batch, Preprocess(40, 1, "eye"))
    assert eye.shape == (2, 40, 40, 1) and done.tolist() == [True, False]
    crop = faces.crop_face(small, "dlib", eye_crop=True, assume_cropped=True)
    np.testing.assert_array_equal(eye[0], resize_image(crop, (40, 40)))
    np.testing.assert_array_equal(eye[1], resize_image(blank, (40, 40)))  # no face: whole image
