"""The bytes of a motion-channel packet, written once for both directions (docs/protocol.md §1, §3).

Stateless, like aiortc's `RtpPacket`: the header fields and the still arithmetic-coded body.
Sequence state, references, prediction and concealment live in motion_codec.py and
concealment.py.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.wire import (
    REFERENCE_ID_BITS,
    SEQ_MODULO,
    TIMESTAMP_MODULO,
    Kind,
    Reader,
    expect_kind,
    header,
)

MOTION_KINDS = (Kind.MOTION, Kind.MOTION_PROFILED, Kind.MOTION_DELTA, Kind.NO_FACE)
_REFERENCE_MODULO = 1 << REFERENCE_ID_BITS


@dataclass(frozen=True)
class MotionPacket:
    """One MOTION / MOTION_PROFILED keyframe, MOTION_DELTA or NO_FACE packet."""

    kind: Kind
    seq: int = 0
    """Sequence number of a keyframe or NO_FACE packet (12 bits); 0 for a delta."""
    reference_bits: int = 0
    """MOTION_DELTA only: bits 5..0 of the reference's sequence number."""
    profile_id: int = 0
    """Codec profile of a keyframe: 0 for MOTION, 1..255 (byte 3) for MOTION_PROFILED."""
    timestamp_ms: int = 0
    """NO_FACE only: the sender's timestamp, ms mod 2³² (motion carries it in the body)."""
    body: bytes = b""
    """Arithmetic-coded body of a motion packet (empty for NO_FACE)."""

    def __post_init__(self) -> None:
        if self.kind not in MOTION_KINDS:
            raise ValueError(f"{self.kind!r} is not a motion-channel kind")
        if not 0 <= self.seq < SEQ_MODULO:
            raise ValueError(f"sequence number {self.seq} outside 0..{SEQ_MODULO - 1}")
        if not 0 <= self.reference_bits < _REFERENCE_MODULO:
            raise ValueError(f"reference bits {self.reference_bits} outside 6 bits")
        if (self.profile_id != 0) != (self.kind is Kind.MOTION_PROFILED) or self.profile_id > 255:
            raise ValueError(f"profile {self.profile_id} cannot travel in a {self.kind.name}")
        if not 0 <= self.timestamp_ms < TIMESTAMP_MODULO:
            raise ValueError(f"timestamp {self.timestamp_ms} outside 32 bits")

    @classmethod
    def keyframe(cls, seq: int, profile_id: int, body: bytes) -> MotionPacket:
        """MOTION for profile 0, MOTION_PROFILED (with the profile byte) for any other."""
        kind = Kind.MOTION if profile_id == 0 else Kind.MOTION_PROFILED
        return cls(kind, seq=seq, profile_id=profile_id, body=body)

    @classmethod
    def delta(cls, reference_seq: int, body: bytes) -> MotionPacket:
        return cls(Kind.MOTION_DELTA, reference_bits=reference_seq % _REFERENCE_MODULO, body=body)

    @classmethod
    def no_face(cls, seq: int, timestamp_ms: int) -> MotionPacket:
        return cls(Kind.NO_FACE, seq=seq, timestamp_ms=timestamp_ms)

    @property
    def is_keyframe(self) -> bool:
        return self.kind in (Kind.MOTION, Kind.MOTION_PROFILED)

    def serialize(self) -> bytes:
        if self.kind is Kind.MOTION_DELTA:
            return header(Kind.MOTION_DELTA, self.reference_bits) + self.body
        if self.kind is Kind.NO_FACE:
            return header(Kind.NO_FACE, self.seq) + struct.pack(">I", self.timestamp_ms)
        if self.kind is Kind.MOTION_PROFILED:
            return header(Kind.MOTION_PROFILED, self.seq) + bytes((self.profile_id,)) + self.body
        return header(Kind.MOTION, self.seq) + self.body

    @classmethod
    def parse(cls, data: bytes) -> MotionPacket:
        """Raises ProtocolError (only) on anything that is not a well-formed motion packet."""
        kind, number, offset = expect_kind(data, *MOTION_KINDS)
        assert number is not None
        if kind is Kind.MOTION_DELTA:
            return cls(kind, reference_bits=number, body=bytes(data[offset:]))
        if kind is Kind.NO_FACE:
            reader = Reader(data, offset, "no-face packet")
            (timestamp,) = reader.unpack("I")
            reader.end()
            return cls(kind, seq=number, timestamp_ms=timestamp)
        if kind is Kind.MOTION_PROFILED:
            if len(data) <= offset:
                raise ProtocolError("motion keyframe: truncated before its profile byte")
            if data[offset] == 0:
                raise ProtocolError("motion keyframe: profile 0 must use the MOTION kind")
            return cls(kind, seq=number, profile_id=data[offset], body=bytes(data[offset + 1 :]))
        return cls(kind, seq=number, body=bytes(data[offset:]))
