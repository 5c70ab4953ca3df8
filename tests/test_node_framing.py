"""Participants' packets on shared channels: single frames and batches, and bad bytes."""

from __future__ import annotations

import pytest

from lpstream.node.framing import frame_packet, pack_item, unframe_packet, unpack_batch


def test_a_frame_and_a_batch_round_trip() -> None:
    assert unframe_packet(frame_packet("ann", b"\x01\x10xyz")) == ("ann", b"\x01\x10xyz")
    items = [("ann", b"\x01\xc0abc"), ("", b""), ("bøb", bytes(300))]
    assert unpack_batch(b"".join(pack_item(p, k) for p, k in items)) == items


@pytest.mark.parametrize(
    "message",
    [b"\x05ab", b"\x03ann\x00", b"\x03ann\x00\x05abc", b"\x02\xff\xfe\x00\x00"],
)
def test_truncated_or_garbled_batches_are_refused(message: bytes) -> None:
    with pytest.raises(ValueError):
        unpack_batch(message)
    assert unpack_batch(b"") == []
