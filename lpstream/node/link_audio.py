"""A speaker's Opus packet as it crosses a node link: `[0x00][u32 RTP timestamp][u16 RTP
sequence number][u8 level][Opus payload]`, one item of a batch on the link's unordered channel
(docs/protocol.md §10, `framing.pack_item` gives it the speaker's id).

Byte 0 is 0x00, which no protocol packet starts with (byte 0 of those is the protocol
version, ≥ 1), so audio and motion share the channel's batches. The timestamp and sequence
number are the speaker's browser's, unchanged: the far node publishes the packet exactly as
the speaker's own node received it (`audio_forwarding.AudioSource.publish`). The level is the
packet's RFC 6464 audio level (0 loudest … 127 silence, −dBov), 255 when it had none: the far
node's tiles need it for the mouth that follows the voice, and it never decodes the Opus.
"""

from __future__ import annotations

import struct

from lpstream.node.audio_forwarding import AudioFrame

AUDIO_ITEM = 0x00
_HEADER = struct.Struct("!BIHB")
NO_LEVEL = 255
MAX_LEVEL = 127
HEADER_BYTES = _HEADER.size
MAX_OPUS_BYTES = 1275
"""The largest Opus packet of one frame (RFC 6716 §3.4); a tuned speaker sends ~120 B."""


def is_audio(packet: bytes) -> bool:
    return packet[:1] == b"\x00"


def encode_audio(frame: AudioFrame) -> bytes:
    if not 0 < len(frame.payload) <= MAX_OPUS_BYTES:
        raise ValueError(f"Opus payload of {len(frame.payload)} bytes outside 1..{MAX_OPUS_BYTES}")
    level = NO_LEVEL if frame.level_dbov is None else frame.level_dbov
    if level != NO_LEVEL and not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"audio level {level} outside 0..{MAX_LEVEL}")
    return _HEADER.pack(AUDIO_ITEM, frame.timestamp, frame.sequence, level) + frame.payload


def decode_audio(packet: bytes) -> AudioFrame:
    """The frame of an audio item; ValueError if it is not one, its level is out of range, or
    its payload is empty or longer than an Opus packet can be."""
    if len(packet) <= HEADER_BYTES:
        raise ValueError(f"audio item of {len(packet)} bytes has no payload")
    marker, timestamp, sequence, level = _HEADER.unpack_from(packet)
    if marker != AUDIO_ITEM:
        raise ValueError(f"not an audio item (byte 0 is {marker})")
    if level != NO_LEVEL and level > MAX_LEVEL:
        raise ValueError(f"audio level {level} outside 0..{MAX_LEVEL}")
    payload = bytes(packet[HEADER_BYTES:])
    if len(payload) > MAX_OPUS_BYTES:
        raise ValueError(f"Opus payload of {len(payload)} bytes exceeds {MAX_OPUS_BYTES}")
    return AudioFrame(payload, timestamp, sequence, None if level == NO_LEVEL else level)
