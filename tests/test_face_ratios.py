"""Eye/lip-open ratios on real frames of d0.mp4 (mouth closed, mouth open, a blink)."""

from __future__ import annotations

import itertools

import av
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpstream.face.landmarks import LandmarkDetector
from lpstream.face.ratios import eye_open_ratio, lip_open_ratio
from tests.conftest import shared_file

# d0.mp4 (25 fps): frames 0-15 neutral with closed mouth, 24-63 a wide smile with open lips,
# 66 a blink (checked by eye on the decoded frames).
CLOSED_MOUTH = (0, 8)
OPEN_MOUTH = (30, 45)
BLINK = 66
OPEN_EYES = (0, 45)


@pytest.fixture(scope="module")
def d0_points() -> dict[int, np.ndarray]:
    wanted = set(CLOSED_MOUTH + OPEN_MOUTH + OPEN_EYES + (BLINK,))
    points: dict[int, np.ndarray] = {}
    with av.open(str(shared_file("media/d0.mp4"))) as container:
        frames = itertools.islice(container.decode(video=0), max(wanted) + 1)
        with LandmarkDetector(max_faces=1) as detector:
            for index, frame in enumerate(frames):
                faces = detector.detect(frame.to_ndarray(format="rgb24"), 40 * index)
                if index in wanted:
                    assert faces, f"no face in d0.mp4 frame {index}"
                    points[index] = faces[0].points
    return points


def test_lip_ratio_separates_open_from_closed(d0_points) -> None:
    closed = [lip_open_ratio(d0_points[i]) for i in CLOSED_MOUTH]
    opened = [lip_open_ratio(d0_points[i]) for i in OPEN_MOUTH]
    assert max(closed) < 0.05
    assert min(opened) > 0.12
    assert min(opened) > 4 * max(closed)


def test_eye_ratio_drops_in_a_blink(d0_points) -> None:
    blink = eye_open_ratio(d0_points[BLINK])
    assert blink.shape == (2,) and blink.dtype == np.float32
    for index in OPEN_EYES:
        opened = eye_open_ratio(d0_points[index])
        assert np.all(opened > 0.2)
        assert np.all(blink < 0.35 * opened)


def test_ratios_match_official_ranges(d0_points) -> None:
    # Real LivePortrait motion (../shared/motion) has open eyes at ~0.25-0.45 and a closed
    # mouth near 0: the MediaPipe ratios must live on the same scale to drive its MLPs.
    opened = eye_open_ratio(d0_points[0])
    assert np.all((0.2 < opened) & (opened < 0.5))
    assert lip_open_ratio(d0_points[0]) < 0.05


@settings(max_examples=25, deadline=None)
@given(
    angle=st.floats(-180, 180),
    scale=st.floats(0.2, 5.0),
    shift=st.tuples(st.floats(-500, 500), st.floats(-500, 500)),
)
def test_ratios_are_similarity_invariant(d0_points, angle, scale, shift) -> None:
    points = d0_points[OPEN_MOUTH[0]]
    matrix = cv2.getRotationMatrix2D((0.0, 0.0), angle, scale)
    moved = points.copy()
    moved[:, :2] = points[:, :2] @ matrix[:, :2].T + np.array(shift)
    np.testing.assert_allclose(eye_open_ratio(moved), eye_open_ratio(points), rtol=1e-3)
    assert lip_open_ratio(moved) == pytest.approx(lip_open_ratio(points), rel=1e-3)


def test_ratios_reject_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="478"):
        eye_open_ratio(np.zeros((68, 2)))
    with pytest.raises(ValueError, match="478"):
        lip_open_ratio(np.zeros((478,)))
