"""Clear behaviour of the built-in backend at the edges: no face, two faces, a face leaving
and coming back, a tiny face, bad sources, and the live controls (eye, lip, head motion)."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from lpstream.backend import AvatarRenderer, Controls, MotionSender, SenderOutput
from lpstream.errors import ImageError, NoFaceError
from lpstream.face.landmarks import LandmarkDetector
from lpstream.face.ratios import eye_open_ratio, lip_open_ratio
from lpstream.meshwarp import MeshwarpRenderer, MeshwarpSender
from lpstream.meshwarp.face_motion import fit_face
from lpstream.meshwarp.pose import euler_from_rotation
from lpstream.meshwarp.topology import face_topology
from tests.conftest import shared_file

SIZE = 512


@pytest.fixture(scope="module")
def d3_frames() -> list[np.ndarray]:
    with av.open(str(shared_file("media/d3.mp4"))) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    image = cv2.cvtColor(cv2.imread(str(shared_file("media/einstein.jpg"))), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image)


@pytest.fixture
def sender():
    stage = MeshwarpSender(fps=30)
    yield stage
    stage.close()


@pytest.fixture
def renderer(portrait):
    stage = MeshwarpRenderer()
    stage.set_source(portrait)
    yield stage
    stage.close()


def _canvas(*faces: tuple[np.ndarray, int, int, int]) -> np.ndarray:
    """A grey frame with each (image, x, y, side) pasted as a square of `side` pixels."""
    canvas = np.full((SIZE, SIZE * 2, 3), 128, dtype=np.uint8)
    for image, x, y, side in faces:
        canvas[y : y + side, x : x + side] = cv2.resize(image, (side, side))
    return canvas


def _measure(image: np.ndarray) -> dict[str, float]:
    with LandmarkDetector(max_faces=1, video_mode=False) as detector:
        faces = detector.detect(image)
    assert faces, "no face in the rendered frame"
    points = faces[0].points
    pitch, yaw, _ = euler_from_rotation(fit_face(points, face_topology()).pose.rotation)
    return {
        "eye": float(eye_open_ratio(points).mean()),
        "lip": lip_open_ratio(points),
        "yaw": yaw,
        "pitch": pitch,
    }


def test_both_stages_implement_the_backend_interfaces(sender, renderer) -> None:
    assert isinstance(sender, MotionSender) and isinstance(renderer, AvatarRenderer)


def test_no_face_gives_none(sender) -> None:
    blank = np.full((240, 320, 3), 90, dtype=np.uint8)
    assert all(sender.extract(blank, t * 33) == SenderOutput(None, None) for t in range(3))


def test_two_faces_follow_the_first_one_acquired(sender, d3_frames) -> None:
    face = d3_frames[0]
    first = sender.extract(_canvas((face, 0, 0, 400), (face, 640, 100, 300)), 0)
    assert first.motion is not None and first.motion.t[0] < 0  # the larger face, on the left
    assert first.face_id is not None
    # The right-hand face grows larger, but the tracked (left) face keeps the stream.
    for step in range(1, 4):
        output = sender.extract(_canvas((face, 0, 0, 360), (face, 540, 20, 480)), step * 33)
        assert output.motion is not None and output.motion.t[0] < 0
        assert output.face_id == first.face_id
        assert "track_id" not in output.motion.extra  # the id is a field, not a diagnostic


def test_face_leaving_and_reentering(sender, d3_frames) -> None:
    blank = np.full_like(d3_frames[0], 200)
    timeline = [*d3_frames[:5], *[blank] * 25, *d3_frames[5:10]]
    outputs = [sender.extract(frame, index * 33) for index, frame in enumerate(timeline)]
    motions = [output.motion for output in outputs]
    assert all(m is not None for m in motions[:5])
    # A short gap repeats the last motion (no glitch), a long one gives None ...
    assert all(m is not None and m.extra["face_present"] == 0.0 for m in motions[5:8])
    assert all(m is None for m in motions[9:30])
    # ... and the face is picked up again when it comes back.
    back = [m for m in motions[30:] if m is not None]
    assert len(back) >= 4 and all(m.extra["face_present"] == 1.0 for m in back)
    # The face id is kept while no face is seen; re-entry after the long gap is a new face.
    assert outputs[20].face_id == outputs[0].face_id is not None
    assert outputs[-1].face_id is not None and outputs[-1].face_id != outputs[0].face_id
    sender.reset()
    assert sender.extract(blank, 2000).face_id is None


def test_tiny_face_is_ignored(sender, d3_frames) -> None:
    canvas = np.full((720, 1280, 3), 128, dtype=np.uint8)
    canvas[300:330, 600:630] = cv2.resize(d3_frames[0], (30, 30), interpolation=cv2.INTER_AREA)
    assert all(sender.extract(canvas, t * 33).motion is None for t in range(3))


def test_source_without_a_face_is_refused() -> None:
    renderer = MeshwarpRenderer()
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError, match="no face"):
        renderer.set_source(noise)
    with pytest.raises(ImageError):
        renderer.set_source(noise.astype(np.float32))
    with pytest.raises(RuntimeError, match="set_source"):
        MeshwarpRenderer().render(None)  # type: ignore[arg-type]
    renderer.close()


def test_tiny_source_face_is_refused(portrait) -> None:
    small = cv2.resize(portrait, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 512, 3), 128, dtype=np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small
    renderer = MeshwarpRenderer()
    with LandmarkDetector(max_faces=1, video_mode=False) as detector:
        faces = detector.detect(canvas)
    if faces:  # MediaPipe found it: the renderer must refuse it as too small
        with pytest.raises(NoFaceError, match="px"):
            renderer.set_source_landmarks(canvas, faces[0])
    else:
        with pytest.raises(NoFaceError):
            renderer.set_source(canvas)
    renderer.close()


def test_first_motion_is_the_reference(sender, renderer, portrait, d3_frames) -> None:
    motion = sender.extract(d3_frames[0], 0).motion
    first = renderer.render(motion)
    # Rendering the reference motion reproduces the source (no expression, no pose change).
    assert np.abs(first.astype(np.int16) - portrait).mean() < 1.0
    assert first.shape == portrait.shape and first.dtype == np.uint8


def test_broken_motion_is_refused(sender, renderer, d3_frames) -> None:
    motion = sender.extract(d3_frames[0], 0).motion
    before = renderer.render(motion)
    broken = motion.copy()
    broken.exp[3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        renderer.render(broken)
    # Still usable, and the refused motion changed nothing (not even the reference pose).
    np.testing.assert_array_equal(renderer.render(motion), before)


def test_eye_and_lip_controls_override_the_driver(sender, renderer, d3_frames) -> None:
    neutral = sender.extract(d3_frames[0], 0).motion
    renderer.render(neutral)
    base = _measure(renderer.render(neutral))
    closed = _measure(renderer.render(neutral, Controls(eye_open=0.0)))
    assert closed["eye"] < 0.5 * base["eye"]
    opened = _measure(renderer.render(neutral, Controls(lip_open=0.5)))
    assert opened["lip"] > base["lip"] + 0.15


def test_head_motion_multiplier_scales_the_turn(sender, renderer, d3_frames) -> None:
    outputs = [sender.extract(frame, index * 33) for index, frame in enumerate(d3_frames[:30])]
    motions = [output.motion for output in outputs]
    renderer.render(motions[0])
    turned = max(motions, key=lambda m: abs(m.yaw - motions[0].yaw))
    assert abs(turned.yaw - motions[0].yaw) > 8  # d3 turns its head early on
    base = _measure(renderer.render(motions[0]))["yaw"]
    still = _measure(renderer.render(turned, Controls(head_motion=0.0)))["yaw"]
    full = _measure(renderer.render(turned, Controls(head_motion=1.0)))["yaw"]
    assert abs(still - base) < 3 < abs(full - base)
