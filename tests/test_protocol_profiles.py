"""Codec profiles: LANDMARKS travels in-band, decodes within its steps, holds jitter (dead
zone), and leaves the KEYPOINTS default untouched; refitting makes a new profile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lpstream.motion import Motion
from lpstream.protocol import (
    KEYPOINTS,
    LANDMARKS,
    DecodeStatus,
    FeedbackLoop,
    MotionDecoder,
    MotionEncoder,
    ProtocolError,
)
from lpstream.protocol import motion_fields as mf
from lpstream.protocol.wire import Kind
from tests.fixtures.protocol.make_fixtures import meshwarp_motion

FIXTURES = Path(__file__).parent / "fixtures" / "protocol"
EXP_STEP = LANDMARKS.exp_step(100_000) * mf.UNIT
EXP_STEPS = (
    np.array([LANDMARKS.step(mf.EXP0 + i, 100_000) for i in range(mf.NUM_EXP)]).reshape(-1, 3)
    * mf.UNIT
)
"""Per exp component (the eyelids' vertical components have a finer step)."""
ANGLE_STEP = LANDMARKS.step(mf.YAW, 100_000) * mf.ANGLE_UNIT
PLACEMENT_STEP = LANDMARKS.step(mf.TX, 100_000) * mf.UNIT


def _call(motions: list[Motion], profile, delay: int = 3):
    """Stream like a call: acknowledgements reach the encoder `delay` frames late."""
    run = FeedbackLoop(profile, feedback_delay=delay).run(motions, 30, start_ms=1000)
    assert set(run.statuses) == {DecodeStatus.DECODED}
    return run.packets, [step.shown for step in run.steps]


def _max_errors(original: Motion, decoded: Motion) -> tuple[float, float, float]:
    angles = max(
        abs(decoded.pitch - original.pitch),
        abs(decoded.yaw - original.yaw),
        abs(decoded.roll - original.roll),
    )
    placement = max(
        np.abs(decoded.t[:2] - original.t[:2]).max(), abs(decoded.scale - original.scale)
    )
    return float(np.abs(decoded.exp - original.exp).max()), angles, float(placement)


def test_default_profile_and_type_check() -> None:
    assert MotionEncoder().profile is KEYPOINTS  # the default stays LivePortrait's
    assert (KEYPOINTS.profile_id, LANDMARKS.profile_id) == (0, 1)
    with pytest.raises(TypeError, match="CodecProfile"):
        MotionEncoder(profile="meshwarp")  # type: ignore[arg-type]


def test_meshwarp_profile_travels_in_band_and_decodes_within_its_steps() -> None:
    motions = [meshwarp_motion(i) for i in range(40)]
    packets, shown = _call(motions, LANDMARKS)
    assert packets[0][1] & 0xF0 == Kind.MOTION_PROFILED and packets[0][3] == LANDMARKS.profile_id
    assert all(p[1] & 0xC0 == Kind.MOTION_DELTA for p in packets[5:])
    worst = np.max([_max_errors(m, d) for m, d in zip(motions, shown, strict=True)], axis=0)
    # Keyframes round (half a step), deltas have the encoder's dead zone (0.75 step).
    tolerance = LANDMARKS.dead_zone + 1e-9
    assert worst[0] <= tolerance * EXP_STEP
    assert worst[1] <= tolerance * ANGLE_STEP
    assert worst[2] <= tolerance * PLACEMENT_STEP
    # The same motion at LivePortrait's precision is much larger on the wire.
    lp_packets, _ = _call(motions, KEYPOINTS)
    assert lp_packets[0][1] & 0xF0 == Kind.MOTION
    assert sum(map(len, packets)) < 0.8 * sum(map(len, lp_packets))


def test_dead_zone_holds_sub_step_jitter_but_passes_real_motion() -> None:
    # A still face exactly on the quantiser grid (a decoded keyframe), then landmark jitter
    # of ±0.6 step: plain rounding would flip the decoded value back and forth every frame,
    # the dead zone keeps it still.
    base = MotionDecoder().decode(MotionEncoder(profile=LANDMARKS).encode(meshwarp_motion(0), 0))
    assert base is not None
    jittered = [base.copy() for _ in range(4)]
    for i in range(30):
        motion = base.copy()
        motion.exp = base.exp + (0.6 if i % 2 else -0.6) * EXP_STEPS
        jittered.append(motion)
    moved = base.copy()
    moved.exp = base.exp + 3 * EXP_STEPS
    packets, shown = _call([*jittered, moved], LANDMARKS)
    steady = [d.exp for d in shown[:-1]]
    assert all(np.array_equal(base.exp, exp) for exp in steady)  # nothing flickers
    assert np.abs(shown[-1].exp - moved.exp).max() <= 0.75 * EXP_STEP  # real motion goes through
    assert np.mean([len(p) for p in packets[6:-1]]) < 12  # a held face costs next to nothing


def test_bad_profile_bytes_are_protocol_errors() -> None:
    keyframe = MotionEncoder(profile=LANDMARKS).encode(meshwarp_motion(0), 0)
    with pytest.raises(ProtocolError, match="unknown motion codec profile 7"):
        MotionDecoder().decode(keyframe[:3] + b"\x07" + keyframe[4:])
    with pytest.raises(ProtocolError, match="profile 0"):
        MotionDecoder().decode(keyframe[:3] + b"\x00" + keyframe[4:])
    with pytest.raises(ProtocolError, match="truncated"):
        MotionDecoder().decode(keyframe[:3])


def test_golden_meshwarp_packets_decode_to_known_motion() -> None:
    decoder = MotionDecoder()
    key = decoder.decode((FIXTURES / "motion_meshwarp_keyframe.bin").read_bytes())
    assert key is not None and decoder.last_timestamp_ms == 2000
    errors = _max_errors(meshwarp_motion(0), key)
    assert errors[0] <= 0.5 * EXP_STEP + 1e-9 and errors[1] <= 0.5 * ANGLE_STEP + 1e-9
    delta = decoder.decode((FIXTURES / "motion_meshwarp_delta.bin").read_bytes())
    assert decoder.last_status is DecodeStatus.DECODED and decoder.last_timestamp_ms == 2033
    assert delta is not None
    errors = _max_errors(meshwarp_motion(1), delta)
    assert errors[0] <= 0.75 * EXP_STEP + 1e-9 and errors[1] <= 0.75 * ANGLE_STEP + 1e-9
