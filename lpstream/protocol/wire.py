"""Byte layout shared by every message: version byte, kind byte, bounded big-endian fields."""

from __future__ import annotations

import struct
from enum import IntEnum

from lpstream.protocol.errors import ProtocolError

PROTOCOL_VERSION = 1
"""Byte 0 of every packet. A receiver rejects any other value."""

MAX_PACKET_BYTES = 1100
"""No packet is larger: aiortc's SCTP has no path-MTU discovery, 1100 B always fits."""

SEQ_BITS = 12
SEQ_MODULO = 1 << SEQ_BITS
"""Motion sequence numbers wrap every 4096 frames (~2 min at 30 fps); compared serially."""
TIMESTAMP_MODULO = 1 << 32
"""Sender timestamps are milliseconds mod 2³² (u32 on the wire)."""


class Kind(IntEnum):
    """Byte 1 of every packet. MOTION, MOTION_PROFILED and NO_FACE keep sequence bits
    11..8 in the low nibble; MOTION_DELTA is any byte 0xC0-0xFF, its low 6 bits naming the
    reference."""

    MOTION = 0x10
    """Motion keyframe: decodes alone."""
    NO_FACE = 0x20
    MOTION_DELTA = 0xC0
    """Motion frame predicted from a frame the receiver acknowledged."""
    MOTION_PROFILED = 0x80
    """Motion keyframe of a non-LivePortrait codec profile: byte 3 names the profile."""
    FEEDBACK = 0x30
    HELLO = 0x40
    KEYFRAME_REQUEST = 0x42
    BYE = 0x43
    STATS = 0x50
    PORTRAIT_OFFER = 0x60
    PORTRAIT_CHUNK = 0x61
    PORTRAIT_NEED = 0x62
    PORTRAIT_ACCEPTED = 0x63
    PORTRAIT_REJECTED = 0x64


_SEQ_KINDS = (Kind.MOTION, Kind.NO_FACE, Kind.MOTION_PROFILED)
REFERENCE_ID_BITS = 6


def header(kind: Kind, seq: int | None = None) -> bytes:
    """Version byte plus kind byte (motion kinds carry the top 4 bits of `seq` inside it;
    MOTION_DELTA carries the low 6 bits of its reference's sequence number instead)."""
    if kind is Kind.MOTION_DELTA:
        assert seq is not None
        return bytes((PROTOCOL_VERSION, int(kind) | seq & 0x3F))
    if kind in _SEQ_KINDS:
        assert seq is not None
        return bytes((PROTOCOL_VERSION, int(kind) | (seq >> 8) & 0x0F, seq & 0xFF))
    return bytes((PROTOCOL_VERSION, int(kind)))


def parse_header(packet: bytes) -> tuple[Kind, int | None, int]:
    """(kind, seq or reference id or None, offset of the body). Raises ProtocolError on
    anything unexpected."""
    if not isinstance(packet, bytes | bytearray | memoryview):
        raise ProtocolError(f"packet must be bytes, got {type(packet).__name__}")
    if len(packet) < 2:
        raise ProtocolError(f"packet too short ({len(packet)} bytes) for a header")
    if len(packet) > MAX_PACKET_BYTES:
        raise ProtocolError(f"packet of {len(packet)} bytes exceeds {MAX_PACKET_BYTES}")
    if packet[0] != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {packet[0]} not supported (this side speaks {PROTOCOL_VERSION})"
        )
    kind_byte = packet[1]
    if kind_byte & 0xC0 == Kind.MOTION_DELTA:
        return Kind.MOTION_DELTA, kind_byte & 0x3F, 2
    if kind_byte & 0xF0 in _SEQ_KINDS:
        if len(packet) < 3:
            raise ProtocolError("motion packet too short for its sequence number")
        return Kind(kind_byte & 0xF0), ((kind_byte & 0x0F) << 8) | packet[2], 3
    try:
        return Kind(kind_byte), None, 2
    except ValueError:
        raise ProtocolError(f"unknown message kind 0x{kind_byte:02x}") from None


def expect_kind(packet: bytes, *kinds: Kind) -> tuple[Kind, int | None, int]:
    kind, seq, offset = parse_header(packet)
    if kind not in kinds:
        names = ", ".join(k.name for k in kinds)
        raise ProtocolError(f"expected a {names} packet, got {kind.name}")
    return kind, seq, offset


def seq_delta(newer: int, older: int) -> int:
    """Signed serial distance newer - older in [-2048, 2047] (RFC 1982 style)."""
    return ((newer - older + SEQ_MODULO // 2) % SEQ_MODULO) - SEQ_MODULO // 2


class Reader:
    """Bounded big-endian reader: every overrun becomes a ProtocolError."""

    def __init__(self, packet: bytes, offset: int, what: str) -> None:
        self.data = bytes(packet)
        self.pos = offset
        self.what = what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError(f"{self.what}: truncated (needs {n} more bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(">" + fmt, self.take(struct.calcsize(">" + fmt)))

    def u8(self) -> int:
        return self.take(1)[0]

    def text(self, max_bytes: int) -> str:
        n = self.u8()
        if n > max_bytes:
            raise ProtocolError(f"{self.what}: text of {n} bytes exceeds {max_bytes}")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"{self.what}: text is not UTF-8") from None

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(f"{self.what}: {len(self.data) - self.pos} trailing bytes")


def text_field(value: str, max_bytes: int, what: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > max_bytes:
        raise ProtocolError(f"{what} of {len(raw)} bytes exceeds {max_bytes}")
    return bytes((len(raw),)) + raw
