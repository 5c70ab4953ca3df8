"""Official crop geometry on real faces, and the causal smoothed live crop on a real clip."""

from __future__ import annotations

import itertools

import av
import cv2
import numpy as np
import pytest
from skimage import data

from lpstream.errors import ImageError
from lpstream.face.crop import (
    DRIVING_SCALE,
    DRIVING_SHIFT_UP,
    EXTENT_INDICES,
    SOURCE_SCALE,
    SOURCE_SHIFT_UP,
    CropBox,
    LiveCropper,
    apply_transform,
    crop_source,
    driving_box,
    eye_centres,
)
from lpstream.face.landmarks import FaceLandmarks, LandmarkDetector
from lpstream.face.smoothing import OneEuroFilter
from tests.conftest import shared_file

CLIP_FRAMES = 150


@pytest.fixture(scope="module")
def still_detector():
    with LandmarkDetector(max_faces=1, video_mode=False) as detector:
        yield detector


@pytest.fixture(scope="module")
def clip_landmarks() -> list[FaceLandmarks]:
    """Landmarks of the first frames of d3.mp4 (a person talking and moving their head)."""
    result = []
    with av.open(str(shared_file("media/d3.mp4"))) as container:
        frames = itertools.islice(container.decode(video=0), CLIP_FRAMES)
        with LandmarkDetector(max_faces=1) as detector:
            for index, frame in enumerate(frames):
                faces = detector.detect(frame.to_ndarray(format="rgb24"), 33 * index)
                assert faces, f"no face in d3.mp4 frame {index}"
                result.append(faces[0])
    return result


def rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def portraits() -> dict[str, np.ndarray]:
    images = {"astronaut": data.astronaut(), "astronaut_rot25": rotated(data.astronaut(), 25)}
    images["astronaut_rot-30"] = rotated(data.astronaut(), -30)
    for name in ("mona_lisa", "einstein"):
        images[name] = cv2.imread(str(shared_file(f"media/{name}.jpg")))[:, :, ::-1].copy()
    return images


@pytest.mark.parametrize("name", ["astronaut", "astronaut_rot25", "astronaut_rot-30", "einstein"])
def test_source_crop_follows_the_official_geometry(still_detector, name: str) -> None:
    image = portraits()[name]
    face = still_detector.detect(image)[0]
    result = crop_source(image, face, size=512)
    assert result.image.shape == (512, 512, 3) and result.image.dtype == np.uint8
    # By definition: the face's extent points span a square of side 512 / 2.3 whose centre
    # sits 0.125 × 512 below the crop centre (the box was shifted up by that much).
    extent = result.points[EXTENT_INDICES]
    low, high = extent.min(0), extent.max(0)
    assert max(high - low) == pytest.approx(512 / SOURCE_SCALE, rel=1e-3)
    centre = (low + high) / 2
    np.testing.assert_allclose(centre, [256, 256 + SOURCE_SHIFT_UP * 512], atol=0.5)
    # Eyes land level, symmetric about the vertical centre line, a little above the middle.
    eyes = apply_transform(result.original_to_crop, eye_centres(face))
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.03 * 512 or name == "einstein"
    assert abs(eyes.mean(0)[0] - 256) < 0.06 * 512
    assert 0.40 * 512 < eyes.mean(0)[1] < 0.52 * 512
    assert eyes[0, 0] < eyes[1, 0]  # image-left eye stays on the left
    mouth = result.points[[61, 291]].mean(0)
    assert abs(mouth[0] - eyes.mean(0)[0]) < 1.0  # eye→mouth line made vertical
    assert mouth[1] > eyes.mean(0)[1] + 0.12 * 512


def test_source_crop_undoes_in_plane_rotation(still_detector) -> None:
    images = portraits()
    upright = crop_source(images["astronaut"], still_detector.detect(images["astronaut"])[0])
    for name in ("astronaut_rot25", "astronaut_rot-30"):
        face = still_detector.detect(images[name])[0]
        turned = crop_source(images[name], face)
        # Same face, same crop: landmarks agree in crop pixels and the pictures match.
        assert np.median(np.linalg.norm(turned.points - upright.points, axis=1)) < 6.0
        centre = np.s_[128:384, 128:384]
        difference = np.abs(turned.image[centre].astype(int) - upright.image[centre])
        assert difference.mean() < 20


