"""Feedback, control, stats messages: round trips and typed errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpstream.protocol import Feedback, ProtocolError
from lpstream.protocol.control import (
    Bye,
    Hello,
    encode_keyframe_request,
)
from lpstream.protocol.stats import Stats
from lpstream.protocol.wire import SEQ_MODULO, Kind, parse_header, seq_delta


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, SEQ_MODULO - 1),
    st.sets(st.integers(0, 32)),
    st.booleans(),
)
def test_feedback_roundtrip(newest, back, keyframe) -> None:
    acked = tuple([newest] + [(newest - b - 1) % SEQ_MODULO for b in sorted(back) if b < 32])
    decoded = Feedback.decode(Feedback(newest, acked, keyframe).encode())
    assert decoded.newest_seq == newest
    assert set(decoded.acked) == set(acked)
    assert decoded.keyframe_request == keyframe


def test_hello_bye_stats_keyframe_request() -> None:
    hello = Hello("meshwarp", ("eye_ratio", "stitching"))
    assert Hello.decode(hello.encode()) == hello
    assert Bye.decode(Bye("network lost").encode()).reason == "network lost"
    stats = Stats(29.97, 10_000, 300, 12.0, None)
    assert Stats.decode(stats.encode()) == stats
    assert parse_header(encode_keyframe_request())[0] is Kind.KEYFRAME_REQUEST
    with pytest.raises(ProtocolError, match="backend"):
        Hello("x" * 40).encode()
    with pytest.raises(ProtocolError, match="fps"):
        Stats(math.nan, 0, 0).encode()


def test_trailing_bytes_and_truncation_are_errors() -> None:
    packet = Stats(30.0, 1, 1).encode()
    with pytest.raises(ProtocolError, match="trailing"):
        Stats.decode(packet + b"\x00")
    with pytest.raises(ProtocolError, match="truncated"):
        Stats.decode(packet[:-1])
    with pytest.raises(ProtocolError, match="unknown message kind"):
        parse_header(b"\x01\x77")


def test_serial_sequence_distance() -> None:
    assert seq_delta(5, SEQ_MODULO - 3) == 8
    assert seq_delta(SEQ_MODULO - 3, 5) == -8
    assert seq_delta(100, 100) == 0
