"""LandmarkDetector on real faces: model lookup, pixel landmarks, no face, two faces, timestamps."""

from __future__ import annotations

import hashlib
import itertools
import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage import data

from lpstream.errors import ImageError, ModelFileError
from lpstream.face.landmarks import (
    MODEL_ENV_VAR,
    MODEL_SHA256,
    FaceLandmarks,
    LandmarkDetector,
    find_face_landmarker_model,
)
from tests.conftest import shared_file


def decode(path: Path, count: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        frames = container.decode(video=0)
        return [frame.to_ndarray(format="rgb24") for frame in itertools.islice(frames, count)]


@pytest.fixture(scope="module")
def still_detector():
    with LandmarkDetector(max_faces=2, video_mode=False) as detector:
        yield detector


def test_packaged_model_is_found_and_verified() -> None:
    path = find_face_landmarker_model()
    assert path.name == "face_landmarker.task"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MODEL_SHA256


def test_env_override_with_wrong_file_names_the_fix(tmp_path, monkeypatch) -> None:
    corrupt = tmp_path / "face_landmarker.task"
    corrupt.write_bytes(b"not a model")
    monkeypatch.setenv(MODEL_ENV_VAR, str(corrupt))
    with pytest.raises(ModelFileError, match=r"reinstall lpstream .*LPSTREAM_FACE_LANDMARKER"):
        find_face_landmarker_model()
    monkeypatch.setenv(MODEL_ENV_VAR, str(tmp_path / "absent.task"))
    with pytest.raises(ModelFileError, match="missing"):
        LandmarkDetector()


def test_env_override_with_the_right_file_is_used(tmp_path, monkeypatch) -> None:
    copy = tmp_path / "my_landmarker.task"
    shutil.copyfile(find_face_landmarker_model(), copy)
    monkeypatch.setenv(MODEL_ENV_VAR, str(copy))
    assert find_face_landmarker_model() == copy


def test_astronaut_landmarks_are_in_pixels(still_detector) -> None:
    image = data.astronaut()
    faces = still_detector.detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.points.shape == (478, 3) and face.points.dtype == np.float32
    assert face.image_size == (512, 512)
    x0, y0, x1, y1 = face.bbox()
    # The astronaut's face sits in the upper middle of the picture, about 90 px wide.
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200
    assert 60 < face.size() < 140
    # Nose tip (vertex 1) lies inside the box; eyes (33, 263) above the mouth (13).
    assert x0 < face.points[1, 0] < x1
    assert face.points[33, 1] < face.points[13, 1] and face.points[263, 1] < face.points[13, 1]
    # z is in pixel scale: depth spread of a face is tens of pixels, not fractions.
    assert 10 < np.ptp(face.points[:, 2]) < 200


def test_landmarks_scale_with_the_image(still_detector) -> None:
    image = data.astronaut()
    small = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    big_face = still_detector.detect(image)[0]
    small_face = still_detector.detect(small)[0]
    assert small_face.image_size == (256, 256)
    np.testing.assert_allclose(small_face.xy() * 2.0, big_face.xy(), atol=6.0)


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_no_face_gives_empty_list(still_detector, kind: str) -> None:
    rng = np.random.default_rng(0)
    image = (
        np.full((480, 640, 3), 128, np.uint8)
        if kind == "blank"
        else rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    )
    assert still_detector.detect(image) == []


def test_two_faces_largest_first(still_detector) -> None:
    portrait = cv2.imread(str(shared_file("media/einstein.jpg")))[:, :, ::-1]
    big = cv2.resize(portrait, (300, 400), interpolation=cv2.INTER_AREA)
    small = cv2.resize(portrait, (225, 300), interpolation=cv2.INTER_AREA)
    canvas = np.full((400, 560, 3), 200, np.uint8)
    canvas[:, 260:] = big  # larger face on the right
    canvas[50:350, :225] = small
    faces = still_detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area() > faces[1].area()
    assert faces[0].centre()[0] > 260 > faces[1].centre()[0]
    assert faces[0].size() / faces[1].size() == pytest.approx(400 / 300, rel=0.1)


def test_video_mode_tracks_a_real_clip_and_tolerates_repeated_timestamps() -> None:
    frames = decode(shared_file("media/d0.mp4"), 12)
    with LandmarkDetector(max_faces=1) as detector:
        faces = [detector.detect(frame, 40 * index) for index, frame in enumerate(frames)]
        assert all(len(found) == 1 for found in faces)
        centres = np.array([found[0].centre() for found in faces])
        # A talking head: the face moves only a little between consecutive frames.
        assert np.abs(np.diff(centres, axis=0)).max() < 15.0
        # Going back in time (a looped file) or repeating a timestamp must not raise.
        again = detector.detect(frames[0], 0)
        same = detector.detect(frames[1], 0)
        assert len(again) == 1 and len(same) == 1
        assert detector.detect(frames[2]) != []  # no timestamp: monotonic clock


def test_bad_images_raise_image_error(still_detector) -> None:
    with pytest.raises(ImageError):
        still_detector.detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(ImageError):
        still_detector.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ImageError):
        still_detector.detect(np.zeros((64, 64, 4), np.uint8))


def test_closed_detector_refuses_and_thread_count_is_explicit() -> None:
    detector = LandmarkDetector(video_mode=False)
    detector.close()
    detector.close()
    with pytest.raises(RuntimeError, match="closed"):
        detector.detect(data.astronaut())
    with pytest.raises(ValueError, match="thread"):
        LandmarkDetector(num_threads=2)


def test_face_landmarks_validates_shape() -> None:
    with pytest.raises(ValueError, match="478"):
        FaceLandmarks(points=np.zeros((68, 3), np.float32), image_size=(10, 10))


def test_a_dropped_detector_is_closed_at_a_safe_point_not_by_the_collector() -> None:
    import gc

    from lpstream.face import landmarks as module

    dropped = LandmarkDetector(max_faces=1)
    raw = dropped._landmarker
    del dropped
    gc.collect()
    # The collector only recorded it: the MediaPipe object is still referenced, not closed.
    assert id(raw) in module._LIVE_LANDMARKERS
    with LandmarkDetector(max_faces=1):
        assert id(raw) not in module._LIVE_LANDMARKERS  # closed when the next one was made
    del raw
