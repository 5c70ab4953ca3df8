"""Receiver → sender feedback over the reliable channel: acknowledgements + keyframe request.

Layout (9 bytes): version, kind 0x30, flags (bit 0: keyframe request), newest decoded
sequence number (u16, 12 bits used), a u32 mask whose bit i means "sequence newest-1-i was
decoded too". Only acknowledged frames ever serve as references, so a lost motion packet
can never leave the receiver unable to decode a later one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lpstream.protocol.errors import ProtocolError
from lpstream.protocol.wire import SEQ_MODULO, Kind, Reader, expect_kind, header

ACK_WINDOW = 32


@dataclass(frozen=True)
class Feedback:
    newest_seq: int | None
    """Newest motion sequence number the receiver decoded (None: nothing yet)."""
    acked: tuple[int, ...] = ()
    """Sequence numbers (newest first) the receiver decoded and keeps as references."""
    keyframe_request: bool = False
    """The receiver cannot decode what it gets: the next packet must be a keyframe."""

    def encode(self) -> bytes:
        mask = 0
        newest = 0xFFFF if self.newest_seq is None else self.newest_seq
        if self.newest_seq is not None:
            for seq in self.acked:
                back = (self.newest_seq - seq) % SEQ_MODULO - 1
                if 0 <= back < ACK_WINDOW:
                    mask |= 1 << back
        return header(Kind.FEEDBACK) + struct.pack(
            ">BHI", int(self.keyframe_request), newest, mask
        )

    @classmethod
    def decode(cls, packet: bytes) -> Feedback:
        _, _, offset = expect_kind(packet, Kind.FEEDBACK)
        reader = Reader(packet, offset, "feedback")
        flags, newest, mask = reader.unpack("BHI")
        reader.end()
        if flags & ~1:
            raise ProtocolError(f"feedback: unknown flag bits 0x{flags:02x}")
        if newest == 0xFFFF:
            if mask:
                raise ProtocolError("feedback: acknowledgements without a newest sequence")
            return cls(None, (), bool(flags & 1))
        if newest >= SEQ_MODULO:
            raise ProtocolError(f"feedback: sequence {newest} exceeds {SEQ_MODULO - 1}")
        acked = [newest] + [
            (newest - 1 - i) % SEQ_MODULO for i in range(ACK_WINDOW) if mask >> i & 1
        ]
        return cls(newest, tuple(acked), bool(flags & 1))
