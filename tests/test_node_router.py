"""The router with fake sinks (no aiortc): fan-out, replay to newcomers, merged feedback.

The codec is the real one: what the router merges is what a real encoder acts on.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from lpstream.motion import Motion
from lpstream.node.feedback_merge import FeedbackMerger
from lpstream.node.portrait_image import Portrait
from lpstream.node.router import Router
from lpstream.protocol import DecodeStatus, Feedback, MotionDecoder, MotionEncoder
from lpstream.protocol.wire import Kind


def talking(index: int) -> Motion:
    """Smooth, always-changing motion (a head nodding while talking)."""
    phase = index / 7.0
    exp = np.zeros((21, 3), np.float32)
    exp[:, 1] = 0.01 * math.sin(phase) * np.linspace(-1, 1, 21)
    return Motion(
        pitch=5 * math.sin(phase),
        yaw=8 * math.cos(phase / 2),
        roll=2 * math.sin(phase / 3),
        t=np.array([0.01 * math.sin(phase), 0.0, 0.0]),
        scale=1.3,
        exp=exp,
    )


class DecodingSink:
    """Like a tile: decodes what it gets and answers with feedback; may lose packets."""

    def __init__(self, key: str, loss: float = 0.0, seed: int = 1) -> None:
        self.key = key
        self.decoder = MotionDecoder()
        self.loss = loss
        self.random = random.Random(seed)
        self.statuses: list[DecodeStatus] = []
        self.stamps: list[float | None] = []
        self.portraits: list[str] = []
        self.faces: list[int] = []

    def on_motion(self, packet: bytes, stamp: float | None) -> bytes | None:
        if self.random.random() < self.loss:
            return None
        self.decoder.decode(packet)
        self.statuses.append(self.decoder.last_status)
        self.stamps.append(stamp)
        return self.decoder.feedback()

    def on_portrait(self, portrait: Portrait) -> None:
        self.portraits.append(portrait.sha256)

    def on_face(self, face_id: int) -> None:
        self.faces.append(face_id)


def portrait(sha: str) -> Portrait:
    return Portrait(b"", sha, np.zeros((4, 4, 3), np.uint8))


def stream(router: Router, frames: range, encoder: MotionEncoder) -> None:
    route = router.get("ann")
    assert route is not None
    for index in frames:
        route.publish(encoder.encode(talking(index), index * 40), stamp=float(index))


def test_every_sink_gets_every_packet_until_it_disconnects() -> None:
    router = Router()
    route = router.add_source("ann", "Ann")
    encoder = MotionEncoder()
    route.attach_sender(encoder.on_feedback)
    tile, link = DecodingSink("bob#0"), DecodingSink("link:node:B")
    assert not route.has_audience
    route.connect(tile)
    route.connect(link)
    assert route.has_audience
    stream(router, range(10), encoder)
    route.disconnect(link.key)
    stream(router, range(10, 15), encoder)
    assert len(tile.statuses) == 15 and len(link.statuses) == 10
    assert tile.stamps[-1] == 14.0
    assert route.packets == 15 and route.motion_bytes.total > 0


def test_a_newcomer_gets_the_portrait_and_face_at_once_and_a_keyframe_next() -> None:
    router = Router()
    route = router.add_source("ann", "Ann")
    encoder = MotionEncoder()
    route.attach_sender(encoder.on_feedback)
    first = DecodingSink("bob#0")
    route.connect(first)
    route.set_portrait(portrait("p1"))
    route.set_face(3)
    route.set_face(3)  # unchanged: not repeated
    stream(router, range(20), encoder)
    keyframes = encoder.keyframes_sent
    assert first.faces == [3] and first.portraits == ["p1"]

    late = DecodingSink("cy#0")
    route.connect(late)
    assert late.portraits == ["p1"] and late.faces == [3]
    stream(router, range(20, 21), encoder)
    assert encoder.keyframes_sent == keyframes + 1, "a newcomer needs a keyframe"
    assert late.statuses == [DecodeStatus.DECODED]


@pytest.mark.parametrize("merge", [True, False])
def test_deltas_reference_only_frames_every_receiver_decoded(merge: bool) -> None:
    """A lossy receiver beside a perfect one never gets a delta it cannot decode — unless
    only the perfect one's feedback reached the sender (the `merge=False` control)."""
    router = Router()
    route = router.add_source("ann", "Ann")
    encoder = MotionEncoder()
    perfect, lossy = DecodingSink("bob#0"), DecodingSink("cy#0", loss=0.3, seed=4)
    if merge:
        route.attach_sender(encoder.on_feedback)
    else:  # the sender hears only the perfect receiver

        def only_perfect(packet: bytes) -> None:
            return None

        route.attach_sender(only_perfect)
        original = perfect.on_motion

        def perfect_direct(packet: bytes, stamp: float | None) -> bytes | None:
            reply = original(packet, stamp)
            if reply is not None:
                encoder.on_feedback(reply)
            return None

        perfect.on_motion = perfect_direct  # type: ignore[method-assign]
    route.connect(perfect)
    route.connect(lossy)
    stream(router, range(300), encoder)
    undecodable = {DecodeStatus.CONCEALED, DecodeStatus.WAITING}
    concealed = sum(status in undecodable for status in lossy.statuses)
    assert perfect.statuses.count(DecodeStatus.DECODED) > 250
    if merge:
        assert concealed == 0
        assert encoder.keyframes_sent < 30, "most frames are still deltas"
    else:
        assert concealed > 10


