"""A speaker's Opus packet as it crosses a node link: `[0x00][u32 RTP timestamp][u16 RTP
sequence number][Opus payload]`, one item of a batch on the link's unordered channel
(docs/protocol.md §10, `framing.pack_item` gives it the speaker's id).

Byte 0 is 0x00, which no protocol packet starts with (byte 0 of those is the protocol
version, ≥ 1), so audio and motion share the channel's batches. The timestamp and sequence
number are the speaker's browser's, unchanged: the far node publishes the packet exactly as
the speaker's own node received it (`audio_forwarding.AudioSource.publish`).
"""

from __future__ import annotations

import struct

from lpstream.node.audio_forwarding import AudioFrame

AUDIO_ITEM = 0x00
_HEADER = struct.Struct("!BIH")
HEADER_BYTES = _HEADER.size
MAX_OPUS_BYTES = 1275
"""The largest Opus packet of one frame (RFC 6716 §3.4); a tuned speaker sends ~120 B."""


def is_audio(packet: bytes) -> bool:
    return packet[:1] == b"\x00"


def encode_audio(frame: AudioFrame) -> bytes:
    if not 0 < len(frame.payload) <= MAX_OPUS_BYTES:
        raise ValueError(f"Opus payload of {len(frame.payload)} bytes outside 1..{MAX_OPUS_BYTES}")
    return _HEADER.pack(AUDIO_ITEM, frame.timestamp, frame.sequence) + frame.payload


def decode_audio(packet: bytes) -> AudioFrame:
    """The frame of an audio item; ValueError if it is not one or its payload is empty or
    longer than an Opus packet can be."""
    if len(packet) <= HEADER_BYTES:
        raise ValueError(f"audio item of {len(packet)} bytes has no payload")
    marker, timestamp, sequence = _HEADER.unpack_from(packet)
    if marker != AUDIO_ITEM:
        raise ValueError(f"not an audio item (byte 0 is {marker})")
    payload = bytes(packet[HEADER_BYTES:])
    if len(payload) > MAX_OPUS_BYTES:
        raise ValueError(f"Opus payload of {len(payload)} bytes exceeds {MAX_OPUS_BYTES}")
    return AudioFrame(payload, timestamp, sequence)
