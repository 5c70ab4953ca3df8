"""Hostile input: any bytes, and mutations of valid packets, raise only ProtocolError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpstream.protocol import (
    FeedbackLoop,
    MotionDecoder,
    MotionEncoder,
    PortraitReceiver,
    PortraitSender,
    ProtocolError,
    decode_message,
)
from lpstream.protocol.wire import PROTOCOL_VERSION, Kind
from tests.fixtures.protocol.make_fixtures import golden_packets, known_motion


def primed_decoder() -> tuple[MotionEncoder, MotionDecoder]:
    loop = FeedbackLoop(feedback_delay=0)
    for i in range(6):
        loop.step(known_motion(i), i * 33)
    return loop.encoder, loop.decoder


def feed_everything(packet: bytes) -> None:
    """Every entry point that parses bytes from the network, on fresh and primed state."""
    encoder, decoder = primed_decoder()
    receiver = PortraitReceiver(cache_bytes=1 << 20, max_bytes=1 << 16)
    receiver.on_packet(PortraitSender(b"\x89PNG" + bytes(40)).offer())
    entry_points = [
        decode_message,
        MotionDecoder().decode,
        decoder.decode,
        encoder.on_feedback,
        receiver.on_packet,
        PortraitSender(b"portrait").on_reply,
    ]
    for entry in entry_points:
        try:
            entry(packet)
        except ProtocolError:
            pass
    if decoder.last_motion is not None:
        decoder.feedback()


arbitrary = st.binary(max_size=1200)
versioned = st.builds(
    lambda kind, body: bytes((PROTOCOL_VERSION, kind)) + body,
    st.sampled_from([int(k) for k in Kind] + [0x1F, 0x2A, 0x00, 0xFF]),
    st.binary(max_size=80),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(arbitrary, versioned))
def test_arbitrary_bytes_raise_only_protocol_error(packet: bytes) -> None:
    feed_everything(packet)


GOLDEN = list(golden_packets().values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(GOLDEN),
    st.lists(st.tuples(st.integers(0, 1199), st.integers(0, 255)), max_size=6),
    st.integers(0, 1200),
)
def test_mutated_valid_packets_raise_only_protocol_error(packet, flips, cut) -> None:
    mutated = bytearray(packet)
    for position, value in flips:
        if mutated:
            mutated[position % len(mutated)] = value
    feed_everything(bytes(mutated[: max(2, cut)]))
