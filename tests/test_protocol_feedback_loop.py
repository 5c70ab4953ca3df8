"""FeedbackLoop: the encoder really uses the late feedback, loss is concealed, keyframe
requests arrive like feedback."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

from lpstream.motion import Motion
from lpstream.protocol import (
    FEEDBACK_DELAY,
    LANDMARKS,
    DecodeStatus,
    FeedbackLoop,
    MotionPacket,
)
from lpstream.protocol.table_fit import Clip, load_clip
from tests.fixtures.protocol.make_fixtures import known_motion, meshwarp_motion


@pytest.fixture(scope="module")
def clip() -> Clip:
    return load_clip(shared_file("motion/d5.npz"))


def kinds(packets: list[bytes]) -> list[bool]:
    """True for each keyframe."""
    return [MotionPacket.parse(p).is_keyframe for p in packets]


def turning(count: int) -> list[Motion]:
    """A head turning 2° per frame, expression from the fixtures."""
    motions = [known_motion(i % 7) for i in range(count)]
    for i, motion in enumerate(motions):
        motion.yaw = 2.0 * i
    return motions


@pytest.mark.parametrize("delay", [1, 2, FEEDBACK_DELAY, 6])
def test_feedback_arrives_exactly_delay_frames_late(delay: int) -> None:
    run = FeedbackLoop(feedback_delay=delay).run([known_motion(i) for i in range(40)], 30)
    # Frame 0's acknowledgement reaches the encoder before frame `delay`: the first delta.
    assert kinds(run.packets) == [True] * delay + [False] * (40 - delay)
    assert set(run.statuses) == {DecodeStatus.DECODED}


def test_feedback_is_what_makes_packets_small(clip: Clip) -> None:
    with_feedback = FeedbackLoop().run(*clip)
    never_acknowledged = FeedbackLoop(feedback_delay=10**6).run(*clip)
    assert all(kinds(never_acknowledged.packets))
    assert np.mean(kinds(with_feedback.packets)) < 0.05
    assert sum(with_feedback.sizes) < 0.6 * sum(never_acknowledged.sizes)


def test_loss_is_seeded_and_concealed() -> None:
    motions = turning(90)
    run = FeedbackLoop(loss=0.3, seed=4).run(motions, 30)
    again = FeedbackLoop(loss=0.3, seed=4).run(motions, 30)
    assert run.packets == again.packets and [s.lost for s in run.steps] == [
        s.lost for s in again.steps
    ]
    lost = [s for s in run.steps if s.lost]
    assert 15 <= len(lost) <= 40
    assert all(not s.deliveries for s in lost)
    # A frame lost right after two decoded ones is extrapolated, not frozen: the turn goes on.
    checked = 0
    for two_before, before, step in zip(run.steps, run.steps[1:], run.steps[2:], strict=False):
        if step.lost and before.deliveries and two_before.deliveries:
            assert step.shown is not None and before.shown is not None
            assert abs(step.shown.yaw - motions[step.frame].yaw) < 0.2
            assert abs(before.shown.yaw - motions[step.frame].yaw) > 1.5
            checked += 1
    assert checked >= 5
    # Loss never costs a decodable frame: every arriving packet decodes.
    assert set(run.statuses) == {DecodeStatus.DECODED}


def test_reordered_packets_arrive_late_and_stale() -> None:
    run = FeedbackLoop(reorder=0.3, seed=1).run(turning(90), 30)
    late = [d for s in run.steps for d in s.deliveries if d.frame != s.frame]
    assert late and all(0 < s.frame - d.frame <= 3 for s in run.steps for d in s.deliveries
                        if d in late)
    assert DecodeStatus.STALE in run.statuses
    assert len(run.deliveries) == 90  # nothing lost, only delayed


def test_keyframe_request_arrives_like_feedback() -> None:
    loop = FeedbackLoop(feedback_delay=2)
    loop.run([known_motion(i) for i in range(10)], 30)
    loop.request_keyframe()  # sent at the end of frame 9: reaches the encoder at frame 11
    steps = [loop.step(known_motion(i), i * 33) for i in range(10, 16)]
    assert kinds([s.packet for s in steps]) == [False, True, True, False, False, False]


def test_per_frame_use_gives_the_same_packets_as_a_whole_run() -> None:
    motions = [meshwarp_motion(i) for i in range(30)]
    loop = FeedbackLoop(LANDMARKS)
    packets = [loop.step(m, round(i * 1000 / 25)).packet for i, m in enumerate(motions)]
    assert packets == FeedbackLoop(LANDMARKS).run(motions, 25).packets
    assert MotionPacket.parse(packets[0]).profile_id == LANDMARKS.profile_id


def test_no_face_frames_show_nothing() -> None:
    run = FeedbackLoop().run([known_motion(0), None, None, known_motion(1)], 30)
    assert [s.shown is None for s in run.steps] == [False, True, True, False]
    assert run.statuses[1] is DecodeStatus.NO_FACE