def test_transforms_are_inverse_and_paste_back_restores_the_face(still_detector) -> None:
    image = portraits()["mona_lisa"]
    face = still_detector.detect(image)[0]
    result = crop_source(image, face, size=512)
    forward, backward = result.original_to_crop, result.crop_to_original
    np.testing.assert_allclose(backward @ forward, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(forward @ backward, np.eye(3), atol=1e-9)
    height, width = image.shape[:2]
    pasted = cv2.warpAffine(result.image, result.crop_to_original[:2], (width, height))
    x0, y0, x1, y1 = (int(v) for v in face.bbox())
    region = np.s_[y0:y1, x0:x1]
    # The crop is a downscale (face ~1/2.3 of 512 px) so paste-back blurs a little, no more.
    assert np.abs(pasted[region].astype(int) - image[region]).mean() < 12


def test_landmarks_found_again_in_the_crop_agree(still_detector) -> None:
    image = portraits()["einstein"]
    result = crop_source(image, still_detector.detect(image)[0], size=512)
    refound = still_detector.detect(result.image)[0]
    errors = np.linalg.norm(refound.xy() - result.points, axis=1)
    assert np.median(errors) < 5.0  # pixels in a 512 crop


def test_driving_box_is_unrotated_scale_2_2_shifted_up_0_1(clip_landmarks) -> None:
    face = clip_landmarks[0]
    box = driving_box(face)
    crop_points = apply_transform(box.original_to_crop(256), face.points)
    extent = crop_points[EXTENT_INDICES]
    low, high = extent.min(0), extent.max(0)
    # Unrotated: the box is axis-aligned, so its matrix has no shear/rotation terms.
    matrix = box.original_to_crop(256)
    assert matrix[0, 1] == 0 and matrix[1, 0] == 0 and matrix[0, 0] == matrix[1, 1]
    # d3's head is nearly upright, so the rotated-frame extent ≈ the axis-aligned one.
    assert max(high - low) == pytest.approx(256 / DRIVING_SCALE, rel=0.05)
    assert (low + high)[1] / 2 == pytest.approx(128 + DRIVING_SHIFT_UP * 256, abs=4)
    crop = LiveCropper.crop(np.zeros((512, 512, 3), np.uint8), box, 256)
    assert crop.shape == (256, 256, 3)


def smoothed_and_raw(landmarks: list[FaceLandmarks]) -> tuple[np.ndarray, np.ndarray]:
    cropper = LiveCropper(fps=30)
    smoothed = [cropper.update(face, index / 30) for index, face in enumerate(landmarks)]
    raw = np.array([driving_box(face).as_array() for face in landmarks])
    return np.array([box.as_array() for box in smoothed]), raw


def test_smoothing_reduces_jitter_with_bounded_lag(clip_landmarks) -> None:
    smoothed, raw = smoothed_and_raw(clip_landmarks)
    face_size = raw[:, 2].mean()
    # Jitter = frame-to-frame change of the box's velocity (second difference): a steady head
    # motion has none, detection noise has a lot.
    raw_jitter = np.abs(np.diff(raw, n=2, axis=0)).mean(0) / face_size
    smooth_jitter = np.abs(np.diff(smoothed, n=2, axis=0)).mean(0) / face_size
    assert np.all(smooth_jitter < 0.5 * raw_jitter), (raw_jitter, smooth_jitter)
    # Plain frame-to-frame motion shrinks too, most of all the size, which the official
    # offline crop keeps constant for a whole video.
    raw_motion = np.abs(np.diff(raw, axis=0)).mean(0)
    smooth_motion = np.abs(np.diff(smoothed, axis=0)).mean(0)
    assert np.all(smooth_motion < raw_motion) and smooth_motion[2] < 0.5 * raw_motion[2]
    # ...while the smoothed box stays close to the per-frame box.
    deviation = np.abs(smoothed - raw) / face_size
    assert deviation.mean() < 0.02 and deviation.max() < 0.08, deviation.max(0)


def test_lag_on_a_steady_pan_is_bounded(clip_landmarks) -> None:
    # The first d3 face slid across the frame at 4 px per frame (a steady camera pan).
    base = clip_landmarks[0]
    speed = 4.0
    panned = []
    for index in range(60):
        points = base.points.copy()
        points[:, 0] += speed * index
        panned.append(FaceLandmarks(points=points, image_size=base.image_size))
    smoothed, raw = smoothed_and_raw(panned)
    lag_frames = (raw[-10:, 0] - smoothed[-10:, 0]) / speed
    assert np.all(lag_frames > 0)  # it trails the motion (no overshoot on a ramp)
    assert np.all(lag_frames < 3.0), lag_frames
    np.testing.assert_allclose(smoothed[-1, 2], raw[-1, 2], rtol=1e-6)  # size unchanged


def test_live_crop_is_causal(clip_landmarks) -> None:
    full, _ = smoothed_and_raw(clip_landmarks)
    for cut in (1, 40, 97):
        truncated, _ = smoothed_and_raw(clip_landmarks[:cut])
        np.testing.assert_array_equal(truncated, full[:cut])


def test_face_gap_short_continues_long_restarts(clip_landmarks) -> None:
    cropper = LiveCropper(fps=30, max_gap_frames=5)
    for index in range(30):
        cropper.update(clip_landmarks[index], index / 30)
    assert cropper.update(None, 30 / 30) is None
    after_short_gap = cropper.update(clip_landmarks[31], 31 / 30)
    assert after_short_gap is not None
    raw = driving_box(clip_landmarks[31])
    assert after_short_gap != raw  # still smoothing with history
    for index in range(32, 40):
        assert cropper.update(None, index / 30) is None
    after_long_gap = cropper.update(clip_landmarks[40], 40 / 30)
    restarted_at = driving_box(clip_landmarks[40]).as_array()
    np.testing.assert_allclose(after_long_gap.as_array(), restarted_at)


def test_jump_to_another_place_restarts_the_filter(clip_landmarks) -> None:
    cropper = LiveCropper(fps=30)
    for index in range(10):
        cropper.update(clip_landmarks[index], index / 30)
    far = clip_landmarks[10].points.copy()
    far[:, 0] += driving_box(clip_landmarks[10]).size  # one box to the side: another face
    moved = FaceLandmarks(points=far, image_size=clip_landmarks[10].image_size)
    box = cropper.update(moved, 10 / 30)
    np.testing.assert_allclose(box.as_array(), driving_box(moved).as_array())


def test_repeated_timestamp_neither_crashes_nor_resets(clip_landmarks) -> None:
    cropper = LiveCropper(fps=30)
    for index in range(10):
        cropper.update(clip_landmarks[index], index / 30)
    box = cropper.update(clip_landmarks[10], 9 / 30)  # same time as the previous frame
    raw = driving_box(clip_landmarks[10])
    assert box is not None and box != raw  # still smoothing, not restarted at the raw box


def test_one_euro_filter_holds_a_constant_and_follows_a_step() -> None:
    constant = OneEuroFilter(np.array([2.0, -1.0]), min_cutoff_hz=0.5, beta=1.0)
    for _ in range(20):
        np.testing.assert_allclose(constant.step(np.array([2.0, -1.0]), 1 / 30), [2.0, -1.0])
    step = OneEuroFilter(np.zeros(1), min_cutoff_hz=0.5, beta=1.0)
    values = [step.step(np.ones(1), 1 / 30)[0] for _ in range(90)]
    assert all(0 < a < b <= 1 for a, b in itertools.pairwise(values))  # monotone, no overshoot
    assert values[-1] > 0.95  # converged within 3 s
    with pytest.raises(ValueError):
        step.step(np.ones(1), 0.0)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ImageError):
        LiveCropper.crop(np.zeros((10, 10), np.uint8), CropBox(5, 5, 10))
    with pytest.raises(ValueError, match="478"):
        driving_box(np.zeros((68, 2)))
    with pytest.raises(ValueError):
        LiveCropper(fps=0)
    with pytest.raises(ValueError, match="no area"):
        driving_box(np.ones((478, 3)))
