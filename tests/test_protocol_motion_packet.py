"""The stateless motion packet layer: serialize∘parse is the identity both ways, and bad
bytes raise only ProtocolError."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpstream.protocol import MotionPacket, ProtocolError
from lpstream.protocol.wire import MAX_PACKET_BYTES, PROTOCOL_VERSION, Kind

FIXTURES = Path(__file__).parent / "fixtures" / "protocol"
bodies = st.binary(max_size=MAX_PACKET_BYTES - 4)
packets = st.one_of(
    st.builds(MotionPacket.keyframe, st.integers(0, 4095), st.integers(0, 255), bodies),
    st.builds(MotionPacket.delta, st.integers(0, 4095), bodies),
    st.builds(MotionPacket.no_face, st.integers(0, 4095), st.integers(0, (1 << 32) - 1)),
)


@settings(max_examples=300, deadline=None)
@given(packets)
def test_parse_inverts_serialize(packet: MotionPacket) -> None:
    assert MotionPacket.parse(packet.serialize()) == packet


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=1200),
        st.builds(
            lambda kind, body: bytes((PROTOCOL_VERSION, kind)) + body,
            st.integers(0, 255),
            st.binary(max_size=12),
        ),
    )
)
def test_any_bytes_parse_exactly_or_raise_protocol_error(data: bytes) -> None:
    try:
        packet = MotionPacket.parse(data)
    except ProtocolError:
        return
    assert packet.serialize() == data  # nothing is lost or invented in between


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"\x02\x10\x00", "version"),
        (bytes((1, 0x10)), "sequence number"),
        (bytes((1, 0x30, 0, 0)), "FEEDBACK"),
        (bytes((1, 0x80, 5)), "profile byte"),
        (bytes((1, 0x80, 5, 0)) + b"body", "profile 0"),
        (bytes((1, 0x20, 5, 0, 0, 0)), "truncated"),
        (bytes((1, 0x20, 5, 0, 0, 0, 0, 0)), "trailing"),
        (bytes((1, 0xC0)) + bytes(MAX_PACKET_BYTES), "exceeds"),
    ],
)
def test_malformed_packets_name_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        MotionPacket.parse(data)


def test_golden_packets_parse_to_their_header_fields() -> None:
    key = MotionPacket.parse((FIXTURES / "motion_keyframe.bin").read_bytes())
    assert key.kind is Kind.MOTION and key.seq == 0 and key.profile_id == 0 and key.is_keyframe
    delta = MotionPacket.parse((FIXTURES / "motion_delta.bin").read_bytes())
    assert delta.kind is Kind.MOTION_DELTA and delta.reference_bits == 0
    no_face = MotionPacket.parse((FIXTURES / "motion_no_face.bin").read_bytes())
    assert (no_face.kind, no_face.seq, no_face.timestamp_ms) == (Kind.NO_FACE, 2, 1066)
    profiled = MotionPacket.parse((FIXTURES / "motion_meshwarp_keyframe.bin").read_bytes())
    assert profiled.kind is Kind.MOTION_PROFILED and profiled.profile_id == 1


def test_inconsistent_packets_are_not_built() -> None:
    with pytest.raises(ValueError, match="profile"):
        MotionPacket(Kind.MOTION, profile_id=1)
    with pytest.raises(ValueError, match="profile"):
        MotionPacket(Kind.MOTION_PROFILED, profile_id=0)
    with pytest.raises(ValueError, match="sequence"):
        MotionPacket.no_face(4096, 0)
    with pytest.raises(ValueError, match="motion-channel"):
        MotionPacket(Kind.FEEDBACK)
