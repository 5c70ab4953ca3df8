"""Source portrait transfer: chunking, content addressing, LRU cache, validation errors."""

from __future__ import annotations

import hashlib
import struct

import cv2
import numpy as np
import pytest
from conftest import shared_file

from lpstream.protocol import ProtocolError
from lpstream.protocol.portrait import (
    MAX_CHUNK_DATA,
    PortraitChunk,
    PortraitReceiver,
    PortraitRejectedError,
    PortraitSender,
    RejectCode,
)
from lpstream.protocol.wire import MAX_PACKET_BYTES


def transfer(sender: PortraitSender, receiver: PortraitReceiver) -> int:
    """Run offer → reply → chunks → reply; returns the number of chunks sent."""
    to_send = [sender.offer()]
    chunks = 0
    while to_send:
        packet = to_send.pop(0)
        for reply in receiver.on_packet(packet):
            produced = sender.on_reply(reply)
            chunks += len(produced)
            to_send += produced
    return chunks


def png_bytes(height: int, width: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def test_real_portrait_transfers_in_small_chunks() -> None:
    data = shared_file("media/einstein.jpg").read_bytes()
    sender, receiver = PortraitSender(data), PortraitReceiver()
    assert all(len(p) <= MAX_PACKET_BYTES for p in sender.chunks())
    chunks = transfer(sender, receiver)
    assert chunks == -(-len(data) // MAX_CHUNK_DATA)
    assert sender.accepted
    assert receiver.latest == hashlib.sha256(data).digest()
    expected = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), 1), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(receiver.image(sender.sha256), expected)


def test_cached_portrait_is_not_resent() -> None:
    data = png_bytes(64, 48)
    receiver = PortraitReceiver()
    assert transfer(PortraitSender(data), receiver) > 0
    again = PortraitSender(data)
    assert transfer(again, receiver) == 0
    assert again.accepted


def test_cache_is_bounded_in_bytes_and_least_recently_used() -> None:
    images = [png_bytes(40, 40, seed) for seed in range(3)]
    size = max(len(d) for d in images)
    receiver = PortraitReceiver(cache_bytes=2 * size + 10, max_bytes=size)
    for data in images[:2]:
        transfer(PortraitSender(data), receiver)
    transfer(PortraitSender(images[0]), receiver)  # touch: images[1] is now the oldest
    transfer(PortraitSender(images[2]), receiver)
    digests = [hashlib.sha256(d).digest() for d in images]
    assert receiver.has(digests[0]) and receiver.has(digests[2])
    assert not receiver.has(digests[1])
    assert receiver.cached_bytes <= 2 * size + 10


def expect_rejection(data: bytes, code: RejectCode, **limits) -> PortraitRejectedError:
    with pytest.raises(PortraitRejectedError) as caught:
        transfer(PortraitSender(data), PortraitReceiver(**limits))
    assert caught.value.code is code
    return caught.value


def test_rejections_explain_themselves() -> None:
    error = expect_rejection(png_bytes(20, 20), RejectCode.TOO_LARGE, max_bytes=100)
    assert "100" in str(error)
    expect_rejection(b"GIF89a" + bytes(300), RejectCode.UNSUPPORTED_FORMAT)
    huge = bytearray(png_bytes(8, 8))
    huge[16:24] = struct.pack(">II", 100_000, 100_000)  # decompression-bomb header
    expect_rejection(bytes(huge), RejectCode.TOO_MANY_PIXELS)
    broken = png_bytes(8, 8)[:40] + bytes(100)
    expect_rejection(broken, RejectCode.UNDECODABLE)
    error = expect_rejection(png_bytes(300, 300), RejectCode.TOO_MANY_PIXELS, max_side=256)
    assert "300x300" in str(error)


def test_tampered_chunk_fails_the_hash() -> None:
    data = png_bytes(64, 64)
    sender, receiver = PortraitSender(data, chunk_bytes=500), PortraitReceiver()
    (need,) = receiver.on_packet(sender.offer())
    chunks = sender.on_reply(need)
    first = PortraitChunk.decode(chunks[0])
    chunks[0] = PortraitChunk(first.sha256, 0, first.count, b"X" + first.data[1:]).encode()
    replies = [r for c in chunks for r in receiver.on_packet(c)]
    with pytest.raises(PortraitRejectedError) as caught:
        sender.on_reply(replies[-1])
    assert caught.value.code is RejectCode.BAD_HASH


def test_unsolicited_chunk_is_a_protocol_error() -> None:
    chunk = PortraitChunk(bytes(32), 0, 1, b"data").encode()
    with pytest.raises(ProtocolError, match="never offered"):
        PortraitReceiver().on_packet(chunk)


@pytest.mark.parametrize("interleaved", [True, False])
def test_two_senders_of_the_same_portrait_both_get_accepted(interleaved: bool) -> None:
    """Two participants with the same picture: one page (or node link) receives the same
    sha256 from two senders at once, both offers get NEED and share one pending transfer.
    The chunks left over after the first completes were "never offered" (ProtocolError): the
    soak's page died of it (the exception escaped aiortc's data-channel handler) and the
    second sender never heard ACCEPTED."""
    data = png_bytes(64, 64, seed=5)
    first, second = PortraitSender(data, chunk_bytes=500), PortraitSender(data, chunk_bytes=500)
    receiver = PortraitReceiver()
    (need_a,) = receiver.on_packet(first.offer())
    (need_b,) = receiver.on_packet(second.offer())
    chunks_a, chunks_b = first.on_reply(need_a), second.on_reply(need_b)
    assert len(chunks_a) >= 3
    if interleaved:
        order = [(s, c) for pair in zip(chunks_a, chunks_b, strict=True) for s, c in
                 zip((first, second), pair, strict=True)]  # fmt: skip
    else:
        order = [(first, c) for c in chunks_a] + [(second, c) for c in chunks_b]
    for sender, chunk in order:
        for reply in receiver.on_packet(chunk):
            assert sender.on_reply(reply) == []
    assert first.accepted and second.accepted
    assert receiver.has(first.sha256)
    np.testing.assert_array_equal(receiver.image(first.sha256).shape, (64, 64, 3))