def test_no_face_packets_are_seen_without_decoding() -> None:
    router = Router()
    route = router.add_source("ann", "Ann")
    encoder = MotionEncoder()
    route.publish(encoder.encode(talking(0), 0))
    assert route.face_hidden_for() == 0.0
    route.publish(encoder.encode(None, 40))
    assert route.face_lost_at is not None
    route.publish(encoder.encode(talking(2), 80))
    assert route.face_lost_at is None


def test_a_source_that_stops_sending_counts_as_a_hidden_face() -> None:
    """Camera off: the page sends nothing at all; after SILENCE_S the stats say so."""
    import time

    from lpstream.node.neutral_pose import SILENCE_S

    route = Router().add_source("ann", "Ann")
    assert route.face_hidden_for() == 0.0, "nothing sent yet: not hidden"
    route.publish(MotionEncoder().encode(talking(0), 0))
    assert route.face_hidden_for() == 0.0
    time.sleep(SILENCE_S + 0.1)
    assert route.face_hidden_for() >= SILENCE_S


def test_malformed_feedback_is_counted_not_raised() -> None:
    router = Router()
    route = router.add_source("ann", "Ann")
    sent: list[bytes] = []
    route.attach_sender(sent.append)
    route.connect(DecodingSink("bob#0"))
    sent.clear()
    route.feedback("bob#0", b"\x01\x30garbage")
    route.feedback("bob#0", b"")
    assert route.bad_feedback == 2 and sent == []


def test_merger_forwards_the_intersection_and_keyframe_requests() -> None:
    merger = FeedbackMerger()
    assert Feedback.decode(merger.add_receiver("a")).keyframe_request
    merger.add_receiver("b")
    # b has acknowledged nothing yet: nothing is common, nothing new for the sender
    assert merger.on_feedback("a", Feedback(10, (10, 9, 8)).encode()) is None
    merged = merger.on_feedback("b", Feedback(9, (9, 8)).encode())
    assert merged is not None and set(Feedback.decode(merged).acked) == {8, 9}
    # nothing new in common: nothing to send
    assert merger.on_feedback("a", Feedback(10, (10, 9)).encode()) is None
    request = merger.on_feedback("b", bytes((1, Kind.KEYFRAME_REQUEST)))
    assert request is not None
    decoded = Feedback.decode(request)
    assert decoded.keyframe_request and decoded.acked == ()
    # b leaves: a's acknowledgements alone count now
    alone = merger.remove_receiver("b")
    assert alone is not None and set(Feedback.decode(alone).acked) == {8, 9, 10}
