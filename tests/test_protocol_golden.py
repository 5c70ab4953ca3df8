"""Golden wire fixtures (aiortc style): known inputs encode to exactly the checked-in bytes,
and the checked-in bytes decode to the known values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lpstream.protocol import (
    DecodeStatus,
    Feedback,
    Hello,
    MotionDecoder,
    Stats,
    decode_message,
)
from lpstream.protocol.portrait import PortraitChunk
from tests.fixtures.protocol.make_fixtures import golden_packets, known_motion

FIXTURES = Path(__file__).parent / "fixtures" / "protocol"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize("name", sorted(golden_packets()))
def test_encoding_known_inputs_gives_the_golden_bytes(name: str) -> None:
    assert golden_packets()[name] == fixture(name), f"wire format of {name} changed"


def test_golden_motion_packets_decode_to_known_motion() -> None:
    decoder = MotionDecoder()
    key = decoder.decode(fixture("motion_keyframe.bin"))
    assert decoder.last_status is DecodeStatus.DECODED and decoder.last_timestamp_ms == 1000
    original = known_motion(0)
    assert key is not None
    assert key.yaw == pytest.approx(original.yaw, abs=0.021)
    assert np.abs(key.exp - original.exp).max() <= 1e-3
    assert key.eye_ratio is not None and key.lip_ratio == pytest.approx(0.05, abs=5e-3)
    delta = decoder.decode(fixture("motion_delta.bin"))
    assert decoder.last_status is DecodeStatus.DECODED and decoder.last_timestamp_ms == 1033
    assert delta is not None and delta.pitch == pytest.approx(3.5, abs=0.021)
    assert decoder.decode(fixture("motion_no_face.bin")) is None
    assert not decoder.sender_has_face and decoder.last_timestamp_ms == 1066


def test_golden_control_packets_decode_to_known_values() -> None:
    assert Feedback.decode(fixture("feedback.bin")).acked == (0,)
    assert Feedback.decode(fixture("feedback_keyframe_request.bin")).keyframe_request
    assert decode_message(fixture("hello.bin")) == Hello("liveportrait", ("eye_ratio", "lip_ratio"))
    assert decode_message(fixture("bye.bin")).reason == "call ended"
    assert Stats.decode(fixture("stats.bin")) == Stats(29.97, 123_456, 3_000, 41.0, None)
    chunk = PortraitChunk.decode(fixture("portrait_chunk.bin"))
    assert (chunk.index, chunk.count, chunk.data) == (1, 3, b"\x89PNG-part")
