"""Motion codec: compactness and precision on the shared LivePortrait motion, loss, clamping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import shared_file
from protocol_helpers import (
    ANGLE_TOLERANCE,
    KEYPOINT_TOLERANCE,
    angle_error,
    canonical_sets,
    keypoint_error,
    stream,
)

from lpstream.motion import Motion
from lpstream.protocol import (
    DecodeStatus,
    FeedbackLoop,
    LivePortraitMotion,
    MotionDecoder,
    MotionEncoder,
    ProtocolError,
)
from lpstream.protocol.concealment import MAX_EXTRAPOLATION_MS
from lpstream.protocol.table_fit import load_clip

CLIPS = ["aggrieved", "d1", "d5", "d7", "d8", "laugh", "open_lip", "shake_face", "wink"]


@pytest.fixture(scope="module")
def shared_clips() -> list[tuple[list[Motion], float]]:
    return [load_clip(shared_file(f"motion/{name}.npz")) for name in CLIPS]


def test_livepotrait_motion_is_the_shared_type() -> None:
    assert LivePortraitMotion is Motion


def test_compact_and_precise_on_shared_motion(shared_clips) -> None:
    sizes: list[int] = []
    for motions, fps in shared_clips:
        run = stream(motions, fps, feedback_delay=3)
        assert run.shown == len(motions)
        assert run.max_keypoint_error <= KEYPOINT_TOLERANCE
        assert run.max_angle_error <= ANGLE_TOLERANCE
        sizes += run.packet_sizes
    assert len(sizes) == 955
    assert np.mean(sizes) <= 16.0, f"mean {np.mean(sizes):.2f} bytes per frame"


@pytest.mark.parametrize("loss", [0.0, 0.1, 0.3])
def test_loss_and_reordering_never_corrupt_a_shown_frame(shared_clips, loss) -> None:
    for seed, (motions, fps) in enumerate(shared_clips):
        run = stream(motions, fps, loss=loss, reorder=0.2, seed=seed)
        assert run.max_keypoint_error <= KEYPOINT_TOLERANCE
        assert run.max_angle_error <= ANGLE_TOLERANCE
        if loss < 0.3:
            assert run.shown > 0.6 * len(motions)
    # Reordering really happened: some packets arrived after a newer one was shown.
    assert DecodeStatus.STALE in run.statuses


def test_no_face_packet_holds_and_reports(shared_clips) -> None:
    motions, _ = shared_clips[0]
    encoder, decoder = MotionEncoder(), MotionDecoder()
    shown = decoder.decode(encoder.encode(motions[0], 0))
    assert shown is not None and decoder.sender_has_face
    packet = encoder.encode(None, 40)
    assert len(packet) <= 8
    assert decoder.decode(packet) is None
    assert decoder.last_status is DecodeStatus.NO_FACE
    assert not decoder.sender_has_face
    assert decoder.last_motion is not None  # the UI can keep the last good frame
    assert decoder.decode(encoder.encode(motions[1], 80)) is not None
    assert decoder.sender_has_face


def test_fresh_decoder_asks_for_keyframe_and_recovers(shared_clips) -> None:
    motions, _ = shared_clips[1]
    loop = FeedbackLoop(feedback_delay=0)
    for i in range(6):
        loop.step(motions[i], i * 33)
    encoder = loop.encoder
    late_joiner = MotionDecoder()
    delta = encoder.encode(motions[6], 6 * 33)
    assert late_joiner.decode(delta) is None
    assert late_joiner.last_status is DecodeStatus.WAITING
    request = late_joiner.feedback()
    assert request is not None
    encoder.on_feedback(request)
    recovered = late_joiner.decode(encoder.encode(motions[7], 7 * 33))
    assert late_joiner.last_status is DecodeStatus.DECODED
    assert keypoint_error(recovered, motions[7], canonical_sets()) <= KEYPOINT_TOLERANCE


def test_missing_reference_is_concealed_with_bounded_extrapolation() -> None:
    loop = FeedbackLoop(feedback_delay=0)
    moving = [_motion(yaw=2.0 * i) for i in range(8)]
    loop.run(moving[:4], fps=25)
    decoder = loop.decoder
    decoder._store.clear()  # the receiver lost its references (e.g. restarted renderer)
    concealed = loop.step(moving[4], 160).shown
    assert decoder.last_status is DecodeStatus.CONCEALED
    assert concealed is not None and concealed.yaw == pytest.approx(8.0, abs=0.05)
    far = decoder.conceal(10_000)
    assert far is not None
    # 6 → 4 → at most MAX_EXTRAPOLATION_MS of motion at 2°/40 ms past the last frame.
    assert far.yaw <= 6.0 + 2.0 * MAX_EXTRAPOLATION_MS / 40 + 0.05


def _motion(**overrides) -> Motion:
    values = dict(pitch=1.0, yaw=2.0, roll=-3.0, t=[0.05, 0.1, 0.0], scale=1.5)
    values["exp"] = np.zeros((21, 3))
    values.update(overrides)
    return Motion(**values)


def test_full_backend_range_roundtrips_within_one_step() -> None:
    rng = np.random.default_rng(3)
    loop = FeedbackLoop(feedback_delay=0)
    for i in range(30):
        motion = Motion(
            pitch=rng.uniform(-180, 180),
            yaw=rng.uniform(-180, 180),
            roll=rng.uniform(-180, 180),
            t=rng.uniform(-4, 4, 3),
            scale=rng.uniform(0.05, 8),
            exp=rng.uniform(-1, 1, (21, 3)),
            eye_ratio=rng.uniform(0, 1, 2) if i % 2 else None,
            lip_ratio=float(rng.uniform(0, 1)) if i % 3 else None,
        )
        decoded = loop.step(motion, i * 33).shown
        assert decoded is not None
        assert angle_error(decoded, motion) <= 0.021
        assert abs(decoded.scale - motion.scale) <= 2.1e-4
        assert np.abs(decoded.t[:2] - motion.t[:2]).max() <= 2.1e-4
        # exp step = 2.8e-3 / scale (capped), so the keypoint error scale·Δexp stays bounded
        assert decoded.scale * np.abs(decoded.exp - motion.exp).max() <= 1.5e-3 + 0.05 * 1e-5
        assert (decoded.eye_ratio is None) == (motion.eye_ratio is None)
        assert (decoded.lip_ratio is None) == (motion.lip_ratio is None)


def test_out_of_range_is_clamped_not_wrapped() -> None:
    encoder, decoder = MotionEncoder(), MotionDecoder()
    wild = _motion(pitch=400.0, yaw=-1e9, roll=181.0, scale=50.0, t=[9.0, -9.0, 0.0])
    wild.exp[0, 0] = 3.0
    decoded = decoder.decode(encoder.encode(wild, 0))
    assert decoded is not None
    # Clamped to the documented range, then quantised (within half a step of the limit).
    assert decoded.pitch == pytest.approx(180.0, abs=0.021) and decoded.pitch <= 180.0
    assert decoded.yaw == pytest.approx(-180.0, abs=0.021) and decoded.yaw >= -180.0
    assert decoded.roll == pytest.approx(180.0, abs=0.021)
    assert decoded.scale == pytest.approx(8.0, abs=2.1e-4) and decoded.scale <= 8.0
    assert decoded.t[:2] == pytest.approx([4.0, -4.0], abs=2.1e-4)
    assert decoded.exp[0, 0] == pytest.approx(1.0, abs=3e-3)


def test_non_finite_motion_is_a_clear_error() -> None:
    with pytest.raises(ProtocolError, match="yaw"):
        MotionEncoder().encode(_motion(yaw=math.nan), 0)
    with pytest.raises(ProtocolError, match="exp"):
        bad = _motion()
        bad.exp[3, 1] = math.inf
        MotionEncoder().encode(bad, 0)


def test_sequence_numbers_wrap(shared_clips) -> None:
    motions, _ = shared_clips[5]
    loop = FeedbackLoop()
    for i in range(4200):  # more than the 4096 sequence numbers
        step = loop.step(motions[i % len(motions)], i * 33)
        assert [d.status for d in step.deliveries] == [DecodeStatus.DECODED], i
    assert step.shown is not None
    assert loop.encoder.keyframes_sent <= 3


def test_wrong_channel_packets_are_protocol_errors() -> None:
    decoder = MotionDecoder()
    with pytest.raises(ProtocolError, match="version"):
        decoder.decode(b"\x07\x10\x00")
    with pytest.raises(ProtocolError, match="MOTION"):
        decoder.decode(bytes((1, 0x43, 0)))
    with pytest.raises(ProtocolError):
        MotionEncoder().on_feedback(b"\x01\x10\x00\x00")


def test_very_late_packet_never_decodes_against_the_wrong_reference(shared_clips) -> None:
    motions, fps = shared_clips[4]
    loop = FeedbackLoop(feedback_delay=0)
    loop.run(motions[:20], fps)
    held_back = loop.encoder.encode(motions[20], round(20 * 1000 / fps))
    loop.run(motions[21:120], fps, start_ms=round(21 * 1000 / fps))  # overtake it
    decoder = loop.decoder
    shown_before = decoder.last_motion
    assert held_back[1] >= 0xC0  # a delta frame
    late = decoder.decode(held_back)
    assert decoder.last_status is DecodeStatus.CONCEALED  # its reference is gone
    assert late is not None and shown_before is not None
    assert late.yaw == pytest.approx(shown_before.yaw, abs=1.0)  # no jump to frame 20


def test_reordered_packet_is_stale_and_does_not_rewind(shared_clips) -> None:
    motions, _ = shared_clips[2]
    encoder, decoder = MotionEncoder(), MotionDecoder()
    first = encoder.encode(motions[0], 0)
    second = encoder.encode(motions[1], 33)
    newer = decoder.decode(second)
    assert decoder.last_status is DecodeStatus.DECODED
    older = decoder.decode(first)
    assert decoder.last_status is DecodeStatus.STALE
    assert older is not None and newer is not None
    assert older.yaw == newer.yaw and np.array_equal(older.exp, newer.exp)  # held, not rewound
    assert decoder.last_timestamp_ms == 33


def test_acknowledgements_from_before_a_keyframe_request_are_ignored(shared_clips) -> None:
    motions, _ = shared_clips[3]
    encoder, old_receiver = MotionEncoder(), MotionDecoder()
    for i in range(5):
        old_receiver.decode(encoder.encode(motions[i], i * 33))
    in_flight = old_receiver.feedback()  # acks 0..4, still travelling when the receiver restarts
    assert in_flight is not None
    restarted = MotionDecoder()
    restarted._keyframe_needed = True  # what a receiver without references sends
    encoder.on_feedback(restarted.feedback())
    encoder.on_feedback(in_flight)  # arrives after the request: must not become a reference
    for i in range(5, 9):  # no feedback from the new receiver yet: all must decode alone
        restarted.decode(encoder.encode(motions[i], i * 33))
        assert restarted.last_status is DecodeStatus.DECODED, i
